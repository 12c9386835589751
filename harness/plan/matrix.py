"""Matrix points: the typed request a pytest run turns its options into."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness import provision
from harness.arches import ARCHES, Arch, get_arch
from harness.errors import ConfigError
from harness.launchers import DEFAULT_LAUNCHER, get_launcher
from harness.plan import ksource, pahole, pahole_src, toolchain
from harness.plan.kernelreq import KBTF_BASE, KernelRequest
from harness.proc import require_tool


@dataclass(frozen=True)
class MatrixPoint:
    """One arch x kernel x toolchain x pahole combination."""

    kernel: KernelRequest
    module_pahole: pahole.Pahole  # the pahole `make M=` runs
    launcher: str = DEFAULT_LAUNCHER  # how its guests boot: a name of launchers.LAUNCHERS

    def kernel_variant(self, variant: str) -> KernelRequest:
        """Kernel A with kconfigs/<variant>.config on top: same source, pahole, vermagic."""
        return replace(self.kernel, variant=variant)

    @property
    def group(self) -> str:
        """Its kernel (Unit.group)."""
        return self.kernel_id

    @property
    def arch(self) -> Arch:
        return self.kernel.arch

    @property
    def describe(self) -> str:
        k = self.kernel
        return f"{k.arch.name} {k.source.label} {k.toolchain.name} {k.pahole.label}"

    @property
    def source_kernel(self) -> KernelRequest:
        return self.kernel

    def rerun(self, tests: Sequence[str] = ()) -> str:
        """The command line that reruns just this point."""
        k = self.kernel
        args = ["./kbtf", "pytest", "suites/", "--arch", k.arch.name]
        if self.launcher != DEFAULT_LAUNCHER:
            args += ["--launcher", self.launcher]
        args += ["--kernel", k.source.spec, "--toolchain", k.toolchain.name]
        args += ["--pahole", k.pahole.spec, "--module-pahole", self.module_pahole.spec]
        for item in k.user_kconfig:
            args += ["--kconfig-add", item]
        return shlex.join([*args, "-k", self.id])

    def facts(self) -> dict[str, object]:
        """What summary.md and matrix.json say of the point before any test ran."""
        k = self.kernel
        return {"arch": k.arch.name, "launcher": self.launcher,
                "kernel_pahole": k.pahole.identity, "module_pahole": self.module_pahole.identity,
                "kernel": k.source.label, "kernel_version": k.source.version,
                "toolchain": k.toolchain.name}

    @property
    def kernel_id(self) -> str:
        """Names the kernel build: x86_64-debian6.12.117-gcc-pahole1.30 (-bpf-ci: BPF CI's
        configuration of the tree)."""
        k = self.kernel
        base = "" if k.config_base == KBTF_BASE else f"-{k.config_base}"
        return f"{k.arch.name}-{k.source.label}-{k.toolchain.name}-{k.pahole.label}{base}"

    @property
    def id(self) -> str:
        """Test-id fragment naming the point; adds the module pahole when it differs."""
        same = self.module_pahole.label == self.kernel.pahole.label
        return self.kernel_id + ("" if same else f"-mod{self.module_pahole.label}")


# Debian's pahole the default run uses when the installed one cannot distil a base (< 1.28).
DEFAULT_PROVISIONED = "debian:1.30"


def resolve_pahole(spec: str, cache_dir: Path) -> pahole.Pahole:
    """``_resolve_pahole``, remembering the SPEC (for rerun lines)."""
    return replace(_resolve_pahole(spec, cache_dir), given=spec)


def _resolve_pahole(spec: str, cache_dir: Path) -> pahole.Pahole:
    """A pahole from a SPEC: 'system', 'debian:X', a path to a binary, or a pahole source
    checkout. A pahole on disk is probed; Debian's not fetched yet is known by the version
    its suite offers (apt metadata), a checkout not built yet by its CMakeLists.txt: the
    fetch stage (builds/fetch.py) brings them and probes them.

    Raises ConfigError naming the valid specs.
    """
    if spec == "system":
        return pahole.system_pahole()
    if spec.startswith("debian:"):
        for tool in PROVISION_TOOLS:
            require_tool(tool)
        path, version = provision.debian_pahole_plan(cache_dir, spec.removeprefix("debian:"))
        if path.is_file():
            return replace(pahole.probe(path), origin="deb")
        return pahole.Pahole(path, version, (), origin="deb")
    path = Path(spec).expanduser()
    if path.is_file():
        return pahole.probe(path.resolve())
    if path.is_dir() and pahole_src.is_checkout(path):
        src = path.resolve()
        binary, build = pahole_src.planned(src, cache_dir)
        found = pahole.probe(binary) if binary.is_file() else pahole.Pahole(
            binary, pahole_src.checkout_version(src), ())
        return replace(found, build=build, source=src, origin="src")
    offered = ", ".join(f"debian:{v}" for v in provision.DEBIAN_PAHOLES)
    raise ConfigError(f"unknown pahole '{spec}': use 'system', {offered}, "
                      "a path to a pahole binary, or a pahole source checkout")


def default_pahole(cache_dir: Path) -> pahole.Pahole:
    """The installed pahole if it can distil a base (>= 1.28), else Debian's 1.30."""
    try:
        system = pahole.system_pahole()
        if system.code >= 128:
            return system
    except ConfigError:
        pass
    return resolve_pahole(DEFAULT_PROVISIONED, cache_dir)


