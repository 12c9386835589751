"""kbtf's cache as a whole: list its entries with size and last use, prune them by age or
total size, refresh frozen downloads. ``./kbtf cache ...`` runs this module.

An entry is a directory one level below a kind folder (kernels/, modules/, roots/, pahole/,
src/, distro/, buildroots/, scaffolds/); cacheentry.populate stamps ``<entry>.used`` each time a
run uses it. Removing an entry takes its lock without waiting: an entry a running build or
run holds is left alone and said so.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from harness import cacheentry, signing
from harness.errors import ConfigError

# Kinds whose entries are downloads frozen at their first fetch (a newer sid bpftrace, a
# Debian pahole point release): `refresh` removes them, the next run fetches them again.
DOWNLOADED = ("roots", "pahole", "buildroots", "src", "distro")
KINDS = ("kernels", "modules", "scaffolds", *DOWNLOADED)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)([KMGT]?)B?", re.IGNORECASE)


@dataclass(frozen=True)
class Entry:
    """One cache entry."""

    path: Path
    kind: str
    size: int  # bytes on disk
    last_use: float  # epoch seconds: its .used stamp, else its own mtime


def entries(cache_dir: Path) -> list[Entry]:
    """Every entry of ``cache_dir``, least recently used first."""
    found = []
    for kind in KINDS:
        for path in sorted((cache_dir / kind).glob("[!.]*")):
            if path.is_dir() and not path.is_symlink():
                found.append(Entry(path, kind, _disk_usage(path), _last_use(path)))
    return sorted(found, key=lambda e: e.last_use)


def _disk_usage(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


def _last_use(path: Path) -> float:
    stamp = cacheentry.used_stamp(path)
    return (stamp if stamp.exists() else path).stat().st_mtime


def parse_size(text: str) -> int:
    """'20G', '500M', '1.5T' -> bytes. Raises ValueError."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 20G or 500M)")
    return int(float(m[1]) * 1024 ** " KMGT".index(m[2].upper() or " "))


def to_prune(all_entries: list[Entry], older_than_days: float | None, max_bytes: int | None,
             now: float) -> list[Entry]:
    """The entries to remove: those unused for ``older_than_days``, then the least recently
    used ones until the rest fit in ``max_bytes``. ``all_entries``: least recent first."""
    chosen = [e for e in all_entries
              if older_than_days is not None and now - e.last_use > older_than_days * 86400]
    if max_bytes is not None:
        left = sum(e.size for e in all_entries if e not in chosen)
        for e in all_entries:
            if left <= max_bytes:
                break
            if e not in chosen:
                chosen.append(e)
                left -= e.size
    return chosen


def remove(entry: Entry) -> bool:
    """Remove ``entry`` under its lock, taken without waiting. False if a live process
    holds it (a build or run using it)."""
    lock = FileLock(str(entry.path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    try:
        shutil.rmtree(entry.path, ignore_errors=True)
        cacheentry.used_stamp(entry.path).unlink(missing_ok=True)
    finally:
        lock.release()
    return True


def _human(size: float) -> str:
    for unit in ("B", "K", "M", "G"):
        if size < 1024:
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}T"


def _report(chosen: list[Entry], dry_run: bool) -> int:
    """Remove (or, dry, list) ``chosen``; print what happened. Returns the exit code."""
    freed = 0
    for e in chosen:
        if dry_run:
            print(f"would remove {e.path} ({_human(e.size)})")
        elif remove(e):
            freed += e.size
            print(f"removed {e.path} ({_human(e.size)})")
        else:
            print(f"kept {e.path}: in use by a running build or run (its lock is held)")
    print(f"{'would free' if dry_run else 'freed'} "
          f"{_human(sum(e.size for e in chosen) if dry_run else freed)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``./kbtf cache list|prune|refresh|keygen``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="./kbtf cache", description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="default: $KBTF_CACHE_DIR, else ~/.cache/kbtf")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="entries with size and last use, least recent first")
    prune = sub.add_parser("prune", help="remove entries by age and/or to fit a total size")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="unused for DAYS")
    prune.add_argument("--max-size", type=parse_size, metavar="SIZE",
                       help="then least recently used first until the cache fits, e.g. 20G")
    prune.add_argument("--dry-run", action="store_true")
    refresh = sub.add_parser("refresh", help="remove frozen downloads so the next run "
                             "fetches them again: " + ", ".join(DOWNLOADED))
    refresh.add_argument("kinds", nargs="+", choices=DOWNLOADED)
    keygen = sub.add_parser("keygen", help="a key pair signing shared cache entries: the "
                            "private key for pushing runners, the public one for pulling ones")
    keygen.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "keygen":
        try:
            private, public = signing.keygen(args.dir)
        except ConfigError as exc:
            parser.error(str(exc))
        print(f"{private}: for runners that push (export {signing.SIGNING_KEY_ENV}={private})\n"
              f"{public}: for runners that pull (export {signing.TRUSTED_KEYS_ENV}={public})")
        return 0
    cache = args.cache_dir or Path(os.environ.get("KBTF_CACHE_DIR") or
                                   Path.home() / ".cache" / "kbtf")
    found = entries(cache)
    if args.command == "list":
        for e in found:
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_use))
            print(f"{_human(e.size):>8}  {used}  {e.path}")
        print(f"{_human(sum(e.size for e in found)):>8}  total, {len(found)} entries in {cache}")
        return 0
    if args.command == "refresh":
        return _report([e for e in found if e.kind in args.kinds], dry_run=False)
    if args.older_than is None and args.max_size is None:
        parser.error("prune needs --older-than DAYS and/or --max-size SIZE")
    return _report(to_prune(found, args.older_than, args.max_size, time.time()), args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
