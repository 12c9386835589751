"""Things fetched from Debian's archive through a private apt configuration.

Never touches the machine's own apt sources or dpkg database: each suite gets its own
sources.list and lists dir under the cache, and packages are only downloaded and unpacked.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness import cacheentry, proc
from harness.errors import CommandError, ConfigError

MIRROR = "http://deb.debian.org/debian"
HOST_DEBARCH = "amd64"  # the machine's own: its apt states carry no architecture option
# Suites served from elsewhere than MIRROR.
MIRRORS = {"bookworm-security": "http://deb.debian.org/debian-security"}
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
APT_TIMEOUT = 900  # apt-get update or download from the archive (seen: 17 s)
UNPACK_TIMEOUT = 120  # dpkg-deb -x, patchelf
UPDATE_ATTEMPTS, UPDATE_RETRY_WAIT = 3, 30  # apt-get update against a mirror mid-sync


@dataclass(frozen=True)
class DebianPahole:
    """A pahole build Debian ships, and the packages it needs to run from a private prefix."""

    version: str
    suite: str
    packages: tuple[str, ...]  # the pahole package first, then its runtime libraries


_LIBS = ("libc6", "libgcc-s1", "zlib1g", "libzstd1", "liblzma5", "libbz2-1.0")
DEBIAN_PAHOLES: Mapping[str, DebianPahole] = {
    p.version: p
    for p in (
        DebianPahole("1.24", "bookworm", ("pahole", "libbpf1", "libdw1", "libelf1", *_LIBS)),
        DebianPahole("1.30", "trixie", ("pahole", "libbpf1", "libdw1t64", "libelf1t64", *_LIBS)),
        DebianPahole("1.32", "sid", ("pahole", "libdwarves1", "libbpf1", "libdw1t64",
                                     "libelf1t64", *_LIBS)),
    )
}


def apt_options(state: Path) -> list[str]:
    """apt-get -o options that confine apt to the private state dir ``state`` (and to its
    architecture, for a foreign-arch state)."""
    arch_file = state / "arch"
    foreign = (["-o", f"APT::Architecture={arch_file.read_text().strip()}"]
               if arch_file.is_file() else [])
    return [*foreign,
        "-o", f"Dir::Etc::SourceList={state / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={state / 'lists'}",
        "-o", f"Dir::State::status={state / 'status'}",
        "-o", f"Dir::Cache={state / 'cache'}",
        # apt's binary package cache, kept with the state (the host's config may turn it
        # off): a query of sid's lists takes 0.3 s with it, 4 s without
        "-o", "Dir::Cache::pkgcache=pkgcache.bin",
        "-o", "Debug::NoLocking=1",
        "-o", "APT::Sandbox::User=root",
    ]


def apt_state(cache_dir: Path, suite: str, debarch: str = HOST_DEBARCH,
              max_age: float = 86400) -> Path:
    """A private apt state for ``suite`` and Debian architecture ``debarch`` with package
    lists no older than ``max_age`` seconds (updated once a day by default)."""
    foreign = debarch != HOST_DEBARCH
    state = cache_dir / "apt" / (f"{suite}-{debarch}" if foreign else suite)
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    if foreign:
        (state / "arch").write_text(debarch + "\n")
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    mirror = MIRRORS.get(suite, MIRROR)
    # Written only when new: apt's package cache is valid while these keep their mtimes.
    sources = state / "sources.list"
    line = f"deb [signed-by={KEYRING}] {mirror} {suite} main\n"
    if not sources.is_file() or sources.read_text() != line:
        sources.write_text(line)
    if not (state / "status").exists():
        (state / "status").write_text("")
    stamp = state / "updated"
    if not stamp.exists() or time.time() - stamp.stat().st_mtime >= max_age:
        for attempt in range(1, UPDATE_ATTEMPTS + 1):
            try:
                proc.run(["apt-get", *apt_options(state), "update"],
                         logfile=state / "apt.log", timeout=APT_TIMEOUT)
                break
            except CommandError:
                # A mirror mid-sync serves an index of the wrong size for a while.
                if attempt == UPDATE_ATTEMPTS:
                    raise
                time.sleep(UPDATE_RETRY_WAIT)
        stamp.touch()
    return state


def suite_architectures(cache_dir: Path, suite: str, debarch: str = HOST_DEBARCH) -> list[str]:
    """The architectures ``suite``'s Release file says it offers (empty if unread)."""
    state = apt_state(cache_dir, suite, debarch)
    for release in sorted((state / "lists").glob("*_InRelease")):
        for line in release.read_text(errors="replace").splitlines():
            if line.startswith("Architectures: "):
                return line.removeprefix("Architectures: ").split()
    return []


