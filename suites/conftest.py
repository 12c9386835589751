"""Hooks and fixtures of the integration suites: options -> matrix points -> builds -> guests.

Kernels are built once, before tests are distributed (in the xdist controller, with
progress on the terminal); workers then find them in the cache. Harness trouble
(HarnessError) is reported as a pytest ERROR naming its log, never as a test failure.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

from harness import kbuild, proc, results, vm
from harness.btfexpect import Expectation, expect_btf_base, module_pahole_unusable
from harness.elfbtf import elf_facts, module_type_counts
from harness.errors import HarnessError
from harness.guest import GuestSession
from harness.matrix import MatrixPoint, resolve_points
from harness.modbuild import ModuleBuild, build_module

log = logging.getLogger("kbtf")
POINTS = pytest.StashKey[list[MatrixPoint]]()
RUN_DIR = pytest.StashKey[Path]()
CACHE = pytest.StashKey[Path]()


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
    try:
        config.stash[POINTS] = resolve_points(
            config.option.arch, config.option.kernel_src, config.option.pahole or [],
            config.option.kconfig_add, cache, config.option.module_pahole,
        )
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure_node(node) -> None:  # type: ignore[no-untyped-def]
    """xdist controller -> worker: share one run dir."""
    node.workerinput["kbtf_run_dir"] = str(node.config.stash[RUN_DIR])


def _failure_marker(config: pytest.Config, req: kbuild.KernelRequest, kernel_id: str) -> Path:
    return config.stash[RUN_DIR] / kernel_id / f"kernel-{req.variant or 'base'}-failed.json"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build every point's kernel once, in the controller, with progress on the terminal."""
    config = session.config
    if _is_worker(config):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def progress(msg: str) -> None:
        log.info("%s", msg)
        if reporter is not None:
            reporter.write_line(msg)
            reporter.flush()

    # Kernels A' and A_n only when the relocation suite is selected (-m "not relocation").
    variants = RELOCATION_VARIANTS if _selected(config, "relocation") else ()
    for point in config.stash[POINTS]:
        for req in (point.kernel, *(point.kernel_variant(v) for v in variants)):
            try:
                _kernel(config, req, point.kernel_id, progress)
            except HarnessError as exc:
                marker = _failure_marker(config, req, point.kernel_id)
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(json.dumps({"message": str(exc)}))
                progress(f"kbtf: {point.kernel_id} {req.variant}: {exc}")


RELOCATION_VARIANTS = ("reloc", "mismatch")


def _selected(config: pytest.Config, marker: str) -> bool:
    """Whether -m lets through tests marked ``marker`` (prebuild cannot see xdist's items)."""
    if not config.option.markexpr:
        return True
    def has(name: str, /, **kwargs: str | int | bool | None) -> bool:
        return name == marker

    return Expression.compile(config.option.markexpr).evaluate(has)


def _kernel(config: pytest.Config, req: kbuild.KernelRequest, kernel_id: str,
            progress: kbuild.Progress) -> kbuild.KernelBuild:
    """The cached build of ``req`` (built now if needed); its logs copied to the run dir.

    Raises HarnessError if the controller's build of it already failed in this run.
    """
    marker = _failure_marker(config, req, kernel_id)
    if marker.exists():
        raise HarnessError(f"kernel build for {kernel_id}{' ' + req.variant if req.variant else ''}"
                           " failed: "
                           + json.loads(marker.read_text())["message"])
    build = kbuild.ensure_kernel(req, config.stash[CACHE], progress)
    dest = config.stash[RUN_DIR] / kernel_id
    dest.mkdir(parents=True, exist_ok=True)
    name = f"kernel{'-' + req.variant if req.variant else ''}-build"
    if not (dest / f"{name}.log").exists():
        shutil.copy(build.log, dest / f"{name}.log")
        shutil.copy(build.dir / "kbtf-build.json", dest / f"{name}.json")
    return build


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "point" in metafunc.fixturenames:
        # One xdist group per kernel: its tests share one worker, so one guest boot.
        params = [pytest.param(p, id=p.id, marks=pytest.mark.xdist_group(p.kernel_id))
                  for p in metafunc.config.stash[POINTS]]
        metafunc.parametrize("point", params, scope="session")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A HarnessError is harness trouble: an ERROR (even from a test body) that shows the
    error's one line and log path instead of a traceback through the harness."""
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(HarnessError):
        exc = call.excinfo.value
        report.longrepr = f"{type(exc).__name__}: {exc}"
        if report.when == "call":
            report.when = "setup"
    return report


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
    """The point's kernel A (built by the controller at session start)."""
    return _kernel(pytestconfig, point.kernel, point.kernel_id, log.info)


