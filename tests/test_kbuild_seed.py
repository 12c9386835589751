"""A new kernel build starts from the nearest cached build of the same arch, source and
toolchain programs (incremental build); anything else builds clean."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from harness.arches import get_arch
from harness.builds import kbuild
from harness.plan.kernelreq import KernelRequest
from harness.plan.ksource import KernelSource
from harness.plan.pahole import Pahole

TOOLS = {"gcc": "gcc (Debian 12.2.0-14) 12.2.0", "rustc": "(none)"}
REQ = KernelRequest(get_arch("x86_64"),
                           KernelSource(Path("/src"), "6.12.117", "deb:x", "debian6.12.117",
                                        "debian:6.12"),
                           Pahole(Path("/p/pahole"), "1.30", (), digest="aaaa"))
OTHER_PAHOLE = replace(REQ, pahole=Pahole(Path("/q/pahole"), "1.32", (), digest="bbbb"))


def cached(kernels: Path, req: KernelRequest, tools: dict[str, str] = TOOLS,
           complete: bool = True) -> Path:
    """A fake finished build of ``req`` in ``kernels``, with the metadata _build writes."""
    entry = kernels / kbuild.entry_name(req, kbuild.cache_key(req, tools))
    (entry / "kernel").mkdir(parents=True)
    (entry / "kernel/fork.o").write_text("obj")
    (entry / "vmlinux").write_text("elf")
    (entry / ".config").write_text("CONFIG_X=y\n")
    (entry / "kbtf-build.log").write_text("log")
    (entry / "kbtf-fragment.config").write_text("CONFIG_X=y\n")
    if complete:
        (entry / "kbtf-build.json").write_text(json.dumps({
            "cache_version": kbuild.CACHE_VERSION, "arch": req.arch.name,
            "source": req.source.identity, "tools": tools,
            "requested": kbuild._requested_digest(req), "pahole": {"key": req.pahole.key}}))
    return entry


def test_nothing_cached_builds_clean(tmp_path: Path) -> None:
    assert kbuild.nearest_build(REQ, TOOLS, tmp_path) is None


def test_incomplete_build_is_no_seed(tmp_path: Path) -> None:
    cached(tmp_path, REQ, complete=False)
    assert kbuild.nearest_build(replace(REQ, variant="refuse"), TOOLS, tmp_path) is None


def test_variant_starts_from_a_of_the_same_pahole(tmp_path: Path) -> None:
    base = cached(tmp_path, REQ)
    cached(tmp_path, OTHER_PAHOLE)  # A of another pahole: another config than the variant's
    assert kbuild.nearest_build(replace(REQ, variant="refuse"), TOOLS, tmp_path) == base


def test_other_pahole_starts_from_the_same_config(tmp_path: Path) -> None:
    base = cached(tmp_path, REQ)
    assert kbuild.nearest_build(OTHER_PAHOLE, TOOLS, tmp_path) == base


def test_other_toolchain_programs_build_clean(tmp_path: Path) -> None:
    cached(tmp_path, REQ)
    newer = {**TOOLS, "gcc": "gcc (Debian 12.2.0-15) 12.2.0"}
    assert kbuild.nearest_build(OTHER_PAHOLE, newer, tmp_path) is None


def test_seed_copies_and_drops_vmlinux_for_another_pahole(tmp_path: Path) -> None:
    base = cached(tmp_path, REQ)
    out = tmp_path / "out"
    out.mkdir()
    kbuild._seed(base, OTHER_PAHOLE, out)
    assert (out / "kernel/fork.o").read_text() == "obj" and (out / ".config").exists()
    assert not (out / "vmlinux").exists(), "vmlinux kept: its BTF would be the old pahole's"
    assert not [n for n in ("kbtf-build.json", "kbtf-build.log", "kbtf-fragment.config")
                if (out / n).exists()]


def test_seed_drops_7x_unstripped_vmlinux_for_another_pahole(tmp_path: Path) -> None:
    """7.x encodes BTF into vmlinux.unstripped and makes vmlinux from it by objcopy: kept,
    the new pahole would never run (only IKHEADERS' relink hid it)."""
    base = cached(tmp_path, REQ)
    (base / "vmlinux.unstripped").write_text("elf with the old BTF")
    out = tmp_path / "out"
    out.mkdir()
    kbuild._seed(base, OTHER_PAHOLE, out)
    assert not (out / "vmlinux.unstripped").exists() and not (out / "vmlinux").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    kbuild._seed(base, replace(REQ, variant="refuse"), kept)
    assert (kept / "vmlinux.unstripped").exists()


def test_seed_keeps_vmlinux_for_the_same_pahole(tmp_path: Path) -> None:
    base = cached(tmp_path, REQ)
    out = tmp_path / "out"
    out.mkdir()
    kbuild._seed(base, replace(REQ, variant="refuse"), out)
    assert (out / "vmlinux").exists()


def test_seed_drops_the_kheaders_archive(tmp_path: Path) -> None:
    base = cached(tmp_path, REQ)
    (base / "kernel/kheaders_data.tar.xz").write_bytes(b"old config")
    out = tmp_path / "out"
    out.mkdir()
    kbuild._seed(base, replace(REQ, variant="prime"), out)
    assert not (out / "kernel/kheaders_data.tar.xz").exists(), \
        "gen_kheaders.sh would keep the seed's autoconf.h"


def test_seeded_entry_of_an_older_recipe_is_not_complete(tmp_path: Path) -> None:
    entry = cached(tmp_path, REQ)
    meta = json.loads((entry / "kbtf-build.json").read_text())
    assert kbuild.is_complete(entry)  # a clean build: any recipe
    meta.update(seeded_from="/elsewhere", seed_recipe=kbuild.SEED_RECIPE - 1)
    (entry / "kbtf-build.json").write_text(json.dumps(meta))
    assert not kbuild.is_complete(entry)
    assert kbuild.nearest_build(OTHER_PAHOLE, TOOLS, tmp_path) is None
    meta.update(seed_recipe=kbuild.SEED_RECIPE)
    (entry / "kbtf-build.json").write_text(json.dumps(meta))
    assert kbuild.is_complete(entry)
