"""--module SPECs and the load order of a directory's modules (ELF .modinfo made here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.plan.usermod import depends, load_order, module_name, parse_spec
from harness.run.records import split_test_id


def module_dir(tmp_path: Path, text: str = "obj-m := drill_mod.o\n") -> Path:
    d = tmp_path / "drill"
    d.mkdir()
    (d / "Makefile").write_text("ifeq ($(KPATH),)\nKPATH := /lib/modules/x/build\nendif\n" + text)
    return d


def test_spec_with_params(tmp_path: Path) -> None:
    d = module_dir(tmp_path)
    spec = parse_spec(f"{d}:debug=1:name=x", tmp_path)
    assert (spec.path, spec.params, spec.name) == (d, ("debug=1", "name=x"), "drill")
    assert parse_spec(spec.spec, tmp_path) == spec


def test_spec_relative_to_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    d = module_dir(tmp_path)
    monkeypatch.chdir("/")
    assert parse_spec("drill", tmp_path).path == d


@pytest.mark.parametrize("text,error", [
    ("{d}/missing", "no such directory"),
    ("{d}:debug", "not param=value"),
])
def test_bad_specs(tmp_path: Path, text: str, error: str) -> None:
    d = module_dir(tmp_path)
    with pytest.raises(ConfigError, match=error):
        parse_spec(text.format(d=d), tmp_path)


def test_kbuild_decides_what_a_directory_builds(tmp_path: Path) -> None:
    """7.x's selftests test_kmods add their modules to obj-m inside a $(foreach): no regex
    over Makefile text may refuse them; a build that makes no .ko fails saying so."""
    kmods = module_dir(tmp_path, "MODULES = bpf_testmod.ko bpf_test_no_cfi.ko\n"
                       "$(foreach m,$(MODULES),$(eval obj-m += $(m:.ko=.o)))\n")
    assert parse_spec(str(kmods), tmp_path).path == kmods
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no Kbuild or Makefile: not an out-of-tree module"):
        parse_spec(str(tmp_path / "empty"), tmp_path)


def fake_ko(tmp_path: Path, name: str, deps: str) -> Path:
    """An ELF object with a .modinfo like the kernel's modpost writes."""
    src = tmp_path / f"{name}.c"
    src.write_text("int x;\n")
    obj = tmp_path / f"{name}.ko"
    subprocess.run(["gcc", "-c", str(src), "-o", str(obj)], check=True)
    info = tmp_path / f"{name}.modinfo"
    info.write_bytes(f"license=GPL\0depends={deps}\0name={name}\0".encode())
    subprocess.run(["objcopy", "--add-section", f".modinfo={info}", str(obj)], check=True)
    return obj


def test_load_order_follows_depends(tmp_path: Path) -> None:
    core = fake_ko(tmp_path, "drv-core", "")
    user = fake_ko(tmp_path, "drv_user", "drv_core,videodev")
    assert depends(user) == ("drv_core", "videodev")
    assert module_name(core) == "drv_core"
    ordered, outside = load_order([user, core])
    assert ordered == [core, user]
    assert outside == {"drv_user": ("videodev",), "drv_core": ()}


def test_split_test_id_names_point_and_other_params() -> None:
    points = sorted(["x86_64-debian6.12.117-gcc-pahole1.30",
                     "x86_64-debian6.12.117-gcc-pahole1.30-modpahole1.24"], key=len, reverse=True)
    nid = "suites/test_module_btf.py::test_rmmod[x86_64-debian6.12.117-gcc-pahole1.30-drill-split]"
    assert split_test_id(nid, points) == ("x86_64-debian6.12.117-gcc-pahole1.30",
                                          "test_rmmod[drill-split]")
    nid = "suites/test_pahole.py::test_x[x86_64-debian6.12.117-gcc-pahole1.30-modpahole1.24]"
    assert split_test_id(nid, points) == (points[0], "test_x")
    assert split_test_id("tests/test_a.py::test_b", points) is None


def test_module_links_never_lead_out_of_the_copy(tmp_path: Path) -> None:
    from harness.builds.modbuild import copy_module

    user = tmp_path / "user"
    (user / "drv" / "include").mkdir(parents=True)
    (user / "drv" / "Kbuild").write_text("obj-m += drv.o\n")
    (user / "drv" / "include" / "drv.h").write_text("#define X 1\n")
    (user / "drv" / "drv.h").symlink_to("include/drv.h")  # inside: copied as a file
    copy_module(user / "drv", tmp_path / "copy")
    assert not (tmp_path / "copy" / "drv.h").is_symlink()
    assert (tmp_path / "copy" / "drv.h").read_text() == "#define X 1\n"
    (user / "shared").mkdir()
    (user / "drv" / "out").symlink_to("../shared")  # a build writing into out/ escapes
    with pytest.raises(ConfigError, match=r"out links to .*shared, outside the module"):
        copy_module(user / "drv", tmp_path / "copy2")
    assert not (tmp_path / "copy2").exists()


def test_a_link_out_of_the_module_is_refused_before_any_build(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "Kbuild").write_text("obj-m += m.o\n")
    (tmp_path / "m" / "src").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="outside the module directory"):
        parse_spec(str(tmp_path / "m"), tmp_path)
