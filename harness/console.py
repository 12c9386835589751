"""Pure parsing of guest output: command sentinels and kernel console trouble."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

# Lines that mean the guest kernel is dead or its state can no longer be trusted.
_TROUBLE = re.compile(
    r"^.*(?:Kernel panic - not syncing|Oops(?::| -)|BUG: |kernel BUG at|"
    r"general protection fault|Unable to handle kernel).*$",
    re.MULTILINE,
)


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


def wrap_command(command: str, token: str, workdir: str) -> list[str]:
    """Shell lines that run ``command`` in the guest and print one sentinel line.

    The command travels base64-encoded (no quoting or tty line-length trouble) in
    chunks; its stdout and stderr come back base64-encoded on the sentinel line
    ``KBTF-<token>:<rc>:<stdout>:<stderr>:END``, which the typed text never contains.
    """
    payload = base64.b64encode(command.encode()).decode()
    script = f"{workdir}/{token}.sh"
    lines = [f": > {script}.b64"]
    for i in range(0, len(payload), 512):
        lines.append(f"printf %s {payload[i:i + 512]} >> {script}.b64")
    out, err = f"{workdir}/{token}.out", f"{workdir}/{token}.err"
    lines.append(
        f"base64 -d {script}.b64 > {script}; sh {script} > {out} 2> {err} < /dev/null; "
        f"printf '\\nKBTF-%s:%s:%s:%s:END\\n' {token} $? "
        f'"$(base64 -w0 {out})" "$(base64 -w0 {err})"; rm -f {script}* {out} {err}'
    )
    return lines


def sentinel_pattern(token: str) -> str:
    """Regex matching the sentinel line of ``token`` (groups: rc, stdout, stderr)."""
    return rf"KBTF-{re.escape(token)}:(\d+):([A-Za-z0-9+/=]*):([A-Za-z0-9+/=]*):END"


def decode_result(command: str, match: re.Match[str]) -> CommandResult:
    """Build a CommandResult from a sentinel_pattern match."""
    rc, out, err = match.group(1), match.group(2), match.group(3)
    return CommandResult(
        command,
        int(rc),
        base64.b64decode(out).decode(errors="replace"),
        base64.b64decode(err).decode(errors="replace"),
    )


def find_trouble(console_text: str, context: int = 20) -> str | None:
    """The first panic/Oops/BUG line in ``console_text`` with up to ``context`` lines after it.

    Returns None when the console shows no trouble.
    """
    m = _TROUBLE.search(console_text)
    if not m:
        return None
    tail = console_text[m.start():].splitlines()[: context + 1]
    return "\n".join(tail)
