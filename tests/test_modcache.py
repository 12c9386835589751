"""A module build kept by content (modbuild.cached_build_module): the same kernel, module
files, pahole, BTF mode and make arguments reuse the kept build; any other input builds
again; a failed build is never kept. make is stood in for by a fake build_module."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.arches import ARCHES, GCC, Arch, Toolchain
from harness.builds import modbuild
from harness.errors import BuildFailure
from harness.plan.pahole import Pahole


@dataclass(frozen=True)
class Kernel:
    dir: Path
    arch: Arch
    toolchain: Toolchain
    vmlinux: Path


def _fake_make(calls: list[str], fail: bool = False):  # type: ignore[no-untyped-def]
    def build(kernel, src, outdir, pahole, btf_mode="default", make_args=(),  # type: ignore[no-untyped-def]
              build_root=None):
        calls.append(btf_mode)
        dst = outdir / btf_mode / src.name
        modbuild.copy_module(src, dst)
        (dst / "build.log").write_text("make modules\n")
        if fail:
            raise BuildFailure("module build failed", log=dst / "build.log")
        (dst / f"{src.name}.ko").write_bytes(b"\x7fELF " + (src / "m.c").read_bytes())
        (dst / "modules.order").write_text(f"{dst}/{src.name}.o\n")  # absolute, as kbuild's
        return modbuild.ModuleBuild(src.name, btf_mode, modbuild.built_modules(dst),
                                    dst / "build.log", False)
    return build


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Kernel, Path, Pahole]:
    src = tmp_path / "kbtf_hello"
    src.mkdir()
    (src / "m.c").write_text("int x;\n")
    (src / "Makefile").write_text("obj-m += kbtf_hello.o\n")
    (src / "m.o").write_text("stale object: not part of the module's content\n")
    arch = ARCHES["x86_64"]
    kernel = Kernel(tmp_path / "kernels" / "x86_64-6.12.117-abc", arch, GCC,
                    tmp_path / "vmlinux")
    pahole = Pahole(Path("/usr/bin/pahole"), "1.30", (), digest="d1")
    return kernel, src, pahole


def test_the_same_inputs_reuse_the_kept_build(setup: tuple[Kernel, Path, Pahole],
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    kernel, src, pahole = setup
    calls: list[str] = []
    monkeypatch.setattr(modbuild, "build_module", _fake_make(calls))
    cache = tmp_path / "cache"
    first = modbuild.cached_build_module(kernel, src, tmp_path / "run1", pahole, "default", (),
                                         cache)
    second = modbuild.cached_build_module(kernel, src, tmp_path / "run2", pahole, "default",
                                          (), cache)
    assert calls == ["default"]
    assert second.kos == (tmp_path / "run2/default/kbtf_hello/kbtf_hello.ko",)
    assert second.kos[0].read_bytes() == first.kos[0].read_bytes()
    assert "reused" in second.log.read_text() and "reused" not in first.log.read_text()
    shutil.rmtree(tmp_path / "run1")  # nothing of the kept build points back into run 1
    assert modbuild.cached_build_module(kernel, src, tmp_path / "run4", pahole, "default",
                                        (), cache).kos == (
        tmp_path / "run4/default/kbtf_hello/kbtf_hello.ko",)
    (src / "m.o").write_text("another stale object\n")  # not content: still reused
    modbuild.cached_build_module(kernel, src, tmp_path / "run3", pahole, "default", (), cache)
    assert calls == ["default"]


def test_any_other_input_builds_again(setup: tuple[Kernel, Path, Pahole], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    kernel, src, pahole = setup
    calls: list[str] = []
    monkeypatch.setattr(modbuild, "build_module", _fake_make(calls))
    cache = tmp_path / "cache"
    modbuild.cached_build_module(kernel, src, tmp_path / "r", pahole, "default", (), cache)
    modbuild.cached_build_module(kernel, src, tmp_path / "r", pahole, "split", (), cache)
    modbuild.cached_build_module(kernel, src, tmp_path / "r", pahole, "split", ("X=1",), cache)
    modbuild.cached_build_module(kernel, src, tmp_path / "r", Pahole(
        pahole.path, "1.30", (), digest="d2"), "default", (), cache)
    other = Kernel(tmp_path / "kernels" / "x86_64-6.12.117-def", kernel.arch,
                   kernel.toolchain, kernel.vmlinux)
    modbuild.cached_build_module(other, src, tmp_path / "r", pahole, "default", (), cache)
    (src / "m.c").write_text("int y;\n")
    built = modbuild.cached_build_module(kernel, src, tmp_path / "r", pahole, "default", (),
                                         cache)
    assert len(calls) == 6
    assert built.kos[0].read_bytes() == b"\x7fELF int y;\n"


def test_a_failed_build_is_not_kept(setup: tuple[Kernel, Path, Pahole], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    kernel, src, pahole = setup
    calls: list[str] = []
    monkeypatch.setattr(modbuild, "build_module", _fake_make(calls, fail=True))
    for _ in range(2):
        with pytest.raises(BuildFailure):
            modbuild.cached_build_module(kernel, src, tmp_path / "r", pahole, "default", (),
                                         tmp_path / "cache")
    assert len(calls) == 2
    assert not any((tmp_path / "cache" / "modules").glob("[!.]*/built-in"))
