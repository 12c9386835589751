"""--module SPECs: out-of-tree module directories to check, with their load parameters, and
the order their .ko files load in (from the depends= of their .modinfo)."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from harness import provision
from harness.errors import ConfigError
from harness.plan import dkmsconf

# kbtf's own module the generic checks always cover (one code path for every module).
OWN_MODULES = ("modules/kbtf_hello",)


@dataclass(frozen=True)
class DkmsSource:
    """Where a --dkms package comes from: Debian's package (downloaded into the cache by
    the fetch stage) or, with no package, the user's directory holding a dkms.conf."""

    package: str = ""  # Debian's package name, e.g. v4l2loopback-dkms
    suite: str = ""
    version: str = ""  # the package version the suite offers


@dataclass(frozen=True)
class ModuleSpec:
    """A module directory to build and check, and what insmod needs."""

    path: Path  # the directory (Kbuild or Makefile with obj-m, or a dkms.conf); never written
    params: tuple[str, ...] = ()  # "param=value" for insmod, every .ko of the directory
    dkms: DkmsSource | None = None  # built by dkms (--dkms)

    @property
    def name(self) -> str:
        """Names the module in test ids: the directory's name, a DKMS package's name (with
        its suite when not DKMS_SUITE: trixie-v4l2loopback-dkms)."""
        if self.dkms and self.dkms.package:
            d = self.dkms
            return d.package if d.suite == DKMS_SUITE else f"{d.suite}-{d.package}"
        return self.path.name

    @property
    def spec(self) -> str:
        """The --module (or --dkms) SPEC that gives it again."""
        if self.dkms is not None:
            return (f"{self.dkms.suite}:{self.dkms.package}" if self.dkms.package
                    else str(self.path))
        return ":".join([str(self.path), *self.params])


def parse_spec(text: str, repo: Path) -> ModuleSpec:
    """'PATH[:param=value[:param=value...]]' -> ModuleSpec (relative paths: from the
    working directory, else from the repository).

    Raises ConfigError if the directory is missing, has no Kbuild or Makefile, or a link
    leading out of it (before any build).
    """
    path_text, *params = text.split(":")
    bad = [p for p in params if not re.fullmatch(r"[A-Za-z_]\w*=\S*", p)]
    if bad:
        raise ConfigError(f"--module {text}: '{bad[0]}' is not param=value (use "
                          "--module PATH:param=value[:param=value]")
    path = Path(path_text).expanduser()
    if not path.is_absolute() and not path.exists() and (repo / path).exists():
        path = repo / path
    path = path.resolve()
    if not path.is_dir():
        raise ConfigError(f"--module {path_text}: no such directory; pass an out-of-tree "
                          "module's directory")
    # Whether it builds modules is kbuild's to say (7.x's test_kmods add theirs to obj-m in
    # a $(foreach): a build that makes no .ko fails saying so); only a dir without any
    # kbuild file is refused here.
    if not any((path / n).is_file() for n in ("Kbuild", "Makefile")):
        raise ConfigError(f"--module {path}: no Kbuild or Makefile: not an out-of-tree "
                          "module directory")
    check_links(path)
    return ModuleSpec(path, tuple(params))


def check_links(src: Path) -> None:
    """Raises ConfigError for a symlink in module dir ``src`` that leaves it, leads nowhere
    or into a loop (a link to a directory holding it, links that lead to each other): kbtf
    copies the module, each link as what it names, and never follows a link out of it."""
    top = src.resolve()
    for root, dirs, files in os.walk(src):
        for name in [*dirs, *files]:
            link = Path(root) / name
            if not link.is_symlink():
                continue
            try:
                target = link.resolve(strict=False)
            except (RuntimeError, OSError):  # a link to itself (3.11: RuntimeError)
                target = None
            if target is None or not target.exists() or not target.is_relative_to(top):
                raise ConfigError(f"--module {src}: {link.relative_to(src)} links to "
                                  f"{target or os.readlink(link)}, outside the module directory "
                                  "(or nowhere, or to itself): copy what it points to into "
                                  "the module, or pass the directory that holds both")
    _no_loop(src, src, [top])


