"""One matrix point's pipeline in a run: its kernels, its module builds, its guests.

suites/conftest.py maps pytest fixtures onto a PointRun; bench/ scripts can drive the same
object. Failed kernel builds are written down in the run dir (the controller builds, the
workers read), with who is to blame, so every test needing that kernel reports the same.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness import kbuild, proc, vm
from harness.btfexpect import module_pahole_unusable, read_rules
from harness.elfbtf import elf_facts, module_type_counts
from harness.errors import BuildFailure, HarnessError, KbtfError
from harness.guest import GuestPool, GuestSession, boot_name, boot_spec
from harness.matrix import MatrixPoint
from harness.modbuild import ModuleBuild, build_module, strip_section

REPO = Path(__file__).resolve().parent.parent
# --sabotage modes that strip a section from every built module.
STRIP = {"strip-btf-base": ".BTF.base", "strip-btf": ".BTF"}


class MissingPrerequisite(KbtfError):
    """What a test needs cannot be had here: the test is skipped with this reason."""


@dataclass(frozen=True)
class PointRun:
    """``point`` in the run writing to ``run_dir``, with kbtf's cache at ``cache_dir``."""

    point: MatrixPoint
    run_dir: Path
    cache_dir: Path
    sabotage: str | None = None  # --sabotage mode, if any
    kvm: bool = False  # the run's KVM verdict (harness/accel.py): host-arch guests may use KVM

    @property
    def worker(self) -> str:
        """This process's xdist worker id ("main" without xdist)."""
        return os.environ.get("PYTEST_XDIST_WORKER", "main")

    # -- kernels -----------------------------------------------------------------------

    def failure_marker(self, variant: str) -> Path:
        """Where a failed build of kernel ``variant`` is written down for this run."""
        return self.run_dir / self.point.kernel_id / f"kernel-{variant or 'base'}-failed.json"

    def kernel(self, variant: str = "", progress: kbuild.Progress | None = None
               ) -> kbuild.KernelBuild:
        """Kernel ``variant`` ("": A; "prime": A'; "refuse": A_n) from the cache, built now
        if needed; its build log and metadata copied into the run dir.

        Raises the error of an earlier failed build in this run again (BuildFailure or
        HarnessError), else ensure_kernel's errors.
        """
        marker = self.failure_marker(variant)
        if marker.exists():
            failed = json.loads(marker.read_text())
            error = BuildFailure if failed["product"] else HarnessError
            raise error(failed["message"], log=Path(failed["log"]) if failed["log"] else None)
        build = kbuild.ensure_kernel(self.point.kernel_variant(variant), self.cache_dir,
                                     progress or proc.log.info)
        dest = self.run_dir / self.point.kernel_id
        dest.mkdir(parents=True, exist_ok=True)
        name = f"kernel{'-' + variant if variant else ''}-build"
        if not (dest / f"{name}.log").exists():
            shutil.copy(build.log, dest / f"{name}.log")
            shutil.copy(build.dir / "kbtf-build.json", dest / f"{name}.json")
        return build

    def build_kernel(self, variant: str, progress: kbuild.Progress) -> None:
        """Build kernel ``variant`` now (the controller, before tests are distributed); a
        failure is written down for the tests that need it, not raised."""
        try:
            self.kernel(variant, progress)
        except KbtfError as exc:
            marker = self.failure_marker(variant)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({
                "message": exc.args[0], "log": str(exc.log) if exc.log else None,
                "product": isinstance(exc, BuildFailure)}))
            progress(f"kbtf: {self.point.kernel_id} {variant}: {exc}")

    # -- modules -----------------------------------------------------------------------

    def module(self, kernel: kbuild.KernelBuild, src: Path, btf_mode: str) -> ModuleBuild:
        """Module directory ``src`` built for ``kernel`` with the point's module pahole and the
        kernel's toolchain; BTF mode "split..." leaves out the distilled base the way the
        tree's era allows (btfexpect.ModuleBtfRules.split_args). --sabotage strip-* removes
        a BTF section afterwards. Each .ko's ELF and BTF facts go to <module>.elf-facts.json.

        Raises MissingPrerequisite (the module pahole cannot build for this kernel),
        BuildFailure (the build failed or hung), HarnessError.
        """
        rules = read_rules(kernel.source.path)
        unusable = module_pahole_unusable(
            rules, int(kernel.config()["CONFIG_PAHOLE_VERSION"].value), self.point.module_pahole)
        if unusable:
            raise MissingPrerequisite(unusable)
        make_args = rules.split_args if btf_mode.startswith("split") else ()
        # Per worker: xdist may run this point's tests on several workers at once.
        outdir = self.run_dir / self.point.id / "modules" / self.worker
        built = build_module(kernel, src, outdir, self.point.module_pahole, btf_mode, make_args)
        if (section := STRIP.get(self.sabotage or "")) is not None:
            strip_section(built, kernel.arch, section)
        for ko in built.kos:
            facts = elf_facts(ko)
            btf_types, btf_base_types = module_type_counts(ko, kernel.vmlinux)
            record = {
                "sections": list(facts.sections), "vermagic": facts.vermagic,
                "btf_types": btf_types, "btf_base_types": btf_base_types,
                "btf_bytes": facts.btf.type_len if facts.btf else 0,
                "btf_base_bytes": facts.btf_base.type_len if facts.btf_base else 0,
            }
            ko.with_suffix(".elf-facts.json").write_text(json.dumps(record, indent=2) + "\n")
        return built

    # -- guests ------------------------------------------------------------------------

    def guest(self, kernel: kbuild.KernelBuild, pool: GuestPool, name: str) -> GuestSession:
        """The live guest of this process running ``kernel``; boots it (again, if it died).

        With the kbtf launcher the guest sees the run dir and the repository read-only and
        writes only to its own output dir. Raises what GuestPool.get raises (BootError,
        KernelTrouble at boot, HarnessError after a second loss in a row).
        """
        logdir = self.run_dir / self.point.kernel_id / "guests"
        base = f"{name}-{self.worker}"

        def make(boot: int) -> GuestSession:
            shares = (vm.Share("run", self.run_dir), vm.Share("repo", REPO),
                      vm.Share("out", logdir / f"{boot_name(base, boot)}.out", writable=True))
            spec = boot_spec(kernel, self.point.launcher, self.cache_dir, shares, self.kvm)
            return GuestSession(spec, logdir, base, boot)

        return pool.get(kernel.key, make)
