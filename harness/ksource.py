"""Kernel source trees: Debian's linux-source tarball unpacked into the cache, or a user tree."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness import cacheentry, proc
from harness.errors import ConfigError

DEFAULT_PACKAGE = "linux-source-6.12"
UNPACK_TIMEOUT = 900  # tar -xf of a kernel tarball (~1 min)


@dataclass(frozen=True)
class KernelSource:
    """A kernel tree kbtf can build out of tree (O=)."""

    path: Path  # the tree (holds the top-level Makefile)
    version: str  # VERSION.PATCHLEVEL.SUBLEVEL from the Makefile
    identity: str  # changes whenever the tree's content may have changed
    label: str  # short name for test ids: "debian6.12.117" or "src6.13.0"


def makefile_version(makefile_text: str) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL[EXTRAVERSION] from a top-level kernel Makefile.

    Raises ConfigError if the text is not a kernel Makefile.
    """
    fields = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{key}\s*=[ \t]*(\S*)", makefile_text, re.MULTILINE)
        fields[key] = m[1] if m else None
    if not fields["VERSION"] or fields["PATCHLEVEL"] is None:
        raise ConfigError("not a kernel Makefile: no VERSION/PATCHLEVEL")
    return f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL'] or 0}" + (
        fields["EXTRAVERSION"] or ""
    )


def local_source(path: Path) -> KernelSource:
    """Describe the user's tree at ``path`` (--kernel-src).

    Raises ConfigError if it is missing, has no kernel Makefile, or was built in tree.
    """
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"--kernel-src {path}: no such directory; pass a kernel source tree")
    makefile = path / "Makefile"
    if not makefile.is_file() or not (path / "Kconfig").is_file():
        raise ConfigError(f"--kernel-src {path}: no Makefile/Kconfig, not a kernel source tree")
    try:
        version = makefile_version(makefile.read_text(errors="replace"))
    except ConfigError as exc:
        raise ConfigError(f"--kernel-src {path}: {exc}") from None
    if (path / ".config").exists():
        raise ConfigError(
            f"--kernel-src {path}: tree was configured in place; run 'make mrproper' in it "
            "(kbtf builds out of tree with O=)"
        )
    return KernelSource(path, version, _tree_identity(path), f"src{version}")


def _tree_identity(path: Path) -> str:
    """Git HEAD plus a hash of uncommitted changes, or a hash of every file's size and mtime."""
    if (path / ".git").exists():
        git = proc.require_tool("git")
        head = proc.run([git, "-C", path, "rev-parse", "HEAD"], timeout=60, check=False)
        diff = proc.run([git, "-C", path, "diff", "HEAD"], timeout=600, check=False)
        if head.returncode == 0:
            dirty = hashlib.sha256(diff.stdout.encode()).hexdigest()[:16]
            return f"git:{head.stdout.strip()}:{dirty}"
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            st = os.lstat(os.path.join(root, name))
            digest.update(f"{root}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return f"tree:{path}:{digest.hexdigest()[:32]}"


def debian_source(cache_dir: Path, package: str = DEFAULT_PACKAGE) -> KernelSource:
    """Unpack Debian's /usr/src/<package>.tar.xz into the cache once and describe it.

    Unpacks into a temp dir and renames it, under a lock, so workers share one copy.
    Raises ConfigError if the package is not installed.
    """
    tarball = Path("/usr/src") / f"{package}.tar.xz"
    if not tarball.is_file():
        raise ConfigError(
            f"missing kernel source {tarball}: apt-get install {package}, "
            "or pass --kernel-src PATH"
        )
    pkg_version = proc.output(["dpkg-query", "-W", "-f=${Version}", package]).strip() \
        or f"size{tarball.stat().st_size}"
    dest = cache_dir / "src" / f"{package}_{pkg_version}"
    tree = dest / package

    def fill(tmp: Path) -> None:
        proc.run(["tar", "-C", tmp, "-xf", tarball], timeout=UNPACK_TIMEOUT)
        (tmp / ".complete").write_text(f"{tarball} {pkg_version}\n")

    cacheentry.populate(dest, (dest / ".complete").exists, fill)
    version = makefile_version((tree / "Makefile").read_text())
    return KernelSource(tree, version, f"deb:{package}={pkg_version}", f"debian{version}")
