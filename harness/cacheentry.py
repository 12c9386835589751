"""Cache entries written once: built in a temp dir beside the entry, renamed into place
when complete, under a file lock shared by every process (xdist workers)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from harness import proc
from harness.errors import HarnessError, KbtfError

log = logging.getLogger("kbtf")
# A temp dir of populate(): "." + the entry's name + "-" + mkdtemp's 8 random characters.
RELOCATE_TIMEOUT = 300  # grep over a kernel build dir (~1 GB): ~2 s warm
# Waiting for another process's entry: said every LOCK_POLL seconds (who holds it, since
# when); given up after LOCK_LIMIT (times $KBTF_TIMEOUT_SCALE), longer than the longest
# build a holder can run (a kernel compile's 2 h timeout plus its configure and copy).
LOCK_POLL = 30.0
LOCK_LIMIT = 3 * 3600.0
_TEMP = re.compile(r"\.(?P<entry>.+)-[a-z0-9_]{8}")


def populate(final: Path, ready: Callable[[], bool], fill: Callable[[Path], None],
             log_name: str | None = None, relocate: bool = False) -> None:
    """Make cache entry ``final`` unless ``ready()`` says it is complete.

    ``fill(tmp)`` writes the entry into a temp dir that is renamed to ``final`` on success;
    nothing half-written ever appears at ``final``. If ``fill`` raises a KbtfError, the
    temp dir's ``log_name`` file is kept as failed-<final.name>.log beside the entry and the
    error names it. With ``relocate``, text files that recorded the temp dir's path (a
    kernel build dir's generated Makefile exports KBUILD_OUTPUT on 7.x) are rewritten to
    ``final`` before the rename.
    """
    if ready():
        mark_used(final)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(final):
        if ready():
            mark_used(final)
            return
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        try:
            fill(tmp)
            if relocate:
                relocate_text(tmp, final)
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            mark_used(final)
        except KbtfError as exc:
            if log_name is not None:
                exc.log = final.parent / f"failed-{final.name}.log"
                if (tmp / log_name).exists():
                    shutil.copy(tmp / log_name, exc.log)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: Path) -> str:
    """The sha256 of file ``path``'s bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def used_stamp(final: Path) -> Path:
    """The file whose mtime says when entry ``final`` was last used (./kbtf cache)."""
    return final.parent / f"{final.name}.used"


def mark_used(final: Path) -> None:
    """Stamp entry ``final`` as used now (a read-only cache just goes unstamped)."""
    with contextlib.suppress(OSError):
        used_stamp(final).touch()


@contextlib.contextmanager
def _locked(final: Path) -> Iterator[None]:
    """Hold ``final``'s entry lock, saying who holds it while waiting (its holder file:
    pid, command, since when) every LOCK_POLL seconds. Raises HarnessError past LOCK_LIMIT."""
    lock = FileLock(str(final) + ".lock")
    holder = Path(str(final) + ".lock.holder")
    start = time.monotonic()
    limit = LOCK_LIMIT * proc.timeout_scale()
    while True:
        try:
            lock.acquire(timeout=LOCK_POLL)
            break
        except Timeout:
            who = holder.read_text().strip() if holder.exists() else "unknown holder"
            waited = time.monotonic() - start
            if waited >= limit:
                raise HarnessError(f"cache entry {final.name} is still locked after "
                                   f"{waited:.0f}s by {who}: if that process is gone, remove "
                                   f"{lock.lock_file}", log=holder) from None
            msg = f"kbtf: waiting {waited:.0f}s for {final.name}, locked by {who}"
            log.warning("%s", msg)
            print(msg, file=sys.stderr, flush=True)
    try:
        holder.write_text(f"pid {os.getpid()} ({' '.join(sys.argv)[:200]}) since "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


# Files relocate_text leaves alone: logs say where things really ran.
_KEEP_SUFFIXES = (".log",)


def relocate_text(tree: Path, final: Path, old: Path | None = None) -> list[Path]:
    """Rewrite path ``old`` (default: ``tree`` itself) to ``final`` in every text file under
    ``tree`` that holds it (found with grep -rlI; binaries such as vmlinux keep it in their
    debug info, which no build reads). Modification times are kept: make must not see a
    rewritten file as new (objtool's .cmd files hold absolute paths; a newer objtool rebuilds
    every object in 6.1). Logs are left as written. Returns the rewritten files.
    """
    old = old or tree
    old_b, new_b = str(old).encode(), str(final).encode()
    found = proc.run(["grep", "-rlIZF", "--", str(old), str(tree)], timeout=RELOCATE_TIMEOUT,
                     check=False)
    rewritten = []
    for name in filter(None, found.stdout.split("\0")):
        path = Path(name)
        if path.suffix in _KEEP_SUFFIXES or path.is_symlink():
            continue
        st = path.stat()
        path.write_bytes(path.read_bytes().replace(old_b, new_b))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        rewritten.append(path)
    return rewritten


def sweep(cache_dir: Path) -> list[Path]:
    """Remove temp dirs that killed runs left in ``cache_dir``'s entry folders (a kernel
    build's is GBs), skipping any whose entry lock is held: a live build owns it.
    Returns the removed dirs.
    """
    removed = []
    for tmp in sorted(cache_dir.glob("*/.*")):
        m = _TEMP.fullmatch(tmp.name)
        if m is None or not tmp.is_dir():
            continue
        lock = FileLock(str(tmp.parent / m["entry"]) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
            log.info("removed %s, left by a killed run", tmp)
        finally:
            lock.release()
    return removed


def escaping_link(entry: Path) -> Path | None:
    """The first symbolic link under ``entry`` that leads out of it, followed the way the
    kernel follows it (each link on the way, a parent link before a '..'), or None. Under a
    root file system (``entry/tree``, a guest's '/'), an absolute target is read inside that
    tree, as the guest reads it; ``tree`` itself must be a directory, not a link. Nothing
    outside ``entry`` is read, and no '..' may climb above the entry (or the tree)."""
    root_fs = entry / "tree"
    if root_fs.is_symlink():
        return root_fs
    for dirpath, dirnames, filenames in os.walk(entry):
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            if not path.is_symlink():
                continue
            in_root_fs = path.is_relative_to(root_fs)
            top = root_fs if in_root_fs else entry
            if _resolve(path, top, in_root_fs, [0]) is None:
                return path
    return None


_MAX_LINKS = 40  # as the kernel's MAXSYMLINKS


def _resolve(link: Path, top: Path, chroot: bool, followed: list[int]) -> Path | None:
    """Where ``link`` leads, resolved component by component inside ``top`` (with
    ``chroot``, an absolute target starts at ``top``); None when it leaves ``top``, a '..'
    above it included (harmless in the guest, not for a program of the host), or when
    resolving it follows more than _MAX_LINKS links in all (``followed``: the count)."""
    followed[0] += 1
    if followed[0] > _MAX_LINKS:
        return None
    target = os.readlink(link)
    if os.path.isabs(target):
        if not chroot:
            return None
        at, parts = top, Path(target).parts[1:]
    else:
        at, parts = link.parent, Path(target).parts
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if at == top:  # the guest would stay at its '/', a host program would leave
                return None
            at = at.parent
            continue
        step = at / part
        if step.is_symlink():
            resolved = _resolve(step, top, chroot, followed)
            if resolved is None:
                return None
            step = resolved
        if not step.is_relative_to(top):
            return None
        at = step
    return at
