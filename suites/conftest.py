"""pytest onto kbtf's pipeline (harness/run/): options -> RunContext, parameters, one-line
fixtures over each point's pipeline, outcomes; the controller builds kernels after
collection (who is blamed for a red test: suites/blame.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.btf.btfexpect import Expectation, ModuleBtfRules, read_rules
from harness.builds.kbuild import KernelBuild
from harness.builds.modbuild import MODULES_DIR, ModuleBuild
from harness.errors import HarnessError
from harness.guest.pool import GuestPool
from harness.guest.session import GuestSession
from harness.plan.matrix import MatrixPoint
from harness.plan.usermod import ModuleSpec
from harness.run.context import POINT_PARTS, RunContext
from harness.run.lifecycle import end_cleanly_on_sigterm
from harness.run.options import RunOptions
from harness.run.pointrun import PointRun, note_guest
from suites import blame, modes, recorder

RUN = pytest.StashKey[RunContext]()
# Kernel fixture -> the kernel variant it needs (plan/kernelreq.VARIANTS).
KERNEL_FIXTURES = {"kernel": "", "kernel_prime": "prime", "kernel_refuse": "refuse"}


def ctx(config: pytest.Config) -> RunContext:
    return config.stash[RUN]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    worker_input = getattr(config, "workerinput", None)
    if config.option.plan:
        modes.print_plan(config)  # and exit
    if worker_input is None and not config.option.xmlpath:
        config.option.xmlpath = "@junit"  # replaced by the run dir's once it exists
    end_cleanly_on_sigterm(worker_input["kbtf_controller_pid"] if worker_input else None)
    try:
        config.stash[RUN] = RunContext.start(RunOptions.from_namespace(config.option),
                                             worker_input, modes.progress(config))
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.option.xmlpath == "@junit":
        config.option.xmlpath = str(ctx(config).run_dir / "junit.xml")
    config.pluginmanager.register(blame, "kbtf-blame")
    if worker_input is None:
        config.pluginmanager.register(recorder.OutcomeRecorder(ctx(config)), "kbtf-outcomes")
    if config.option.shell:
        modes.shell(config, ctx(config))  # and exit


def pytest_configure_node(node) -> None:  # type: ignore[no-untyped-def]
    node.workerinput.update(ctx(node.config).worker_input())


def needed_kernels(items: list[pytest.Item]) -> set[tuple[str, str]]:
    """(point id, variant) of each kernel the ``items`` need; (job id, "vmtest") for jobs."""
    params = [(getattr(getattr(i, "callspec", None), "params", {}), getattr(i, "fixturenames", ()))
              for i in items]
    return {(p["point"].id, KERNEL_FIXTURES[name]) for p, names in params if "point" in p
            for name in names if name in KERNEL_FIXTURES} | {
            (p["vmtest_case"][0].id, "vmtest") for p, _ in params if "vmtest_case" in p} | {
            (p["vmtest_job"].id, "vmtest") for p, _ in params if "vmtest_job" in p}


def _host_arch(item: pytest.Item) -> bool:
    point = getattr(getattr(item, "callspec", None), "params", {}).get("point")
    return point is not None and point.kernel.arch.is_host()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests of an axis with no value in this run (not empty-parameter skips); a
    worker then writes down which kernels its selected tests need."""
    run = ctx(config)
    empty = [n for n, given in (("point", run.points), ("distro_kernel", run.distros),
                                 ("vmtest_case", run.vmtest), ("vmtest_job", run.vmtest))
             if not given]
    drop = [i for i in items if any(n in getattr(i, "fixturenames", ()) for n in empty)]
    if drop:
        items[:] = [i for i in items if i not in drop]
        config.hook.pytest_deselected(items=drop)
    # Stable: lifetime tests last; points of a foreign arch (always TCG, the long poles)
    # first, so that xdist starts their groups first and no worker waits on one at the end.
    items.sort(key=lambda i: (i.get_closest_marker("lifetime") is not None, _host_arch(i)))
    if run.worker is not None:
        run.write_needs(needed_kernels(items))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Without xdist: build the kernels the selected tests need (none for --collect-only)."""
    if ctx(session.config).worker is None and not session.config.option.collectonly:
        ctx(session.config).build(needed_kernels(session.items), modes.progress(session.config))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:  # type: ignore[no-untyped-def]
    """xdist controller: build what the first worker's tests need, before distributing."""
    if not node.config.stash.get(BUILT, False):
        node.config.stash[BUILT] = True
        run = ctx(node.config)
        run.build(run.read_needs(node.workerinput["workerid"]), modes.progress(node.config))


