"""One run in one process (the xdist controller, a worker, or the only process): its
options, run dir, cache, points, distro kernels, modules and KVM verdict; the protocol
between workers and the controller (which kernels the selected tests need); the outcomes
it collects and the results it writes. suites/conftest.py maps pytest onto it.

The controller resolves and probes once; workers get the run dir and the KVM verdict from
it (``worker_input``) and resolve the same points from the same options.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from harness import REPO, cacheentry, proc, signing
from harness.btf.btfexpect import read_rules
from harness.btf.paholeaxis import axis_table
from harness.builds import cacheremote, distro, dkmsbuild, fetch, kbuild
from harness.errors import ConfigError, KbtfError
from harness.guest import accel, cilog, guestroot
from harness.launchers import get_launcher
from harness.plan.kernelreq import SELFTESTS_DIR, VARIANTS
from harness.plan.matrix import MatrixPoint, resolve_points
from harness.plan.unit import Unit
from harness.plan.usermod import OWN_MODULES, ModuleSpec, parse_dkms, parse_spec
from harness.plan.vmtest import VmtestPoint, select_tests, tree_tests
from harness.run import plan, results
from harness.run.plan import RunPlan
from harness.run.pointrun import DistroRun, PointRun, worker_id
from harness.run.vmtestrun import VmtestRun, vmtest_points

log = logging.getLogger("kbtf")

# BTF modes the generic module suite builds each module in: the tree's default, and its
# era's split-only way (btfexpect.ModuleBtfRules.split_args).
BTF_MODES = ("default", "split")


@dataclass(frozen=True)
class RunOptions:
    """The command line of a run, typed (conftest.py defines the options)."""

    arch: list[str] | None = None
    kernel: list[str] | None = None
    pahole: list[str] | None = None
    module_pahole: list[str] | None = None
    toolchain: list[str] | None = None
    launcher: str | None = None
    kconfig_add: list[str] = field(default_factory=list)
    module: list[str] | None = None
    distro: list[str] | None = None
    distro_deb: list[str] | None = None
    distro_cmdline: list[str] = field(default_factory=list)
    sabotage: str | None = None
    accel: str = "auto"
    cache_dir: str | None = None
    btf_growth_limit: float | None = None
    point: list[str] | None = None  # --point: run only these units of the plan
    vmtest_job: list[str] | None = None  # --vmtest-job: BPF CI jobs to reproduce
    vmtest_tests: str | None = None  # --vmtest-tests: which tests of their runners
    vmtest_log: str | None = None  # --vmtest-log: a BPF CI job's log: its job and red tests
    guest_cpus: int | None = None  # --guest-cpus: a BPF CI job's guest's vCPUs
    guest_memory: str | None = None  # --guest-memory: its memory
    dkms: list[str] | None = None  # --dkms: DKMS packages (Debian's or a user's dir)
    cache_remote: str | None = None  # --cache-remote: an OCI registry sharing kernels
    shell: bool = False  # ./kbtf shell: one guest handed to the terminal, no test run

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace | object) -> RunOptions:
        """The options of a parsed command line (pytest's ``config.option``)."""
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls)})

    @property
    def distro_only(self) -> bool:
        """Only --distro/--distro-deb given: no kernel is built from source."""
        return bool(self.distro or self.distro_deb) and not any(
            (self.arch, self.kernel, self.pahole, self.module_pahole, self.toolchain))

    @property
    def no_matrix(self) -> bool:
        """The matrix suites do not run: only distro kernels, or BPF CI jobs (whose
        --kernel/--pahole options are theirs)."""
        return self.distro_only or bool(self.vmtest_job)


def with_ci_log(options: RunOptions) -> tuple[RunOptions, cilog.CiLog | None]:
    """``options`` with what a --vmtest-log says filled in where the command line says
    nothing: the job (its whole name) and the tests to run (its red ones), and the log.
    Raises ConfigError (no log there, no red test in it, no job name in it or given)."""
    if not options.vmtest_log:
        return options, None
    log_file = Path(options.vmtest_log).expanduser()
    found = cilog.load(log_file)
    jobs = options.vmtest_job or ([found.job] if found.job else [])
    if not jobs:
        raise ConfigError(f"--vmtest-log {log_file}: it names no job (no 'Complete job name:' "
                          "line): add --vmtest-job with the row's name")
    tests = options.vmtest_tests or (",".join(found.red) if found.red else "all")
    return replace(options, vmtest_job=jobs, vmtest_tests=tests), found


