"""The pahole axis as a comparison: per module, each point's BTF against the baseline point
(the first pahole of the axis for the same arch, kernel source and toolchain) -- types,
bytes, .BTF.base types, the FUNC set; the C view of the BTF and its diff."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import proc
from harness.btf.btfdedup import duplicates
from harness.btf.elfbtf import elf_facts, module_btf, module_btf_files

DUMP_TIMEOUT = 300  # bpftool btf dump ... format c of one module


@dataclass(frozen=True)
class ModuleBtfFigures:
    """What one .ko's BTF holds."""

    types: int
    bytes: int  # .BTF type and string sections
    base_types: int  # .BTF.base types (0: none)
    functions: tuple[str, ...]
    duplicates: int  # types of the split BTF that duplicate another (btfdedup)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def figures(ko: Path, vmlinux: Path) -> ModuleBtfFigures:
    """ModuleBtfFigures of ``ko`` (split on its .BTF.base, else on ``vmlinux``)."""
    split, base = module_btf(ko, vmlinux)
    facts = elf_facts(ko)
    size = facts.btf.type_len + facts.btf.str_len if facts.btf else 0
    return ModuleBtfFigures(len(split), size, len(base) if facts.btf_base else 0,
                            tuple(sorted(str(t["name"]) for t in split if t["kind"] == "FUNC")),
                            sum(len(d.ids) - 1 for d in duplicates(split, base)))


@dataclass(frozen=True)
class Comparison:
    """A point's module BTF against the baseline's."""

    lost_functions: tuple[str, ...]  # FUNCs with BTF under the baseline pahole, not here
    growth: float  # types here / types at the baseline

    def over(self, limit: float) -> bool:
        """Whether the growth passes ``limit`` (a factor)."""
        return self.growth > limit


def compare(point: ModuleBtfFigures, baseline: ModuleBtfFigures) -> Comparison:
    """``point`` against ``baseline``."""
    lost = tuple(sorted(set(baseline.functions) - set(point.functions)))
    growth = point.types / baseline.types if baseline.types else float(point.types > 0)
    return Comparison(lost, round(growth, 2))


def c_dump(ko: Path, vmlinux: Path) -> str:
    """The module's own BTF as C (bpftool ... format c; split on top of its .BTF.base, else
    of ``vmlinux``). Raises CommandError."""
    with module_btf_files(ko, vmlinux) as (split, base, _):
        if split is None:
            return ""
        argv = [proc.require_tool("bpftool"), "--base-btf", str(base), "btf", "dump",
                "file", str(split), "format", "c"]
        return proc.run(argv, timeout=DUMP_TIMEOUT).stdout


def c_diff(baseline_c: str, point_c: str, baseline_name: str, point_name: str) -> str:
    """Unified diff of two C dumps ('' when equal)."""
    return "".join(difflib.unified_diff(baseline_c.splitlines(keepends=True),
                                        point_c.splitlines(keepends=True),
                                        fromfile=baseline_name, tofile=point_name))


def axis_table(rows: list[dict[str, object]]) -> str:
    """Markdown table of the axis: one row per (module, point), baseline first."""
    head = ["module", "point", "baseline", ".BTF types", ".BTF bytes", ".BTF.base types",
            "FUNCs", "growth", "lost FUNCs", "duplicates"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(k, "-")) for k in (
            "module", "point", "baseline", "types", "bytes", "base_types", "functions",
            "growth", "lost", "duplicates")) + " |")
    return "\n".join(lines) + "\n"
