"""The run's outcomes, as pytest reports them, handed to the run's records (run/records.py):
a pytest plugin that suites/conftest.py registers in the controller (or the only process).
Who is blamed for a red test is suites/blame.py's."""

from __future__ import annotations

import pytest

from harness.run.context import RunContext


class OutcomeRecorder:
    """The run's outcomes, in the controller (or the only process): each test's label, the
    run's results written at the end (RunContext.finish), and where they are."""

    def __init__(self, run: RunContext) -> None:
        self.run = run

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":
            self.run.record(report.nodeid, outcome_label(report))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # cancelled (Ctrl-C, SIGTERM) or stopped early (-x, --maxfail): not finished
        lost = self.run.finish(exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
                               and not session.shouldfail and not session.shouldstop)
        if lost:  # the run's own error: its record is not what its tests produced
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            self.errors = lost

    def pytest_terminal_summary(self, terminalreporter) -> None:  # type: ignore[no-untyped-def]
        for error in getattr(self, "errors", []):
            terminalreporter.write_line(f"kbtf: ERROR of the run: {error}", red=True)
        terminalreporter.write_line(
            f"kbtf: results in {self.run.run_dir} (summary.md, junit.xml, kbtf-*.log, "
            "<point>/kernel-build.log, <point>/guests/*.console.log, <point>/modules/*/build.log)")


def outcome_label(report: pytest.TestReport) -> str:
    """passed / failed / error / skipped: <reason> / xfailed / xpassed, for summary.md.
    A skip is a skip wherever it was raised (a fixture's is reported in setup)."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        return f"skipped: {reason.removeprefix('Skipped: ')}" if reason else "skipped"
    if report.failed and report.when != "call":
        return "error"
    return report.outcome
