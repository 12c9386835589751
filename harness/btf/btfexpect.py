"""What a module build should produce, derived from the tree's own build rules, never from a
version table.

A tree's rules (ModuleBtfRules, read by read_rules) say who distils an out-of-tree
module's base BTF -- nobody (up to 6.10: Makefile.modfinal runs pahole without
distillation), pahole (6.11-6.x: Makefile.btf's MODULE_PAHOLE_FLAGS asks for
`distilled_base` from a CONFIG_PAHOLE_VERSION gate; pahole ignores features it does not know,
so 1.26/1.27 are asked and do not) or resolve_btfids (7.x: scripts/gen-btf.sh passes
RESOLVE_BTFIDS_FLAGS, which hold --distill_base for every KBUILD_EXTMOD build) -- how a
split-only module is asked for in that era, whether the module loader reads .BTF.base, and
the lowest pahole DEBUG_INFO_BTF accepts. A tree kbtf cannot read is an error, not a guess.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from harness.errors import HarnessError
from harness.kconfig import Option
from harness.plan.pahole import Pahole

_PAHOLE_GATE = re.compile(
    r"module-pahole-flags-\$\(call\s+test-ge,\s*\$\(pahole-ver\),\s*(\d+)\)\s*\+?=\s*"
    r"--btf_features=distilled_base"
)
_RESOLVE_BTFIDS_DISTILL = re.compile(
    r"resolve-btfids-flags-\$\(if\s+\$\(KBUILD_EXTMOD\),\s*y\)\s*\+=\s*--distill_base")
_BTF_FLOOR = re.compile(r"^config DEBUG_INFO_BTF\n(?:[ \t].*\n|\n)*?[ \t]+depends on "
                        r"PAHOLE_VERSION >= (\d+)\s*$", re.MULTILINE)
# A Makefile.btf line passing --btf_features from some CONFIG_PAHOLE_VERSION on (6.12: 126).
# pahole < 1.26 rejects that option, so it cannot build modules for such a kernel at all.
_BTF_FEATURES = re.compile(r"pahole-flags-\$\(call\s+test-ge,\s*\$\(pahole-ver\),\s*(\d+)\)"
                           r"\s*\+?=[^\n]*--btf_features")
# The first pahole that accepts --btf_features at all.
BTF_FEATURES_PAHOLE = 126

# ModuleBtfRules.distiller values.
NONE, PAHOLE, RESOLVE_BTFIDS = "none", "pahole", "resolve_btfids"


class UnreadableRules(HarnessError):
    """kbtf cannot tell from a tree's files how it makes module BTF."""


@dataclass(frozen=True)
class ModuleBtfRules:
    """How a kernel tree makes an out-of-tree module's BTF, read from its files."""

    distiller: str  # NONE, PAHOLE or RESOLVE_BTFIDS
    pahole_gate: int | None  # PAHOLE: CONFIG_PAHOLE_VERSION from which distilled_base is asked
    split_args: tuple[str, ...]  # make variables for a split-only module (no .BTF.base)
    loader_reads_base: bool  # the module loader reads .BTF.base (relocation)
    btf_floor: int | None  # DEBUG_INFO_BTF's `depends on PAHOLE_VERSION >= N`, if any
    evidence: str  # the files and rules these facts come from
    # CONFIG_PAHOLE_VERSION from which Makefile.btf passes --btf_features (None: never)
    btf_features_from: int | None = None


def _cmd_btf_ko(modfinal: str) -> str:
    """The text of Makefile.modfinal's cmd_btf_ko definition (up to the next blank line)."""
    m = re.search(r"^\s*cmd_btf_ko\s*=.*?(?=\n\s*\n)", modfinal, re.MULTILINE | re.DOTALL)
    return m[0] if m else ""


def parse_rules(files: dict[str, str]) -> ModuleBtfRules:
    """ModuleBtfRules from the texts of a tree's files (keys: paths relative to the tree;
    absent files absent). Raises UnreadableRules naming what was not understood."""
    modfinal = files.get("scripts/Makefile.modfinal", "")
    makefile_btf = files.get("scripts/Makefile.btf", "")
    gen_btf = files.get("scripts/gen-btf.sh", "")
    cmd = _cmd_btf_ko(modfinal)
    if "--btf_features" in files.get("scripts/pahole-flags.sh", ""):
        raise UnreadableRules("scripts/pahole-flags.sh passes --btf_features: kbtf does not "
                              "know from which pahole")
    gates = [int(v) for v in _BTF_FEATURES.findall(makefile_btf)]
    rules = _parse_distiller(files, modfinal, makefile_btf, gen_btf, cmd)
    return replace(rules, btf_features_from=min(gates) if gates else None)


