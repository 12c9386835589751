"""kheaders: copy-out, host extraction and build, and the no-stray-headers check."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import proc
from harness.arches import get_arch
from harness.builds import kheaders
from harness.builds.kbuild import KernelBuild
from harness.plan.ksource import KernelSource
from harness.plan.pahole import Pahole


def kernel(tmp_path: Path) -> KernelBuild:
    source = KernelSource(tmp_path / "src", "6.12.117", "deb:x", "debian6.12.117", "debian:6.12")
    return KernelBuild(tmp_path / "build", "k", get_arch("x86_64"), source,
                       Pahole(Path("/opt/pahole 1.30/pahole"), "1.30", ()))


def test_copy_out_command() -> None:
    assert kheaders.copy_out_command("/kbtf/out/kheaders.tar.xz") == (
        "cp /sys/kernel/kheaders.tar.xz /kbtf/out/kheaders.tar.xz")


def test_extract_and_build_run_the_selftests_make(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A real archive is extracted; the make is the selftest's, with the module pahole."""
    (tmp_path / "arc/include/generated").mkdir(parents=True)
    (tmp_path / "arc/include/generated/autoconf.h").write_text("#define CONFIG_IKHEADERS 1\n")
    subprocess.run(["tar", "-cJf", str(tmp_path / "a.tar.xz"), "-C", str(tmp_path / "arc"), "."],
                   check=True)
    headers = tmp_path / "out/headers"
    kheaders.extract(tmp_path / "a.tar.xz", headers)
    assert (headers / "include/generated/autoconf.h").is_file()
    (tmp_path / "scaffold").mkdir()
    (tmp_path / "scaffold/Makefile").write_text("")
    (tmp_path / "src").mkdir()
    (tmp_path / "src/Kbuild").write_text("obj-m := m.o\n")
    calls: list[list[str]] = []
    real_run = proc.run

    def run(argv: list[str], **kw: object) -> object:
        if argv[0] == "make":
            calls.append(argv)
            return None
        return real_run(argv, **kw)  # type: ignore[arg-type,unused-ignore]

    monkeypatch.setattr(proc, "run", run)
    kheaders.build(tmp_path / "scaffold", headers, tmp_path / "src", tmp_path / "out/m",
                   kernel(tmp_path), Pahole(Path("/p/pahole"), "1.32", ()), tmp_path / "log")
    assert (headers / "Makefile").is_symlink() and (tmp_path / "out/m/Kbuild").is_file()
    assert calls == [["make", "-C", str(headers), f"M={tmp_path}/out/m", "ARCH=x86",
                      "PAHOLE=/p/pahole", "modules"]]


def test_stray_headers_allows_only_generated_configs(tmp_path: Path) -> None:
    (tmp_path / "include/config").mkdir(parents=True)
    (tmp_path / "include/config/auto.conf").write_text("CONFIG_X=y\n")
    (tmp_path / "include/generated").mkdir(parents=True)
    (tmp_path / "include/generated/rustc_cfg").write_text("--cfg=CONFIG_X\n")  # 7.x
    (tmp_path / "scripts/mod").mkdir(parents=True)
    (tmp_path / "scripts/mod/modpost.h").write_text("")  # a host tool's header: fine
    assert kheaders.stray_headers(tmp_path, "x86") == []
    (tmp_path / "include/linux").mkdir()
    (tmp_path / "include/linux/sched.h").write_text("")
    (tmp_path / "arch/x86/include").mkdir(parents=True)
    assert kheaders.stray_headers(tmp_path, "x86") == ["include/linux/sched.h",
                                                       "arch/x86/include"]


def test_checked_configs_from_the_makefile() -> None:
    makefile_72 = ("checked-configs := $(addprefix $(objtree)/, include/generated/autoconf.h "
                   "include/generated/rustc_cfg include/config/auto.conf)\n")
    assert kheaders.checked_configs(makefile_72) == [
        "include/generated/autoconf.h", "include/generated/rustc_cfg", "include/config/auto.conf"]
    assert kheaders.checked_configs("VERSION = 6\n") == ["include/config/auto.conf"]
