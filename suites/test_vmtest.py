"""BPF CI jobs reproduced (--vmtest-job): each test of the job's runner is a pytest result.

The kernel is BPF CI's configuration of the --kernel tree (its selftests config files
concatenated, plus kbtf's arch fragment for the console), built with the job's compiler;
the selftests are built for it as BPF CI builds them; the runner runs in a guest from the
selftests dir with the tree's DENYLIST files and loads bpf_testmod itself. A test fails on
the runner's FAIL (the failing subtests and their logs quoted) or on a kernel splat during
its run; a test the runner skips is skipped with its reason.
"""

from __future__ import annotations

import pytest
from pytest_subtests import SubTests

from harness.build.selftests import Selftests
from harness.guest.pool import GuestPool
from harness.guest.session import GuestSession
from harness.plan.vmtest import VmtestPoint
from harness.run.vmtestrun import VmtestRun
from suites.conftest import ctx


@pytest.fixture(scope="session")
def vmtest_run(pytestconfig: pytest.Config, vmtest_case: tuple[VmtestPoint, str]) -> VmtestRun:
    """The job's pipeline: its kernel, its selftests, its guest."""
    return ctx(pytestconfig).vmtest_run(vmtest_case[0])


@pytest.fixture(scope="session")
def vmtest_built(vmtest_run: VmtestRun) -> Selftests:
    """The job's kernel and selftests, built (a failed build is reported once: the other
    tests of the job say "not run")."""
    return vmtest_run.selftests()


@pytest.fixture
def vmtest_guest(vmtest_run: VmtestRun, vmtest_built: Selftests,
                 guest_pool: GuestPool) -> GuestSession:
    """The job's guest, the selftests shared at /kbtf/selftests."""
    return vmtest_run.guest(guest_pool, vmtest_built)


@pytest.fixture
def job_selftests(pytestconfig: pytest.Config, vmtest_job: VmtestPoint) -> Selftests:
    """The job's selftests, built (its kernel's or its own failed build FAILS here first,
    then its other tests say "not run")."""
    return ctx(pytestconfig).vmtest_run(vmtest_job).selftests()


def test_selftests_build(job_selftests: Selftests, vmtest_job: VmtestPoint) -> None:
    """Every BPF program of the tree's selftests compiles for the job: one that does not is
    the tree's failure (quoted); the runner is built without it and the tests that embed
    its skeleton fail by name."""
    built = job_selftests
    aside = built.set_aside()
    if aside:
        pytest.fail(f"{len(aside)} BPF programs of the tree do not compile with "
                    f"{vmtest_job.bpf_llvm.label} (log: {built.log}):\n" + "\n".join(
                        f"  {a.program}: {a.error}\n    left out with it: "
                        f"{', '.join(a.files) or 'nothing'}" for a in aside))


def test_progs(vmtest_run: VmtestRun, vmtest_case: tuple[VmtestPoint, str],
               vmtest_built: Selftests, vmtest_guest: GuestSession,
               subtests: SubTests) -> None:
    job, name = vmtest_case
    if (aside := vmtest_built.left_out(name)) is not None:
        pytest.fail(f"{name}: not built into {job.job.binary}: {', '.join(aside.files)} embeds the "
                    f"skeleton of {aside.program}, which does not compile: {aside.error}")
    out = vmtest_run.run_tests(vmtest_guest, [] if name == "all" else [name])
    rerun = f"rerun: {job.rerun([name] if name != 'all' else None)}"
    if name == "all":
        failed = [t for t in out.tests.values() if t.verdict == "FAIL"]
        if failed or out.summary is None:
            logs = "\n".join(t.log for t in failed if t.log)
            pytest.fail(f"{job.job.binary}: {out.summary or 'no summary line'}; failed: "
                        f"{', '.join(t.name for t in failed)}\n{logs}\n{rerun}")
        return
    result = out.tests.get(name)
    if result is None:
        pytest.skip(f"{job.job.binary} ran no test {name!r} (denied by the tree's DENYLIST "
                    f"files, or not built into this runner): {out.summary}")
    for sub in result.subtests.values():  # each its own result: test_progs[...] [name/sub]
        with subtests.test(msg=sub.name):
            if sub.verdict == "FAIL":
                pytest.fail(f"{sub.name}: FAIL\n{sub.log}\nrerun: {job.rerun([sub.name])}")
            if sub.verdict == "SKIP":
                pytest.skip(f"{sub.name}: {job.job.binary} skipped it: {sub.log or 'no reason'}")
    if result.verdict == "FAIL":
        subs = result.failed_subtests()
        logs = "\n".join(f"--- {s.name}\n{s.log}" for s in subs) or result.log
        pytest.fail(f"{name}: FAIL ({', '.join(s.name for s in subs) or 'the test itself'})"
                    f"\n{logs}\n{rerun}")
    if result.verdict == "SKIP":
        pytest.skip(f"{name}: {job.job.binary} skipped it: {result.log or 'no reason given'}")
    skipped = result.skipped_subtests()
    if skipped:
        print(f"{name}: {len(skipped)} subtests skipped by the runner: "
              + ", ".join(s.name for s in skipped))
