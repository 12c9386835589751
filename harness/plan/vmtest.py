"""BPF CI (vmtest) job names -> what to reproduce. Pure.

BPF CI posts a row per job on every patch. The forms it has used:

- ``<arch>-<cc>[-<ver>] / test (<runner>, <continue_on_error>, <timeout_min>) / <runner> on
  <arch> with <cc>[-<ver>]`` (``x86_64-llvm-18 / test (test_progs, false, 360) / ...``),
- ``<arch> <cc>-<ver> / test (...) / ...`` (newer: ``x86_64 gcc-15 / test (...) / ...``),

and kbtf takes a short ``<arch>-<cc>[-<ver>]/<runner>`` for typing. ``_parallel`` runners
are their runner run with -j.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.arches import ARCHES
from harness.errors import ConfigError

# Runner -> the selftests binary it runs (tools/testing/selftests/bpf).
RUNNERS = {
    "test_progs": "test_progs",
    "test_progs_no_alu32": "test_progs-no_alu32",
    "test_progs_cpuv4": "test_progs-cpuv4",
    "test_maps": "test_maps",
    "test_verifier": "test_verifier",
}
# Rows that are no test job: what kbtf does instead.
OTHER_ROWS = {
    "build": "kbtf builds the kernel and the selftests as part of each test job: give a test "
             "row of the same arch and compiler, e.g. --vmtest-job '{short}/test_progs'",
    "build-release": "the LLVM -O2 selftests build is not reproduced (no test runs on it): "
                     "give a test row, e.g. --vmtest-job '{short}/test_progs'",
    "veristat": "veristat rows are not reproduced (they compare verifier statistics of BPF "
                "object files, not a kernel's behaviour): give a test row, e.g. "
                "--vmtest-job '{short}/test_progs'",
}
FORMS = ("'<arch>-<cc>[-<ver>] / test (<runner>, <continue_on_error>, <timeout_min>) / "
         "<runner> on <arch> with <cc>[-<ver>]', '<arch> <cc>-<ver> / test (...) / ...', "
         "or '<arch>-<cc>[-<ver>]/<runner>'")
_TOOLCHAIN = r"(?P<arch>[a-z0-9_]+)[- ](?P<cc>gcc|llvm)(?:-(?P<ver>\d+))?"
_FULL = re.compile(rf"{_TOOLCHAIN} / test \((?P<runner>\w+), (?P<coe>true|false), "
                   rf"(?P<timeout>\d+)\)(?: / (?P<tail>.*))?")
_SHORT = re.compile(rf"{_TOOLCHAIN}/(?P<runner>\w+)")
_ROW = re.compile(rf"{_TOOLCHAIN} / (?P<row>[\w-]+)(?: / .*)?")


@dataclass(frozen=True)
class VmtestJob:
    """One BPF CI test job to reproduce."""

    arch: str  # kbtf's arch name
    compiler: str  # "gcc" or "llvm"
    version: str | None  # the compiler's major version, when the job names one
    runner: str  # a RUNNERS key
    parallel: bool = False  # a _parallel row: the runner with -j
    timeout_min: int | None = None  # the job's own timeout in CI (full names only)

    @property
    def binary(self) -> str:
        """The selftests program the job runs."""
        return RUNNERS[self.runner]

    @property
    def toolchain(self) -> str:
        """The --toolchain spelling of the job's compiler: gcc, gcc-15, llvm-18."""
        return self.compiler + (f"-{self.version}" if self.version else "")

    @property
    def short(self) -> str:
        """The short job name kbtf takes and prints: x86_64-llvm-18/test_progs_parallel."""
        runner = self.runner + ("_parallel" if self.parallel else "")
        return f"{self.arch}-{self.toolchain}/{runner}"


def parse_job(name: str) -> VmtestJob:
    """The job a BPF CI job name (any form above) stands for.

    Raises ConfigError, one line: an unknown form (listing the forms), arch or runner, a
    name whose parts disagree, or a row that is no test job (saying what kbtf does).
    """
    text = " ".join(name.split())
    m = _FULL.fullmatch(text) or _SHORT.fullmatch(text)
    if m is None:
        row = _ROW.fullmatch(text)
        if row is not None and row["row"] in OTHER_ROWS:
            short = f"{row['arch']}-{row['cc']}" + (f"-{row['ver']}" if row["ver"] else "")
            raise ConfigError(f"--vmtest-job {name!r} is a {row['row']} row: "
                              + OTHER_ROWS[row["row"]].format(short=short))
        raise ConfigError(f"--vmtest-job {name!r}: not a BPF CI job name; use {FORMS}")
    job = _job(name, m)
    tail = m.groupdict().get("tail")
    if tail and not _tail_agrees(tail, job):
        raise ConfigError(f"--vmtest-job {name!r}: its last part {tail!r} does not name "
                          f"{job.short}'s runner, arch and compiler")
    return job


def _job(name: str, m: re.Match[str]) -> VmtestJob:
    """The VmtestJob of a matched name. Raises ConfigError for an unknown arch or runner."""
    if m["arch"] not in ARCHES:
        raise ConfigError(f"--vmtest-job {name!r}: unknown arch {m['arch']!r}: BPF CI and kbtf "
                          f"test {', '.join(ARCHES)}")
    runner, parallel = m["runner"], m["runner"].endswith("_parallel")
    runner = runner.removesuffix("_parallel") if parallel else runner
    if runner not in RUNNERS or (parallel and not runner.startswith("test_progs")):
        raise ConfigError(f"--vmtest-job {name!r}: unknown runner {m['runner']!r}: use "
                          f"{', '.join(RUNNERS)} (test_progs runners also as <runner>_parallel)")
    timeout = m.groupdict().get("timeout")
    return VmtestJob(m["arch"], m["cc"], m["ver"], runner, parallel,
                     int(timeout) if timeout else None)


def _tail_agrees(tail: str, job: VmtestJob) -> bool:
    """Whether a full name's last part ('<runner> on <arch> with <cc>') names ``job``."""
    m = re.fullmatch(r"(?P<runner>\w+) on (?P<arch>\w+) with (?P<cc>[\w.-]+)", tail.strip())
    if m is None:
        return False
    runner = job.runner + ("_parallel" if job.parallel else "")
    return (m["runner"], m["arch"], m["cc"]) == (runner, job.arch, job.toolchain)
