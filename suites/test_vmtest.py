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

from harness.builds.selftests import Selftests
from harness.errors import HarnessError, MissingPrerequisite, ProductFailure
from harness.guest.pool import GuestPool
from harness.guest.session import GuestSession
from harness.guest.testprogs import Outcome
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
    """The runner's verdict on each test the selection names (testprogs.judge): FAIL, or
    a test that needs bpf_testmod skipped because the kernel refused it, FAILS; a test the
    runner skipped or a DENYLIST entry kept out SKIPS quoting them; a test that did not run
    for any other reason never passes nor skips."""
    job, name = vmtest_case
    if (aside := vmtest_built.left_out(name)) is not None:
        raise ProductFailure(f"{name}: not built into {job.job.binary}: {', '.join(aside.files)} "
                             f"embeds the skeleton of {aside.program}, which does not compile: "
                             f"{aside.error}")
    outcomes = vmtest_run.judge(vmtest_guest, name, vmtest_built)
    several = len(outcomes) > 1
    for outcome in outcomes:  # each its own result: test_progs[...] [name/sub]
        for part in (*outcome.parts, *((outcome,) if several else ())):
            if name == "all" and part.verdict == "passed":
                continue
            with subtests.test(msg=part.name):  # pytest-subtests reads only pytest's own
                if part.verdict in ("failed", "error"):
                    pytest.fail(f"{part.verdict}: {part.why}\nrerun: {job.rerun([part.name])}",
                                pytrace=False)
                if part.verdict == "skipped":
                    pytest.skip(part.why)
    _report(outcomes, job)


def _report(outcomes: list[Outcome], job: VmtestPoint) -> None:
    """Raise the verdict of ``outcomes`` taken together: an error, else a failure, else a
    skip when none passed; print what passed with notes."""
    by = {v: [o for o in outcomes if o.verdict == v] for v in ("error", "failed", "skipped")}
    if by["error"]:
        raise HarnessError("\n".join(o.why for o in by["error"]))
    if by["failed"]:
        raise ProductFailure("\n".join(f"{o.why}\nrerun: {job.rerun([o.name])}"
                                        for o in by["failed"]))
    if len(by["skipped"]) == len(outcomes):
        raise MissingPrerequisite("; ".join(o.why for o in by["skipped"]))
    for o in outcomes:
        if o.why:
            print(o.why)
