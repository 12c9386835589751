"""Pure parsing of guest output: command sentinels and kernel console trouble."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Lines that mean the guest kernel is dead or its state can no longer be trusted.
_FATAL = (r"Kernel panic - not syncing|Oops(?::| -)|BUG: |kernel BUG at|"
          r"general protection fault|Unable to handle kernel|"
          # hangs: the hung-task and RCU-stall detectors (soft lockups say "BUG: soft lockup")
          r"INFO: task \S+:\d+ blocked for more than \d+ seconds|"
          r"rcu: INFO: \S+ (?:self-)?detected stalls?")
# A WARN_ON() that fired (CONFIG_BUG): the kernel goes on, the test that caused it fails.
_WARNING = r"WARNING: CPU: \d+ PID: \d+|WARNING: .* at "
_TROUBLE = re.compile(rf"^.*?(?:(?P<fatal>{_FATAL})|(?P<warning>{_WARNING})).*$", re.MULTILINE)
# The end of a warning's report: its excerpt stops there.
_END_TRACE = re.compile(r"^.*---\[ end trace [0-9a-f]+ \]---.*$", re.MULTILINE)


@dataclass(frozen=True)
class Trouble:
    """Kernel trouble found on a guest console."""

    fatal: bool  # panic/Oops/BUG: the guest is dead or untrustworthy; else a WARNING
    excerpt: str  # the trouble's first line and what followed it
    end: int  # offset in the console text just after the excerpt (where to look next)


@dataclass(frozen=True)
class CommandResult:
    """What one guest command produced."""

    command: str
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.rc == 0


# Shell function defined once per session. It runs a command in a subshell with its
# output in files, then prints them between per-command markers using builtins only
# (an exec costs ~50 ms under TCG). mapfile without -t keeps the bytes exact.
SESSION_SETUP = (
    "kbtf_run() { ( eval \"$2\" ) >@W@/o 2>@W@/e </dev/null; local r=$? IFS= o e; "
    "mapfile o <@W@/o; mapfile e <@W@/e; "
    "printf '\\nKBTF-%s-O\\n%s\\nKBTF-%s-E\\n%s\\nKBTF-%s-R:%d\\n' "
    "\"$1\" \"${o[*]}\" \"$1\" \"${e[*]}\" \"$1\" \"$r\"; }"
)
_CHUNK = 1024


def session_setup(workdir: str) -> str:
    """The bash line that defines kbtf_run, writing its temp files under ``workdir``."""
    return SESSION_SETUP.replace("@W@", workdir)


def ansi_c_quote(text: str) -> str:
    """Quote ``text`` as one bash $'...' word on a single line (newlines become \\x0a)."""
    out = []
    for byte in text.encode():
        ch = chr(byte)
        if ch in "\\'":
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\x{byte:02x}")
    return "$'" + "".join(out) + "'"


def wrap_command(command: str, token: str) -> list[str]:
    """Lines to type so the guest runs ``command`` through kbtf_run with ``token``.

    Long commands are assembled in a variable in chunks, below the tty's line limit.
    """
    if len(command) <= _CHUNK:
        return [f"kbtf_run {token} {ansi_c_quote(command)}"]
    lines = ["kbtf_c="]
    for i in range(0, len(command), _CHUNK):
        lines.append(f"kbtf_c+={ansi_c_quote(command[i:i + _CHUNK])}")
    lines.append(f'kbtf_run {token} "$kbtf_c"')
    return lines


def sentinel_pattern(token: str) -> str:
    """Regex matching the framed result of ``token`` (groups: stdout, stderr, rc)."""
    t = re.escape(token)
    nl = r"\r*\n"
    return rf"(?s){nl}KBTF-{t}-O{nl}(.*?){nl}KBTF-{t}-E{nl}(.*?){nl}KBTF-{t}-R:(\d+){nl}"


def decode_result(command: str, match: re.Match[str]) -> CommandResult:
    """Build a CommandResult from a sentinel_pattern match."""
    def text(group: int) -> str:
        # The guest console turns \n into \r\n on its way out, whatever stty says.
        return re.sub(r"\r+\n", "\n", match.group(group))

    return CommandResult(command, int(match.group(3)), text(1), text(2))


def find_trouble(console_text: str, start: int = 0, context: int = 20) -> Trouble | None:
    """The first panic/Oops/BUG/WARNING at or after offset ``start`` of ``console_text``,
    with up to ``context`` lines after it; a warning's excerpt runs to its end-trace line
    (up to three times as far).

    Returns None when that part of the console shows no trouble.
    """
    m = _TROUBLE.search(console_text, start)
    if not m:
        return None
    fatal = m.group("fatal") is not None
    lines = console_text[m.start():].splitlines(keepends=True)[: context * (1 if fatal else 3) + 1]
    end = m.start() + sum(len(ln) for ln in lines)
    if not fatal:
        close = _END_TRACE.search(console_text, m.end())
        if close is not None and close.end() <= end:
            end = close.end()
        else:
            end = min(end, m.start() + sum(len(ln) for ln in lines[: context + 1]))
    excerpt = console_text[m.start():end].rstrip("\n")
    return Trouble(fatal, excerpt, end)


# A line QEMU (or vng, its launcher) writes of its own: "qemu-system-x86_64: warning: ...",
# and what QEMU prints when KVM fails to run the guest (accel/kvm/kvm-all.c: "KVM internal
# error. Suberror: 1", "error: kvm run failed Bad address", "KVM: entry failed, hardware
# error 0x80000021", then its register dump: "RAX=0000...", "ES =0000 ...", "Code=...").
_HOST_LINE = re.compile(r"^(?:(?:qemu-system-[\w-]+|qemu|vng|virtme-ng)(?::| warning| error)|"
                        r"KVM internal error|KVM: entry failed|error: kvm run failed|extra data\[|"
                        r"emulation failure|If you're running a guest on an Intel machine|"
                        r"support, the failure can be most likely|state for Intel VT|"
                        r"which is not supported on less recent Intel processors|"
                        r"[A-Z][A-Z0-9]{1,4} ?=[0-9a-f ]|Code=)[^\n]*(?:\n|$)", re.MULTILINE)


def guest_wrote(text: str) -> bool:
    """Whether console ``text`` holds anything the guest wrote, QEMU's and vng's own lines
    (even one still being written) left out."""
    rest = _HOST_LINE.sub("", text)
    head, _, last = rest.rpartition("\n")
    if any(last.startswith(p) or p.startswith(last) for p in ("qemu", "vng", "virtme")):
        rest = head  # a line QEMU or vng is still writing
    return bool(rest.strip())
