"""The .BTF.base expectation, on captured Makefile.btf texts."""

from pathlib import Path

from harness.btfexpect import distilled_gate, expect_btf_base
from harness.pahole import Pahole

MAKEFILE_BTF_612 = """
ifneq ($(KBUILD_EXTMOD),)
module-pahole-flags-$(call test-ge, $(pahole-ver), 126) += --btf_features=distilled_base
endif
"""
MAKEFILE_BTF_NEWER = MAKEFILE_BTF_612.replace("126", "128")
FEATURES_130 = ("encode_force", "var", "float", "distilled_base")


def ph(version: str, features: tuple[str, ...] = ()) -> Pahole:
    return Pahole(Path("/x/pahole"), version, features)


def test_gate_parsed() -> None:
    assert distilled_gate(MAKEFILE_BTF_612) == 126
    assert distilled_gate(MAKEFILE_BTF_NEWER) == 128
    assert distilled_gate("pahole-flags-y :=\n") is None


def test_kernel_configured_with_124_never_asks() -> None:
    exp = expect_btf_base(124, MAKEFILE_BTF_612, None, ph("1.30", FEATURES_130))
    assert not exp.btf_base and "does not ask" in exp.reason


def test_130_kernel_and_module_produce_base() -> None:
    assert expect_btf_base(130, MAKEFILE_BTF_612, None, ph("1.30", FEATURES_130)).btf_base


def test_127_is_asked_but_cannot_distil() -> None:
    exp = expect_btf_base(127, MAKEFILE_BTF_612, None, ph("1.27", ("encode_force",)))
    assert not exp.btf_base
    assert "asks" in exp.reason and "does not support" in exp.reason


def test_newer_gate_and_gen_btf() -> None:
    assert not expect_btf_base(127, MAKEFILE_BTF_NEWER, None, ph("1.27")).btf_base
    exp = expect_btf_base(124, "", "# distill the base with resolve_btfids", ph("1.24"))
    assert exp.btf_base



def test_old_module_pahole_cannot_build_for_new_kernel() -> None:
    from harness.btfexpect import module_pahole_unusable

    why = module_pahole_unusable(130, ph("1.24"))
    assert why is not None and "1.24 < 1.26" in why and "pahole 1.30" in why
    assert module_pahole_unusable(124, ph("1.24")) is None
    assert module_pahole_unusable(130, ph("1.32", FEATURES_130)) is None
