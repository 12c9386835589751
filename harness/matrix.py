"""Matrix points: the typed request a pytest run turns its options into."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness import ksource, pahole
from harness.arches import Arch, get_arch
from harness.errors import ConfigError
from harness.kbuild import KernelRequest
from harness.proc import require_tool


@dataclass(frozen=True)
class MatrixPoint:
    """One arch x kernel x pahole combination."""

    kernel: KernelRequest
    module_pahole: pahole.Pahole  # the pahole `make M=` runs

    @property
    def id(self) -> str:
        """Test-id fragment naming the point: x86_64-debian6.12.117-pahole1.24."""
        k = self.kernel
        mod = "" if self.module_pahole == k.pahole else f"-mod{self.module_pahole.label}"
        return f"{k.arch.name}-{k.source.label}-{k.pahole.label}{mod}"


def resolve_pahole(spec: str) -> pahole.Pahole:
    """'system' or a path to a pahole binary. Raises ConfigError naming valid specs."""
    if spec == "system":
        return pahole.system_pahole()
    path = Path(spec).expanduser()
    if path.is_file():
        return pahole.probe(path.resolve())
    raise ConfigError(f"unknown pahole '{spec}': use 'system' or a path to a pahole binary")


def host_tools(arch: Arch) -> None:
    """Check every host program a run needs. Raises ToolMissing naming the package."""
    for tool in ("make", "flex", "bison", "bc", "cpio", "xz", "zstd", arch.compiler(),
                 "bpftool", "bpftrace", "udevadm", arch.qemu, "vng"):
        require_tool(tool)


def resolve_points(
    arch_name: str | None,
    kernel_src: str | None,
    pahole_specs: list[str],
    kconfig_add: list[str],
    cache_dir: Path,
) -> list[MatrixPoint]:
    """Validate options and build the matrix. Raises ConfigError (one line, names the fix)."""
    import platform

    arch = get_arch(arch_name or platform.machine())
    if not arch.is_host():
        raise ConfigError(f"--arch {arch.name}: only the host arch ({platform.machine()}) "
                          "can be booted so far")
    host_tools(arch)
    source = (ksource.local_source(Path(kernel_src)) if kernel_src
              else ksource.debian_source(cache_dir))
    points = []
    for spec in pahole_specs or ["system"]:
        ph = resolve_pahole(spec)
        req = KernelRequest(arch, source, ph, tuple(kconfig_add))
        req.requested()  # fragment conflicts and bad user items fail here, before any build
        points.append(MatrixPoint(req, ph))
    return points
