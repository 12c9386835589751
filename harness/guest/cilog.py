"""A BPF CI job's log read back (--vmtest-log): the job's name, the tests and subtests its
runner failed, and the compiler and pahole versions CI printed, from the log as GitHub
serves it (the raw download: a timestamp before each line, ANSI colours, ``##[group]``
markers) or as pasted text. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.guest import testprogs

_TIMESTAMP = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?", re.MULTILINE)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_MARKER = re.compile(r"^##\[(?:group|endgroup|error|warning|notice|debug)\]", re.MULTILINE)
# GitHub's first lines of a job's log name it whole.
_JOB = re.compile(r"^Complete job name: (?P<job>.+)$", re.MULTILINE)
# What CI's build steps print of their tools.
_GCC = re.compile(r"^(?:[\w-]+-)?gcc(?:-\d+)? \([^)]*\) (?P<v>\d+\.\d+(?:\.\d+)?)",
                  re.MULTILINE)
_CLANG = re.compile(r"\bclang version (?P<v>\d+\.\d+(?:\.\d+)?)")
_PAHOLE = re.compile(r"\bpahole(?: --version)?[ \t]*\n?[ \t]*v(?P<v>1\.\d+)\b")
# test_verifier's and test_maps' closing line, and test_progs' own.
_WHOLE_SUMMARY = re.compile(r"^Summary: (?P<passed>\d+) PASSED, (?P<skipped>\d+) SKIPPED, "
                            r"(?P<failed>\d+) FAILED", re.MULTILINE)


@dataclass(frozen=True)
class CiLog:
    """What a BPF CI job's log says."""

    job: str | None  # its whole name ("x86_64 gcc-15 / test (test_progs, false, 360) / ...")
    red: tuple[str, ...]  # its runner's failed tests and subtests (test/sub), in log order
    whole_failed: bool  # a runner that reports as a whole (test_verifier, test_maps) failed
    compiler: str | None  # "gcc 15.2.0", "clang 21.1.2", as CI printed it
    pahole: str | None  # "1.30"


def clean(text: str) -> str:
    """``text`` less GitHub's timestamps, ANSI colours and workflow markers."""
    return _MARKER.sub("", _ANSI.sub("", _TIMESTAMP.sub("", text.replace("\r\n", "\n"))))


def read(text: str) -> CiLog:
    """What the log ``text`` says (raw download or pasted)."""
    text = clean(text)
    job = _JOB.search(text)
    out = testprogs.parse(text)
    red: list[str] = []
    for test in out.tests.values():
        failed = [s.name for s in test.failed_subtests()]
        if failed:
            red += failed
        elif test.verdict == "FAIL":
            red.append(test.name)
    whole = [m for m in _WHOLE_SUMMARY.finditer(text)]
    gcc, clang, pahole = _GCC.search(text), _CLANG.search(text), _PAHOLE.search(text)
    return CiLog(job["job"].strip() if job else None, tuple(dict.fromkeys(red)),
                 any(int(m["failed"]) for m in whole),
                 f"gcc {gcc['v']}" if gcc else f"clang {clang['v']}" if clang else None,
                 pahole["v"] if pahole else None)


def load(path: Path) -> CiLog:
    """The CI log at ``path``. Raises ConfigError (one line) for a file that is not there, or
    a log with no red test in it (nothing to reproduce)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ConfigError(f"--vmtest-log {path}: {exc.strerror}: give the job's log as "
                          "downloaded from GitHub (or pasted into a file)") from None
    found = read(text)
    if not found.red and not found.whole_failed:
        raise ConfigError(f"--vmtest-log {path}: no red test in it (no '#N name:FAIL' line, "
                          "no failed summary): nothing to reproduce")
    return found
