"""Cache entries: temp dirs of killed runs are swept unless a live build holds the lock."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import cacheentry
from harness.errors import CommandError


def test_sweep_removes_orphans_and_keeps_live_builds(tmp_path: Path) -> None:
    kernels = tmp_path / "kernels"
    orphan = kernels / ".x86_64-6.12.117-1daae14e5b812dde-lfy88_4q"
    live = kernels / ".x86_64-6.12.117-reloc-0123456789abcdef-ab_cd123"
    entry = kernels / "x86_64-6.12.117-1daae14e5b812dde"
    for d in (orphan / "arch", live, entry, tmp_path / "src" / ".unpack-abcdefgh"):
        d.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from filelock import FileLock; "
        f"l = FileLock({str(kernels / 'x86_64-6.12.117-reloc-0123456789abcdef.lock')!r}); "
        "l.acquire(); print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        removed = cacheentry.sweep(tmp_path)
    finally:
        holder.kill()
    assert orphan in removed and not orphan.exists()
    assert (tmp_path / "src" / ".unpack-abcdefgh") in removed
    assert live.exists() and entry.exists()


def test_populate_leaves_no_temp_dir_when_interrupted(tmp_path: Path) -> None:
    def fill(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cacheentry.populate(tmp_path / "e", lambda: False, fill)
    assert [p.name for p in tmp_path.iterdir()] == ["e.lock"]


def test_failed_fill_keeps_its_log(tmp_path: Path) -> None:
    def fill(tmp: Path) -> None:
        (tmp / "build.log").write_text("error: boom\n")
        time.sleep(0)
        raise CommandError("exit 1")

    with pytest.raises(CommandError) as err:
        cacheentry.populate(tmp_path / "e", lambda: False, fill, "build.log")
    assert err.value.log == tmp_path / "failed-e.log"
    assert not (tmp_path / "e").exists()
