"""pahole binaries: find them, read their version and supported BTF features."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from harness import proc
from harness.errors import CommandTimeout, ConfigError

# pahole below this cannot encode split BTF: Kconfig drops DEBUG_INFO_BTF_MODULES.
MIN_SPLIT_BTF = 119
PROBE_TIMEOUT = 30  # pahole --version, --supported_btf_features


@dataclass(frozen=True)
class Pahole:
    """One pahole binary and what it can do."""

    path: Path
    version: str  # "1.24"
    features: tuple[str, ...]  # --supported_btf_features; empty before 1.26
    build: str = ""  # source builds: the checkout's identity (same version, other code)
    source: Path | None = None  # source builds: the checkout
    given: str = ""  # the --pahole SPEC it came from ("debian:1.30"), if any
    digest: str = ""  # content of the binary and the libraries it loads (content_digest)
    tag: str = ""  # tells it apart from another pahole of the same version in a run

    @property
    def code(self) -> int:
        """Version as Kconfig's CONFIG_PAHOLE_VERSION encodes it: 1.24 -> 124."""
        return version_code(self.version)

    @property
    def label(self) -> str:
        """Short name for test ids: pahole1.30, or pahole1.31-src<id> for a source build, with
        a content tag (pahole1.30-c3f2a1) when another pahole of the run has the same name."""
        name = f"pahole{self.version}" + (f"-src{self.build[:6]}" if self.build else "")
        return name + (f"-{self.tag}" if self.tag else "")

    @property
    def spec(self) -> str:
        """A --pahole SPEC that gives this pahole again."""
        return self.given or str(self.source or self.path)

    @property
    def identity(self) -> str:
        """Names the pahole in results: the version, and the checkout of a source build."""
        return self.version + (f"+src.{self.build}" if self.build else "")

    @property
    def key(self) -> str:
        """What a kernel build depends on: identity plus the content of the binary and its
        libraries (Debian's 1.30, the system's 1.30 and a patched 1.30 differ here)."""
        return f"{self.identity}:{self.digest}"


def distinct(paholes: Sequence[Pahole]) -> list[Pahole]:
    """``paholes`` once each (the same binary given twice counts once), and those that
    share a label but differ in content tagged with their content digest, so every distinct
    pahole of a run has its own label (test ids, logs, results)."""
    first: dict[str, Pahole] = {}
    for p in paholes:
        first.setdefault(p.key, p)
    names: dict[str, int] = {}
    for p in first.values():
        names[p.label] = names.get(p.label, 0) + 1
    return [replace(p, tag=p.digest[:6]) if names[p.label] > 1 else p for p in first.values()]


def parse_version(text: str) -> str:
    """'v1.24' (pahole --version output) -> '1.24'.

    Raises ConfigError if the text is not a pahole version line.
    """
    m = re.fullmatch(r"\s*v(\d+)\.(\d+)\s*", text)
    if not m:
        first = (text.strip().splitlines() or [""])[0][:60]
        raise ConfigError(f"not a pahole: --version printed {first!r}, want e.g. 'v1.30'")
    return f"{int(m[1])}.{int(m[2])}"


def version_code(version: str) -> int:
    """'1.24' -> 124, the way scripts/pahole-version.sh computes it."""
    major, minor = (int(x) for x in version.split("."))
    return major * 100 + minor


def parse_features(text: str) -> tuple[str, ...]:
    """Features from `pahole --supported_btf_features` (comma-separated)."""
    return tuple(f for f in re.split(r"[,\s]+", text.strip()) if f)


def probe(path: Path) -> Pahole:
    """Run ``path --version`` and ``--supported_btf_features``.

    Raises ConfigError if ``path`` is not a runnable pahole.
    """
    version, features = query([str(path)], str(path))
    return Pahole(path, version, features, digest=content_digest(path))


def query(command: Sequence[str], name: str) -> tuple[str, tuple[str, ...]]:
    """Version and supported BTF features of the pahole that ``command`` runs (its argv
    without arguments: a path, or a wrapper ending in one); ``name`` names it in errors.

    Raises ConfigError if it is not a runnable pahole.
    """
    try:
        out = proc.run([*command, "--version"], timeout=PROBE_TIMEOUT, check=False)
        if out.returncode != 0:
            raise ConfigError(f"pahole {name} --version failed: {out.stderr.strip()[:200]}")
        try:
            version = parse_version(out.stdout)
        except ConfigError as exc:
            raise ConfigError(f"pahole {name}: {exc}") from None
        features: tuple[str, ...] = ()
        if version_code(version) >= 126:
            feat = proc.run([*command, "--supported_btf_features"], timeout=PROBE_TIMEOUT,
                            check=False)
            if feat.returncode == 0:
                features = parse_features(feat.stdout)
    except OSError as exc:
        raise ConfigError(f"pahole {name} is not runnable: {exc.strerror}") from None
    except CommandTimeout as exc:
        raise ConfigError(f"pahole {name} hung answering a query: {exc}") from None
    return version, features


# Where the dynamic loader looks after RUNPATH (Debian, multiarch).
_LIB_DIRS = (Path("/lib/x86_64-linux-gnu"), Path("/usr/lib/x86_64-linux-gnu"), Path("/lib"),
             Path("/usr/lib"))


def content_digest(binary: Path) -> str:
    """sha256 over ``binary`` and every shared library it loads, found the way the loader
    finds them (DT_RUNPATH/DT_RPATH, then the system dirs), recursively: libbpf and libdw
    decide what pahole writes as much as pahole's own code. A library not found is
    recorded by name."""
    digest = hashlib.sha256()
    seen: set[str] = set()
    todo = [binary]
    while todo:
        path = todo.pop(0)
        digest.update(f"{path.name}\0".encode() + path.read_bytes())
        needed, search = _dynamic(path)
        for name in needed:
            if name in seen:
                continue
            seen.add(name)
            found = next((d / name for d in (*search, *_LIB_DIRS) if (d / name).is_file()),
                         None)
            if found is None:
                digest.update(f"missing:{name}\0".encode())
            else:
                todo.append(found.resolve())
    return digest.hexdigest()[:16]


def _dynamic(path: Path) -> tuple[list[str], list[Path]]:
    """DT_NEEDED names and DT_RUNPATH/DT_RPATH dirs of ELF file ``path`` ($ORIGIN expanded)."""
    with path.open("rb") as f:
        try:
            elf = ELFFile(f)
        except ELFError:  # a wrapper script, say: its content is all there is
            return [], []
        section = elf.get_section_by_name(".dynamic")
        if not isinstance(section, DynamicSection):
            return [], []
        needed, search = [], []
        for tag in section.iter_tags():
            if tag.entry.d_tag == "DT_NEEDED":
                needed.append(tag.needed)  # type: ignore[attr-defined]
            elif tag.entry.d_tag in ("DT_RUNPATH", "DT_RPATH"):
                runpath: str = getattr(tag, "runpath" if tag.entry.d_tag == "DT_RUNPATH"
                                       else "rpath")
                search += [Path(d.replace("$ORIGIN", str(path.parent)))
                           for d in runpath.split(":") if d]
        return needed, search


def system_pahole() -> Pahole:
    """The pahole on PATH. Raises ToolMissing naming the dwarves package."""
    return probe(Path(proc.require_tool("pahole")))
