"""One point's pipeline in a run: its kernels, its module builds, its guests. A matrix
point (a kernel built from source) is a PointRun, a distro's own kernel a DistroRun; both
build modules through ``checked_module`` and boot through ``guest.session.boot_spec``.

suites/conftest.py maps pytest fixtures onto them; bench/ scripts can drive the same
objects. Failed kernel builds are written down in the run dir (the controller builds, the
workers read), with who is to blame, so every test needing that kernel reports the same.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass, replace
from pathlib import Path

from elftools.common.exceptions import ELFError

from harness import REPO, proc
from harness.btf.btfdedup import BY_PAHOLE, Duplicate, attribute, duplicates
from harness.btf.btfexpect import (
    Expectation,
    config_pahole_version,
    expect_btf_base,
    module_pahole_unusable,
    read_rules,
)
from harness.btf.elfbtf import (
    btf_types,
    elf_facts,
    module_type_counts,
    overlap_btf_sections,
    vmlinux_types,
)
from harness.builds import dkmsbuild, exports, initramfs, kbuild
from harness.builds.buildroot import BuildRoot
from harness.builds.distro import DistroKernel
from harness.builds.modbuild import (
    BuildTarget,
    ModuleBuild,
    build_module,
    cached_build_module,
    pahole_own_btf,
    pahole_recorder,
    strip_section,
)
from harness.errors import (
    BuildFailure,
    CommandError,
    CommandTimeout,
    HarnessError,
    KbtfError,
    MissingPrerequisite,
)
from harness.guest import guestroot, vm
from harness.guest.pool import GuestPool
from harness.guest.session import GuestSession, boot_name, boot_spec
from harness.plan.matrix import MatrixPoint
from harness.plan.pahole import Pahole

# --sabotage modes that strip a section from every built module.
STRIP = {"strip-btf-base": ".BTF.base", "strip-btf": ".BTF"}
# --sabotage mode that makes every built module's .BTF invalid (elfbtf.overlap_btf_sections).
CORRUPT_BTF = "corrupt-btf"


def worker_id() -> str:
    """This process's xdist worker id ("main" without xdist)."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def record_failure(marker: Path, exc: KbtfError) -> None:
    """Write down at ``marker`` that a build the controller ran for this run failed, for
    the tests that need it (raise_recorded)."""
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"message": exc.args[0], "log": str(exc.log) if exc.log else None,
                                  "product": isinstance(exc, BuildFailure)}))


def raise_recorded(marker: Path) -> None:
    """Raise the failure written down at ``marker`` again (BuildFailure for the product,
    HarnessError for the harness); nothing if there is none."""
    if marker.exists():
        failed = json.loads(marker.read_text())
        error = BuildFailure if failed["product"] else HarnessError
        raise error(failed["message"], log=Path(failed["log"]) if failed["log"] else None)


def checked_module(target: BuildTarget, src: Path, outdir: Path, pahole: Pahole | None,
                   btf_mode: str, *, make_args: tuple[str, ...] = (),
                   build_root: BuildRoot | None = None, sabotage: str | None = None,
                   dkms_release: str | None = None, cache_dir: Path | None = None
                   ) -> ModuleBuild:
    """Module directory ``src`` built for ``target`` (a kernel build or distro headers):
    by make, or, with ``dkms_release`` (the kernel's release), by dkms from the dkms.conf in
    ``src``; with ``cache_dir`` (a kernel point's make build), kept there by content
    (modbuild.cached_build_module); --sabotage strip-* removes a BTF section afterwards,
    corrupt-btf makes .BTF overlap its strings.
    Each .ko's ELF and BTF facts travel with the build (ModuleBuild.facts; type counts when
    ``target`` has a vmlinux).

    Raises BuildFailure (the build failed or hung), MissingPrerequisite (dkms: a
    BUILD_EXCLUSIVE rule, or a split-only build asked of it), HarnessError.
    """
    if dkms_release is not None:
        if btf_mode not in ("default", "axis"):  # the axis compares dkms's own builds
            raise MissingPrerequisite(f"{src.name}: dkms builds as its dkms.conf's MAKE says: "
                                      f"no {btf_mode} BTF build")
        if build_root is not None:
            raise MissingPrerequisite(f"{src.name}: dkms builds in a build root are not "
                                      "supported yet (this kernel's modules need one)")
        where = outdir / src.name if btf_mode == "default" else outdir / btf_mode / src.name
        built = dkmsbuild.build(src, target, dkms_release, where, pahole)
    elif cache_dir is not None and pahole is not None and pahole.digest and build_root is None:
        built = cached_build_module(target, src, outdir, pahole, btf_mode, make_args, cache_dir)
    else:
        built = build_module(target, src, outdir, pahole, btf_mode, make_args, build_root)
    if (section := STRIP.get(sabotage or "")) is not None:
        strip_section(built, target.arch, section)
    if sabotage == CORRUPT_BTF:
        for ko in built.kos:
            overlap_btf_sections(ko)
    return replace(built, facts=tuple(module_record(ko, target.vmlinux, built.log)
                                      for ko in built.kos))


