"""pahole from a source checkout (a git clone of dwarves), as the plan knows it: its version,
its identity and where its build lands in the cache (builds/fetch.py builds it with cmake and
the embedded libbpf, once per content of the checkout).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from harness.errors import ConfigError

# Directories of a checkout that are not source (build trees, VCS data).
_NOT_SOURCE = {".git", "build", ".cache"}


def is_checkout(path: Path) -> bool:
    """Whether ``path`` looks like a pahole source tree (CMakeLists.txt and pahole.c)."""
    return (path / "CMakeLists.txt").is_file() and (path / "pahole.c").is_file()


def checkout_identity(src: Path) -> str:
    """A digest that changes when any source file of ``src`` changes (path, size, mtime)."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in _NOT_SOURCE and not d.startswith("build"))
        for name in sorted(files):
            path = Path(root) / name
            st = path.stat()
            digest.update(f"{path.relative_to(src)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def checkout_version(src: Path) -> str:
    """The version pahole built from ``src`` will print ("1.31"), from the
    DWARVES_MAJOR_VERSION/DWARVES_MINOR_VERSION definitions of its CMakeLists.txt.

    Raises ConfigError if they are not there.
    """
    text = (src / "CMakeLists.txt").read_text(errors="replace")
    major = re.search(r"-DDWARVES_MAJOR_VERSION=(\d+)", text)
    minor = re.search(r"-DDWARVES_MINOR_VERSION=(\d+)", text)
    if major is None or minor is None:
        raise ConfigError(f"pahole checkout {src}: its CMakeLists.txt defines no DWARVES_MAJOR_"
                          "VERSION/DWARVES_MINOR_VERSION: kbtf cannot tell its version")
    return f"{int(major[1])}.{int(minor[1])}"


def planned(src: Path, cache_dir: Path) -> tuple[Path, str]:
    """Where pahole built from checkout ``src`` is (or will be) in the cache, and the
    checkout's identity. Raises ConfigError if ``src`` lacks the embedded libbpf (submodule
    not checked out)."""
    if not (src / "lib" / "bpf" / "src").is_dir():
        raise ConfigError(f"pahole checkout {src} has no lib/bpf/src (the embedded libbpf): "
                          f"run 'git -C {src} submodule update --init'")
    key = checkout_identity(src)
    return cache_dir / "pahole" / f"src-{src.name}-{key}" / "build" / "pahole", key
