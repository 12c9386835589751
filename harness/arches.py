"""Architectures kbtf can build and boot: one frozen dataclass each, in a registry.

Everything kbtf knows about an architecture lives in its entry here (and in its kconfig
fragment): the host packages it needs, how to cross-build for it, how to boot it and what
its guest root holds. ``./kbtf`` reads its package list from here (``python3 -m
harness.arches --packages``).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError


@dataclass(frozen=True)
class Arch:
    """How to build and boot one architecture."""

    name: str  # kbtf's name, as given to --arch (uname -m spelling)
    kernel_arch: str  # ARCH= for make (also the SRCARCH dir under arch/)
    cross_compile: str  # CROSS_COMPILE= prefix when this is not the host arch
    image: str  # boot image, relative to the build dir
    qemu: str  # QEMU system emulator binary
    qemu_package: str  # Debian package of that binary (bookworm)
    qemu_machine: tuple[str, ...]  # -M/-cpu arguments for TCG boots
    console: str  # the serial console QEMU's -serial reaches (the guest's shell runs there)
    virtio_transport: str  # "pci" or "ccw": suffix of virtio device names
    debian_arch: str  # Debian's name, for foreign root file systems and packages
    kconfig: str  # arch fragment in kconfigs/
    big_endian: bool = False  # BTF of this arch is written big-endian
    # Kernel command line words every guest of this arch gets, each for a measured reason.
    cmdline: tuple[str, ...] = ()

    def is_host(self) -> bool:
        """True when this arch is the machine's own (no cross compiler, KVM possible)."""
        return platform.machine() == self.name

    def tool(self, name: str) -> str:
        """A binutils/gcc program for this arch: ``objcopy`` or ``<CROSS_COMPILE>objcopy``."""
        return name if self.is_host() else f"{self.cross_compile}{name}"

    def compiler(self) -> str:
        """The C compiler make will run for this arch."""
        return self.tool("gcc")

    def host_packages(self) -> tuple[str, ...]:
        """Debian packages a run on this arch needs on the host (compiler, binutils, QEMU)."""
        cross = () if self.is_host() else (f"gcc-{self.cross_compile.rstrip('-')}",
                                           f"binutils-{self.cross_compile.rstrip('-')}")
        return (*cross, self.qemu_package)

    def tool_packages(self) -> dict[str, str]:
        """Host program -> Debian package, for this arch's programs (missing-tool hints)."""
        gcc, binutils = (("gcc", "binutils") if self.is_host() else
                         (f"gcc-{self.cross_compile.rstrip('-')}",
                          f"binutils-{self.cross_compile.rstrip('-')}"))
        return {self.tool("gcc"): gcc, self.tool("objcopy"): binutils, self.qemu: self.qemu_package}


# The LLVM programs kbuild's LLVM=1 runs (Documentation/kbuild/llvm.rst), the compiler first;
# the first five are the build's identity (its cache key).
LLVM_KBUILD_PROGRAMS = ("clang", "ld.lld", "llvm-objcopy", "llvm-ar", "llvm-nm")
# ... and the others it may run (wrapped, when the LLVM is a build root's).
LLVM_MORE_PROGRAMS = ("clang++", "llvm-objdump", "llvm-readelf", "llvm-strip", "llvm-link")