def module_specs(given: Iterable[str], dkms: Iterable[str], cache: Path) -> list[ModuleSpec]:
    """The modules the generic suite checks: kbtf's own, each --module, then each --dkms
    package (once each; packages as planned: fetch_dkms brings them).
    Raises ConfigError on a bad --module or --dkms."""
    specs = [parse_spec(s, REPO) for s in [*OWN_MODULES, *given]]
    specs += [parse_dkms(s, cache) for s in dkms]
    return list({s.path: s for s in specs}.values())


def fetch_dkms(specs: list[ModuleSpec], cache: Path, say: Callable[[str], None]
               ) -> list[ModuleSpec]:
    """``specs`` with each Debian DKMS package downloaded and unpacked into the cache (once)
    and pointing at its source dir. Raises ConfigError, CommandError naming the log."""
    fetched = []
    for spec in specs:
        d = spec.dkms
        if d is not None and d.package:
            if not spec.path.is_dir():
                say(f"kbtf: fetching {d.package} {d.version} from Debian {d.suite}")
            spec = replace(spec, path=dkmsbuild.fetch_package(cache, d.suite, d.package,
                                                              d.version, spec.path))
        fetched.append(spec)
    return fetched


class FactsRecord(dict[str, object]):
    """A unit's facts as its tests write them down; each key a test writes is appended at
    once to an append-only journal too, so a record that later lost it says so
    (RunContext.lost_facts)."""

    def __init__(self, initial: dict[str, object], journal: Path) -> None:
        super().__init__(initial)
        self._journal = journal

    def __setitem__(self, key: str, value: object) -> None:
        super().__setitem__(key, value)
        self._note([key])

    def setdefault(self, key: str, default: object = None) -> object:
        self._note([key])
        return super().setdefault(key, default)

    def update(self, *args: object, **kwargs: object) -> None:
        new = dict(*args, **kwargs)
        super().update(new)
        self._note(list(new))

    def _note(self, keys: list[str]) -> None:
        with self._journal.open("a") as fh:
            fh.write("".join(f"{k}\n" for k in keys))


def _fetched(found: RunPlan, cache: Path, say: Callable[[str], None]) -> list[Unit]:
    """The units of ``found`` with what the plan names fetched (builds/fetch.py for the
    kernels built from source, distro.fetch_kernel for distro kernels), in plan order.
    Raises HarnessError."""
    built = [u for u in found.units if isinstance(u, MatrixPoint | VmtestPoint)]
    points = fetch.fetch([u if isinstance(u, MatrixPoint) else u.point for u in built],
                         cache, say)
    ready: dict[int, Unit] = {id(u): (p if isinstance(u, MatrixPoint) else replace(u, point=p))
                              for u, p in zip(built, points, strict=True)}
    return [ready.get(id(u)) or distro.fetch_kernel(u, cache, say)  # type: ignore[arg-type]
            for u in found.units]


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


def no_baseline(point: MatrixPoint, baseline: MatrixPoint) -> str | None:
    """Why ``point`` has nothing to compare with on its pahole axis (it is the baseline
    itself), or None."""
    if point != baseline:
        return None
    return (f"{point.id} is the baseline of its pahole axis: no other pahole in this run to "
            "compare its module BTF with (add --pahole or --module-pahole)")


