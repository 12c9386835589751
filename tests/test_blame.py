"""Who is blamed (suites/blame.py), run through pytest itself on small test files: a
product failure is FAILED wherever it is raised, harness trouble is an ERROR, kernel trouble
on a guest console fails the test that was running, and skips stay skips."""

from __future__ import annotations

import pytest

HEADER = """
import pytest
from harness.errors import BuildFailure, GuestLost, CommandTimeout, KernelTrouble
from harness.guest.session import GuestSession

class FakeGuest(GuestSession):
    '''A guest whose console trouble is scripted: sync_console raises what it is given.'''
    def __init__(self, trouble=None):
        self.trouble = trouble
        self.name = "fake"
    def sync_console(self, what):
        if self.trouble is not None:
            trouble, self.trouble = self.trouble, None
            raise trouble
"""


def outcomes(pytester: pytest.Pytester, body: str) -> dict[str, int]:
    pytester.makepyfile(HEADER + body)
    result = run(pytester)
    return result.parseoutcomes()


def run(pytester: pytest.Pytester) -> pytest.RunResult:
    """pytest on the file made in ``pytester``, with kbtf's blame hooks."""
    return pytester.runpytest_inprocess("-p", "suites.blame", "-p", "no:cacheprovider",
                                        "-W", "ignore::pytest.PytestAssertRewriteWarning")


def test_product_failure_in_a_fixture_is_a_failed_test(pytester: pytest.Pytester) -> None:
    got = outcomes(pytester, """
@pytest.fixture
def module():
    raise BuildFailure("module build of kbtf_hello failed: pahole: Segmentation fault")

def test_uses_module(module):
    pass
""")
    assert got == {"failed": 1}


def test_harness_trouble_in_a_test_body_is_an_error(pytester: pytest.Pytester) -> None:
    got = outcomes(pytester, """
def test_body():
    raise CommandTimeout("command timed out after 60s and was killed: bpftool ...")

def test_lost():
    raise GuestLost("guest lost during 'true': QEMU exited, no kernel trouble")
""")
    assert got == {"errors": 2}


def test_kernel_warning_after_a_passing_body_fails_that_test(pytester: pytest.Pytester) -> None:
    got = outcomes(pytester, """
@pytest.fixture(scope="module")
def guest():
    return FakeGuest(KernelTrouble("WARNING: CPU: 0 PID: 1 at kbtf_fault.c:27", fatal=False))

def test_warns(guest):
    pass

def test_next(guest):
    pass
""")
    assert got == {"failed": 1, "passed": 1}


def test_kernel_crash_replaces_the_assertion_it_caused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HEADER + """
@pytest.fixture
def guest():
    return FakeGuest(KernelTrouble("Oops: general protection fault"))

def test_crashes(guest):
    assert False, "insmod failed"
""")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*KernelTrouble*Oops: general protection fault*"])


def test_skip_in_a_fixture_stays_a_skip(pytester: pytest.Pytester) -> None:
    got = outcomes(pytester, """
@pytest.fixture
def module():
    pytest.skip("module pahole 1.24 < 1.26 rejects the --btf_features")

def test_uses_module(module):
    pass
""")
    assert got == {"skipped": 1}


def test_a_crashed_xdist_worker_is_an_error() -> None:
    from suites.blame import pytest_handlecrashitem

    # Built the way xdist's DSession.handle_crashitem builds it.
    report = pytest.TestReport(nodeid="suites/t.py::test_x[p]", location=("suites/t.py", None,
                               "suites/t.py"), keywords={}, outcome="failed",
                               longrepr="worker 'gw0' crashed while running 'suites/t.py::test_x'",
                               when="???")  # type: ignore[arg-type]
    pytest_handlecrashitem("suites/t.py::test_x[p]", report, sched=None)
    assert report.failed and report.when == "setup"  # pytest counts it as an error
    assert str(report.longrepr).startswith("HarnessError: worker 'gw0' crashed")


def test_a_failed_build_fails_once_and_the_tests_needing_it_are_not_run(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HEADER + """
@pytest.fixture(scope="session")
def module():
    raise BuildFailure("module build of ovpn_dco failed: ERROR: modpost: \\"crypto_alloc_ahash\\" "
                       "[ovpn-dco-v2.ko] undefined!")

def test_builds(module):
    pass

def test_loads(module):
    pass

def test_kfunc(module):
    pass
""")
    result = pytester.runpytest_inprocess("-p", "suites.blame", "-p", "no:cacheprovider", "-rA",
                                          "-W", "ignore::pytest.PytestAssertRewriteWarning")
    assert result.parseoutcomes() == {"failed": 1, "skipped": 2}
    result.stdout.fnmatch_lines_random([
        "FAILED test_*.py::test_builds*",
        "SKIPPED * not run: module build of ovpn_dco failed: ERROR: modpost: *(FAILED in "
        "test_*.py::test_builds)"])


def test_a_kernel_finding_is_an_xfail_quoting_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HEADER + """
from harness.errors import KernelFinding

def test_finds():
    raise KernelFinding("kernel finding: resolve_btfids adds duplicate types")
""")
    result = pytester.runpytest_inprocess("-p", "suites.blame", "-p", "no:cacheprovider", "-rx",
                                          "-W", "ignore::pytest.PytestAssertRewriteWarning")
    assert result.parseoutcomes() == {"xfailed": 1}
    result.stdout.fnmatch_lines(["*XFAIL*kernel finding: resolve_btfids adds duplicate types*"])