@pytest.fixture(scope="session")
def kernel_prime(pytestconfig: pytest.Config, point: MatrixPoint) -> kbuild.KernelBuild:
    """Kernel A': A plus kconfigs/reloc.config (more vmlinux types, same vermagic)."""
    return _kernel(pytestconfig, point.kernel_variant("reloc"), point.kernel_id, log.info)


@pytest.fixture(scope="session")
def kernel_refuse(pytestconfig: pytest.Config, point: MatrixPoint) -> kbuild.KernelBuild:
    """Kernel A_n: A with MODULE_ALLOW_BTF_MISMATCH=n (kconfigs/mismatch.config)."""
    return _kernel(pytestconfig, point.kernel_variant("mismatch"), point.kernel_id, log.info)


def _module(config: pytest.Config, kernel: kbuild.KernelBuild, point: MatrixPoint,
            name: str, variant: str) -> ModuleBuild:
    """Build modules/<name> for ``kernel``; variant "split" leaves out distilled_base.

    --sabotage removes a BTF section afterwards (objcopy), to watch the suites fail.
    """
    unusable = module_pahole_unusable(
        int(kernel.config()["CONFIG_PAHOLE_VERSION"].value), point.module_pahole)
    if unusable:
        pytest.skip(unusable)
    make_args = ("MODULE_PAHOLE_FLAGS=",) if variant.startswith("split") else ()
    # Per worker: xdist may run this point's tests on several workers at once.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    outdir = config.stash[RUN_DIR] / point.id / "modules" / worker
    built = build_module(kernel, name, outdir, point.module_pahole, variant, make_args)
    if config.option.sabotage:
        section = {"strip-btf-base": ".BTF.base", "strip-btf": ".BTF"}[config.option.sabotage]
        proc.run(["objcopy", "--remove-section", section, built.ko], logfile=built.log)
    facts = elf_facts(built.ko)
    btf_types, btf_base_types = module_type_counts(built.ko, kernel.vmlinux)
    record = {
        "sections": list(facts.sections), "vermagic": facts.vermagic,
        "btf_types": btf_types, "btf_base_types": btf_base_types,
        "btf_bytes": facts.btf.type_len if facts.btf else 0,
        "btf_base_bytes": facts.btf_base.type_len if facts.btf_base else 0,
    }
    (built.ko.parent / "elf-facts.json").write_text(json.dumps(record, indent=2) + "\n")
    return built


@pytest.fixture(scope="session")
def btf_base_expected(kernel: kbuild.KernelBuild, point: MatrixPoint) -> Expectation:
    """Whether this point's module builds should carry .BTF.base, and why (from facts:
    the tree's Makefile.btf gate, CONFIG_PAHOLE_VERSION, the module pahole's features)."""
    src = kernel.source.path
    gen_btf = src / "scripts" / "gen-btf.sh"
    return expect_btf_base(
        int(kernel.config()["CONFIG_PAHOLE_VERSION"].value),
        (src / "scripts" / "Makefile.btf").read_text(),
        gen_btf.read_text() if gen_btf.exists() else None,
        point.module_pahole,
    )


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
def guest_refuse(kernel_refuse: kbuild.KernelBuild, point: MatrixPoint, run_dir: Path,
                 guest_pool: dict[str, GuestSession]) -> GuestSession:
    """The live guest running kernel A_n."""
    return _boot(kernel_refuse, run_dir / point.kernel_id / "guests", guest_pool, "guest-A_n")