def download(cache_dir: Path, suite: str, packages: tuple[str, ...], dest: Path,
             log: Path, debarch: str = HOST_DEBARCH) -> list[Path]:
    """Download ``packages`` (no dependencies) from Debian ``suite`` into ``dest``.

    Returns the .deb files. Raises CommandError (naming the log) if apt fails, e.g. on a
    package the suite does not have.
    """
    state = apt_state(cache_dir, suite, debarch)
    dest.mkdir(parents=True, exist_ok=True)
    proc.run(["apt-get", *apt_options(state), "download", *packages], cwd=dest, logfile=log,
             timeout=APT_TIMEOUT)
    return sorted(dest.glob("*.deb"))


def package_version(cache_dir: Path, suite: str, package: str,
                    debarch: str = HOST_DEBARCH) -> str | None:
    """The version of ``package`` that ``suite`` offers now (for ``debarch``), or None."""
    state = apt_state(cache_dir, suite, debarch)
    out = proc.run(["apt-cache", *apt_options(state), "show", "--no-all-versions", package],
                   timeout=APT_TIMEOUT, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("Version: "):
            return line.removeprefix("Version: ").strip()
    return None


def depends(cache_dir: Path, suite: str, package: str) -> list[str]:
    """The packages ``package`` of ``suite`` depends on now (first alternatives), read
    in kbtf's private apt state (apt-cache depends)."""
    state = apt_state(cache_dir, suite)
    out = proc.run(["apt-cache", *apt_options(state), "depends", "--no-recommends",
                    "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces",
                    "--no-enhances", package], timeout=APT_TIMEOUT, check=False)
    return [line.split(":", 1)[1].strip() for line in out.stdout.splitlines()
            if line.strip().startswith("Depends:")]


def package_names(cache_dir: Path, suite: str) -> list[str]:
    """Every package name ``suite`` offers (its package lists; for near-match hints)."""
    state = apt_state(cache_dir, suite)
    out = proc.run(["apt-cache", *apt_options(state), "pkgnames"], timeout=APT_TIMEOUT,
                   check=False)
    return out.stdout.split()


def upstream_version(deb_version: str) -> str:
    """The upstream part of a Debian version: '1:6.12.57-1~deb12u1' -> '6.12.57'."""
    return deb_version.split(":", 1)[-1].rsplit("-", 1)[0]


def make_tree(tree: Path, suite: str, debarch: str, packages: tuple[str, ...], variant: str,
              log: Path, timeout: float, foreign: tuple[str, ...] = ()) -> None:
    """A Debian ``suite`` tree of ``debarch`` at ``tree``, made by mmdebstrap with
    ``packages`` and their dependencies: ``variant`` extract (packages unpacked, no
    maintainer scripts: any architecture) or essential (the Essential set too, configured:
    the host's architecture). ``foreign`` architectures are enabled too (multiarch: a
    package 'libelf-dev:arm64' installs next to the native one). Raises ToolMissing,
    CommandError naming the log."""
    mmdebstrap = proc.require_tool("mmdebstrap")
    proc.run([mmdebstrap, f"--variant={variant}",
              f"--architectures={','.join((debarch, *foreign))}",
              f"--include={','.join(packages)}",
              "--aptopt=Acquire::Check-Valid-Until \"false\"",
              f"--keyring={KEYRING}", suite, tree, MIRRORS.get(suite, MIRROR)],
             logfile=log, timeout=timeout)


def debian_pahole_plan(cache_dir: Path, version: str) -> tuple[Path, str]:
    """Where Debian's pahole ``version`` is (or will be, once ``debian_pahole`` fetched it)
    and the upstream version of the package its suite offers now (apt metadata).

    Raises ConfigError listing the versions on offer, or when the suite ships another
    version now.
    """
    spec = _debian_pahole_spec(version)
    binary = cache_dir / "pahole" / f"debian-{version}" / "usr" / "bin" / "pahole"
    if binary.is_file():
        return binary, version
    offered = package_version(cache_dir, spec.suite, spec.packages[0])
    if offered is None or upstream_version(offered) != version:
        raise ConfigError(f"Debian {spec.suite} offers pahole {offered or '(none)'} now, not "
                          f"{version}: kbtf cannot provision debian:{version} any more")
    return binary, version


def _debian_pahole_spec(version: str) -> DebianPahole:
    """DEBIAN_PAHOLES' entry. Raises ConfigError listing the versions on offer."""
    spec = DEBIAN_PAHOLES.get(version)
    if spec is None:
        raise ConfigError(f"unknown pahole 'debian:{version}': kbtf can provision "
                          + ", ".join(f"debian:{v}" for v in DEBIAN_PAHOLES))
    return spec


def debian_pahole(cache_dir: Path, version: str) -> Path:
    """Path of Debian's pahole ``version``, downloaded and unpacked into the cache once.

    The binary is patched (patchelf) to use the dynamic loader and libraries of its own
    suite, unpacked next to it, so the host's libraries are never replaced.
    Raises ConfigError listing the versions on offer, CommandError if a step fails.
    """
    spec = _debian_pahole_spec(version)
    dest = cache_dir / "pahole" / f"debian-{version}"

    def fill(root: Path) -> None:
        log = root / "provision.log"
        debs = root / ".debs"
        for deb in download(cache_dir, spec.suite, spec.packages, debs, log):
            proc.run(["dpkg-deb", "-x", deb, root], logfile=log, timeout=UNPACK_TIMEOUT)
        shutil.rmtree(debs)
        _relocate(root, root / "usr" / "bin" / "pahole", dest, log)
        (root / ".complete").write_text(" ".join(spec.packages) + "\n")

    cacheentry.populate(dest, (dest / ".complete").exists, fill, "provision.log")
    return dest / "usr" / "bin" / "pahole"


def _relocate(root: Path, binary: Path, final_root: Path, log: Path) -> None:
    """Point ``binary`` at the loader and libraries unpacked under ``root``.

    Paths are written as they will be after ``root`` is renamed to ``final_root``.
    """
    loaders = [p for p in root.rglob("ld-linux-x86-64.so.2") if not p.is_symlink()]
    if not loaders:
        loaders = list(root.rglob("ld-linux-x86-64.so.2"))
    if not loaders:
        raise ConfigError(f"no dynamic loader unpacked under {root}")
    libdirs = sorted({str(p.parent) for p in root.rglob("*.so*") if p.is_file()})

    def final(path: str) -> str:
        return str(final_root / os.path.relpath(path, root))

    proc.run(["patchelf", "--set-interpreter", final(str(loaders[0])),
              "--set-rpath", ":".join(final(d) for d in libdirs), binary], logfile=log,
             timeout=UNPACK_TIMEOUT)


def debian_tool(cache_dir: Path, suite: str, package: str, binary: str) -> Path:
    """Path of ``binary`` from Debian ``suite``'s ``package``, downloaded and unpacked into
    the cache once, never installed: nothing runs at install, no service is started (what
    only tests need, e.g. docker-registry, which Debian's package starts on every interface).
    For self-contained programs only (no libraries are brought). Raises CommandError if a
    step fails, ConfigError if the package has no such program."""
    dest = cache_dir / "tools" / f"{suite}-{package}"
    program = dest / binary.lstrip("/")

    def fill(root: Path) -> None:
        log = root / "provision.log"
        debs = root / ".debs"
        for deb in download(cache_dir, suite, (package,), debs, log):
            proc.run(["dpkg-deb", "-x", deb, root], logfile=log, timeout=UNPACK_TIMEOUT)
        shutil.rmtree(debs)
        if not (root / binary.lstrip("/")).is_file():
            raise ConfigError(f"Debian {suite}'s {package} has no {binary}", log=log)
        (root / ".complete").write_text(package + "\n")

    cacheentry.populate(dest, (dest / ".complete").exists, fill, "provision.log")
    return program
