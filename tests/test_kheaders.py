"""kheaders: the guest command lines and the no-stray-headers check of a scaffold."""

from __future__ import annotations

import shlex
from pathlib import Path

from harness import kheaders
from harness.arches import get_arch
from harness.kbuild import KernelBuild
from harness.ksource import KernelSource
from harness.pahole import Pahole


def kernel(tmp_path: Path) -> KernelBuild:
    source = KernelSource(tmp_path / "src", "6.12.117", "deb:x", "debian6.12.117")
    return KernelBuild(tmp_path / "build", "k", get_arch("x86_64"), source,
                       Pahole(Path("/opt/pahole 1.30/pahole"), "1.30", ()))


def test_extract_command_replaces_the_headers_dir() -> None:
    assert kheaders.extract_command("/tmp/kh/headers") == (
        "rm -rf /tmp/kh/headers && mkdir -p /tmp/kh/headers && "
        "tar -xJf /sys/kernel/kheaders.tar.xz -C /tmp/kh/headers")


def test_build_command_is_the_selftests_make_with_the_module_pahole(tmp_path: Path) -> None:
    cmd = kheaders.build_command(tmp_path / "scaffold", "/tmp/kh/headers",
                                 Path("/repo/modules/kbtf_kheaders"), "/tmp/kh/kbtf_kheaders",
                                 kernel(tmp_path), Pahole(Path("/p/pahole"), "1.32", ()))
    steps = cmd.split(" && ")
    assert steps[0] == f"cp -as {tmp_path}/scaffold/. /tmp/kh/headers/"
    assert shlex.split(steps[-1]) == [
        "make", "-C", "/tmp/kh/headers", "M=/tmp/kh/kbtf_kheaders", "ARCH=x86",
        "PAHOLE=/p/pahole", "modules"]


def test_stray_headers_allows_only_auto_conf(tmp_path: Path) -> None:
    (tmp_path / "include/config").mkdir(parents=True)
    (tmp_path / "include/config/auto.conf").write_text("CONFIG_X=y\n")
    (tmp_path / "scripts/mod").mkdir(parents=True)
    (tmp_path / "scripts/mod/modpost.h").write_text("")  # a host tool's header: fine
    assert kheaders.stray_headers(tmp_path, "x86") == []
    (tmp_path / "include/linux").mkdir()
    (tmp_path / "include/linux/sched.h").write_text("")
    (tmp_path / "arch/x86/include").mkdir(parents=True)
    assert kheaders.stray_headers(tmp_path, "x86") == ["include/linux/sched.h",
                                                       "arch/x86/include"]
