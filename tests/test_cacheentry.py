"""Cache entries: temp dirs of killed runs are swept unless a live build holds the lock."""

from __future__ import annotations

import os
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


def test_relocated_entry_names_its_final_path_and_keeps_mtimes(tmp_path: Path) -> None:
    final = tmp_path / "x86_64-7.2.13-abc"

    def fill(tmp: Path) -> None:
        (tmp / "Makefile").write_text(f"export KBUILD_OUTPUT = {tmp}\ninclude /src/Makefile\n")
        (tmp / "kbtf-build.log").write_text(f"$ make O={tmp}\n")
        (tmp / "vmlinux").write_bytes(b"\x7fELF\0" + str(tmp).encode())
        os.utime(tmp / "Makefile", ns=(1_000_000_000, 1_000_000_000))

    cacheentry.populate(final, (final / "Makefile").exists, fill, relocate=True)
    assert (final / "Makefile").read_text().splitlines()[0] == f"export KBUILD_OUTPUT = {final}"
    assert (final / "Makefile").stat().st_mtime_ns == 1_000_000_000, "make would rebuild"
    assert str(final) not in (final / "kbtf-build.log").read_text(), "logs say where it ran"
    assert str(final).encode() not in (final / "vmlinux").read_bytes(), "binaries untouched"


def test_a_held_lock_says_who_holds_it_and_gives_up(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from harness.errors import HarnessError

    final = tmp_path / "kernels" / "x86_64-6.12.117-1daae14e5b812dde"
    final.parent.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from filelock import FileLock; "
        f"l = FileLock({str(final) + '.lock'!r}); l.acquire(); "
        f"open({str(final) + '.lock.holder'!r}, 'w')"
        ".write('pid 4242 (./kbtf pytest) since 05:00'); "
        "print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    monkeypatch.setattr(cacheentry, "LOCK_POLL", 0.2)
    monkeypatch.setattr(cacheentry, "LOCK_LIMIT", 0.7)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(HarnessError, match=r"still locked after \d+s by pid 4242 \(./kbtf "
                           r"pytest\) since 05:00: if that process is gone, remove .*\.lock"):
            cacheentry.populate(final, lambda: False, lambda tmp: None)
    finally:
        holder.kill()
    said = capsys.readouterr().err
    assert "kbtf: waiting" in said and "locked by pid 4242 (./kbtf pytest) since 05:00" in said
    def fill(tmp: Path) -> None:
        (tmp / "done").write_text("x")

    cacheentry.populate(final, final.exists, fill)
    assert (final / "done").exists() and not Path(str(final) + ".lock.holder").exists()
