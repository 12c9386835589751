"""Module BTF rules of three kernel eras and the .BTF.base expectation, on the rule lines of
Debian's linux-source-6.1, -6.12 and -7.2 (reduced to what kbtf reads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.btf.btfexpect import (
    NONE,
    PAHOLE,
    RESOLVE_BTFIDS,
    UnreadableRules,
    expect_btf_base,
    module_pahole_unusable,
    no_relocation,
    parse_rules,
)
from harness.plan.pahole import Pahole

MODFINAL_61 = """quiet_cmd_btf_ko = BTF [M] $@
      cmd_btf_ko = 							\\
	if [ ! -f vmlinux ]; then					\\
		printf "Skipping BTF generation for %s due to unavailability of vmlinux\\n" $@ 1>&2; \\
	else								\\
		LLVM_OBJCOPY="$(OBJCOPY)" $(PAHOLE) -J $(PAHOLE_FLAGS) --btf_base vmlinux $@; \\
		$(RESOLVE_BTFIDS) -b vmlinux $@; 			\\
	fi;

"""
MODFINAL_612 = MODFINAL_61.replace("$(PAHOLE_FLAGS) --btf_base",
                                   "$(PAHOLE_FLAGS) $(MODULE_PAHOLE_FLAGS) --btf_base")
MODFINAL_72 = """      cmd_btf_ko = 							\\
	if [ ! -f $(objtree)/vmlinux ]; then				\\
		printf "Skipping BTF generation for %s due to unavailability of vmlinux\\n" $@ 1>&2; \\
	else								\\
		$(CONFIG_SHELL) $(srctree)/scripts/gen-btf.sh --btf_base $(objtree)/vmlinux $@; \\
	fi;

"""
MAKEFILE_BTF_612 = """# Switch to using --btf_features for v1.26 and later.
pahole-flags-$(call test-ge, $(pahole-ver), 126)  = -j --btf_features=encode_force,var,float
ifneq ($(KBUILD_EXTMOD),)
module-pahole-flags-$(call test-ge, $(pahole-ver), 126) += --btf_features=distilled_base
endif
"""
MAKEFILE_BTF_72 = """resolve-btfids-flags-y :=
resolve-btfids-flags-$(CONFIG_WERROR) += --fatal_warnings
resolve-btfids-flags-$(if $(KBUILD_EXTMOD),y) += --distill_base
export RESOLVE_BTFIDS_FLAGS := $(resolve-btfids-flags-y)
"""
GEN_BTF_72 = """	${RESOLVE_BTFIDS} ${RESOLVE_BTFIDS_FLAGS}	\\
		${BTF_BASE:+--btf_base ${BTF_BASE}}	\\
"""
LOADER_RELOCATES = 'mod->btf_base_data = any_section_objs(info, ".BTF.base", 1,\n'
KCONFIG_72 = """config DEBUG_INFO_BTF
	bool "Generate BTF type information"
	depends on !DEBUG_INFO_SPLIT && !DEBUG_INFO_REDUCED
	depends on PAHOLE_VERSION >= 122
	help
