"""What a module build should produce, derived from facts rather than a table.

Facts: the kernel's CONFIG_PAHOLE_VERSION (what scripts/Makefile.btf keys its flags on),
the gate on `distilled_base` parsed from the tree's own scripts/Makefile.btf, and the
features the module's pahole reports with --supported_btf_features. pahole ignores
features it does not know, so "asked for" and "produced" differ for 1.26 and 1.27.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.pahole import Pahole

_GATE = re.compile(
    r"module-pahole-flags-\$\(call\s+test-ge,\s*\$\(pahole-ver\),\s*(\d+)\)\s*\+?=\s*"
    r"--btf_features=distilled_base"
)


# Makefile.btf passes --btf_features from CONFIG_PAHOLE_VERSION 126 on; pahole < 1.26 rejects
# that option, so it cannot build modules for such a kernel at all.
BTF_FEATURES_FROM = 126


def module_pahole_unusable(config_pahole: int, module_pahole: Pahole) -> str | None:
    """Why ``module_pahole`` cannot build modules for this kernel, or None if it can."""
    if config_pahole >= BTF_FEATURES_FROM and module_pahole.code < BTF_FEATURES_FROM:
        return (f"module pahole {module_pahole.version} < 1.26 rejects the --btf_features "
                f"flags of a kernel configured with pahole {config_pahole // 100}."
                f"{config_pahole % 100}")
    return None


@dataclass(frozen=True)
class Expectation:
    """Whether a module should carry .BTF.base, and the facts that say so."""

    btf_base: bool
    reason: str


def distilled_gate(makefile_btf: str) -> int | None:
    """The CONFIG_PAHOLE_VERSION from which Makefile.btf asks for distilled_base, if any."""
    m = _GATE.search(makefile_btf)
    return int(m[1]) if m else None


def expect_btf_base(config_pahole: int, makefile_btf: str, gen_btf: str | None,
                    module_pahole: Pahole) -> Expectation:
    """Expectation for an out-of-tree (KBUILD_EXTMOD) module build.

    ``gen_btf`` is scripts/gen-btf.sh of the tree, if it has one (newer kernels distil
    the base with resolve_btfids there instead of asking pahole).
    """
    gate = distilled_gate(makefile_btf)
    if gate is None:
        if gen_btf is not None and "distill" in gen_btf:
            return Expectation(True, "scripts/gen-btf.sh distils the base itself")
        return Expectation(False, "this tree's Makefile.btf never asks for distilled_base")
    asks = config_pahole >= gate
    supports = "distilled_base" in module_pahole.features
    reason = (f"Makefile.btf asks for distilled_base from {gate} "
              f"(CONFIG_PAHOLE_VERSION={config_pahole}: {'asks' if asks else 'does not ask'}); "
              f"module pahole {module_pahole.version} "
              f"{'supports' if supports else 'does not support'} it")
    return Expectation(asks and supports, reason)
