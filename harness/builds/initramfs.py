"""A small initramfs that lets a distro kernel boot kbtf's guest root: the modules its 9p
root and consoles need (from the image's own /lib/modules, decompressed, in dependency
order), busybox, and an init that loads them, mounts the 9p root and switches to
/kbtf/init."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from harness import cacheentry, proc
from harness.errors import ConfigError


# What a kbtf-launched guest needs from modules: its virtio transport (virtio_pci,
# virtio_ccw), the 9p root and shares, the virtio console kernel messages go to. Built-in
# ones (modules.builtin) are skipped.
def guest_modules(virtio_transport: str) -> tuple[str, ...]:
    """The module names a guest with ``virtio_transport`` ("pci", "ccw") needs."""
    return (f"virtio_{virtio_transport}", "9pnet_virtio", "9p", "virtio_console")
TIMEOUT = 120  # xz/zstd -d of one module, cpio of the tree
# In-place decompression of a module copied with its suffix.
_DECOMPRESS = {".xz": ["xz", "-d"], ".zst": ["zstd", "-q", "-d", "--rm"], ".gz": ["gzip", "-d"]}

# How a guest mounts kbtf's 9p root tree. It does not change while a guest lives, so the
# guest may cache it (cache=loose): without, every exec re-reads its program and libraries
# over 9p (measured under TCG: `mount -t tmpfs` 5 s -> 1.2 s with two builds beside it).
ROOT_MOUNT_OPTIONS = "trans=virtio,version=9p2000.L,msize=512000,cache=loose"

INIT = f"""#!/bin/busybox sh
# kbtf initramfs: load the modules the 9p root needs, mount it, continue in kbtf's init.
/bin/busybox mkdir -p /newroot
for m in /m/*.ko; do /bin/busybox insmod "$m" || echo "kbtf-initramfs: insmod $m failed"; done
/bin/busybox mount -t 9p -o {ROOT_MOUNT_OPTIONS},ro /dev/root /newroot
exec /bin/busybox switch_root /newroot /kbtf/init
"""


def _name(path: str) -> str:
    """Module name of a modules.dep path: kernel/fs/9p/9p.ko.xz -> 9p."""
    return re.sub(r"\.ko(\.\w+)?$", "", Path(path).name).replace("-", "_")


def load_order(modules_dep: str, builtin: str, wanted: tuple[str, ...],
               optional: tuple[str, ...] = ()) -> list[str]:
    """modules.dep paths to insmod, dependencies first, for the ``wanted`` module names.
    An ``optional`` one that is no module is taken as built in (s390x's virtio_ccw comes
    with the bool S390_GUEST in 6.1 and is not in modules.builtin).

    Raises ConfigError for a wanted module that is neither a module nor built in.
    """
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in modules_dep.splitlines():
        if ":" in line:
            path, rest = line.split(":", 1)
            deps[_name(path)] = (path, rest.split())
    built_in = {_name(ln) for ln in builtin.split()}
    order: list[str] = []
    for name in wanted:
        if name in built_in or (name in optional and name not in deps):
            continue
        if name not in deps:
            raise ConfigError(f"the kernel has no module {name} and does not build it in")
        path, needs = deps[name]
        for dep in [*reversed(needs), path]:  # modules.dep lists the closure, nearest first
            if dep not in order:
                order.append(dep)
    return order


def ensure(modules_dir: Path, dest: Path, busybox: Path, virtio_transport: str) -> Path:
    """The initramfs (an uncompressed cpio) for the kernel whose /lib/modules/<release> is
    ``modules_dir``, with ``busybox`` (a static one of the kernel's architecture: the guest
    root's), made once at ``dest``. Raises ConfigError, CommandError."""
    dep = (modules_dir / "modules.dep").read_text()
    builtin_file = modules_dir / "modules.builtin"
    builtin = builtin_file.read_text() if builtin_file.is_file() else ""
    wanted = guest_modules(virtio_transport)
    order = load_order(dep, builtin, wanted, optional=wanted[:1])
    key = hashlib.sha256(("\n".join(order) + INIT).encode() + busybox.read_bytes()
                         ).hexdigest()[:12]
    final = dest / f"initramfs-{key}"

    def fill(tmp: Path) -> None:
        tree = tmp / "tree"
        (tree / "m").mkdir(parents=True)
        (tree / "bin").mkdir()
        shutil.copy(busybox, tree / "bin" / "busybox")
        for n, path in enumerate(order):
            src = modules_dir / path
            argv = _DECOMPRESS.get(src.suffix)
            suffix = src.suffix if argv else ""
            copy = tree / "m" / f"{n:02d}-{_name(path)}.ko{suffix}"
            shutil.copy(src, copy)
            if argv:
                proc.run([*argv, copy], timeout=TIMEOUT)
        (tree / "init").write_text(INIT)
        (tree / "init").chmod(0o755)
        proc.run(["sh", "-c", "find . | cpio -o -H newc --quiet > ../initramfs.cpio"], cwd=tree,
                 timeout=TIMEOUT)
        shutil.rmtree(tree)

    cacheentry.populate(final, (final / "initramfs.cpio").exists, fill)
    return final / "initramfs.cpio"
