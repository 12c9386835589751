"""Which kernel option would export a symbol a module needs: for modpost's "undefined!",
the EXPORT_SYMBOL's file in the tree and the kbuild line that builds it (obj-$(CONFIG_X),
directly or through a composite object). Reads the kernel tree; runs grep with a timeout."""

from __future__ import annotations

import re
from pathlib import Path

from harness import proc

GREP_TIMEOUT = 300  # grep -r over a kernel tree: ~10-20 s cold
UNDEFINED = re.compile(r'^ERROR: modpost: "(?P<sym>\w+)" \[[^\]]+\] undefined!', re.MULTILINE)


def undefined_symbols(log_text: str) -> list[str]:
    """The symbols modpost said were undefined, in order, once each."""
    return list(dict.fromkeys(m["sym"] for m in UNDEFINED.finditer(log_text)))


def exporting_file(symbol: str, tree: Path) -> Path | None:
    """The source file of ``tree`` that exports ``symbol``, if any."""
    found = proc.run(["grep", "-rlE", "--include=*.c", "--include=*.h",
                      rf"EXPORT_SYMBOL(_GPL|_NS|_NS_GPL)?\({symbol}\b", str(tree)],
                     timeout=GREP_TIMEOUT, check=False)
    names = [ln for ln in found.stdout.splitlines() if ln]
    return Path(names[0]) if names else None


def building_option(source: Path, tree: Path) -> str | None:
    """The CONFIG_ option whose obj-$(CONFIG_...) line in the Makefile (or Kbuild) beside
    ``source`` builds it, directly or as part of a composite object; None if not found."""
    obj = source.with_suffix(".o").name
    for name in ("Makefile", "Kbuild"):
        makefile = source.parent / name
        if makefile.is_file():
            text = makefile.read_text(errors="replace")
            if option := _option_of(obj, text):
                return option
    return None


def _option_of(obj: str, makefile: str) -> str | None:
    """The option that builds ``obj`` per ``makefile``'s lines (one composite level)."""
    direct = re.search(rf"^obj-\$\((CONFIG_\w+)\)\s*[+:]?=.*\b{re.escape(obj)}\b", makefile,
                       re.MULTILINE)
    if direct:
        return direct[1]
    part = re.search(rf"^([\w-]+?)-(?:y|objs)\s*[+:]?=.*\b{re.escape(obj)}\b", makefile,
                     re.MULTILINE)
    if part:
        return _option_of(f"{part[1]}.o", makefile)
    return None


def hint(log_text: str, tree: Path) -> str:
    """For a build log with modpost's undefined symbols: what would export them (file,
    option, and the --kconfig-add to try), one clause each; "" when none."""
    clauses = []
    for sym in undefined_symbols(log_text)[:5]:
        source = exporting_file(sym, tree)
        if source is None:
            clauses.append(f"{sym} is exported nowhere in {tree}")
            continue
        option = building_option(source, tree)
        clause = f"{sym} is exported by {source.relative_to(tree)}"
        clauses.append(clause + (f" (built with {option}): try --kconfig-add {option}=y"
                                 if option else ""))
    return "; ".join(clauses)