"""
KCONFIG_61 = KCONFIG_72.replace("PAHOLE_VERSION >= 122",
                                "!DEBUG_INFO_DWARF5 || PAHOLE_VERSION >= 121")

ERA_61 = {"scripts/Makefile.modfinal": MODFINAL_61, "scripts/pahole-flags.sh": "--btf_gen_floats",
          "kernel/module/main.c": "static int x;\n", "lib/Kconfig.debug": KCONFIG_61}
ERA_612 = {"scripts/Makefile.modfinal": MODFINAL_612, "scripts/Makefile.btf": MAKEFILE_BTF_612,
           "kernel/module/main.c": LOADER_RELOCATES, "lib/Kconfig.debug": KCONFIG_61}
ERA_72 = {"scripts/Makefile.modfinal": MODFINAL_72, "scripts/Makefile.btf": MAKEFILE_BTF_72,
          "scripts/gen-btf.sh": GEN_BTF_72, "kernel/module/main.c": LOADER_RELOCATES,
          "lib/Kconfig.debug": KCONFIG_72}
FEATURES_130 = ("encode_force", "var", "float", "distilled_base")


def ph(version: str, features: tuple[str, ...] = ()) -> Pahole:
    return Pahole(Path("/x/pahole"), version, features)


def test_era_61_has_no_distillation_and_no_relocation() -> None:
    rules = parse_rules(ERA_61)
    assert rules.distiller == NONE and rules.split_args == () and rules.btf_floor is None
    assert not expect_btf_base(rules, 130, ph("1.30", FEATURES_130)).btf_base
    reason = no_relocation(rules, "6.1.176")
    assert reason is not None and "never reads .BTF.base" in reason


def test_era_612_pahole_distils_from_its_gate() -> None:
    rules = parse_rules(ERA_612)
    assert (rules.distiller, rules.pahole_gate) == (PAHOLE, 126)
    assert rules.split_args == ("MODULE_PAHOLE_FLAGS=",)
    assert no_relocation(rules, "6.12.117") is None
    assert expect_btf_base(rules, 130, ph("1.30", FEATURES_130)).btf_base
    asked_not_supported = expect_btf_base(rules, 127, ph("1.27", ("encode_force",)))
    assert not asked_not_supported.btf_base and "does not support" in asked_not_supported.reason
    below_gate = expect_btf_base(rules, 124, ph("1.30", FEATURES_130))
    assert not below_gate.btf_base and "does not ask" in below_gate.reason
    assert not expect_btf_base(rules, 130, ph("1.30", FEATURES_130), split_only=True).btf_base


def test_era_72_resolve_btfids_distils_whatever_the_pahole() -> None:
    rules = parse_rules(ERA_72)
    assert rules.distiller == RESOLVE_BTFIDS and rules.split_args == ("RESOLVE_BTFIDS_FLAGS=",)
    assert rules.btf_floor == 122
    assert expect_btf_base(rules, 124, ph("1.24")).btf_base  # pahole has no say in 7.x
    split = expect_btf_base(rules, 130, ph("1.30", FEATURES_130), split_only=True)
    assert not split.btf_base and "RESOLVE_BTFIDS_FLAGS=" in split.reason


def test_module_pahole_below_the_btf_floor_is_a_prerequisite() -> None:
    why = module_pahole_unusable(parse_rules(ERA_72), 130, ph("1.21"))
    assert why is not None and "< 1.22" in why and "PAHOLE_VERSION >= 122" in why
    assert module_pahole_unusable(parse_rules(ERA_72), 124, ph("1.24")) is None
    features = module_pahole_unusable(parse_rules(ERA_612), 130, ph("1.24"))
    assert features is not None and "--btf_features" in features


def test_the_btf_features_gate_is_read_from_the_tree() -> None:
    assert parse_rules(ERA_612).btf_features_from == 126
    # 6.1's pahole-flags.sh never passes --btf_features: any pahole >= its floor builds.
    rules_61 = parse_rules(ERA_61)
    assert rules_61.btf_features_from is None
    assert module_pahole_unusable(rules_61, 130, ph("1.24")) is None
    assert module_pahole_unusable(parse_rules(ERA_612), 125, ph("1.24")) is None  # below it


@pytest.mark.parametrize("files,what", [
    ({}, "no cmd_btf_ko"),
    ({**ERA_72, "scripts/Makefile.btf": ""}, "gen-btf.sh"),
    ({**ERA_612, "scripts/Makefile.btf": "pahole-flags-y :=\n"}, "no distilled_base gate"),
    ({**ERA_61, "scripts/pahole-flags.sh": "--btf_features=distilled_base"},
     "passes --btf_features"),
])
def test_rules_kbtf_cannot_read_are_an_error(files: dict[str, str], what: str) -> None:
    with pytest.raises(UnreadableRules, match=what):
        parse_rules(files)
