"""pahole from a source checkout (a git clone of dwarves): built with cmake and the embedded
libbpf into the cache, once per content of the checkout.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from harness import cacheentry, proc
from harness.errors import CommandError, ConfigError

# Directories of a checkout that are not source (build trees, VCS data).
_NOT_SOURCE = {".git", "build", ".cache"}
CMAKE_TIMEOUT = 1800  # configure, or build pahole and its embedded libbpf (~1 min)


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


def cmake_argvs(src: Path, build: Path, jobs: int) -> list[list[str]]:
    """The configure and build command lines for ``src`` in ``build``.

    $ORIGIN rpaths keep the binary working after the build dir is renamed into the cache.
    GIT_SUBMODULE=OFF: dwarves' CMakeLists.txt otherwise runs `git submodule update --init`
    in the checkout, resetting the user's lib/bpf (and after its identity was taken).
    """
    return [
        ["cmake", "-S", str(src), "-B", str(build), "-DGIT_SUBMODULE=OFF", "-DLIBBPF_EMBEDDED=ON",
         "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-D__LIB=lib", "-DCMAKE_BUILD_RPATH_USE_ORIGIN=ON"],
        ["cmake", "--build", str(build), "--target", "pahole", "-j", str(jobs)],
    ]


def build_checkout(src: Path, cache_dir: Path) -> tuple[Path, str]:
    """Build pahole from checkout ``src`` (once per identity): (the binary, the identity).

    Raises ConfigError if ``src`` lacks the embedded libbpf (submodule not checked out),
    ToolMissing if cmake is absent, CommandError (naming the log) if the build fails.
    """
    if not (src / "lib" / "bpf" / "src").is_dir():
        raise ConfigError(f"pahole checkout {src} has no lib/bpf/src (the embedded libbpf): "
                          f"run 'git -C {src} submodule update --init'")
    proc.require_tool("cmake")
    key = checkout_identity(src)
    dest = cache_dir / "pahole" / f"src-{src.name}-{key}"
    binary = dest / "build" / "pahole"

    def fill(tmp: Path) -> None:
        for argv in cmake_argvs(src, tmp / "build", os.cpu_count() or 1):
            proc.run(argv, logfile=tmp / "build.log", timeout=CMAKE_TIMEOUT)
        if not (tmp / "build" / "pahole").is_file():
            raise CommandError(f"cmake built no pahole binary from {src}", log=tmp / "build.log")

    cacheentry.populate(dest, binary.is_file, fill, "build.log")
    return binary, key
