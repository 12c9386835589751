"""Distro kernels: local .deb files grouped by release, the initramfs module order (from a
modules.dep depmod wrote for Debian's 6.1.0-50-amd64), the headers Makefile rewrite."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import distro, initramfs
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
    assert (kernel.release, kernel.label) == (rel, f"deb-{rel}")
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
