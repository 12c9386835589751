"""Architectures kbtf can build and boot: one frozen dataclass each, in a registry."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass

from harness.errors import ConfigError


@dataclass(frozen=True)
class Arch:
    """How to build and boot one architecture."""

    name: str  # kbtf's name, as given to --arch (uname -m spelling)
    kernel_arch: str  # ARCH= for make
    cross_compile: str  # CROSS_COMPILE= prefix when this is not the host arch
    image: str  # boot image, relative to the build dir
    qemu: str  # QEMU system emulator binary
    qemu_machine: tuple[str, ...]  # -M/-cpu arguments for TCG boots
    console: str  # serial console device in the guest
    virtio_transport: str  # "pci" or "ccw": suffix of virtio device names
    debian_arch: str  # Debian's name, for foreign root file systems and packages
    kconfig: str  # arch fragment in kconfigs/

    def is_host(self) -> bool:
        """True when this arch is the machine's own (boots with virtme-ng)."""
        return platform.machine() == self.name

    def make_vars(self) -> list[str]:
        """ARCH= and, for foreign arches, CROSS_COMPILE= arguments for make."""
        args = [f"ARCH={self.kernel_arch}"]
        if not self.is_host():
            args.append(f"CROSS_COMPILE={self.cross_compile}")
        return args

    def compiler(self) -> str:
        """The C compiler make will run for this arch."""
        return "gcc" if self.is_host() else f"{self.cross_compile}gcc"


ARCHES: Mapping[str, Arch] = {
    a.name: a
    for a in (
        Arch(
            name="x86_64",
            kernel_arch="x86",
            cross_compile="x86_64-linux-gnu-",
            image="arch/x86/boot/bzImage",
            qemu="qemu-system-x86_64",
            qemu_machine=("-M", "q35"),
            console="ttyS0",
            virtio_transport="pci",
            debian_arch="amd64",
            kconfig="x86_64.config",
        ),
        Arch(
            name="aarch64",
            kernel_arch="arm64",
            cross_compile="aarch64-linux-gnu-",
            image="arch/arm64/boot/Image",
            qemu="qemu-system-aarch64",
            # pauth-impdef: plain -cpu max is 3x slower under TCG (measured).
            qemu_machine=("-M", "virt", "-cpu", "max,pauth-impdef=on"),
            console="ttyAMA0",
            virtio_transport="pci",
            debian_arch="arm64",
            kconfig="aarch64.config",
        ),
        Arch(
            name="s390x",
            kernel_arch="s390",
            cross_compile="s390x-linux-gnu-",
            image="arch/s390/boot/bzImage",
            qemu="qemu-system-s390x",
            qemu_machine=("-M", "s390-ccw-virtio", "-cpu", "max"),
            console="ttysclp0",
            virtio_transport="ccw",
            debian_arch="s390x",
            kconfig="s390x.config",
        ),
    )
}


def get_arch(name: str) -> Arch:
    """Return the registered Arch called ``name``.

    Raises ConfigError listing the valid names.
    """
    try:
        return ARCHES[name]
    except KeyError:
        valid = ", ".join(sorted(ARCHES))
        raise ConfigError(f"unknown arch '{name}': valid arches are {valid}") from None
