"""Hooks and fixtures of the integration suites: options -> matrix points -> builds -> guests.

Kernels are built once, after collection and before tests are distributed (in the xdist
controller, with progress on the terminal), and only those the selected tests need; workers
then find them in the cache. Who is blamed for a red test: suites/blame.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import accel, cacheentry, distro, guestroot, kbuild, modload, results
from harness.btfexpect import Expectation, ModuleBtfRules, expect_btf_base, read_rules
from harness.errors import HarnessError, KbtfError
from harness.guest import GuestPool, GuestSession
from harness.matrix import MatrixPoint, resolve_points
from harness.modbuild import MODULES_DIR, ModuleBuild
from harness.paholeaxis import axis_table
from harness.pointrun import REPO, MissingPrerequisite, PointRun
from harness.usermod import OWN_MODULES, ModuleSpec, parse_spec
from suites.blame import pytest_handlecrashitem, pytest_runtest_call, pytest_runtest_makereport

# Hooks of suites/blame.py, registered through this conftest.
__all__ = ["pytest_handlecrashitem", "pytest_runtest_call", "pytest_runtest_makereport"]

log = logging.getLogger("kbtf")
POINTS = pytest.StashKey[list[MatrixPoint]]()
MODULES = pytest.StashKey[list[ModuleSpec]]()
DISTROS = pytest.StashKey[list[distro.DistroKernel]]()
RUN_DIR = pytest.StashKey[Path]()
CACHE = pytest.StashKey[Path]()
KVM = pytest.StashKey[bool]()  # host-arch guests may use KVM (the run's verdict)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if _is_worker(config):
        run_dir = Path(config.workerinput["kbtf_run_dir"])  # type: ignore[attr-defined]
        name = config.workerinput["workerid"]  # type: ignore[attr-defined]
    else:
        run_dir = results.new_run_dir()
        name = "main"
        if not config.option.xmlpath:
            config.option.xmlpath = str(run_dir / "junit.xml")
    handler = logging.FileHandler(run_dir / f"kbtf-{name}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    cache = Path(config.option.cache_dir) if config.option.cache_dir else kbuild.default_cache_dir()
    config.stash[RUN_DIR] = run_dir
    config.stash[CACHE] = cache
    _end_cleanly_on_sigterm(_is_worker(config))
    if not _is_worker(config):
        cacheentry.sweep(cache)
    try:
        config.stash[POINTS] = resolve_points(
            config.option.arch, config.option.kernel, config.option.pahole or [],
            config.option.kconfig_add, cache, config.option.module_pahole,
            config.option.launcher, config.option.toolchain,
        )
        config.stash[MODULES] = module_specs(config.option.module or [])
        config.stash[DISTROS] = distro.resolve(config.option.distro or [],
                                               config.option.distro_deb or [], cache)
        if config.stash[DISTROS] and not any(
                (config.option.arch, config.option.kernel, config.option.pahole,
                 config.option.module_pahole, config.option.toolchain)):
            config.stash[POINTS] = []  # distro mode: no kernel is built from source
        config.stash[KVM] = _kvm_verdict(config)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    ids = [p.id for p in config.stash[POINTS]] + [k.label for k in config.stash[DISTROS]]
    _POINT_IDS[:] = sorted(ids, key=len, reverse=True)


def _kvm_verdict(config: pytest.Config) -> bool:
    """Whether host-arch guests may use KVM: probed once, by the controller (or the only
    process); workers take its verdict. Raises ConfigError, ToolMissing."""
    if _is_worker(config):
        return bool(config.workerinput["kbtf_kvm"])  # type: ignore[attr-defined]
    arches = [p.kernel.arch for p in config.stash[POINTS]] + [k.arch for k in config.stash[DISTROS]]
    host = next((a.qemu for a in arches if a.is_host()), None)
    kvm, why = accel.run_verdict(config.option.accel, host, config.stash[RUN_DIR])
    log.info("accelerator for host-arch guests: %s (%s)", "KVM" if kvm else "TCG", why)
    return kvm


def module_specs(given: list[str]) -> list[ModuleSpec]:
    """The modules the generic suite checks: kbtf's own, then each --module (once each).
    Raises ConfigError on a bad --module."""
    specs = [parse_spec(s, REPO) for s in [*OWN_MODULES, *given]]
    return list({s.path: s for s in specs}.values())


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _end_cleanly_on_sigterm(worker: bool) -> None:
    """SIGTERM ends the run like Ctrl-C: fixtures torn down (guests killed), temp build
    dirs removed, running builds killed with their process groups. An xdist worker also
    gets SIGTERM when the controller dies, even by SIGKILL (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(ValueError):  # not the main thread: the default still ends it
        signal.signal(signal.SIGTERM, _raise_interrupt)
    if worker:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the controller died before the prctl
            os.kill(os.getpid(), signal.SIGTERM)


def pytest_configure_node(node) -> None:  # type: ignore[no-untyped-def]
    """xdist controller -> worker: share one run dir."""
    node.workerinput["kbtf_run_dir"] = str(node.config.stash[RUN_DIR])
    node.workerinput["kbtf_kvm"] = node.config.stash[KVM]


# Kernel fixture -> the kernel variant it needs ("": kernel A).
KERNEL_FIXTURES = {"kernel": "", "kernel_prime": "prime", "kernel_refuse": "refuse"}


def needed_kernels(items: list[pytest.Item]) -> set[tuple[str, str]]:
    """(point id, variant) of every kernel the ``items`` need, from their fixture closures."""
    needs = set()
    for item in items:
        point = getattr(item, "callspec", None) and item.callspec.params.get("point")  # type: ignore[attr-defined]
        if not isinstance(point, MatrixPoint):
            continue
        for name in getattr(item, "fixturenames", ()):
            if name in KERNEL_FIXTURES:
                needs.add((point.id, KERNEL_FIXTURES[name]))
    return needs


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of an axis with no value in this run (distro tests without --distro, kernel
    tests in distro mode) are deselected, not reported as empty-parameter skips. Then an
    xdist worker writes down which kernels its selected tests need (after -k and -m
    deselected theirs; before xdist reports the collection to the controller)."""
    empty = [name for name, given in (("point", bool(config.stash.get(POINTS, []))),
                                      ("distro_kernel", bool(config.stash.get(DISTROS, []))))
             if not given]
    drop = [i for i in items if any(n in getattr(i, "fixturenames", ()) for n in empty)]
    if drop:
        items[:] = [i for i in items if i not in drop]
        config.hook.pytest_deselected(items=drop)
    if _is_worker(config):
        worker = config.workerinput["workerid"]  # type: ignore[attr-defined]
        path = config.stash[RUN_DIR] / f"needs-{worker}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(needed_kernels(items))))
        tmp.rename(path)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Without xdist: build the kernels the selected tests need (none for --collect-only).
    With xdist the controller does it (below) from what a worker wrote down."""
    config = session.config
    if not _is_worker(config) and not config.option.collectonly:
        _build_kernels(config, needed_kernels(session.items))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:  # type: ignore[no-untyped-def]
    """xdist controller: build what the first worker's collection needs, before tests are
    distributed (every worker collects the same tests)."""
    config = node.config
    if config.stash.get(BUILT, False):
        return
    config.stash[BUILT] = True
    path = config.stash[RUN_DIR] / f"needs-{node.workerinput['workerid']}.json"
    needs = {(p, v) for p, v in json.loads(path.read_text())} if path.exists() else set()
    _build_kernels(config, needs)


BUILT = pytest.StashKey[bool]()


def _build_kernels(config: pytest.Config, needs: set[tuple[str, str]]) -> None:
    """Build each needed kernel once, with progress on the terminal. A failed build is
    written down (with who is to blame) for the tests that need it."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def progress(msg: str) -> None:
        log.info("%s", msg)
        if reporter is not None:
            reporter.write_line(msg)
            reporter.flush()

    for point in config.stash[POINTS]:
        if point.launcher == "kbtf" and any(p == point.id for p, _ in needs):
            try:  # the guest root, before the tests are distributed (else the first boot)
                root = guestroot.ensure_root(point.kernel.arch, config.stash[CACHE])
                progress(f"kbtf: {point.kernel.arch.name} guest root {root}")
            except KbtfError as exc:
                progress(f"kbtf: {point.kernel.arch.name} guest root: {exc}")
        for variant in KERNEL_FIXTURES.values():
            if (point.id, variant) in needs:
                _run(config, point).build_kernel(variant, progress)


def _run(config: pytest.Config, point: MatrixPoint) -> PointRun:
    """``point``'s pipeline in this run."""
    return PointRun(point, config.stash[RUN_DIR], config.stash[CACHE], config.option.sabotage,
                    config.stash[KVM])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    points = metafunc.config.stash[POINTS]
    if "point" in metafunc.fixturenames and "btf_mode" in metafunc.fixturenames:
        # Only the modes the point's era has: before 6.11 every module is split-only.
        combos = [pytest.param(p, mode, id=f"{p.id}-{mode}",
                               marks=pytest.mark.xdist_group(p.kernel_id))
                  for p in points for mode in BTF_MODES
                  if mode == "default" or read_rules(p.kernel.source.path).split_args]
        metafunc.parametrize(("point", "btf_mode"), combos, scope="session")
    elif "point" in metafunc.fixturenames:
        # One xdist group per kernel: its tests share one worker, so one guest boot.
        params = [pytest.param(p, id=p.id, marks=pytest.mark.xdist_group(p.kernel_id))
                  for p in points]
        metafunc.parametrize("point", params, scope="session")
    if "distro_kernel" in metafunc.fixturenames:
        kernels = metafunc.config.stash[DISTROS]
        metafunc.parametrize("distro_kernel", [
            pytest.param(k, id=k.label, marks=pytest.mark.xdist_group(k.label))
            for k in kernels], scope="session")
    if "module_spec" in metafunc.fixturenames:
        specs = metafunc.config.stash[MODULES]
        metafunc.parametrize("module_spec", specs, ids=[s.name for s in specs],
                             scope="session")


# BTF modes the generic module suite builds each module in: the tree's default, and its
# era's split-only way (btfexpect.ModuleBtfRules.split_args).
BTF_MODES = ("default", "split")


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def run_dir(pytestconfig: pytest.Config) -> Path:
    """results/<run>/ of this pytest run."""
    return pytestconfig.stash[RUN_DIR]


@pytest.fixture(scope="session")
def cache_dir(pytestconfig: pytest.Config) -> Path:
    """kbtf's cache (kernels, paholes, scaffolds)."""
    return pytestconfig.stash[CACHE]


@pytest.fixture(scope="session")
def kernel(pytestconfig: pytest.Config, point: MatrixPoint) -> kbuild.KernelBuild:
    """The point's kernel A (built by the controller before the tests were distributed)."""
    return _run(pytestconfig, point).kernel("")


@pytest.fixture(scope="session")
def kernel_prime(pytestconfig: pytest.Config, point: MatrixPoint) -> kbuild.KernelBuild:
    """Kernel A': A plus kconfigs/prime.config (more vmlinux types, same vermagic)."""
    return _run(pytestconfig, point).kernel("prime")


@pytest.fixture(scope="session")
def kernel_refuse(pytestconfig: pytest.Config, point: MatrixPoint) -> kbuild.KernelBuild:
    """Kernel A_n: A with MODULE_ALLOW_BTF_MISMATCH=n (kconfigs/refuse.config)."""
    return _run(pytestconfig, point).kernel("refuse")


def _module(config: pytest.Config, kernel: kbuild.KernelBuild, point: MatrixPoint,
            name: str, btf_mode: str) -> ModuleBuild:
    """PointRun.module, a missing prerequisite skipping the test with its reason."""
    try:
        return _run(config, point).module(kernel, MODULES_DIR / name, btf_mode)
    except MissingPrerequisite as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def btf_rules(kernel: kbuild.KernelBuild) -> ModuleBtfRules:
    """How the point's kernel tree makes module BTF (read from its files)."""
    return read_rules(kernel.source.path)


@pytest.fixture(scope="session")
def btf_base_expected(kernel: kbuild.KernelBuild, point: MatrixPoint,
                      btf_rules: ModuleBtfRules) -> Expectation:
    """Whether this point's default module builds should carry .BTF.base, and why (from
    facts: the tree's rules, CONFIG_PAHOLE_VERSION, the module pahole's features)."""
    return expect_btf_base(btf_rules, int(kernel.config()["CONFIG_PAHOLE_VERSION"].value),
                           point.module_pahole)





@pytest.fixture(scope="session")
def hello_ko(pytestconfig: pytest.Config, kernel: kbuild.KernelBuild, point: MatrixPoint
             ) -> ModuleBuild:
    """modules/kbtf_hello built against kernel A with the module pahole."""
    return _module(pytestconfig, kernel, point, "kbtf_hello", "default")


@pytest.fixture(scope="session")
def types_distilled(pytestconfig: pytest.Config, kernel: kbuild.KernelBuild,
                    point: MatrixPoint) -> ModuleBuild:
    """modules/kbtf_types built against A the default way (.BTF.base if pahole can)."""
    return _module(pytestconfig, kernel, point, "kbtf_types", "distilled")


@pytest.fixture(scope="session")
def types_split(pytestconfig: pytest.Config, kernel: kbuild.KernelBuild,
                point: MatrixPoint) -> ModuleBuild:
    """modules/kbtf_types built against A with MODULE_PAHOLE_FLAGS= (split BTF only)."""
    return _module(pytestconfig, kernel, point, "kbtf_types", "split")


@pytest.fixture(scope="session")
def types_split_for_prime(pytestconfig: pytest.Config, kernel_prime: kbuild.KernelBuild,
                          point: MatrixPoint) -> ModuleBuild:
    """modules/kbtf_types built against A' with split BTF only (to load into A)."""
    return _module(pytestconfig, kernel_prime, point, "kbtf_types", "split-for-prime")


@pytest.fixture(scope="session")
def module_build(pytestconfig: pytest.Config, kernel: kbuild.KernelBuild, point: MatrixPoint,
                 module_spec: ModuleSpec, btf_mode: str, btf_rules: ModuleBtfRules
                 ) -> ModuleBuild:
    """A --module directory (or kbtf's own) built against kernel A in ``btf_mode`` (an era
    without a split-only way has only "default"). A build that fails is the module's or the
    kernel's failure: the test fails quoting the log."""
    try:
        return _run(pytestconfig, point).module(kernel, module_spec.path, btf_mode)
    except MissingPrerequisite as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def baseline(pytestconfig: pytest.Config, point: MatrixPoint) -> MatrixPoint:
    """The baseline of the pahole axis for ``point``: the run's first point with the same
    arch, kernel source, toolchain and kconfig additions (it may be ``point`` itself)."""
    k = point.kernel
    same = [p for p in pytestconfig.stash[POINTS]
            if (p.kernel.arch, p.kernel.source, p.kernel.toolchain, p.kernel.user_kconfig)
            == (k.arch, k.source, k.toolchain, k.user_kconfig)]
    return same[0]


@pytest.fixture(scope="session")
def axis_builds(pytestconfig: pytest.Config, point: MatrixPoint, baseline: MatrixPoint,
                kernel: kbuild.KernelBuild, module_spec: ModuleSpec
                ) -> tuple[ModuleBuild, ModuleBuild, kbuild.KernelBuild]:
    """(the module built for ``point``, for the baseline, the baseline's kernel), default
    BTF mode. A build failure fails the test; a missing prerequisite skips it."""
    base_run = _run(pytestconfig, baseline)
    try:
        base_kernel = base_run.kernel("")
        mine = _run(pytestconfig, point).module(kernel, module_spec.path, "axis")
        theirs = mine if baseline == point else base_run.module(base_kernel, module_spec.path,
                                                               "axis")
    except MissingPrerequisite as exc:
        pytest.skip(str(exc))
    return mine, theirs, base_kernel


@pytest.fixture(scope="session")
def guest_pool() -> Iterator[GuestPool]:
    """This process's live guests, one per kernel; all shut down at the end of the
    session (kernel trouble during the shutdown fails the last test's teardown)."""
    pool = GuestPool()
    try:
        yield pool
    finally:
        pool.close_all()


@pytest.fixture
def guest(pytestconfig: pytest.Config, kernel: kbuild.KernelBuild, point: MatrixPoint,
          guest_pool: GuestPool, facts: dict[str, object]) -> GuestSession:
    """The live guest running kernel A (one per kernel per worker; rebooted after a loss)."""
    session = _run(pytestconfig, point).guest(kernel, guest_pool, "guest-A")
    facts.setdefault("boot_seconds", round(session.boot_seconds, 1))
    _note_accel(facts, session)
    return session


def _note_accel(facts: dict[str, object], session: GuestSession) -> None:
    """Record the accelerator ``session`` runs under among the point's (summary.md)."""
    seen = {a for a in str(facts.get("accel", "")).split("; ") if a}
    facts["accel"] = "; ".join(sorted(seen | {session.accel}))


@pytest.fixture
def guest_prime(pytestconfig: pytest.Config, kernel_prime: kbuild.KernelBuild,
                point: MatrixPoint, guest_pool: GuestPool, facts: dict[str, object]
                ) -> GuestSession:
    """The live guest running kernel A'."""
    session = _run(pytestconfig, point).guest(kernel_prime, guest_pool, "guest-A-prime")
    _note_accel(facts, session)
    return session


@pytest.fixture
def guest_refuse(pytestconfig: pytest.Config, kernel_refuse: kbuild.KernelBuild,
                 point: MatrixPoint, guest_pool: GuestPool, facts: dict[str, object]
                 ) -> GuestSession:
    """The live guest running kernel A_n."""
    session = _run(pytestconfig, point).guest(kernel_refuse, guest_pool, "guest-A_n")
    _note_accel(facts, session)
    return session


@pytest.fixture(scope="session")
def kvm_allowed(pytestconfig: pytest.Config) -> bool:
    """The run's KVM verdict: host-arch guests may use KVM."""
    return pytestconfig.stash[KVM]


@pytest.fixture
def fault_ko(pytestconfig: pytest.Config, kernel: kbuild.KernelBuild,
             point: MatrixPoint) -> ModuleBuild | None:
    """modules/kbtf_fault, built only for --sabotage warn-on-load / oops-on-load."""
    if pytestconfig.option.sabotage not in SABOTAGE_FAULTS:
        return None
    return _module(pytestconfig, kernel, point, "kbtf_fault", "default")


SABOTAGE_FAULTS = {"warn-on-load": "warn", "oops-on-load": "oops"}


@pytest.fixture
def hello_loaded(guest: GuestSession, hello_ko: ModuleBuild, fault_ko: ModuleBuild | None,
                 pytestconfig: pytest.Config) -> ModuleBuild:
    """kbtf_hello inserted into guest A (once per boot; it stays loaded between tests).

    A failing insmod is the module's or kernel's failure: the test fails. With --sabotage
    warn-on-load / oops-on-load, kbtf_fault is inserted after it and WARNs or Oopses.
    """
    if guest.run("grep", "-q", "^kbtf_hello ", "/proc/modules").ok:
        return hello_ko
    try:
        modload.insert(guest, hello_ko, (), [])
    except MissingPrerequisite as exc:
        pytest.skip(str(exc))
    if fault_ko is not None:
        mode = SABOTAGE_FAULTS[pytestconfig.option.sabotage]
        guest.run("insmod", guest.path(fault_ko.ko), f"mode={mode}")
    return hello_ko


@pytest.fixture(scope="session")
def facts(point: MatrixPoint, run_dir: Path) -> Iterator[dict[str, object]]:
    """Facts tests record about their point, for matrix.json and summary.md."""
    record: dict[str, object] = {
        "arch": point.kernel.arch.name,
        "launcher": point.launcher,
        "kernel_pahole": point.kernel.pahole.identity,
        "module_pahole": point.module_pahole.identity,
        "kernel": point.kernel.source.label,
        "kernel_version": point.kernel.source.version,
        "toolchain": point.kernel.toolchain.name,
    }
    yield record
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    out = run_dir / point.id / f"facts-{worker}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect outcomes per point (in the controller, or the only process)."""
    found = split_test_id(report.nodeid, _POINT_IDS)
    if found is None:
        return
    point, name = found
    if report.when == "call" or report.outcome != "passed":
        _OUTCOMES.setdefault(point, {})[name] = outcome_label(report)


def split_test_id(nodeid: str, point_ids: list[str]) -> tuple[str, str] | None:
    """(point id, test name) of a node id: ``file::test[<point>-<more params>]`` gives the
    point and ``test[<more params>]``; None for tests of no point. ``point_ids``: longest
    first (one id may start another)."""
    m = re.fullmatch(r"(?P<test>.*)\[(?P<params>[^\]]*)\](?:@.*)?", nodeid)
    if m is None:
        return None
    name = m["test"].split("::")[-1]
    for point in point_ids:
        if m["params"] == point:
            return point, name
        if m["params"].startswith(point + "-"):
            return point, f"{name}[{m['params'][len(point) + 1:]}]"
    return None


_OUTCOMES: dict[str, dict[str, str]] = {}
_POINT_IDS: list[str] = []


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


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write matrix.json and summary.md from the points' facts and outcomes."""
    config = session.config
    if _is_worker(config) or POINTS not in config.stash:
        return
    run = config.stash[RUN_DIR]
    records = []
    for point in config.stash[POINTS]:
        rec = results.PointRecord(point.id, facts={"rerun": point.rerun()},
                                  outcomes=_OUTCOMES.get(point.id, {}))
        for f in sorted((run / point.id).glob("facts-*.json")):
            rec.facts.update(json.loads(f.read_text()))
        records.append(rec)
    axis = [row for rec in records for row in rec.facts.get("pahole_axis", [])]  # type: ignore[attr-defined]
    for kernel in config.stash[DISTROS]:
        config_pahole = kernel.config().get("CONFIG_PAHOLE_VERSION")
        records.append(results.PointRecord(kernel.label, facts={
            "arch": kernel.arch.name, "kernel": kernel.release, "toolchain": "distro",
            "config_pahole_version": config_pahole.value if config_pahole else "-",
            "module_pahole": (f"{kernel.build_root.suite} build root's" if kernel.build_root
                              else "system"),
            "headers_vmlinux": kernel.vmlinux.is_file(),
            "packages": [d.name for d in kernel.debs],
            "rerun": kernel.rerun(),
        }, outcomes=_OUTCOMES.get(kernel.label, {})))
    preface = ""
    if len({row["point"] for row in axis}) > 1:
        preface = ("## pahole axis (each module against the first pahole of its arch, kernel "
                   "and toolchain)\n\n" + axis_table(sorted(
                       axis, key=lambda r: (str(r["module"]), r["point"] != r["baseline"]))))
    results.write_matrix(run, records, preface)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    if _is_worker(config) or RUN_DIR not in config.stash:
        return
    run = config.stash[RUN_DIR]
    terminalreporter.write_line(
        f"kbtf: results in {run} (junit.xml, kbtf-*.log, <point>/kernel-build.log, "
        "<point>/guests/*.console.log, <point>/modules/*/build.log)"
    )

