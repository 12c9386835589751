"""Kernel source trees of the plan: Debian's linux-source (its version from apt metadata; the
fetch stage unpacks it into the cache), or a user tree."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness import proc, provision
from harness.errors import ConfigError


@dataclass(frozen=True)
class KernelSource:
    """A kernel tree kbtf can build out of tree (O=)."""

    path: Path  # the tree (holds the top-level Makefile)
    version: str  # VERSION.PATCHLEVEL.SUBLEVEL from the Makefile
    identity: str  # changes whenever the tree's content may have changed
    label: str  # short name for test ids: "debian6.12.117" or "src6.13.0"
    spec: str  # the --kernel SPEC that gives it again: "debian:6.12" or the path
    deb: DebianPackage | None = None  # Debian's: the package the fetch stage unpacks


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
    """Describe the user's tree at ``path`` (--kernel PATH).

    Raises ConfigError if it is missing, has no kernel Makefile, or was built in tree.
    """
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"--kernel {path}: no such directory; pass a kernel source tree")
    makefile = path / "Makefile"
    if not makefile.is_file() or not (path / "Kconfig").is_file():
        raise ConfigError(f"--kernel {path}: no Makefile/Kconfig, not a kernel source tree")
    try:
        version = makefile_version(makefile.read_text(errors="replace"))
    except ConfigError as exc:
        raise ConfigError(f"--kernel {path}: {exc}") from None
    if (path / ".config").exists():
        raise ConfigError(
            f"--kernel {path}: tree was configured in place; run 'make mrproper' in it "
            "(kbtf builds out of tree with O=)"
        )
    return KernelSource(path, version, _tree_identity(path), f"src{version}", str(path))


# git run on a user's tree writes nothing (plumbing only: `git diff` would refresh and
# rewrite .git/index; no fsmonitor daemon) and hashes content, not what a configured
# external diff or textconv driver prints.
GIT_READ_ONLY = ("--no-optional-locks", "-c", "core.fsmonitor=false")


def _tree_identity(path: Path) -> str:
    """What the tree is: for a git checkout, its path (a build dir records the tree it was
    configured from: two checkouts at one commit are two builds), HEAD, and a hash of every
    change (``git diff-index -p --binary HEAD``, so binary changes count) and of every untracked
    file's name and content; otherwise a hash of every file's path, size and mtime."""
    if (path / ".git").exists():
        git = [proc.require_tool("git"), *GIT_READ_ONLY, "-C", str(path)]
        head = proc.run([*git, "rev-parse", "HEAD"], timeout=60, check=False)
        if head.returncode == 0:
            digest = hashlib.sha256()
            diff = proc.run([*git, "diff-index", "-p", "--binary", "--no-ext-diff",
                             "--no-textconv", "HEAD"], timeout=600)
            digest.update(diff.stdout.encode(errors="surrogateescape"))
            untracked = proc.run([*git, "ls-files", "-z", "--others", "--exclude-standard"],
                                 timeout=600)
            for name in sorted(n for n in untracked.stdout.split("\0") if n):
                digest.update(f"\0untracked:{name}\0".encode())
                file = path / name
                if file.is_file() and not file.is_symlink():
                    digest.update(file.read_bytes())
            return f"git:{path}:{head.stdout.strip()}:{digest.hexdigest()[:16]}"
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            st = os.lstat(os.path.join(root, name))
            digest.update(f"{root}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return f"tree:{path}:{digest.hexdigest()[:32]}"


# --kernel debian:SERIES: the Debian suite whose linux-source-SERIES kbtf fetches.
DEBIAN_KERNELS: Mapping[str, str] = {
    "6.1": "bookworm",
    "6.12": "bookworm-security",
    "7.2": "sid",
}
DEFAULT_KERNEL = "debian:6.12"


@dataclass(frozen=True)
class DebianPackage:
    """A Debian source package a KernelSource is fetched from."""

    suite: str
    name: str  # linux-source-6.12
    version: str  # its Debian version: 6.12.57-1~deb12u1


def debian_source(cache_dir: Path, series: str) -> KernelSource:
    """Debian's linux-source-``series`` as the plan knows it: the package version the suite
    offers now (apt metadata, through kbtf's private apt configuration), and where its tree
    is, or will be once the fetch stage (builds/fetch.py) unpacked it. Downloads no package.

    Raises ConfigError naming the series on offer, or if the suite has no such package;
    CommandError if apt fails.
    """
    suite = DEBIAN_KERNELS.get(series)
    if suite is None:
        offered = ", ".join(f"debian:{s}" for s in DEBIAN_KERNELS)
        raise ConfigError(f"unknown kernel 'debian:{series}': use {offered} or a PATH to a "
                          "kernel tree")
    package = f"linux-source-{series}"
    pkg_version = provision.package_version(cache_dir, suite, package)
    if pkg_version is None:
        raise ConfigError(f"Debian {suite} has no {package} now: use another --kernel")
    tree = cache_dir / "src" / f"{package}_{pkg_version}" / package
    version = provision.upstream_version(pkg_version)
    return KernelSource(tree, version, f"deb:{package}={pkg_version}", f"debian{version}",
                        f"debian:{series}", DebianPackage(suite, package, pkg_version))


def resolve(spec: str, cache_dir: Path) -> KernelSource:
    """A kernel from a --kernel SPEC: 'debian:SERIES' or a PATH to a kernel tree.

    Raises ConfigError naming the valid specs.
    """
    if spec.startswith("debian:"):
        return debian_source(cache_dir, spec.removeprefix("debian:"))
    return local_source(Path(spec))