def resolve(options: RunOptions, cache: Path) -> RunPlan:
    """The plan of the run: from options, local files and apt metadata (nothing downloaded
    or built: builds/fetch.py and distro.fetch_kernel bring what it names).
    Raises HarnessError."""
    jobs = vmtest_points(options.vmtest_job or [], options.kernel, options.pahole,
                         tuple(options.kconfig_add), cache)
    points = [] if options.no_matrix else resolve_points(
        options.arch, options.kernel, options.pahole or [], options.kconfig_add, cache,
        options.module_pahole, options.launcher, options.toolchain)
    distros = distro.resolve(options.distro or [], options.distro_deb or [], cache)
    units: list[Unit] = [*points, *distros, *jobs]
    seen: set[str] = set()
    for unit in units:
        if unit.id in seen:  # its results would overwrite another's
            raise ConfigError(f"two units of this run are both named {unit.id}: two --kernel "
                              "trees of one version? give one tree per kernel version")
        seen.add(unit.id)
    return RunPlan(units)


def plan_json(options: RunOptions, args: list[str]) -> str:
    """The plan of ``options`` (the command line ``args``) as JSON: run/plan.units.
    Reads options, local files and apt metadata; builds nothing. Raises HarnessError."""
    cache = Path(options.cache_dir) if options.cache_dir else kbuild.default_cache_dir()
    options, _ = with_ci_log(options)
    found = plan.select(resolve(options, cache), options.point or [])
    units = plan.units(found.units, args, cache)
    return json.dumps(units, indent=2) + "\n"


# The parts of a point's tests (a test's part marker; "" is every test without one) that
# xdist may run on different workers (RunContext.point_group); each part's guests are
# checked for a clean shutdown by a lifetime test of that part. "other-btf": modules whose
# BTF is stripped or was made for another kernel (guest A plus the relocation kernels').
POINT_PARTS = ("", "other-btf")