def _parse_distiller(files: dict[str, str], modfinal: str, makefile_btf: str, gen_btf: str,
                     cmd: str) -> ModuleBtfRules:
    """parse_rules' part that reads who distils the base (and the loader and floor)."""
    loader = files.get("kernel/module/main.c") or files.get("kernel/module.c") or ""
    floor = _BTF_FLOOR.search(files.get("lib/Kconfig.debug", ""))
    reads_base, btf_floor = '".BTF.base"' in loader, int(floor[1]) if floor else None
    if not cmd:
        raise UnreadableRules("scripts/Makefile.modfinal has no cmd_btf_ko rule: kbtf cannot "
                              "tell how this tree makes module BTF")
    if "gen-btf.sh" in cmd:
        if "RESOLVE_BTFIDS_FLAGS" in gen_btf and _RESOLVE_BTFIDS_DISTILL.search(makefile_btf):
            return ModuleBtfRules(
                RESOLVE_BTFIDS, None, ("RESOLVE_BTFIDS_FLAGS=",), reads_base, btf_floor,
                evidence="Makefile.modfinal runs scripts/gen-btf.sh, whose resolve_btfids "
                "gets --distill_base for every M= build (scripts/Makefile.btf)")
        raise UnreadableRules("scripts/Makefile.modfinal runs scripts/gen-btf.sh, but kbtf "
                              "does not find how gen-btf.sh and Makefile.btf distil the base")
    if "MODULE_PAHOLE_FLAGS" in cmd:
        m = _PAHOLE_GATE.search(makefile_btf)
        if m is None:
            raise UnreadableRules("Makefile.modfinal passes MODULE_PAHOLE_FLAGS, but kbtf "
                                  "finds no distilled_base gate in scripts/Makefile.btf")
        return ModuleBtfRules(
            PAHOLE, int(m[1]), ("MODULE_PAHOLE_FLAGS=",), reads_base, btf_floor,
            evidence=f"Makefile.btf asks pahole for distilled_base from {m[1]}")
    flags = makefile_btf + files.get("scripts/pahole-flags.sh", "")
    if "$(PAHOLE)" in cmd and "distill" not in flags:
        return ModuleBtfRules(
            NONE, None, (), reads_base, btf_floor,
            evidence="Makefile.modfinal runs pahole --btf_base vmlinux without distillation")
    raise UnreadableRules("kbtf does not understand this tree's cmd_btf_ko in "
                          "scripts/Makefile.modfinal")


RULE_FILES = ("scripts/Makefile.modfinal", "scripts/Makefile.btf", "scripts/gen-btf.sh",
              "scripts/pahole-flags.sh", "kernel/module/main.c", "kernel/module.c",
              "lib/Kconfig.debug")


@functools.cache
def read_rules(tree: Path) -> ModuleBtfRules:
    """parse_rules on ``tree``'s files. Raises UnreadableRules."""
    files = {name: (tree / name).read_text(errors="replace")
             for name in RULE_FILES if (tree / name).is_file()}
    try:
        return parse_rules(files)
    except UnreadableRules as exc:
        raise UnreadableRules(f"{tree}: {exc}") from None


def config_pahole_version(config: Mapping[str, Option], where: Path) -> int:
    """CONFIG_PAHOLE_VERSION of a kernel's configuration (``where``: its .config).

    Raises UnreadableRules when it is missing or not a number: a fact kbtf cannot read.
    """
    option = config.get("CONFIG_PAHOLE_VERSION")
    if option is None or not option.value.isdigit():
        raise UnreadableRules(f"{where} has no numeric CONFIG_PAHOLE_VERSION "
                              f"({option.value if option else 'missing'}): kbtf cannot tell "
                              "which pahole configured this kernel")
    return int(option.value)


def module_pahole_unusable(rules: ModuleBtfRules, config_pahole: int,
                           module_pahole: Pahole) -> str | None:
    """Why ``module_pahole`` cannot build modules for this kernel, or None if it can."""
    if rules.btf_floor is not None and module_pahole.code < rules.btf_floor:
        return (f"module pahole {module_pahole.version} < {rules.btf_floor // 100}."
                f"{rules.btf_floor % 100}: this tree's DEBUG_INFO_BTF needs PAHOLE_VERSION >= "
                f"{rules.btf_floor} (lib/Kconfig.debug)")
    gate = rules.btf_features_from
    if gate is not None and config_pahole >= gate and module_pahole.code < BTF_FEATURES_PAHOLE:
        return (f"module pahole {module_pahole.version} < 1.26 rejects the --btf_features "
                f"flags of a kernel configured with pahole {config_pahole // 100}."
                f"{config_pahole % 100}")
    return None


@dataclass(frozen=True)
class Expectation:
    """Whether a module should carry .BTF.base, and the facts that say so."""

    btf_base: bool
    reason: str


def expect_btf_base(rules: ModuleBtfRules, config_pahole: int, module_pahole: Pahole,
                    split_only: bool = False) -> Expectation:
    """Expectation for an out-of-tree (KBUILD_EXTMOD) module build, asked for the default
    way or, with ``split_only``, with the era's split-only make variables."""
    if split_only:
        if not rules.split_args:
            return Expectation(False, f"split BTF is all this tree makes ({rules.evidence})")
        return Expectation(False, f"split-only build ({' '.join(rules.split_args)}): "
                           f"{rules.evidence}")
    if rules.distiller == RESOLVE_BTFIDS:
        return Expectation(True, rules.evidence)
    if rules.distiller == NONE:
        return Expectation(False, rules.evidence)
    gate = rules.pahole_gate or 0
    asks = config_pahole >= gate
    supports = "distilled_base" in module_pahole.features
    reason = (f"Makefile.btf asks for distilled_base from {gate} "
              f"(CONFIG_PAHOLE_VERSION={config_pahole}: {'asks' if asks else 'does not ask'}); "
              f"module pahole {module_pahole.version} "
              f"{'supports' if supports else 'does not support'} it")
    return Expectation(asks and supports, reason)


def no_relocation(rules: ModuleBtfRules, kernel_version: str) -> str | None:
    """Why modules cannot relocate into this kernel, or None if its loader reads .BTF.base."""
    if rules.loader_reads_base:
        return None
    return (f"kernel {kernel_version}: the module loader never reads .BTF.base "
            "(kernel/module/main.c), so a distilled base cannot be relocated")
