"""The plan of a run downloads and builds nothing; the fetch stage brings what it names and
checks what only a tree can tell (builds/fetch.py). Apt and the archive are replaced by
stand-ins that record calls: a download during planning fails the test."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from harness import provision
from harness.arches import GCC, Toolchain, get_arch
from harness.builds import fetch
from harness.errors import ConfigError
from harness.plan import ksource, matrix, pahole, toolchain

OFFERED = {"linux-source-6.12": "6.12.57-1~deb12u1", "pahole": "1.30-1"}
MAKEFILE = "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 57\nEXTRAVERSION =\n"


@pytest.fixture
def archive(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Apt metadata answers from OFFERED; every download is recorded (and fails)."""
    downloads: list[str] = []

    def version(cache: Path, suite: str, package: str, debarch: str = "amd64") -> str | None:
        return OFFERED.get(package)

    def download(*args: object, **kwargs: object) -> list[Path]:
        downloads.append(repr(args))
        raise AssertionError("downloaded")

    monkeypatch.setattr(provision, "package_version", version)
    monkeypatch.setattr(provision, "download", download)
    return downloads


def test_upstream_version_of_debian_versions() -> None:
    assert provision.upstream_version("6.12.57-1~deb12u1") == "6.12.57"
    assert provision.upstream_version("1:7.2.13-1") == "7.2.13"
    assert provision.upstream_version("1.30-1+b1") == "1.30"


def test_debian_kernel_is_planned_from_apt_metadata(archive: list[str], tmp_path: Path) -> None:
    source = ksource.resolve("debian:6.12", tmp_path)
    assert (source.version, source.label, source.spec) == ("6.12.57", "debian6.12.57",
                                                            "debian:6.12")
    assert source.identity == "deb:linux-source-6.12=6.12.57-1~deb12u1"
    assert source.path == tmp_path / "src/linux-source-6.12_6.12.57-1~deb12u1/linux-source-6.12"
    assert not source.path.exists() and archive == []


def test_debian_pahole_is_planned_from_apt_metadata(archive: list[str], tmp_path: Path) -> None:
    p = matrix.resolve_pahole("debian:1.30", tmp_path)
    assert (p.version, p.label, p.spec, p.digest, p.origin) == (
        "1.30", "pahole1.30", "debian:1.30", "", "deb")
    assert archive == []
    with pytest.raises(ConfigError, match=r"offers pahole 1\.30-1 now, not 1\.32"):
        matrix.resolve_pahole("debian:1.32", tmp_path)


def test_an_unfetched_pahole_has_no_cache_key(tmp_path: Path) -> None:
    planned = pahole.Pahole(tmp_path / "pahole", "1.30", (), given="debian:1.30", origin="deb")
    with pytest.raises(Exception, match="before the fetch stage"):
        _ = planned.key


def test_debian_and_system_paholes_of_one_version_get_distinct_labels() -> None:
    system = pahole.Pahole(Path("/usr/bin/pahole"), "1.30", (), digest="aaaaaa11",
                           given="system")
    debian = pahole.Pahole(Path("/c/debian-1.30/pahole"), "1.30", (), given="debian:1.30",
                           origin="deb")
    assert [p.label for p in pahole.distinct([system, debian, debian])] == [
        "pahole1.30-aaaaaa", "pahole1.30-deb"]


def test_fetched_tree_of_another_version_is_an_error(tmp_path: Path) -> None:
    deb = ksource.DebianPackage("sid", "linux-source-6.12", "6.12.57-1")
    tree = tmp_path / "src" / "linux-source-6.12_6.12.57-1" / "linux-source-6.12"
    tree.mkdir(parents=True)
    (tree.parent / ".complete").write_text("done\n")
    (tree / "Makefile").write_text(MAKEFILE.replace("57", "58"))
    source = ksource.KernelSource(tree, "6.12.57", "deb:x", "debian6.12.57", "debian:6.12", deb)
    with pytest.raises(ConfigError, match=r"is version 6\.12\.58, but linux-source-6\.12"):
        fetch.fetch_source(source, tmp_path, print)
    (tree / "Makefile").write_text(MAKEFILE)
    fetch.fetch_source(source, tmp_path, print)  # complete and right: nothing to do


def _fake_clang(bin_dir: Path, version: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    for prog in ("clang", "ld.lld", "llvm-objcopy", "llvm-ar", "llvm-nm"):
        f = bin_dir / f"{prog}-19"
        f.write_text(f"#!/bin/sh\necho 'Debian clang version {version}'\n")
        f.chmod(f.stat().st_mode | stat.S_IEXEC)


def test_llvm_is_chosen_without_the_tree_and_checked_against_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_clang(tmp_path / "bin", "19.1.7")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setattr(toolchain, "CLANG_VERSIONS", range(19, 18, -1))
    x86 = get_arch("x86_64")
    chain = toolchain.resolve("llvm", x86)
    assert chain == Toolchain("llvm", "-19")
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    script = tree / "scripts" / "min-tool-version.sh"
    script.write_text('case "$1" in llvm) echo 17.0.1;; esac\n')
    toolchain.check_minimum(chain, tree, x86)
    toolchain.check_minimum(GCC, tmp_path / "no-tree", x86)  # gcc: nothing to read
    script.write_text('case "$1" in llvm) echo 20.1.0;; esac\n')
    with pytest.raises(ConfigError, match=r"clang-19 \(19\.1\.7\) is older than 20\.1\.0"):
        toolchain.check_minimum(chain, tree, x86)


def test_plan_json_is_printed_without_downloads(archive: list[str], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.run.options import RunOptions
    from harness.run.planning import plan_json

    monkeypatch.setattr(matrix, "host_tools", lambda arch, launcher: None)
    monkeypatch.setattr(pahole, "system_pahole",
                        lambda: pahole.Pahole(Path("/usr/bin/pahole"), "1.24", (), digest="d"))
    plan = json.loads(plan_json(RunOptions(arch=["x86_64"], cache_dir=str(tmp_path)), ["s/"]))
    assert [u["id"] for u in plan] == ["x86_64-debian6.12.57-gcc-pahole1.30"]
    assert plan[0]["kernel_cached"] is False and archive == []
