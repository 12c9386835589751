"""The architecture registry."""

import pytest

from harness.arches import ARCHES, get_arch
from harness.errors import ConfigError


def test_registry_has_the_three_arches() -> None:
    assert set(ARCHES) == {"x86_64", "aarch64", "s390x"}
    assert get_arch("aarch64").console == "ttyAMA0"
    assert get_arch("s390x").virtio_transport == "ccw"


def test_unknown_arch_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown arch 'arm': valid arches are "
                       r"aarch64, s390x, x86_64"):
        get_arch("arm")


def test_make_vars_cross_compile_only_for_foreign_arches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert get_arch("x86_64").make_vars() == ["ARCH=x86"]
    assert get_arch("aarch64").make_vars() == ["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"]
    assert get_arch("s390x").compiler() == "s390x-linux-gnu-gcc"
