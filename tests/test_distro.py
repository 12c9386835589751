"""Distro kernels: local .deb files grouped by release, the initramfs module order (from a
modules.dep depmod wrote for Debian's 6.1.0-50-amd64), the headers Makefile rewrite, what
the machine lacks to build against headers and the build root that has it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from harness import provision
from harness.builds import distro, initramfs
from harness.builds.buildroot import BuildRoot
from harness.errors import ConfigError

# depmod's lines for the modules kbtf's initramfs needs (Debian bookworm 6.1.0-50-amd64).
MODULES_DEP_61 = (Path(__file__).parent / "data" / "modules.dep-6.1.0-50-amd64").read_text()


def test_initramfs_loads_dependencies_first() -> None:
    order = initramfs.load_order(MODULES_DEP_61, "", initramfs.guest_modules("pci"))
    names = [Path(p).name for p in order]
    for before, after in [("virtio_ring.ko", "virtio.ko"), ("virtio.ko", "virtio_pci.ko"),
                          ("netfs.ko", "fscache.ko"), ("fscache.ko", "9p.ko"),
                          ("9pnet.ko", "9pnet_virtio.ko")]:
        assert names.index(before) < names.index(after), names
    assert len(names) == len(set(names))


def test_initramfs_skips_built_in_modules() -> None:
    builtin = "kernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/char/virtio_console.ko\n"
    order = initramfs.load_order(MODULES_DEP_61, builtin, initramfs.guest_modules("pci"))
    assert not any(p.endswith(("virtio_pci.ko", "virtio_console.ko")) for p in order)
    with pytest.raises(ConfigError, match="no module 9p"):
        initramfs.load_order("", "", ("9p",))


def fake_deb(tmp_path: Path, package: str, depends: str, files: dict[str, str]) -> Path:
    """A real .deb (dpkg-deb --build) holding ``files``."""
    tree = tmp_path / package
    (tree / "DEBIAN").mkdir(parents=True)
    control = f"Package: {package}\nVersion: 1\nArchitecture: amd64\nMaintainer: k <k@b>\n"
    control += (f"Depends: {depends}\n" if depends else "") + "Description: test\n"
    (tree / "DEBIAN" / "control").write_text(control)
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    deb = tmp_path / f"{package}.deb"
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(tree), str(deb)], check=True,
                   capture_output=True)
    return deb


def test_local_debs_grouped_by_release_and_makefile_rewritten(tmp_path: Path) -> None:
    rel = "6.1.0-50-amd64"
    debs = [
        fake_deb(tmp_path, f"linux-image-{rel}", "kmod", {
            f"boot/vmlinuz-{rel}": "kernel", f"lib/modules/{rel}/kernel/x.ko": ""}),
        fake_deb(tmp_path, f"linux-headers-{rel}",
                 "linux-headers-6.1.0-50-common, linux-kbuild-6.1 (= 1)", {
                     f"usr/src/linux-headers-{rel}/Makefile":
                     "include /usr/src/linux-headers-6.1.0-50-common/Makefile\n"}),
        fake_deb(tmp_path, "linux-headers-6.1.0-50-common", "", {
            "usr/src/linux-headers-6.1.0-50-common/Makefile": "# common\n"}),
        fake_deb(tmp_path, "linux-kbuild-6.1", "", {"usr/lib/linux-kbuild-6.1/scripts/x": ""}),
    ]
    (kernel,) = distro.local_kernels(tmp_path / "cache", debs)
    assert (kernel.release, kernel.id) == (rel, f"deb-{rel}")
    assert len(kernel.debs) == 4
    makefile = (kernel.headers / "Makefile").read_text()
    assert makefile == f"include {kernel.root}/usr/src/linux-headers-6.1.0-50-common/Makefile\n"
    assert (kernel.root / "usr/lib/linux-kbuild-6.1/scripts/x").exists()
    again = distro.local_kernels(tmp_path / "cache", debs)
    assert again == [kernel], "the same files must give the same cache entry"


def test_image_without_headers_is_a_config_error(tmp_path: Path) -> None:
    deb = fake_deb(tmp_path, "linux-image-6.1.0-50-amd64", "", {"boot/vmlinuz-6.1.0-50-amd64": ""})
    with pytest.raises(ConfigError, match="pass its headers package too"):
        distro.local_kernels(tmp_path / "cache", [deb])
    with pytest.raises(ConfigError, match="not a linux-image"):
        distro.local_kernels(tmp_path / "cache",
                             [fake_deb(tmp_path, "hello", "", {"usr/share/x": ""})])


def test_rerun_lines(tmp_path: Path) -> None:
    kernel = distro.DistroKernel("debian-bookworm-6.1.0-50-amd64", "6.1.0-50-amd64", tmp_path,
                                 (tmp_path / "a.deb",), "debian:bookworm")
    assert kernel.rerun() == ("./kbtf pytest suites/ --distro debian:bookworm "
                              "-k debian-bookworm-6.1.0-50-amd64")
    local = distro.DistroKernel("deb-6.1.0-50-amd64", "6.1.0-50-amd64", tmp_path,
                                (tmp_path / "a.deb",))
    assert f"--distro-deb {tmp_path}/a.deb" in local.rerun()


# .kernelvariables of Debian's trixie amd64 and bookworm arm64 headers, as shipped.
TRIXIE_VARIABLES = """override ARCH = x86
override KERNELRELEASE = 6.12.107+deb13-amd64
CCACHE = ccache
CC = $(if $(DEBIAN_KERNEL_USE_CCACHE),$(CCACHE)) $(CROSS_COMPILE)gcc-14
DEB_BUILD_ARCH ?= $(shell dpkg --print-architecture)
override CROSS_COMPILE = x86_64-linux-gnu-
DEBIAN_KERNEL_NO_CC_VERSION_CHECK = y
"""
BOOKWORM_ARM64_VARIABLES = """override ARCH = arm64
override KERNELRELEASE = 6.1.0-50-arm64
CCACHE = ccache
CC = $(if $(DEBIAN_KERNEL_USE_CCACHE),$(CCACHE)) $(CROSS_COMPILE)gcc-12
ifneq ($(DEB_BUILD_ARCH),$(DEB_HOST_ARCH))
override CROSS_COMPILE = $(DEB_HOST_GNU_TYPE)-
endif
DEBIAN_KERNEL_NO_CC_VERSION_CHECK = y
"""


def headers_kernel(tmp_path: Path, variables: str | None, arch: str = "x86_64"
                   ) -> distro.DistroKernel:
    """A DistroKernel whose headers hold only ``variables`` as .kernelvariables."""
    kernel = distro.DistroKernel("deb-x", "x", tmp_path / "root", (), arch_name=arch)
    kernel.headers.mkdir(parents=True)
    if variables is not None:
        (kernel.headers / ".kernelvariables").write_text(variables)
    return kernel


def test_compiler_is_the_one_the_headers_name(tmp_path: Path) -> None:
    assert headers_kernel(tmp_path / "a", TRIXIE_VARIABLES).compiler() == "x86_64-linux-gnu-gcc-14"
    arm64 = headers_kernel(tmp_path / "b", BOOKWORM_ARM64_VARIABLES, "aarch64")
    assert arm64.compiler() == "aarch64-linux-gnu-gcc-12"
    assert headers_kernel(tmp_path / "c", None).compiler() == "gcc"
    assert headers_kernel(tmp_path / "d", None, "s390x").compiler() == "s390x-linux-gnu-gcc"


def test_host_gaps_name_the_compiler_and_the_c_library(tmp_path: Path) -> None:
    kernel = headers_kernel(tmp_path, TRIXIE_VARIABLES.replace("gcc-14", "gcc-99"))
    # A kbuild program that asks for a glibc no machine has (the version string edited in
    # a copy of a host binary: pyelftools reads the name).
    program = kernel.headers / "scripts" / "mod" / "modpost"
    program.parent.mkdir(parents=True)
    program.write_bytes(Path("/usr/bin/true").read_bytes().replace(b"GLIBC_2.34", b"GLIBC_2.99"))
    program.chmod(0o755)
    gaps = distro.host_gaps(kernel)
    assert gaps[0] == "x86_64-linux-gnu-gcc-99 (the headers' compiler) is not installed"
    assert gaps[1].startswith("its kbuild programs need GLIBC_2.99, this machine has 2.")
    program.write_bytes(Path("/usr/bin/true").read_bytes())
    assert distro.glibc_needed(kernel.headers) == (2, 34)


def test_local_packages_this_machine_cannot_build_are_one_line_errors(tmp_path: Path) -> None:
    rel = "6.12.107+deb13-amd64"
    debs = [
        fake_deb(tmp_path, f"linux-image-{rel}", "", {f"boot/vmlinuz-{rel}": "kernel"}),
        fake_deb(tmp_path, f"linux-headers-{rel}", "gcc-99", {
            f"usr/src/linux-headers-{rel}/.kernelvariables":
            TRIXIE_VARIABLES.replace("gcc-14", "gcc-99")}),
    ]
    with pytest.raises(ConfigError, match=r"^--distro-deb 6\.12\.107\+deb13-amd64: x86_64-linux"
                       r"-gnu-gcc-99 \(the headers' compiler\) is not installed: run kbtf on "):
        distro.local_kernels(tmp_path / "cache", debs)


def test_build_root_packages_are_the_headers_dependencies(tmp_path: Path) -> None:
    rel = "6.12.107+deb13-arm64"
    debs = (
        fake_deb(tmp_path, f"linux-headers-{rel}", "linux-base (>= 4.12~), linux-headers-"
                 f"6.12.107+deb13-common (= 1), linux-image-{rel} (= 1) | linux-image-{rel}-"
                 "unsigned (= 1), linux-kbuild-6.12.107+deb13, gcc-14", {}),
        fake_deb(tmp_path, "linux-kbuild-6.12.107+deb13", "libc6 (>= 2.38), libelf1t64 (>= "
                 "0.144), libssl3t64 (>= 3.0.0), zlib1g (>= 1:1.2.3.4), pahole", {}),
        fake_deb(tmp_path, f"linux-image-{rel}", "kmod, initramfs-tools", {}),
    )
    kernel = distro.DistroKernel("x", rel, tmp_path, debs, arch_name="x86_64")
    assert distro.root_packages(kernel) == ["gcc-14", "libc6", "libelf1t64", "libssl3t64",
                                            "pahole", "zlib1g"]
    foreign = distro.root_packages(replace(kernel, arch_name="aarch64"))
    assert "gcc-14-aarch64-linux-gnu" in foreign and "gcc-14" not in foreign


def test_build_root_command_binds_host_dirs_at_their_paths(tmp_path: Path) -> None:
    root = BuildRoot(tmp_path / "tree", "trixie", binds=(tmp_path / "distro",))
    argv = root.command(["make", "-C", "x"], binds=(tmp_path / "module",))
    for path in (tmp_path / "distro", tmp_path / "module"):
        i = argv.index(str(path))
        assert argv[i - 1:i + 2] == ["--bind", str(path), str(path)]
    assert argv[1:3] == ["--bind", str(tmp_path / "tree")]
    assert argv[-6:] == ["--remount-ro", "/", "--", "make", "-C", "x"]


def test_suite_architectures_come_from_its_release_file(tmp_path: Path) -> None:
    # bookworm-security's InRelease of 2026-11-21 offers no s390x.
    lists = tmp_path / "apt" / "bookworm-security-s390x" / "lists"
    lists.mkdir(parents=True)
    (lists.parent / "updated").touch()  # fresh: no apt-get update
    (lists / "deb.debian.org_debian-security_dists_bookworm-security_InRelease").write_text(
        "Origin: Debian\nDate: Sat, 21 Nov 2026 00:53:02 UTC\n"
        "Architectures: amd64 arm64 armhf i386 ppc64el\n")
    assert provision.suite_architectures(tmp_path, "bookworm-security", "s390x") == [
        "amd64", "arm64", "armhf", "i386", "ppc64el"]


def test_a_fresh_apt_state_keeps_its_files_mtimes_so_apts_cache_stays_valid(
        tmp_path: Path) -> None:

    state = tmp_path / "apt" / "sid"
    (state / "lists").mkdir(parents=True)
    (state / "updated").touch()  # fresh: no apt-get update
    first = provision.apt_state(tmp_path, "sid")
    assert first == state
    for name in ("sources.list", "status"):
        os.utime(state / name, (1, 1))
    provision.apt_state(tmp_path, "sid")
    assert [(state / n).stat().st_mtime for n in ("sources.list", "status")] == [1, 1]
    assert "Dir::Cache::pkgcache=pkgcache.bin" in provision.apt_options(state)


def test_a_root_toolchains_wrappers_see_the_hosts_own_dirs_not_its_system(
        tmp_path: Path) -> None:
    from harness.builds import buildroot

    dirs = {p.name for p in buildroot.host_dirs()}
    assert "tmp" in dirs and not dirs & {"usr", "etc", "lib", "proc", "dev", "bin"}
    root = BuildRoot(tmp_path / "tree", "sid")
    root.install_wrappers(tmp_path / "bin", ["clang-21", "ld.lld-21"], buildroot.host_dirs())
    script = (tmp_path / "bin" / "clang-21").read_text()
    assert "--bind /tmp /tmp" in script and "--bind /usr" not in script
    assert script.rstrip().endswith('-- clang-21 "$@"')
    assert os.access(tmp_path / "bin" / "ld.lld-21", os.X_OK)


def test_a_build_roots_clang_on_path_is_not_taken_for_the_hosts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.plan import toolchain

    (tmp_path / "clang-29").write_text("#!/bin/sh\n")
    (tmp_path / "clang-29").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert 29 in toolchain.installed_clangs()
    # a worker inherits the controller's PATH with the root's wrappers on it
    monkeypatch.setenv(toolchain.WRAPPERS_ENV, str(tmp_path))
    assert 29 not in toolchain.installed_clangs()
