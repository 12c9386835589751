"""pahole binaries: find them, read their version and supported BTF features."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from harness import proc
from harness.errors import CommandTimeout, ConfigError, HarnessError

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
    digest: str = ""  # content of the binary and the libraries it loads (content_digest);
    # empty until the binary exists (a pahole of the plan, not fetched yet)
    tag: str = ""  # tells it apart from another pahole of the same version in a run
    # where a pahole of the plan comes from, when it is not on disk yet: "deb" (Debian's, its
    # spec names its content) or "src" (a checkout, its build names its content)
    origin: str = ""

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
        libraries (Debian's 1.30, the system's 1.30 and a patched 1.30 differ here).

        Raises HarnessError for a pahole of the plan that was not fetched yet."""
        if not self.digest:
            raise HarnessError(f"pahole {self.spec} used before the fetch stage brought it")
        return f"{self.identity}:{self.digest}"

    @property
    def plan_key(self) -> str:
        """What tells paholes of a plan apart before any is fetched: Debian's by spec, the
        others (on disk already) by content."""
        return f"{self.origin}:{self.spec}:{self.build}" if self.origin else self.key


def distinct(paholes: Sequence[Pahole]) -> list[Pahole]:
    """``paholes`` once each (the same binary given twice counts once), and those that
    share a label but differ in content tagged with their content digest (Debian's: 'deb'),
    so every distinct pahole of a run has its own label (test ids, logs, results)."""
    first: dict[str, Pahole] = {}
    for p in paholes:
        first.setdefault(p.plan_key, p)
    names: dict[str, int] = {}
    for p in first.values():
        names[p.label] = names.get(p.label, 0) + 1
    return [replace(p, tag=p.origin or p.digest[:6]) if names[p.label] > 1 else p
            for p in first.values()]


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


def content_digest(binary: Path) -> str:
    """sha256 over ``binary`` and every shared object it loads, as its own dynamic loader
    resolves them (loaded_libraries): libbpf and libdw decide what pahole writes as much as
    pahole's own code. A library the loader does not find is recorded by name."""
    digest = hashlib.sha256(f"{binary.name}\0".encode() + binary.read_bytes())
    for name, path in loaded_libraries(binary):
        digest.update(f"{name}\0".encode() + (path.read_bytes() if path else b"missing\0"))
    return digest.hexdigest()[:16]


def loaded_libraries(binary: Path) -> list[tuple[str, Path | None]]:
    """(name, path, or None where not found) of each shared object ``binary`` loads, in the
    loader's order, from the loader itself (``LD_TRACE_LOADED_OBJECTS=1``: its RUNPATH,
    LD_LIBRARY_PATH, /etc/ld.so.conf.d, ld.so.cache, a patchelf'd interpreter). Empty for
    a file that is no dynamically linked ELF (a script, a static binary: never run)."""
    if not _has_interpreter(binary):
        return []
    out = proc.run([binary], env={"LD_TRACE_LOADED_OBJECTS": "1"}, timeout=PROBE_TIMEOUT,
                   check=False)
    return parse_loaded(out.stdout)


def parse_loaded(text: str) -> list[tuple[str, Path | None]]:
    """The libraries of the loader's trace (``name => /path (0x..)``, ``name => not found``,
    ``/path/ld-linux.so (0x..)``); the vDSO, which is no file, is left out."""
    found: list[tuple[str, Path | None]] = []
    for line in text.splitlines():
        m = re.fullmatch(r"\s*(\S+) => (?:(/\S+) \(0x[0-9a-f]+\)|not found)\s*", line)
        if m:
            found.append((m[1], Path(m[2]) if m[2] else None))
        elif m := re.fullmatch(r"\s*(/\S+) \(0x[0-9a-f]+\)\s*", line):
            found.append((Path(m[1]).name, Path(m[1])))
    return found


def _has_interpreter(path: Path) -> bool:
    """Whether ELF file ``path`` names a dynamic loader (PT_INTERP)."""
    with path.open("rb") as f:
        try:
            return any(seg["p_type"] == "PT_INTERP" for seg in ELFFile(f).iter_segments())
        except ELFError:
            return False


def system_pahole() -> Pahole:
    """The pahole on PATH. Raises ToolMissing naming the dwarves package."""
    return probe(Path(proc.require_tool("pahole")))
