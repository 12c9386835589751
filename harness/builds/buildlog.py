"""Who is to blame for a failed build: the environment (an ERROR) or the thing under test
(the kernel tree's rules, the compiler, pahole: a FAILED test). Pure: reads log text."""

from __future__ import annotations

import re
from pathlib import Path

from harness.errors import BuildFailure, CommandError, CommandTimeout, HarnessError, KbtfError

# Log lines that mean the machine, not the code under test, stopped the build. bubblewrap's
# own complaints ("bwrap: execvp clang-21: ...") are kbtf's: a build root's wrapper could not
# run the program it stands for.
_ENVIRONMENT = re.compile(
    r"No space left on device|Disk quota exceeded|Read-only file system|"
    r"Cannot allocate memory|virtual memory exhausted|Killed signal terminated program|"
    r"[\w./-]+: (?:command )?not found|No such file or directory: '[^']*(?:gcc|make|pahole)'|"
    r"(?m:^bwrap: .*)|"
    # the compiler driver cannot start a program it needs (PATH or the machine is broken:
    # "gcc: fatal error: cannot execute 'as': execvp: Too many levels of symbolic links")
    r"cannot execute [\u2018'`][^\u2019']+[\u2019']: execvp:",
)
# The most telling lines of a failed build, best first: a tool that crashed, the BTF tools'
# own complaints (pahole; resolve_btfids, which distils and sorts module BTF in 7.x), then
# the first compiler or make error.
_REASONS = (
    re.compile(r"Segmentation fault|Aborted|core dumped|Bus error|Illegal instruction"),
    # (pahole the program: a run dir's point id, "...-gcc-pahole1.30/...", is no complaint)
    re.compile(r"\bpahole\b.*(?:unrecognized|error|Error|failed)|(?:error|Error).*\bpahole\b|"
               r"FAILED to distill base BTF|FAILED: btf permute|FAILED to sort BTF|"
               r"FAILED: (?:load (?:base )?BTF|malformed BTF)|resolve_btfids: "),
    # modpost: a symbol the kernel does not export (an option it lacks), a license problem.
    re.compile(r"^ERROR: modpost: "),
    re.compile(r"\berror\b|\bError \d+|FAILED"),
)


# kbuild's and tools/' quiet step lines ("  CC      mm/x.o", "  HDRINST usr/include/linux/
# can/error.h", "  CLNG-BPF [test_progs] x.bpf.o"): a file named error.h is no error.
_STEP = re.compile(r"^[A-Z][A-Z0-9_-]*(?: \[[^\]]*\])?\s+\S+$")


# make's line for the recipe that failed (the first one is the innermost).
_MAKE_ERROR = re.compile(r"^make(?:\[\d+\])?: \*\*\* .*$", re.MULTILINE)
# How far back from make's error line the failing recipe's output is looked for.
WINDOW_LINES = 30


def failing_output(log_text: str) -> str:
    """The output of the recipe that made make fail: the lines before make's first error line,
    back to the previous command or make line (at most WINDOW_LINES), and that line; the
    whole log when make printed no error line (a command other than make failed)."""
    m = _MAKE_ERROR.search(log_text)
    if m is None:
        return log_text
    before = log_text[:m.start()].splitlines()
    window: list[str] = []
    for line in reversed(before):
        if line.startswith("$ ") or _MAKE_ERROR.match(line) or len(window) >= WINDOW_LINES:
            break
        window.append(line)
    return "\n".join([*reversed(window), m.group(0)])


def environment_cause(log_text: str) -> str | None:
    """The line showing the environment stopped the failing recipe of a build (a full disk,
    a missing program, no memory), or None. A line elsewhere in the log (a probe of an
    optional tool, say) is not the cause."""
    log_text = failing_output(log_text)
    m = _ENVIRONMENT.search(log_text)
    if m is None:
        return None
    start = log_text.rfind("\n", 0, m.start()) + 1
    end = log_text.find("\n", m.end())
    return log_text[start:end if end >= 0 else None].strip()


def product_reason(log_text: str) -> str | None:
    """The most telling line of a failed build: a crash, pahole's complaint, else the first
    error; None if there is none."""
    lines = [ln.strip() for ln in log_text.splitlines() if not ln.startswith("$ ")]
    lines = [ln for ln in lines if not _STEP.match(ln)]
    for reason in _REASONS:
        for ln in lines:
            if reason.search(ln):
                return ln
    return None


def classify(what: str, exc: CommandError, log: Path) -> KbtfError:
    """The error to raise for build ``what`` whose command failed with ``exc``.

    Environment trouble (full disk, missing tool, out of memory) is a HarnessError; any
    other failure or hang of the build is a BuildFailure of the thing under test.
    """
    text = log.read_text(errors="replace") if log.is_file() else ""
    if cause := environment_cause(text):
        return HarnessError(f"{what} stopped by the environment: {cause}", log=log)
    if isinstance(exc, CommandTimeout):
        return BuildFailure(f"{what} hung: {exc.args[0]}", log=log)
    reason = product_reason(text)
    return BuildFailure(f"{what} failed: {reason or exc.args[0]}", log=log)
