"""Build roots: another Debian release's compiler, make and pahole, for headers packages
this machine cannot build against (trixie's need gcc-14 and kbuild programs linked against
glibc 2.38; bookworm has gcc-12 and 2.36).

A root is made once per suite and package set by mmdebstrap (essential variant: the
maintainer scripts run, so `awk` and friends exist) into the cache, built in a temp dir and
renamed. Commands run inside it with bubblewrap; the host dirs a build reads and writes
(the unpacked packages, the module copy) are bound at their own paths, so every absolute
path in the headers tree and the logs means the same inside and out.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import cacheentry, proc, provision
from harness.arches import LLVM_KBUILD_PROGRAMS, LLVM_MORE_PROGRAMS, Toolchain
from harness.plan import pahole, toolchain
from harness.plan.pahole import Pahole

# What kbuild runs beyond the Essential set and the headers' own dependencies.
BASE_PACKAGES = ("make", "mawk")
ROOT_TIMEOUT = 1800  # mmdebstrap, download and configure (17 s measured for trixie)
QUERY_TIMEOUT = 60  # a `command -v` inside the root
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Top-level host dirs a root keeps its own of; every other one (/root, /home, /tmp, /work,
# ...) is the host's, so a wrapped program sees the host's trees at their own paths.
SYSTEM_DIRS = frozenset({"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32",
                         "proc", "run", "sbin", "sys", "usr", "var"})


@dataclass(frozen=True)
class BuildRoot:
    """A Debian tree to build in, and the host dirs every command inside it sees."""

    tree: Path
    suite: str
    binds: tuple[Path, ...] = ()

    def command(self, argv: Sequence[str | Path], binds: Sequence[Path] = ()) -> list[str]:
        """``argv`` run inside the root (bwrap), with ``binds`` and the root's own binds at
        their host paths; the process dies with its parent. Raises ToolMissing."""
        bwrap = proc.require_tool("bwrap")
        args = [bwrap, "--bind", str(self.tree), "/", "--dev", "/dev", "--proc", "/proc",
                "--tmpfs", "/tmp", "--unshare-pid", "--die-with-parent",
                "--setenv", "PATH", PATH]
        for path in (*self.binds, *binds):
            args += ["--bind", str(path), str(path)]  # bwrap makes the mount point
        return [*args, "--remount-ro", "/", "--", *(str(a) for a in argv)]

    def wrapper(self, program: str, binds: Sequence[Path] = ()) -> str:
        """A shell script that runs the root's ``program`` with the script's arguments,
        stdin and working directory (which must lie in ``binds``): a host build calls it in
        place of a compiler the host has not got."""
        argv = self.command([program], binds)
        head, tail = argv[:-2], argv[-2:]  # tail: "--", program
        return ("#!/bin/sh\n# kbtf: " + program + f" of the {self.suite} build root\n"
                f'exec {shlex.join(head)} --chdir "$PWD" {shlex.join(tail)} "$@"\n')

    def install_wrappers(self, bin_dir: Path, programs: Sequence[str],
                         binds: Sequence[Path]) -> None:
        """A wrapper script (``wrapper``) per program in ``bin_dir``, each written whole
        (temp file + rename: concurrent workers write the same text)."""
        bin_dir.mkdir(parents=True, exist_ok=True)
        for program in programs:
            tmp = bin_dir / f".{program}.{os.getpid()}"
            tmp.write_text(self.wrapper(program, binds))
            tmp.chmod(0o755)
            tmp.replace(bin_dir / program)

    def has_program(self, name: str) -> bool:
        """Whether ``name`` is on the root's PATH."""
        res = proc.run(self.command(["sh", "-c", 'command -v "$1"', "sh", name]),
                       timeout=QUERY_TIMEOUT, check=False)
        return res.returncode == 0

    def pahole(self) -> Pahole:
        """The root's pahole (the one its module builds run). Raises ConfigError if it has
        none that answers."""
        path = self.tree / "usr" / "bin" / "pahole"
        version, features = pahole.query(self.command(["pahole"]), str(path))
        return Pahole(path, version, features)


def ensure(cache_dir: Path, suite: str, packages: Sequence[str],
           foreign: tuple[str, ...] = ()) -> BuildRoot:
    """The build root of ``suite`` holding ``packages`` (and BASE_PACKAGES; 'name:arch' for
    a ``foreign`` architecture's), made once into ``cache_dir``/buildroots. Raises
    ToolMissing, CommandError naming mmdebstrap's log."""
    wanted = tuple(sorted({*BASE_PACKAGES, *packages}))
    facts: dict[str, object] = {"suite": suite, "packages": wanted, "version": 1}
    if foreign:
        facts["foreign"] = foreign
    key = hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]
    final = cache_dir / "buildroots" / f"{suite}-{key}"

    def fill(tmp: Path) -> None:
        provision.make_tree(tmp / "tree", suite, provision.HOST_DEBARCH, wanted, "essential",
                            tmp / "root.log", ROOT_TIMEOUT, foreign)
        (tmp / "packages").write_text("\n".join(wanted) + "\n")

    cacheentry.populate(final, (final / "packages").exists, fill, "root.log")
    return BuildRoot(final / "tree", suite)


def llvm_packages(version: int) -> tuple[str, ...]:
    """Debian's packages of LLVM ``version``: clang-N, llvm-N (llc, llvm-strip), lld-N."""
    return (f"clang-{version}", f"llvm-{version}", f"lld-{version}")


def host_dirs() -> tuple[Path, ...]:
    """The host's top-level dirs that are not SYSTEM_DIRS (real dirs, not links)."""
    return tuple(p for p in sorted(Path("/").iterdir())
                 if p.name not in SYSTEM_DIRS and p.is_dir() and not p.is_symlink())


def provide_toolchain(chain: Toolchain, cache_dir: Path) -> None:
    """For an LLVM ``chain`` of a suite's build root: make the root once (its LLVM; a
    kernel build is freestanding), write wrappers for every program kbuild runs (seeing the host's
    non-system dirs) and put them first on this process's PATH, which builds and the
    version queries of its children inherit. Nothing for a host toolchain. Raises
    ToolMissing, CommandError naming mmdebstrap's log."""
    if not chain.suite:
        return
    root = ensure(cache_dir, chain.suite, llvm_packages(chain.version))
    bin_dir = root.tree.parent / "host-bin"
    programs = [chain.tool(p) for p in (*LLVM_KBUILD_PROGRAMS, *LLVM_MORE_PROGRAMS)]
    root.install_wrappers(bin_dir, programs, host_dirs())
    path = os.environ.get("PATH", "").split(os.pathsep)
    if str(bin_dir) not in path:
        os.environ["PATH"] = os.pathsep.join([str(bin_dir), *path])
        wrapped = os.environ.get(toolchain.WRAPPERS_ENV, "")
        os.environ[toolchain.WRAPPERS_ENV] = os.pathsep.join(filter(None, [wrapped, str(bin_dir)]))