@pytest.fixture(scope="session")
def types_split_for_prime(pytestconfig: pytest.Config, kernel_prime: kbuild.KernelBuild,
                          point: MatrixPoint) -> ModuleBuild:
    """modules/kbtf_types built against A' with split BTF only (to load into A)."""
    return _module(pytestconfig, kernel_prime, point, "kbtf_types", "split-for-prime")


@pytest.fixture(scope="session")
def guest_pool(run_dir: Path) -> Iterator[dict[str, GuestSession]]:
    """Live guests of this worker by kernel key; all shut down at the end of the session."""
    pool: dict[str, GuestSession] = {}
    try:
        yield pool
    finally:
        for session in pool.values():
            session.close()


def _boot(kernel: kbuild.KernelBuild, logdir: Path, pool: dict[str, GuestSession],
          name: str) -> GuestSession:
    """The live guest of this worker running ``kernel``; boots it (again, if it died)."""
    session = pool.get(kernel.key)
    if session is None or not session.alive:
        kvm, why = vm.probe_kvm(kernel.arch.qemu)
        log.info("KVM: %s", why if kvm else f"not usable ({why}); using TCG")
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        session = GuestSession(vm.BootSpec(kernel.arch, kernel.image, kvm), logdir,
                               f"{name}-{worker}")
        pool[kernel.key] = session
        session.start()
    return session


@pytest.fixture(scope="session")
def guest(kernel: kbuild.KernelBuild, point: MatrixPoint, run_dir: Path,
          guest_pool: dict[str, GuestSession], facts: dict[str, object]) -> GuestSession:
    """The live guest running kernel A (one per kernel per worker)."""
    session = _boot(kernel, run_dir / point.kernel_id / "guests", guest_pool, "guest-A")
    facts["boot_seconds"] = round(session.boot_seconds, 1)
    return session


@pytest.fixture(scope="session")
def guest_prime(kernel_prime: kbuild.KernelBuild, point: MatrixPoint, run_dir: Path,
                guest_pool: dict[str, GuestSession]) -> GuestSession:
    """The live guest running kernel A'."""
    return _boot(kernel_prime, run_dir / point.kernel_id / "guests", guest_pool, "guest-A-prime")


@pytest.fixture(scope="module")
def hello_loaded(guest: GuestSession, hello_ko: ModuleBuild) -> Iterator[ModuleBuild]:
    """kbtf_hello inserted into guest A for the tests of one file; removed afterwards."""
    guest.run("rmmod kbtf_hello 2>/dev/null; dmesg -C")
    res = guest.run("insmod", str(hello_ko.ko))
    if not res.ok:
        dmesg = guest.run("dmesg | tail -5").stdout.strip()
        pytest.fail(f"insmod {hello_ko.ko} failed ({res.rc}): {res.stderr.strip()}; "
                    f"dmesg: {dmesg}")
    yield hello_ko
    if guest.alive:
        guest.run("rmmod kbtf_hello")


@pytest.fixture(scope="session")
def facts(point: MatrixPoint, run_dir: Path) -> Iterator[dict[str, object]]:
    """Facts tests record about their point, for matrix.json and summary.md."""
    record: dict[str, object] = {
        "kernel_pahole": point.kernel.pahole.identity,
        "module_pahole": point.module_pahole.identity,
        "kernel": point.kernel.source.label,
    }
    yield record
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    out = run_dir / point.id / f"facts-{worker}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect outcomes per point (in the controller, or the only process)."""
    m = re.fullmatch(r"(?P<test>.*)\[(?P<point>[^\]]*)\](?:@.*)?", report.nodeid)
    if m is None:
        return
    if report.when == "call" or report.outcome != "passed":
        outcome: str = report.outcome if report.when == "call" else "error"
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        name = m["test"].split("::")[-1]
        _OUTCOMES.setdefault(m["point"], {})[name] = outcome


_OUTCOMES: dict[str, dict[str, str]] = {}


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
    results.write_matrix(run, records)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    if _is_worker(config) or RUN_DIR not in config.stash:
        return
    run = config.stash[RUN_DIR]
    terminalreporter.write_line(
        f"kbtf: results in {run} (junit.xml, kbtf-*.log, <point>/kernel-build.log, "
        "<point>/guests/*.console.log, <point>/modules/*/build.log)"
    )