@dataclass
class RunContext:
    """The run as this process sees it (made by ``start``)."""

    options: RunOptions
    run_dir: Path
    cache: Path
    units: list[Unit]  # what the run tests (plan/unit.py), in the plan's order
    modules: list[ModuleSpec]
    kvm: bool  # host-arch guests may use KVM (guest/accel.py, decided by the controller)
    worker: str | None = None  # xdist worker id; None: the controller or the only process
    cases: dict[str, list[str]] = field(default_factory=dict)  # job id -> its tests (vmtest_cases)
    ci_log: cilog.CiLog | None = None  # --vmtest-log: what CI's log of the job says
    _facts: dict[str, FactsRecord] = field(default_factory=dict)  # facts_record's
    outcomes: dict[str, dict[str, str]] = field(default_factory=dict)  # point -> test -> label

    @classmethod
    def start(cls, options: RunOptions, worker_input: dict[str, object] | None = None,
              progress: Callable[[str], None] = print) -> RunContext:
        """Resolve the run and fetch what its plan names (builds/fetch.py, with
        ``progress``): a new run dir and the KVM probe in the controller, the controller's
        in a worker. Raises HarnessError (bad input, a missing tool, a failed fetch)."""
        cache = Path(options.cache_dir) if options.cache_dir else kbuild.default_cache_dir()
        options, ci_log = with_ci_log(options)
        if worker_input is None:
            if options.cache_remote:  # workers and builds read it from the environment
                cacheremote.Remote.parse(options.cache_remote)
                os.environ[cacheremote.ENV] = options.cache_remote
            if cacheremote.configured():  # a malformed $KBTF_CACHE_REMOTE stops the run here
                _logged(progress)(signing.check_configuration())  # and a bad key
            run_dir = results.new_run_dir(shell=options.shell)
            cacheentry.sweep(cache)
        else:
            run_dir = Path(str(worker_input["kbtf_run_dir"]))
        _log_to(run_dir / f"kbtf-{worker_id()}.log")
        found = plan.select(resolve(options, cache), options.point or [])
        units = _fetched(found, cache, _logged(progress))
        ctx = cls(options, run_dir, cache, units,
                  fetch_dkms(module_specs(options.module or [], options.dkms or [], cache),
                             cache, _logged(progress)), False,
                  None if worker_input is None else worker_id())
        # each job's tests, read against its tree now: a bad --vmtest-tests is one line
        ctx.cases = {v.id: ctx._job_cases(v) for v in ctx.vmtest}
        ctx.ci_log = ci_log
        ctx.kvm = (bool(worker_input["kbtf_kvm"]) if worker_input is not None
                   else ctx._kvm_verdict())
        return ctx

    @property
    def points(self) -> list[MatrixPoint]:
        """The units that are matrix points (their fixtures and builds are theirs)."""
        return [u for u in self.units if isinstance(u, MatrixPoint)]

    @property
    def distros(self) -> list[distro.DistroKernel]:
        """The units that are distro kernels."""
        return [u for u in self.units if isinstance(u, distro.DistroKernel)]

    @property
    def vmtest(self) -> list[VmtestPoint]:
        """The units that are BPF CI jobs."""
        return [u for u in self.units if isinstance(u, VmtestPoint)]

    def _kvm_verdict(self) -> bool:
        """Probe KVM once for the run (only when some guest is of the host arch)."""
        host = next((u.arch.qemu for u in self.units if u.arch.is_host()), None)
        kvm, why = accel.run_verdict(self.options.accel, host, self.run_dir, self.cache)
        log.info("accelerator for host-arch guests: %s (%s)", "KVM" if kvm else "TCG", why)
        return kvm

    def worker_input(self) -> dict[str, object]:
        """What the controller hands each worker."""
        return {"kbtf_run_dir": str(self.run_dir), "kbtf_kvm": self.kvm,
                "kbtf_controller_pid": os.getpid()}

    # -- the pipeline of each point --------------------------------------------------

    def point_run(self, point: MatrixPoint) -> PointRun:
        """``point``'s pipeline in this run."""
        return PointRun(point, self.run_dir, self.cache, self.options.sabotage, self.kvm)

    def distro_run(self, kernel: distro.DistroKernel) -> DistroRun:
        """A distro kernel's pipeline in this run."""
        return DistroRun(kernel, self.run_dir, self.cache, self.options.sabotage, self.kvm,
                         tuple(self.options.distro_cmdline))

    def vmtest_run(self, vmtest: VmtestPoint) -> VmtestRun:
        """A BPF CI job's pipeline in this run."""
        return VmtestRun(vmtest, self.run_dir, self.cache, self.kvm, self.options.sabotage,
                         self.options.guest_cpus, self.options.guest_memory)

    def vmtest_cases(self, vmtest: VmtestPoint) -> list[str]:
        """The tests of ``vmtest``'s runner this run runs (read at start)."""
        return self.cases[vmtest.id]

    def _job_cases(self, vmtest: VmtestPoint) -> list[str]:
        """The tests of ``vmtest``'s runner this run runs (--vmtest-tests, read against the
        tree's test list), or ["all"] for a runner that reports as a whole.
        Raises ConfigError."""
        if not vmtest.per_test:
            return ["all"]
        tree = vmtest.point.kernel.source.path / SELFTESTS_DIR
        return select_tests(tree_tests(tree), self.options.vmtest_tests)

    def job_group(self, vmtest: VmtestPoint, workers: int) -> str | None:
        """The xdist group of ``vmtest``'s tests: its kernel (one worker, one boot), or None
        when the run has fewer kernels than ``workers``: then every worker boots a guest of
        it and takes the tests as they come (a lone job's 12 tests on 2 cores)."""
        kernels = {u.group for u in self.units}
        return vmtest.group if len(kernels) >= workers else None

    @staticmethod
    def point_group(point: MatrixPoint, part: str, workers: int) -> str:
        """The xdist group of ``point``'s tests of ``part`` (their part marker; "" the rest):
        its kernel, so one worker boots its guests; with more than one worker, each part of
        POINT_PARTS is a group of its own, booting its own guests on whichever worker takes
        it: three points on two workers would otherwise leave one worker idle for a whole
        point's time."""
        return f"{point.kernel_id}/{part}" if part and workers > 1 else point.kernel_id

    def btf_modes(self, point: MatrixPoint) -> list[str]:
        """The BTF modes of ``point``'s era: before 6.11 every module is split-only."""
        split = read_rules(point.kernel.source.path).split_args
        return [m for m in BTF_MODES if m == "default" or split]

    def baseline(self, point: MatrixPoint) -> MatrixPoint:
        """The baseline of the pahole axis for ``point``: the run's first point with the same
        arch, kernel source, toolchain and kconfig additions (it may be ``point`` itself)."""
        k = point.kernel
        return next(p for p in self.points
                    if (p.kernel.arch, p.kernel.source, p.kernel.toolchain, p.kernel.user_kconfig)
                    == (k.arch, k.source, k.toolchain, k.user_kconfig))

    # -- which kernels the selected tests need: workers write, the controller builds ----

    def needs_path(self, worker: str) -> Path:
        """Where worker ``worker`` writes down the kernels its selected tests need."""
        return self.run_dir / f"needs-{worker}.json"

    def write_needs(self, needs: set[tuple[str, str]]) -> None:
        """A worker: write down (point id, variant) of the kernels its tests need."""
        path = self.needs_path(self.worker or "main")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(needs)))
        tmp.rename(path)

    def read_needs(self, worker: str) -> set[tuple[str, str]]:
        """The controller: what worker ``worker`` wrote down (nothing if it wrote nothing)."""
        path = self.needs_path(worker)
        return {(p, v) for p, v in json.loads(path.read_text())} if path.exists() else set()

    def build(self, needs: set[tuple[str, str]], progress: Callable[[str], None]) -> None:
        """Build each needed kernel once (and the guest root of its arch first), with
        progress (also logged). A failed build is written down for the tests that need it."""
        say = _logged(progress)
        for job in self.vmtest:
            if (job.id, "vmtest") in needs:
                guestroot.ensure_root(job.point.kernel.arch, self.cache, guestroot.VMTEST_PACKAGES,
                                      say)
                self.vmtest_run(job).build(say)
        for point in self.points:
            if not any(p == point.id for p, _ in needs):
                continue
            if get_launcher(point.launcher).own_root:
                try:  # before the tests are distributed (else the first boot waits for it)
                    root = guestroot.ensure_root(point.kernel.arch, self.cache, say=say)
                    say(f"kbtf: {point.kernel.arch.name} guest root {root}")
                except KbtfError as exc:
                    say(f"kbtf: {point.kernel.arch.name} guest root: {exc}")
            for variant in VARIANTS:
                if (point.id, variant) in needs:
                    self.point_run(point).build_kernel(variant, say)

    # -- facts, outcomes, results ----------------------------------------------------

    def facts_record(self, unit: Unit) -> FactsRecord:
        """The record of ``unit``'s facts its tests fill in this process (FactsRecord): one
        for the process, however often the session fixture is set up (a worker may run both
        parts of a point with another point between them), so what a first part appended
        or joined stays."""
        if unit.id not in self._facts:
            journal = self.run_dir / unit.id / f"produced-{worker_id()}.txt"
            journal.parent.mkdir(parents=True, exist_ok=True)
            self._facts[unit.id] = FactsRecord(unit.facts(), journal)
        return self._facts[unit.id]

    def lost_facts(self, rec: results.PointRecord) -> list[str]:
        """Facts tests of ``rec``'s unit wrote down that its record lacks."""
        produced = {line for f in sorted((self.run_dir / rec.point).glob("produced-*.txt"))
                    for line in f.read_text().splitlines() if line}
        return sorted(produced - set(rec.facts))

    def write_facts(self, point_id: str, facts: dict[str, object]) -> None:
        """Add this process's facts of a point to those it wrote before (a worker may set a
        point's facts up twice, once per part, with another point between), for
        matrix.json and summary.md."""
        out = self.run_dir / point_id / f"facts-{worker_id()}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        known = json.loads(out.read_text()) if out.is_file() else {}
        known.update(facts)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=2, default=str) + "\n")
        tmp.rename(out)

    def point_ids(self) -> list[str]:
        """Every unit's id, longest first (for split_test_id)."""
        return sorted((u.id for u in self.units), key=len, reverse=True)

    def record(self, nodeid: str, label: str) -> None:
        """Remember a test's outcome label under its point (none: a test of no point)."""
        found = split_test_id(nodeid, self.point_ids())
        if found is not None:
            self.outcomes.setdefault(found[0], {})[found[1]] = label

    def finish(self, finished: bool = True) -> list[str]:
        """Write matrix.json and summary.md from the units' facts and outcomes, and
        whether the run ``finished`` (a cancelled or stopped one did not); return the
        run's own errors: facts its tests produced that a record lost."""
        records = [self._record(u) for u in self.units]
        axis = [row for rec in records for row in rec.facts.get("pahole_axis", [])]  # type: ignore[attr-defined]
        # (a cut-short run's session fixtures may never have written their facts)
        lost = [f"{rec.point}: facts its tests produced are missing from its record: "
                f"{', '.join(keys)}" for rec in records
                if finished and (keys := self.lost_facts(rec))]
        preface = ("## Errors of the run\n\n" + "".join(f"- {e}\n" for e in lost) + "\n"
                   if lost else "")
        if len({row["point"] for row in axis}) > 1:
            preface += ("## pahole axis (each module against the first pahole of its arch, "
                        "kernel and toolchain)\n\n" + axis_table(sorted(
                            axis, key=lambda r: (str(r["module"]), r["point"] != r["baseline"]))))
        results.write_matrix(self.run_dir, records, preface, [m.name for m in self.modules],
                             finished, lost)
        return lost

    def _record(self, unit: Unit) -> results.PointRecord:
        """``unit``'s record: its facts, those its tests wrote down, its outcomes, and the
        line that reruns it (just its runner's failed tests, for a BPF CI job)."""
        outcomes = self.outcomes.get(unit.id, {})
        failed = [t.removeprefix("test_progs[").removesuffix("]")
                  for t, label in outcomes.items()
                  if label == "failed" and t.startswith("test_progs[")]
        rec = results.PointRecord(unit.id, facts={**unit.facts(), "rerun": unit.rerun(failed)},
                                  outcomes=outcomes)
        if isinstance(unit, VmtestPoint):
            rec.facts["guest"] = self.vmtest_run(unit).shape_note()
        if self.ci_log is not None and isinstance(unit, VmtestPoint):
            rec.facts["ci_job"] = self.ci_log.job or "-"
            rec.facts["ci_red"] = list(self.ci_log.red) or ["all"]
        for f in sorted((self.run_dir / unit.id).glob("facts-*.json")):
            for key, value in json.loads(f.read_text()).items():
                known = rec.facts.get(key)  # two workers' rows of one list are both kept
                rec.facts[key] = ([*known, *(v for v in value if v not in known)]
                                  if isinstance(known, list) and isinstance(value, list)
                                  else value)
        return rec