def module_record(ko: Path, vmlinux: Path, log: Path) -> dict[str, object]:
    """The ELF and BTF facts of a built module (type counts when ``vmlinux`` exists).

    Raises BuildFailure when its ELF or BTF cannot be read (a bad magic, a truncated
    section, bpftool refusing the BTF): the build's product is broken, quoted.
    """
    try:
        facts = elf_facts(ko)
        counts = module_type_counts(ko, vmlinux) if vmlinux.is_file() else None
    except (ValueError, struct.error, ELFError) as exc:
        raise BuildFailure(f"{ko.name}: unreadable ELF or BTF: {exc}", log=log) from None
    except CommandTimeout:
        raise
    except CommandError as exc:
        raise BuildFailure(f"{ko.name}: bpftool cannot read its BTF: {exc}", log=log) from None
    return {
        "sections": list(facts.sections), "vermagic": facts.vermagic,
        "btf_types": counts[0] if counts else None,
        "btf_base_types": counts[1] if counts else None,
        "btf_bytes": facts.btf.type_len if facts.btf else 0,
        "btf_base_bytes": facts.btf_base.type_len if facts.btf_base else 0,
    }


def config_pahole(kernel: kbuild.KernelBuild | DistroKernel) -> int:
    """CONFIG_PAHOLE_VERSION of ``kernel``. Raises UnreadableRules if it has none."""
    return config_pahole_version(kernel.config(), kernel.dir / ".config")


def note_guest(facts: dict[str, object], session: GuestSession) -> GuestSession:
    """Record in a point's ``facts`` the boot time of its first guest and the accelerators
    its guests run under (summary.md); return ``session``."""
    facts.setdefault("boot_seconds", round(session.boot_seconds, 1))
    seen = {a for a in str(facts.get("accel", "")).split("; ") if a}
    facts["accel"] = "; ".join(sorted(seen | {session.accel}))
    return session


def guest_shares(run_dir: Path, out: Path) -> tuple[vm.Share, ...]:
    """What a guest of the run sees: the run dir and the repository read-only, and its
    own output dir ``out`` writable."""
    return (vm.Share("run", run_dir), vm.Share("repo", REPO), vm.Share("out", out, writable=True))