@dataclass(frozen=True)
class Toolchain:
    """The compiler family a kernel and its modules are built with (harness/plan/toolchain.py
    resolves a --toolchain SPEC into one)."""

    family: str = "gcc"  # "gcc" or "llvm"
    suffix: str = ""  # llvm: "-19" picks Debian's clang-19, ld.lld-19, ... (make LLVM=-19)
    # llvm: the Debian suite whose build root has clang-N when the host has not got it
    # (its programs are called through wrapper scripts on PATH); "": the host's.
    suite: str = ""

    @property
    def name(self) -> str:
        """kbtf's name, as in test ids and --toolchain: "gcc", "llvm-19"."""
        return self.family + self.suffix

    @property
    def label(self) -> str:
        """The name and where its programs come from: "llvm-21 (sid build root)"."""
        return self.name + (f" ({self.suite} build root)" if self.suite else "")

    @staticmethod
    def llvm(version: int, suite: str = "") -> Toolchain:
        """Debian's LLVM ``version`` (clang-N, llc-N, ...): the host's, or a build root's of
        ``suite``."""
        return Toolchain("llvm", f"-{version}", suite)

    @property
    def version(self) -> int:
        """A versioned LLVM's version: llvm-21 -> 21. Raises ValueError for another."""
        if self.family != "llvm" or not self.suffix:
            raise ValueError(f"{self.name} is no versioned LLVM")
        return int(self.suffix.lstrip("-"))

    def tool(self, program: str) -> str:
        """This LLVM's program ``program``: llc -> llc-21."""
        return f"{program}{self.suffix}"

    @property
    def clang(self) -> str:
        """This LLVM's C compiler: clang-21."""
        return self.tool("clang")

    def make_vars(self, arch: Arch) -> list[str]:
        """make variables selecting this toolchain for ``arch`` (LLVM cross-builds from ARCH=
        alone: clang takes the target from it). A root's clang links against the root's
        libc, so the programs a build runs on the host (fixdep, objtool, bpftool's
        bootstrap) are built by the host's gcc."""
        if self.family == "llvm":
            # 7.x links host programs with -fuse-ld=lld under LLVM= unless told a linker
            host = ["HOSTCC=gcc", "HOSTCXX=g++", "HOSTLDFLAGS=-fuse-ld=bfd"] if self.suite else []
            return [f"LLVM={self.suffix or 1}", *host]
        return [] if arch.is_host() else [f"CROSS_COMPILE={arch.cross_compile}"]

    def programs(self, arch: Arch) -> tuple[str, ...]:
        """The programs of this toolchain a build runs, the compiler first."""
        if self.family == "llvm":
            return tuple(self.tool(p) for p in LLVM_KBUILD_PROGRAMS)
        return (arch.tool("gcc"), arch.tool("ld"), arch.tool("as"))


GCC = Toolchain()


def make_argv(arch: Arch, *, source: Path, out: Path | None = None, module: Path | None = None,
              pahole: Path | None = None, toolchain: Toolchain = GCC,
              extra: Sequence[str] = (), targets: Sequence[str] = ()) -> list[str]:
    """The one make command line of kbtf: kernel builds (``source`` = the tree, ``out`` =
    O=), module builds (``source`` = a build dir or headers tree, ``module`` = M=), with
    ARCH=, the toolchain's variables and PAHOLE=."""
    argv = ["make", "-C", str(source)]
    if out is not None:
        argv.append(f"O={out}")
    if module is not None:
        argv.append(f"M={module}")
    argv += [f"ARCH={arch.kernel_arch}", *toolchain.make_vars(arch)]
    if pahole is not None:
        argv.append(f"PAHOLE={pahole}")
    return [*argv, *extra, *targets]


ARCHES: Mapping[str, Arch] = {
    a.name: a
    for a in (
        Arch(
            name="x86_64",
            kernel_arch="x86",
            cross_compile="x86_64-linux-gnu-",
            image="arch/x86/boot/bzImage",
            qemu="qemu-system-x86_64",
            qemu_package="qemu-system-x86",
            qemu_machine=("-M", "q35"),
            console="ttyS0",
            virtio_transport="pci",
            debian_arch="amd64",
            kconfig="x86_64.config",
            # q35's PS/2 mouse probe held the root mount back: init ran at 2.31 s instead of
            # 2.62 s of guest time (median of 5 TCG boots each).
            cmdline=("i8042.noaux",),
        ),
        Arch(
            name="aarch64",
            kernel_arch="arm64",
            cross_compile="aarch64-linux-gnu-",
            image="arch/arm64/boot/Image",
            qemu="qemu-system-aarch64",
            qemu_package="qemu-system-arm",
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
            qemu_package="qemu-system-misc",  # bookworm: qemu-system-s390x is only virtual
            qemu_machine=("-M", "s390-ccw-virtio", "-cpu", "max"),
            console="ttysclp0",
            virtio_transport="ccw",
            debian_arch="s390x",
            kconfig="s390x.config",
            big_endian=True,
            # QEMU 7.2's TCG (bookworm) cannot run a 7.x kernel placed at a random virtual
            # base (BPF CI's config keeps RANDOMIZE_BASE): an operation exception at
            # jump_to_kernel, before any console; with nokaslr it boots.
            cmdline=("nokaslr",),
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


def all_host_packages() -> list[str]:
    """Every Debian package the registered arches need on this host, once each."""
    return list(dict.fromkeys(p for a in ARCHES.values() for p in a.host_packages()))


if __name__ == "__main__":  # ./kbtf: the arch part of its package list
    if sys.argv[1:] == ["--packages"]:
        print(" ".join(all_host_packages()))
    else:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} --packages")