def _no_loop(src: Path, at: Path, seen: list[Path]) -> None:
    """Raises ConfigError when copying ``at`` (in module dir ``src``) as kbtf copies it,
    each link as what it names, would come back into a directory it is copying (``seen``:
    the real paths of the directories on the way)."""
    for entry in sorted(at.iterdir()):
        if not entry.is_dir():
            continue
        real = entry.resolve()
        if real in seen:
            raise ConfigError(f"--module {src}: {entry.relative_to(src)} leads back into "
                              f"{real}, which holds it: a loop of links kbtf cannot copy; "
                              "remove the link")
        _no_loop(src, entry, [*seen, real])


def module_name(ko: Path) -> str:
    """The kernel's name for a .ko: its file stem with '-' as '_'."""
    return ko.name.removesuffix(".ko").replace("-", "_")


def depends(ko: Path) -> tuple[str, ...]:
    """The modules ``ko`` depends on, from the depends= entry of its .modinfo."""
    with ko.open("rb") as fh:
        section = ELFFile(fh).get_section_by_name(".modinfo")
        data = section.data() if section is not None else b""
    for entry in data.split(b"\0"):
        if entry.startswith(b"depends="):
            return tuple(d for d in entry[8:].decode().split(",") if d)
    return ()


def load_order(kos: list[Path]) -> tuple[list[Path], dict[str, tuple[str, ...]]]:
    """``kos`` ordered so that every module comes after the ones it depends on, and, per
    module, the dependencies none of ``kos`` provides (they must come from the kernel)."""
    by_name = {module_name(k): k for k in kos}
    ordered: list[Path] = []
    outside: dict[str, tuple[str, ...]] = {}
    visiting: set[str] = set()

    def visit(name: str) -> None:
        ko = by_name[name]
        if ko in ordered or name in visiting:
            return
        visiting.add(name)
        deps = depends(ko)
        outside[name] = tuple(d for d in deps if d not in by_name)
        for dep in deps:
            if dep in by_name:
                visit(dep)
        ordered.append(ko)

    for name in by_name:
        visit(name)
    return ordered, outside


# The suite --dkms PACKAGE comes from unless the SPEC names one (SUITE:PACKAGE): the
# machine's own release.
DKMS_SUITE = "bookworm"


def parse_dkms(text: str, cache: Path) -> ModuleSpec:
    """A --dkms SPEC: a directory holding a dkms.conf, or a Debian package name
    ([SUITE:]PACKAGE, its version from the suite's package list: nothing downloaded).

    Raises ConfigError (one line): a directory without dkms.conf, a dkms.conf bash cannot
    parse, a package the suite does not have (with near names).
    """
    path = Path(text).expanduser()
    if path.is_dir() or "/" in text:
        if not (path / "dkms.conf").is_file():
            raise ConfigError(f"--dkms {text}: no dkms.conf in it: pass a DKMS package's "
                              "source directory or a Debian package name")
        dkmsconf.check_syntax(path / "dkms.conf")  # bash -n: nothing of it runs here
        dkmsconf.read(path / "dkms.conf")  # plain assignments checked; the rest in the build
        check_links(path)
        return ModuleSpec(path.resolve(), dkms=DkmsSource())
    suite, _, package = text.rpartition(":")
    suite = suite or DKMS_SUITE
    version = provision.package_version(cache, suite, package)
    if version is None:
        near = difflib.get_close_matches(package, provision.package_names(cache, suite), 3)
        raise ConfigError(f"--dkms {text}: Debian {suite} has no package {package!r}"
                          + (f" (near: {', '.join(near)})" if near else ""))
    dest = cache / "dkms" / f"{suite}-{package}_{version}"
    return ModuleSpec(dest, dkms=DkmsSource(package, suite, version))