@dataclass(frozen=True)
class PointRun:
    """``point`` in the run writing to ``run_dir``, with kbtf's cache at ``cache_dir``."""

    point: MatrixPoint
    run_dir: Path
    cache_dir: Path
    sabotage: str | None = None  # --sabotage mode, if any
    kvm: bool = False  # the run's KVM verdict (guest/accel.py): host-arch guests may use KVM

    @property
    def worker(self) -> str:
        """This process's xdist worker id ("main" without xdist)."""
        return worker_id()

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
        raise_recorded(self.failure_marker(variant))
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
            record_failure(self.failure_marker(variant), exc)
            progress(f"kbtf: {self.point.kernel_id} {variant}: {exc}")

    # -- modules -----------------------------------------------------------------------

    def module(self, kernel: kbuild.KernelBuild, src: Path, btf_mode: str,
               dkms: bool = False) -> ModuleBuild:
        """Module directory ``src`` built for ``kernel`` with the point's module pahole and the
        kernel's toolchain; BTF mode "split..." leaves out the distilled base the way the
        tree's era allows (btfexpect.ModuleBtfRules.split_args).

        Raises MissingPrerequisite (the module pahole cannot build for this kernel),
        BuildFailure (the build failed or hung), HarnessError.
        """
        rules = read_rules(kernel.source.path)
        self.require_usable_module_pahole(kernel)
        make_args = rules.split_args if btf_mode.startswith("split") else ()
        # Per worker: xdist may run this point's tests on several workers at once.
        outdir = self.run_dir / self.point.id / "modules" / self.worker
        try:
            return checked_module(kernel, src, outdir, self.point.module_pahole, btf_mode,
                                  make_args=make_args, sabotage=self.sabotage,
                                  dkms_release=dkmsbuild.kernel_release(kernel) if dkms
                                  else None, cache_dir=self.cache_dir)
        except BuildFailure as exc:
            text = exc.log.read_text(errors="replace") if exc.log and exc.log.is_file() else ""
            if not exports.undefined_symbols(text):
                raise
            raise BuildFailure(f"{exc.args[0]} ({exports.hint(text, kernel.source.path)})",
                               log=exc.log) from None

    def duplicate_origins(self, kernel: kbuild.KernelBuild, src: Path, btf_mode: str,
                          ko_name: str, found: list[Duplicate]) -> list[tuple[Duplicate, str]]:
        """Who made each of ``found``, the duplicate types of module ``ko_name`` built from
        ``src`` in ``btf_mode``: the module is built again with a pahole that keeps its own
        output (modbuild.pahole_recorder), whose duplicates are pahole's; the rest were
        made by the tree's post-processing. Where the tree does not post-process pahole's
        output (6.x), every duplicate is pahole's. Raises like module()."""
        rules = read_rules(kernel.source.path)
        outdir = self.run_dir / self.point.id / "modules" / self.worker / "pahole-own"
        real = self.point.module_pahole
        recorder = replace(real, path=pahole_recorder(real.path, outdir))
        make_args = rules.split_args if btf_mode.startswith("split") else ()
        built = build_module(kernel, src, outdir, recorder, btf_mode, make_args)
        own = pahole_own_btf(next(k for k in built.kos if k.name == ko_name))
        if own is None:
            return [(d, BY_PAHOLE) for d in found]
        return attribute(found, duplicates(btf_types(own, kernel.vmlinux),
                                           vmlinux_types(kernel.vmlinux)))

    def require_usable_module_pahole(self, kernel: kbuild.KernelBuild) -> None:
        """Raises MissingPrerequisite when the point's module pahole cannot build modules
        for ``kernel`` (too old for the tree's flags or its BTF floor)."""
        unusable = module_pahole_unusable(read_rules(kernel.source.path),
                                          config_pahole(kernel), self.point.module_pahole)
        if unusable:
            raise MissingPrerequisite(unusable)

    def btf_base_expected(self, kernel: kbuild.KernelBuild) -> Expectation:
        """Whether the point's default module builds for ``kernel`` should carry .BTF.base,
        and why (the tree's rules, CONFIG_PAHOLE_VERSION, the module pahole's features)."""
        return expect_btf_base(read_rules(kernel.source.path), config_pahole(kernel),
                               self.point.module_pahole)

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
            shares = guest_shares(self.run_dir, logdir / f"{boot_name(base, boot)}.out")
            spec = boot_spec(kernel, self.point.launcher, self.cache_dir, shares, self.kvm)
            return GuestSession(spec, logdir, base, boot)

        return pool.get(kernel.key, make, self.point.id)


@dataclass(frozen=True)
class DistroRun:
    """A distro's own kernel in the run: modules built against its headers the way its
    users build them (the `pahole` on PATH, or in a build root of its release), booted
    with kbtf's guest root through an initramfs of the image's own modules."""

    kernel: DistroKernel
    run_dir: Path
    cache_dir: Path
    sabotage: str | None = None
    kvm: bool = False
    cmdline: tuple[str, ...] = ()  # --distro-cmdline words

    def module(self, src: Path, dkms: bool = False) -> ModuleBuild:
        """Module directory ``src`` built against the headers (by dkms when ``dkms``).
        Raises like checked_module."""
        out = self.run_dir / self.kernel.id / "modules" / worker_id()
        return checked_module(self.kernel, src, out, None, "default",
                              build_root=self.kernel.build_root, sabotage=self.sabotage,
                              dkms_release=self.kernel.release if dkms else None)

    def guest(self, pool: GuestPool) -> GuestSession:
        """The live guest running the distro kernel; it must show the package's release.
        Raises what GuestPool.get raises, ConfigError (the image lacks a module 9p needs)."""
        logdir = self.run_dir / self.kernel.id / "guests"
        base = f"distro-{worker_id()}"

        def make(boot: int) -> GuestSession:
            arch = self.kernel.arch
            root = guestroot.ensure_root(arch, self.cache_dir)
            initrd = initramfs.ensure(self.kernel.modules, self.kernel.root.parent,
                                      root / "bin" / "busybox", arch.virtio_transport)
            shares = (*guest_shares(self.run_dir, logdir / f"{boot_name(base, boot)}.out"),
                      vm.Share("modules", self.kernel.root))  # modload.kernel_module
            spec = boot_spec(self.kernel, "kbtf", self.cache_dir, shares, self.kvm,
                             initrd=initrd, release=self.kernel.release, cmdline=self.cmdline)
            return GuestSession(spec, logdir, base, boot)

        return pool.get(self.kernel.id, make, self.kernel.id)
