"""One run in one process (the xdist controller, a worker, or the only process): its
options, run dir, cache, units, modules and KVM verdict, each unit's pipeline, and the
protocol between workers and the controller (which kernels the selected tests need, built
by the controller). Its records are run/records.py's; its plan run/planning.py's; its
options run/options.py's. suites/conftest.py maps pytest onto it.

The controller resolves and probes once; workers get the run dir and the KVM verdict from
it (``worker_input``) and resolve the same units from the same options.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness import cacheentry, signing
from harness.btf.btfexpect import read_rules
from harness.builds import cacheremote, distro, kbuild
from harness.builds.fetch import fetch_dkms
from harness.errors import KbtfError
from harness.guest import accel, cilog, guestroot
from harness.guest.testprogs import read_denylists
from harness.launchers import get_launcher
from harness.plan.kernelreq import SELFTESTS_DIR, VARIANTS
from harness.plan.matrix import MatrixPoint
from harness.plan.unit import Unit
from harness.plan.usermod import ModuleSpec
from harness.plan.vmtest import MODULE_BTF, VmtestPoint, select_tests, tree_tests
from harness.run import planning, results, runplan
from harness.run.lifecycle import log_to, logged
from harness.run.options import RunOptions, module_specs, with_ci_log
from harness.run.planning import fetched_units
from harness.run.pointrun import DistroRun, PointRun, worker_id
from harness.run.records import FactsRecord, Records
from harness.run.vmtestrun import VmtestRun

log = logging.getLogger("kbtf")

# BTF modes the generic module suite builds each module in: the tree's default, and its
# era's split-only way (btfexpect.ModuleBtfRules.split_args).
BTF_MODES = ("default", "split")


# The parts of a point's tests (a test's part marker; "" is every test without one) that
# xdist may run on different workers (RunContext.point_group); each part's guests are
# checked for a clean shutdown by a lifetime test of that part. "other-btf": modules whose
# BTF is stripped or was made for another kernel (guest A plus the relocation kernels').
POINT_PARTS = ("", "other-btf")


@dataclass
class RunContext(Records):
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
                logged(progress)(signing.check_configuration())  # and a bad key
            run_dir = results.new_run_dir(shell=options.shell)
            cacheentry.sweep(cache)
        else:
            run_dir = Path(str(worker_input["kbtf_run_dir"]))
        log_to(run_dir / f"kbtf-{worker_id()}.log")
        found = runplan.select(planning.resolve(options, cache), options.point or [])
        units = fetched_units(found, cache, logged(progress))
        ctx = cls(options, run_dir, cache, units,
                  fetch_dkms(module_specs(options.module or [], options.dkms or [], cache),
                             cache, logged(progress)), False,
                  None if worker_input is None else worker_id())
        # each job's tests, read against its tree now: a bad --vmtest-tests is one line
        ctx.cases = {v.id: ctx._job_cases(v) for v in ctx.vmtest}
        if worker_input is None:
            for job in ctx.vmtest:
                if ctx.cases[job.id] == ["all"] and job.per_test:
                    logged(progress)(ctx._whole_runner_note(job))
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

    def _whole_runner_note(self, vmtest: VmtestPoint) -> str:
        """What a job that runs its runner's whole list runs, and how to narrow it."""
        tree = vmtest.point.kernel.source.path / SELFTESTS_DIR
        tests = tree_tests(tree)
        denied = read_denylists(self.vmtest_run(vmtest).denylists())
        kept_out = sum(any(d.covers(t) for d in denied) for t in tests)
        return (f"kbtf: {vmtest.job.short} runs the whole list of {vmtest.job.binary}, as BPF CI "
                f"does: {len(tests)} tests of this tree, {kept_out} denied by its DENYLIST "
                f"files, in one runner; narrow it with --vmtest-tests NAME[,...] or "
                f"--vmtest-tests {MODULE_BTF}")

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
        say = logged(progress)
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
