"""test_progs' output read back: each test's and subtest's verdict from its status lines
(`#12      kfunc_call:OK`, `#12/3    kfunc_call/kfunc_syscall_test:FAIL`, `...:SKIP`), with
the log test_progs prints for a failing one before its status line, or, where the runner
writes a JSON summary (-J: the failed tests, their logs and their failed subtests' logs),
the logs from there. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# `#<n>[/<m>] <name>[/<sub>]:<VERDICT>`; test_progs pads the number with spaces.
_STATUS = re.compile(r"^#(?P<num>\d+)(?:/(?P<sub>\d+))?\s+(?P<name>[^\s:]+(?:/[^:]+)?)"
                     r":(?P<verdict>OK|FAIL|SKIP)(?: \((?P<why>[^)]*)\))?\s*$")
_SUMMARY = re.compile(r"^Summary: (?P<passed>\d+)/(?P<subpassed>\d+) PASSED, "
                      r"(?P<skipped>\d+) SKIPPED, (?P<failed>\d+) FAILED\s*$")


@dataclass
class TestResult:
    """One test of test_progs (or one subtest: ``name`` 'test/sub')."""

    name: str
    verdict: str  # OK, FAIL or SKIP
    log: str = ""  # what test_progs printed for it before its status line (failures)
    subtests: dict[str, TestResult] = field(default_factory=dict)

    def failed_subtests(self) -> list[TestResult]:
        return [s for s in self.subtests.values() if s.verdict == "FAIL"]

    def skipped_subtests(self) -> list[TestResult]:
        return [s for s in self.subtests.values() if s.verdict == "SKIP"]


@dataclass
class RunnerOutput:
    """A test_progs run: its tests in order and its summary line (None: it never got there,
    e.g. it crashed)."""

    tests: dict[str, TestResult]
    summary: str | None


def parse(text: str) -> RunnerOutput:
    """The verdicts of a test_progs run's output ``text`` (console line endings allowed)."""
    tests: dict[str, TestResult] = {}
    pending: list[str] = []
    summary = None
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        m = _STATUS.match(line)
        if m is None:
            if _SUMMARY.match(line):
                summary = line.strip()
            else:
                pending.append(line)
            continue
        log = "\n".join(pending).strip()
        pending = []
        name = m["name"]
        if m["sub"] is not None and "/" in name:
            top = name.split("/", 1)[0]
            parent = tests.setdefault(top, TestResult(top, "RUNNING"))
            parent.subtests[name] = TestResult(name, m["verdict"], log)
        else:
            result = tests.setdefault(name, TestResult(name, m["verdict"]))
            result.verdict = m["verdict"]
            result.log = log if m["verdict"] == "FAIL" else ""
    return RunnerOutput(tests, summary)


def parse_whole(stdout: str, stderr: str, rc: int) -> RunnerOutput:
    """The verdict of a runner that reports as a whole (test_verifier, test_maps): one test,
    'all', OK on exit code 0, else FAIL with the last lines of its output; its summary the
    last line of its stdout (test_verifier's "Summary: 700 PASSED, 0 SKIPPED, 0 FAILED"),
    None when it printed nothing there."""
    out = [ln.rstrip("\r") for ln in stdout.splitlines() if ln.strip()]
    both = out + [ln.rstrip("\r") for ln in stderr.splitlines() if ln.strip()]
    result = TestResult("all", "OK" if rc == 0 else "FAIL",
                        "" if rc == 0 else "\n".join(both[-20:]))
    return RunnerOutput({"all": result}, out[-1].strip() if out else None)


def apply_json(out: RunnerOutput, summary: dict[str, object]) -> None:
    """Take the failing tests' and subtests' logs from test_progs' JSON summary (-J) into
    ``out`` (its verdicts stay the status lines')."""
    results = summary.get("results", [])
    for entry in results if isinstance(results, list) else []:
        test = out.tests.get(str(entry.get("name", "")))
        if test is None:
            continue
        if entry.get("message"):
            test.log = str(entry["message"]).strip()
        for sub in entry.get("subtests", []):
            found = test.subtests.get(f"{test.name}/{sub.get('name', '')}")
            if found is not None and sub.get("message"):
                found.log = str(sub["message"]).strip()