BUILT = pytest.StashKey[bool]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    run, names = ctx(metafunc.config), metafunc.fixturenames
    workers = int(getattr(metafunc.config, "workerinput", {}).get("workercount", 1))
    if "point" in names:  # an xdist group per kernel (and part): one worker, one guest boot
        modes, marked = "btf_mode" in names, metafunc.definition.get_closest_marker("part")
        own = marked.args[0] if marked else ""
        parts = (POINT_PARTS if metafunc.definition.get_closest_marker("lifetime")
                 and workers > 1 else (own,))
        params = [pytest.param(*((p, m) if modes else (p,)), id="-".join(filter(None, (
            p.id, m, part if len(parts) > 1 else ""))), marks=pytest.mark.xdist_group(
                run.point_group(p, part, workers)))
            for p in run.points for m in (run.btf_modes(p) if modes else [""]) for part in parts]
        metafunc.parametrize(("point", "btf_mode") if modes else "point", params, scope="session")
    if "distro_kernel" in names:
        metafunc.parametrize("distro_kernel", [pytest.param(
            k, id=k.id, marks=pytest.mark.xdist_group(k.group)) for k in run.distros],
            scope="session")
    if "vmtest_case" in names:
        metafunc.parametrize("vmtest_case", [pytest.param((v, t), id=f"{v.id}-{t}", marks=[
            pytest.mark.xdist_group(g) for g in [run.job_group(v, workers)] if g])
            for v in run.vmtest for t in run.vmtest_cases(v)], scope="session")
    if "vmtest_job" in names:
        metafunc.parametrize("vmtest_job", [pytest.param(v, id=v.id, marks=pytest.mark.xdist_group(
            v.point.kernel_id)) for v in run.vmtest], scope="session")
    if "module_spec" in names:
        metafunc.parametrize("module_spec", run.modules, ids=[s.name for s in run.modules],
                             scope="session")


# -- fixtures: one line each over the point's pipeline ---------------------------------


@pytest.fixture(scope="session")
def kernel(pytestconfig: pytest.Config, point: MatrixPoint) -> KernelBuild:
    return ctx(pytestconfig).point_run(point).kernel("")


@pytest.fixture(scope="session")
def point_run(pytestconfig: pytest.Config, point: MatrixPoint) -> PointRun:
    """The point's pipeline: kernels, module builds, guests."""
    return ctx(pytestconfig).point_run(point)


@pytest.fixture(scope="session")
def btf_rules(kernel: KernelBuild) -> ModuleBtfRules:
    return read_rules(kernel.source.path)


@pytest.fixture(scope="session")
def btf_base_expected(point_run: PointRun, kernel: KernelBuild) -> Expectation:
    return point_run.btf_base_expected(kernel)


@pytest.fixture(scope="session")
def hello_ko(point_run: PointRun, kernel: KernelBuild) -> ModuleBuild:
    return point_run.module(kernel, MODULES_DIR / "kbtf_hello", "default")


@pytest.fixture(scope="session")
def module_build(point_run: PointRun, kernel: KernelBuild, module_spec: ModuleSpec,
                 btf_mode: str) -> ModuleBuild:
    return point_run.module(kernel, module_spec.path, btf_mode, module_spec.dkms is not None)


@pytest.fixture(scope="session")
def guest_pool() -> Iterator[GuestPool]:
    """This process's live guests; all shut down at the end of the session."""
    pool = GuestPool()
    try:
        yield pool
    finally:
        pool.close_all()


@pytest.fixture
def guest(point_run: PointRun, kernel: KernelBuild, guest_pool: GuestPool,
          facts: dict[str, object]) -> GuestSession:
    return note_guest(facts, point_run.guest(kernel, guest_pool, "guest-A"))


@pytest.fixture(scope="session")
def facts(pytestconfig: pytest.Config, point: MatrixPoint) -> Iterator[dict[str, object]]:
    """Facts tests record about their point, for matrix.json and summary.md."""
    record = ctx(pytestconfig).facts_record(point)
    yield record
    ctx(pytestconfig).write_facts(point.id, record)