# Host programs every run needs: the kernel build, module surgery (objcopy), sources (tar),
# guests (QEMU under setpriv, vng, udevadm) and the BTF readers.
RUN_TOOLS = ("make", "flex", "bison", "bc", "cpio", "xz", "lz4", "zstd", "tar", "bpftool",
             "setpriv")
# Programs the debian:X pahole provisioning runs.
PROVISION_TOOLS = ("apt-get", "dpkg-deb", "patchelf")


def host_tools(arch: Arch, launcher: str) -> None:
    """Check every host program a run on ``arch`` needs, before anything is built (the
    toolchain's own programs are checked when it is resolved).

    Raises ToolMissing naming the Debian package that provides the first one missing.
    """
    for tool in (*RUN_TOOLS, *get_launcher(launcher).tools, arch.tool("objcopy"), arch.qemu):
        require_tool(tool)


def launcher_for(arch: Arch, asked: str | None) -> str:
    """The launcher booting ``arch``: ``asked`` (--launcher), else DEFAULT_LAUNCHER.

    Raises ConfigError for virtme-ng on a foreign arch (it boots the host's root).
    """
    launcher = get_launcher(asked or DEFAULT_LAUNCHER)
    if launcher.host_arch_only and not arch.is_host():
        raise ConfigError(f"--launcher {launcher.name} cannot boot {arch.name} guests (it "
                          f"boots the host's root): use --launcher {DEFAULT_LAUNCHER}")
    return launcher.name


# Architectures of a run without --arch: all of them (BPF CI tests these three).
DEFAULT_ARCHES = tuple(ARCHES)


def resolve_points(
    arch_names: list[str] | None,
    kernel_specs: list[str] | None,
    pahole_specs: list[str],
    kconfig_add: list[str],
    cache_dir: Path,
    module_pahole_specs: list[str] | None = None,
    launcher: str | None = None,
    toolchain_specs: list[str] | None = None,
) -> list[MatrixPoint]:
    """Validate options and build the matrix (arch x kernel x toolchain x kernel pahole x
    module pahole): the plan, from options, local files and apt metadata only (no download,
    no build; builds/fetch.py brings what it names).

    Raises ConfigError or another HarnessError (one line, names the fix).
    """
    arches = [get_arch(n) for n in dict.fromkeys(arch_names or DEFAULT_ARCHES)]
    launchers = {a.name: launcher_for(a, launcher) for a in arches}
    for arch in arches:
        host_tools(arch, launchers[arch.name])
    sources = [ksource.resolve(s, cache_dir)
               for s in dict.fromkeys(kernel_specs or [ksource.DEFAULT_KERNEL])]
    kernel_paholes = ([resolve_pahole(s, cache_dir) for s in pahole_specs] if pahole_specs
                      else [default_pahole(cache_dir)])
    module_paholes = [resolve_pahole(s, cache_dir) for s in module_pahole_specs or []]
    # Every distinct pahole of the run gets its own label (two 1.30 builds: two point ids).
    named = {p.plan_key: p for p in pahole.distinct([*kernel_paholes, *module_paholes])}
    kernel_paholes = list({p.plan_key: named[p.plan_key] for p in kernel_paholes}.values())
    module_paholes = list({p.plan_key: named[p.plan_key] for p in module_paholes}.values())
    points = []
    for arch in arches:
        for source in sources:
            for chain_spec in dict.fromkeys(toolchain_specs or ["gcc"]):
                chain = toolchain.resolve(chain_spec, arch)
                for ph in kernel_paholes:
                    req = KernelRequest(arch, source, ph, tuple(kconfig_add), toolchain=chain)
                    req.requested()  # fragment conflicts and bad user items fail here
                    for mod_ph in module_paholes or [ph]:
                        points.append(MatrixPoint(req, mod_ph, launchers[arch.name]))
    return points
