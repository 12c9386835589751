"""Variant kernels start from a copy of kernel A's cached tree (incremental build)."""

from __future__ import annotations

from pathlib import Path

from harness import kbuild
from harness.arches import get_arch
from harness.ksource import KernelSource
from harness.pahole import Pahole

REQ = kbuild.KernelRequest(get_arch("x86_64"),
                           KernelSource(Path("/src"), "6.12.117", "deb:x", "debian6.12.117"),
                           Pahole(Path("/p/pahole"), "1.30", ()))


def base_dir(kernels: Path) -> Path:
    key = kbuild.cache_key(REQ, "gcc 12")
    return kernels / f"x86_64-6.12.117-{key}"


def test_kernel_a_is_never_seeded(tmp_path: Path) -> None:
    assert kbuild._seed_from_base(REQ, "gcc 12", tmp_path, tmp_path / "out") is None


def test_variant_without_cached_a_builds_clean(tmp_path: Path) -> None:
    base_dir(tmp_path).mkdir()  # no kbtf-build.json: A is not complete
    out = tmp_path / "out"
    out.mkdir()
    variant = kbuild.KernelRequest(REQ.arch, REQ.source, REQ.pahole, variant="refuse")
    assert kbuild._seed_from_base(variant, "gcc 12", tmp_path, out) is None
    assert list(out.iterdir()) == []


def test_variant_copies_a_without_its_completion_marker(tmp_path: Path) -> None:
    base = base_dir(tmp_path)
    (base / "kernel").mkdir(parents=True)
    (base / "kernel/fork.o").write_text("obj")
    (base / ".config").write_text("CONFIG_X=y\n")
    for name in ("kbtf-build.json", "kbtf-build.log", "kbtf-fragment.config"):
        (base / name).write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    variant = kbuild.KernelRequest(REQ.arch, REQ.source, REQ.pahole, variant="refuse")
    assert kbuild._seed_from_base(variant, "gcc 12", tmp_path, out) == base
    assert (out / "kernel/fork.o").read_text() == "obj" and (out / ".config").exists()
    assert not [n for n in ("kbtf-build.json", "kbtf-build.log", "kbtf-fragment.config")
                if (out / n).exists()]
