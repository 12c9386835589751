"""BPF CI's configuration of a tree: its selftests config files concatenated (a later
file's value wins), kbtf's arch fragment last."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.arches import get_arch
from harness.errors import ConfigError
from harness.plan.kernelreq import BPF_CI_BASE, KCONFIG_DIR, KernelRequest
from harness.plan.ksource import KernelSource
from harness.plan.pahole import Pahole


def _request(tree: Path) -> KernelRequest:
    src = KernelSource(tree, "6.12.117", "deb:x", "debian6.12.117", "debian:6.12")
    return KernelRequest(get_arch("x86_64"), src, Pahole(Path("/p"), "1.30", (), digest="d"),
                         config_base=BPF_CI_BASE)


def test_files_are_concatenated_in_bpf_ci_order(tmp_path: Path) -> None:
    d = tmp_path / "tools/testing/selftests/bpf"
    d.mkdir(parents=True)
    (d / "config").write_text("CONFIG_BPF=y\nCONFIG_DEBUG_INFO_DWARF4=y\nCONFIG_NET=y\n")
    (d / "config.vm").write_text("CONFIG_VIRTIO_NET=y\n")
    (d / "config.x86_64").write_text("CONFIG_DEBUG_INFO_DWARF4=n\n# CONFIG_NET is not set\n")
    (d / "config.aarch64").write_text("CONFIG_ARM64=y\n")
    req = _request(tmp_path)
    assert [p.name for p in req.fragments()] == ["config", "config.vm", "config.x86_64",
                                                 "x86_64.config"]
    got = req.requested()
    assert got["CONFIG_BPF"].value == "y" and got["CONFIG_VIRTIO_NET"].value == "y"
    assert got["CONFIG_DEBUG_INFO_DWARF4"].value == "n"  # config.x86_64 came later
    assert got["CONFIG_NET"].value == "n" and "CONFIG_ARM64" not in got
    assert got["CONFIG_SERIAL_8250_CONSOLE"].source == str(KCONFIG_DIR / "x86_64.config")


def test_a_tree_without_selftests_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no tools/testing/selftests/bpf/config"):
        _request(tmp_path).requested()
