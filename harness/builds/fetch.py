"""The fetch stage: what the plan names and the disk lacks, brought into the cache once --
Debian's kernel sources (unpacked), Debian's paholes (provisioned), paholes from checkouts
(built), a build root's clang (made, its wrappers put on PATH) -- then every pahole probed,
and the facts only a tree can tell checked before any kernel build: its module-BTF rules
and the clang it accepts. The controller runs it with progress before its workers start;
a worker runs it again and finds everything in place.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from harness import cacheentry, proc, provision
from harness.btf.btfexpect import read_rules
from harness.builds import buildroot, cacheremote, dkmsbuild
from harness.errors import CommandError, ConfigError
from harness.plan import pahole, pahole_src, toolchain
from harness.plan.ksource import KernelSource, makefile_version
from harness.plan.matrix import MatrixPoint
from harness.plan.usermod import ModuleSpec

UNPACK_TIMEOUT = 900  # dpkg-deb -x, tar -xf of a kernel tarball (~1 min)
CMAKE_TIMEOUT = 1800  # configure, or build pahole and its embedded libbpf (~1 min)

Progress = Callable[[str], None]


def fetch(points: Sequence[MatrixPoint], cache: Path, say: Progress) -> list[MatrixPoint]:
    """``points`` with everything they name on disk and their paholes probed (same ids).

    Raises ConfigError (a tree kbtf cannot read, a clang the tree refuses, a fetched thing
    that is not what the plan said), CommandError naming the log of a failed step.
    """
    for source in dict.fromkeys(p.kernel.source for p in points):
        fetch_source(source, cache, say)
        read_rules(source.path)
    for p in points:
        p.kernel.requested()  # its fragments (a BPF CI config: the tree's) read and merged
    for chain, tree, arch in dict.fromkeys(
            (p.kernel.toolchain, p.kernel.source.path, p.kernel.arch) for p in points):
        buildroot.provide_toolchain(chain, cache)
        toolchain.check_minimum(chain, tree, arch)
    got = {ph.plan_key: fetch_pahole(ph, cache, say) for ph in _paholes(points)}
    return [replace(p, kernel=replace(p.kernel, pahole=got[p.kernel.pahole.plan_key]),
                    module_pahole=got[p.module_pahole.plan_key]) for p in points]


def _paholes(points: Iterable[MatrixPoint]) -> list[pahole.Pahole]:
    found = {ph.plan_key: ph for p in points for ph in (p.kernel.pahole, p.module_pahole)}
    return list(found.values())


def fetch_source(source: KernelSource, cache: Path, say: Progress) -> None:
    """Unpack Debian's linux-source package of ``source`` into its cache entry once (temp
    dir + rename, under a lock: workers share one copy; or pulled from the run's cache
    remote); nothing for a user's tree. Nothing is installed on the machine.

    Raises CommandError naming the log if apt or tar fails; ConfigError if the tree's
    Makefile is of another version than the package said.
    """
    deb = source.deb
    if deb is None:
        return
    dest = source.path.parent

    def fill(tmp: Path) -> None:
        say(f"kbtf: fetching {deb.name} {deb.version} from Debian {deb.suite} into {dest}")
        log = tmp / "fetch.log"
        debs = provision.download(cache, deb.suite, (f"{deb.name}={deb.version}",),
                                  tmp / ".debs", log)
        proc.run(["dpkg-deb", "-x", debs[0], tmp / ".deb"], logfile=log, timeout=UNPACK_TIMEOUT)
        tarball = tmp / ".deb" / "usr" / "src" / f"{deb.name}.tar.xz"
        proc.run(["tar", "-C", tmp, "-xf", tarball], logfile=log, timeout=UNPACK_TIMEOUT)
        shutil.rmtree(tmp / ".deb")
        shutil.rmtree(tmp / ".debs")
        (tmp / ".complete").write_text(f"{deb.name} {deb.version} from {deb.suite}\n")

    cacheremote.populate(dest, lambda d: (d / ".complete").exists(), fill, "fetch.log", say)
    found = makefile_version((source.path / "Makefile").read_text(errors="replace"))
    if found != source.version:
        raise ConfigError(f"{source.path}/Makefile is version {found}, but {deb.name} "
                          f"{deb.version} promised {source.version}: remove {dest} and rerun")


def fetch_pahole(ph: pahole.Pahole, cache: Path, say: Progress) -> pahole.Pahole:
    """``ph`` on disk and probed: Debian's provisioned, a checkout's built (each once, into
    the cache); a pahole already probed is returned as it is.

    Raises ConfigError if the binary prints another version than the plan said; what
    provision.debian_pahole and build_checkout raise.
    """
    if ph.digest:
        return ph
    if ph.origin == "deb":
        if not ph.path.is_file():
            say(f"kbtf: fetching Debian's pahole {ph.version} into the cache")
        path = provision.debian_pahole(cache, ph.version)
    elif ph.source is not None:
        if not ph.path.is_file():
            say(f"kbtf: building pahole from {ph.source} (cmake)")
        path, _ = build_checkout(ph.source, cache)
    else:
        path = ph.path
    probed = pahole.probe(path)
    if probed.version != ph.version:
        raise ConfigError(f"pahole {ph.spec} prints version {probed.version}, the plan said "
                          f"{ph.version}")
    return replace(probed, build=ph.build, source=ph.source, given=ph.given, tag=ph.tag,
                   origin=ph.origin)


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
    binary, key = pahole_src.planned(src, cache_dir)
    proc.require_tool("cmake")
    dest = binary.parent.parent

    def fill(tmp: Path) -> None:
        for argv in cmake_argvs(src, tmp / "build", os.cpu_count() or 1):
            proc.run(argv, logfile=tmp / "build.log", timeout=CMAKE_TIMEOUT)
        if not (tmp / "build" / "pahole").is_file():
            raise CommandError(f"cmake built no pahole binary from {src}", log=tmp / "build.log")

    cacheentry.populate(dest, binary.is_file, fill, "build.log")
    return binary, key


def fetch_dkms(specs: list[ModuleSpec], cache: Path, say: Callable[[str], None]
               ) -> list[ModuleSpec]:
    """``specs`` with each Debian DKMS package downloaded and unpacked into the cache (once)
    and pointing at its source dir. Raises ConfigError, CommandError naming the log."""
    fetched = []
    for spec in specs:
        d = spec.dkms
        if d is not None and d.package:
            if not spec.path.is_dir():
                say(f"kbtf: fetching {d.package} {d.version} from Debian {d.suite}")
            spec = replace(spec, path=dkmsbuild.fetch_package(cache, d.suite, d.package,
                                                              d.version, spec.path))
        fetched.append(spec)
    return fetched
