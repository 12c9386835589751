"""Who is blamed for a red test: the one place errors become verdicts (a pytest plugin that
suites/conftest.py registers).

- ProductFailure (the kernel crashed or warned, a kernel or module build failed or hung in
  the kernel's rules or pahole): a FAILED test, even when a fixture raised it.
- HarnessError (QEMU did not start or vanished, a tool is missing, the disk is full, a
  harness command timed out): an ERROR, even when the test body raised it.
- MissingPrerequisite (a pahole too old for the tree's flags, hardware the guest lacks,
  signature enforcement): a SKIP with its reason, in a fixture or a test body alike.
- KernelFinding (a known defect of the kernel's rules the test found): a strict XFAIL
  quoting it.

Both show one line and the log to read instead of a traceback through the harness. After
each test body, the kernel consoles of the guests it used are synced and read, so a kernel
WARNING or Oops is blamed on the test during which it happened.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from harness.errors import (
    HarnessError,
    KernelFinding,
    KernelTrouble,
    MissingPrerequisite,
    ProductFailure,
)
from harness.guest.pool import GuestPool
from harness.guest.session import GuestSession


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """A missing prerequisite found while setting up fixtures skips the test."""
    try:
        return (yield)
    except MissingPrerequisite as exc:
        pytest.skip(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Check the consoles of the guests ``item`` used once its body has run; a missing
    prerequisite found by the body skips the test."""
    funcargs = getattr(item, "funcargs", {})
    guests = [v for v in funcargs.values() if isinstance(v, GuestSession)]
    try:
        result = yield
    except MissingPrerequisite as exc:
        pytest.skip(str(exc))
    except BaseException as body_error:
        # Kernel trouble during a failing test is its cause: report it instead.
        _check_consoles(guests, item.name, cause=body_error)
        raise
    _check_consoles(guests, item.name)
    if isinstance(pool := funcargs.get("guest_pool"), GuestPool):
        for g in guests:
            pool.passed(g)  # a later loss of this guest is not "in a row" with an earlier one
    return result


def _check_consoles(guests: list[GuestSession], test: str,
                    cause: BaseException | None = None) -> None:
    """Raise KernelTrouble for trouble on any of ``guests``' consoles since the last check."""
    for g in dict.fromkeys(guests):
        try:
            g.sync_console(f"test {test}")
        except KernelTrouble as trouble:
            raise trouble from cause
        except HarnessError:
            if cause is None:
                raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Report ProductFailure as FAILED and HarnessError as ERROR, with one line each."""
    report = yield
    excinfo = call.excinfo
    if excinfo is None:
        return report
    if excinfo.errisinstance(ProductFailure) and report.when == "setup" and (
            first := _reported_before(item, excinfo.value)) is not None:
        # A failed session fixture (a module or kernel build) is re-raised for every test
        # that needs it: FAILED once, "not run" for the others.
        report.outcome = "skipped"
        line = str(excinfo.value).splitlines()[0]
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: not run: {line} (FAILED in {first})")
    elif excinfo.errisinstance(KernelFinding):
        report.outcome = "skipped"
        report.wasxfail = str(excinfo.value)  # what pytest reads as an xfail
        report.longrepr = None
    elif excinfo.errisinstance(ProductFailure):
        report.outcome = "failed"
        report.longrepr = f"FAILED ({type(excinfo.value).__name__}): {excinfo.value}"
        if report.when == "setup":
            report.when = "call"  # a fixture found the product broken: the test fails
    elif excinfo.errisinstance(HarnessError):
        report.longrepr = f"{type(excinfo.value).__name__}: {excinfo.value}"
        if report.when == "call":
            report.when = "setup"  # harness trouble inside a test body is still an ERROR
    return report


# Product failures of fixtures already reported, per process: (type, message) -> its test.
_FIXTURE_FAILURES = pytest.StashKey[dict[tuple[str, str], str]]()


def _reported_before(item: pytest.Item, error: BaseException) -> str | None:
    """The test that already FAILED with this error (a session fixture's re-raised, or the
    same build failure read back from the run's marker: same type, same message), else
    None (and ``item`` becomes that test)."""
    seen = item.config.stash.setdefault(_FIXTURE_FAILURES, {})
    key = (type(error).__name__, str(error))
    if key in seen:
        return seen[key]
    seen[key] = item.nodeid
    return None





@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report: pytest.TestReport, sched: object) -> None:
    """An xdist worker that died (killed, out of memory) is harness trouble: an ERROR."""
    report.when = "setup"
    report.longrepr = (f"HarnessError: {report.longrepr}; its guests died with it (see the "
                       "worker's kbtf-gw*.log)")