def _logged(progress: Callable[[str], None]) -> Callable[[str], None]:
    """``progress``, each message also logged."""
    def say(msg: str) -> None:
        log.info("%s", msg)
        progress(msg)
    return say


def _log_to(path: Path) -> None:
    """Send kbtf's log of this process to ``path`` (once per path)."""
    logger = logging.getLogger("kbtf")
    if any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def end_cleanly_on_sigterm(controller_pid: int | None) -> None:
    """SIGTERM ends the run like Ctrl-C: fixtures torn down (guests killed), temp build
    dirs removed, running builds killed with their process groups. A worker
    (``controller_pid``: its controller) also gets SIGTERM when the controller dies, even
    by SIGKILL (PR_SET_PDEATHSIG); if it already died before that was set, the worker's
    parent is no longer the controller and it ends itself."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    with contextlib.suppress(ValueError):  # not the main thread: the default still ends it
        signal.signal(signal.SIGTERM, interrupt)
    if controller_pid is not None:
        proc.die_with_parent(signal.SIGTERM)
        if controller_gone(controller_pid, os.getppid()):
            os.kill(os.getpid(), signal.SIGTERM)


def controller_gone(controller_pid: int, parent_pid: int) -> bool:
    """Whether a worker's controller died before the worker asked to die with it: its
    parent is no longer the controller (it was reparented). The controller may well be
    PID 1 itself (./kbtf as a container's entrypoint)."""
    return parent_pid != controller_pid
