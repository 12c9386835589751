"""./kbtf cache: entries with size and last use; pruning by age and size skips entries a
live process holds; refresh removes frozen downloads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import cachectl, cacheentry


def entry(cache: Path, kind: str, name: str, size: int, days_ago: float) -> Path:
    path = cache / kind / name
    path.mkdir(parents=True)
    (path / "data").write_bytes(b"x" * size)
    cacheentry.mark_used(path)
    when = time.time() - days_ago * 86400
    os.utime(cacheentry.used_stamp(path), (when, when))
    return path


def test_parse_size() -> None:
    assert cachectl.parse_size("20G") == 20 * 1024 ** 3
    assert cachectl.parse_size("1.5M") == int(1.5 * 1024 ** 2)
    with pytest.raises(ValueError, match="not a size"):
        cachectl.parse_size("lots")


def test_prune_by_age_then_size_least_recent_first(tmp_path: Path) -> None:
    old = entry(tmp_path, "kernels", "x86_64-old", 40_000, 30)
    mid = entry(tmp_path, "kernels", "x86_64-mid", 40_000, 5)
    new = entry(tmp_path, "roots", "amd64-sid", 40_000, 0)
    found = cachectl.entries(tmp_path)
    assert [e.path for e in found] == [old, mid, new]
    now = time.time()
    assert [e.path for e in cachectl.to_prune(found, 10, None, now)] == [old]
    fit = cachectl.to_prune(found, None, found[-1].size + 10, now)
    assert [e.path for e in fit] == [old, mid]


def test_prune_keeps_what_a_live_process_holds(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    held = entry(tmp_path, "kernels", "x86_64-held", 10, 30)
    gone = entry(tmp_path, "kernels", "x86_64-gone", 10, 30)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from filelock import FileLock; "
        f"l = FileLock({str(held) + '.lock'!r}); l.acquire(); print('held', flush=True); "
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert cachectl.main(["--cache-dir", str(tmp_path), "prune", "--older-than", "7"]) == 0
    finally:
        holder.kill()
    out = capsys.readouterr().out
    assert held.exists() and "kept" in out and "in use" in out
    assert not gone.exists() and not cacheentry.used_stamp(gone).exists()


def test_refresh_removes_only_frozen_downloads(tmp_path: Path) -> None:
    kernel = entry(tmp_path, "kernels", "x86_64-k", 10, 0)
    root = entry(tmp_path, "roots", "amd64-sid-1", 10, 0)
    assert cachectl.main(["--cache-dir", str(tmp_path), "refresh", "roots"]) == 0
    assert kernel.exists() and not root.exists()


def test_populate_stamps_each_use(tmp_path: Path) -> None:
    final = tmp_path / "kernels" / "k"
    def fill(tmp: Path) -> None:
        (tmp / "f").write_text("x")

    cacheentry.populate(final, final.exists, fill)
    stamp = cacheentry.used_stamp(final)
    os.utime(stamp, (0, 0))
    cacheentry.populate(final, final.exists, lambda tmp: None)
    assert stamp.stat().st_mtime > 0
