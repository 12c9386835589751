"""The architecture registry."""

from pathlib import Path

import pytest

from harness.arches import ARCHES, all_host_packages, get_arch, make_argv
from harness.errors import ConfigError


def test_registry_has_the_three_arches() -> None:
    assert set(ARCHES) == {"x86_64", "aarch64", "s390x"}
    assert get_arch("aarch64").console == "ttyAMA0"
    assert get_arch("s390x").virtio_transport == "ccw"


def test_unknown_arch_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown arch 'arm': valid arches are "
                       r"aarch64, s390x, x86_64"):
        get_arch("arm")


def test_one_make_argv_cross_compiles_only_foreign_arches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert make_argv(get_arch("x86_64"), source=Path("/s"), out=Path("/o"), pahole=Path("/p"),
                     targets=["olddefconfig"]) == [
        "make", "-C", "/s", "O=/o", "ARCH=x86", "PAHOLE=/p", "olddefconfig"]
    assert make_argv(get_arch("aarch64"), source=Path("/k"), module=Path("/m"),
                     extra=["MODULE_PAHOLE_FLAGS="], targets=["modules"]) == [
        "make", "-C", "/k", "M=/m", "ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-",
        "MODULE_PAHOLE_FLAGS=", "modules"]
    assert get_arch("s390x").compiler() == "s390x-linux-gnu-gcc"
    assert get_arch("s390x").tool("objcopy") == "s390x-linux-gnu-objcopy"


def test_host_packages_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert all_host_packages() == [
        "qemu-system-x86", "gcc-aarch64-linux-gnu", "binutils-aarch64-linux-gnu",
        "qemu-system-arm", "gcc-s390x-linux-gnu", "binutils-s390x-linux-gnu", "qemu-system-misc"]
