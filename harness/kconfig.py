"""Pure Kconfig model: parse fragments, merge them, validate a .config. No subprocess."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(\"(?:[^\"\\]|\\.)*\"|[^\s#]+)\s*(?:#.*)?$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set\s*(?:#.*)?$")

# Why an option is commonly dropped by olddefconfig, for the error message.
DROP_HINTS: Mapping[str, str] = {
    "CONFIG_DEBUG_INFO_BTF": "pahole missing or < 1.16, or BPF_SYSCALL/DEBUG_INFO off",
    "CONFIG_DEBUG_INFO_BTF_MODULES": "pahole missing or < 1.19 (PAHOLE_HAS_SPLIT_BTF)",
    "CONFIG_PAHOLE_HAS_SPLIT_BTF": "pahole missing or < 1.19",
    "CONFIG_IKHEADERS": "needs SYSFS (and MODULES for =m)",
    "CONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT": "needs DEBUG_KERNEL",
    "CONFIG_KPROBES": "needs MODULES or HAVE_KPROBES on this arch",
}


@dataclass(frozen=True)
class Option:
    """One requested setting and the fragment it came from."""

    name: str  # CONFIG_FOO
    value: str  # "y", "m", "n", a number or a quoted string
    source: str  # fragment file (or "command line") that set it


def parse(text: str, source: str) -> dict[str, Option]:
    """Parse fragment/.config text into options; ``# CONFIG_X is not set`` means "n".

    Trailing ``# comments`` after a value are allowed. Raises ConfigError on a
    line that is neither a comment nor an assignment, naming file and line.
    """
    out: dict[str, Option] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if m := _UNSET.match(line):
            out[m[1]] = Option(m[1], "n", source)
        elif m := _SET.match(line):
            out[m[1]] = Option(m[1], m[2], source)
        elif line and not line.startswith("#"):
            raise ConfigError(f"{source}:{lineno}: not a kconfig line: {raw!r}")
    return out


def parse_file(path: Path) -> dict[str, Option]:
    """Parse one fragment file. Raises ConfigError if it cannot be read."""
    try:
        return parse(path.read_text(), str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read kconfig fragment {path}: {exc.strerror}") from None


def parse_user_item(item: str) -> dict[str, Option]:
    """Parse a --kconfig-add value: ``CONFIG_X=y`` or a fragment file path.

    Raises ConfigError if it is neither.
    """
    if item.startswith("CONFIG_"):
        return parse(item, "command line")
    path = Path(item)
    if not path.is_file():
        raise ConfigError(
            f"--kconfig-add {item!r}: not a file and not CONFIG_X=value"
        )
    return parse_file(path)


def merge(fragments: Iterable[Mapping[str, Option]]) -> dict[str, Option]:
    """Merge project fragments in order; the same option with two values is a conflict.

    Raises ConfigError naming both fragments on a conflict.
    """
    merged: dict[str, Option] = {}
    for frag in fragments:
        for name, opt in frag.items():
            old = merged.get(name)
            if old is not None and old.value != opt.value:
                raise ConfigError(
                    f"kconfig conflict: {name}={old.value} in {old.source} "
                    f"but {name}={opt.value} in {opt.source}"
                )
            merged[name] = opt
    return merged


def apply_overrides(
    base: Mapping[str, Option], overrides: Iterable[Mapping[str, Option]]
) -> dict[str, Option]:
    """Apply user fragments on top of the merged project fragments: users win."""
    out = dict(base)
    for frag in overrides:
        out.update(frag)
    return out


def render(options: Mapping[str, Option]) -> str:
    """Render options as a clean fragment for scripts/kconfig/merge_config.sh."""
    lines = []
    for opt in sorted(options.values(), key=lambda o: o.name):
        if opt.value == "n":
            lines.append(f"# {opt.name} is not set")
        else:
            lines.append(f"{opt.name}={opt.value}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Dropped:
    """A requested option that the final .config does not honour."""

    option: Option
    actual: str  # value in .config ("n" when absent)
    known: bool  # False: no Kconfig file in the tree defines the symbol

    def describe(self) -> str:
        """One line: what was asked, what happened, the likely cause."""
        name = self.option.name.removeprefix("CONFIG_")
        if not self.known:
            why = "unknown symbol: no Kconfig in this tree defines it (misspelt or renamed?)"
        else:
            hint = DROP_HINTS.get(self.option.name, "probably an unsatisfied dependency")
            why = f"got {self.actual}: {hint}"
        return f"{name}={self.option.value} (from {self.option.source}) dropped: {why}"


def missing_after(
    requested: Mapping[str, Option], final: Mapping[str, Option], known_symbols: set[str]
) -> list[Dropped]:
    """Every requested option whose value is not in the final .config, in name order.

    ``known_symbols`` are the names (without CONFIG_) defined in the tree's Kconfig files.
    """
    dropped = []
    for name, opt in sorted(requested.items()):
        actual = final[name].value if name in final else "n"
        if actual != opt.value:
            known = name.removeprefix("CONFIG_") in known_symbols
            dropped.append(Dropped(opt, actual, known))
    return dropped


_SYMBOL = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$", re.MULTILINE)


def kconfig_symbols(kconfig_texts: Iterable[str]) -> set[str]:
    """Symbols defined by ``config X``/``menuconfig X`` in the given Kconfig texts."""
    out: set[str] = set()
    for text in kconfig_texts:
        out.update(_SYMBOL.findall(text))
    return out
