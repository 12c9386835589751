"""pahole axis: the kernel records the pahole that configured it, and a module carries
.BTF.base exactly when the facts say it should (see harness/btfexpect.py).
"""

from __future__ import annotations

import json

from harness.btfexpect import Expectation
from harness.elfbtf import elf_facts
from harness.kbuild import KernelBuild
from harness.matrix import MatrixPoint
from harness.modbuild import ModuleBuild


def test_config_pahole_version_is_the_kernels_pahole(
    kernel: KernelBuild, point: MatrixPoint, facts: dict[str, object]
) -> None:
    configured = kernel.config()["CONFIG_PAHOLE_VERSION"].value
    facts["config_pahole_version"] = configured
    facts["kernel_pahole_features"] = ",".join(point.kernel.pahole.features) or "(none)"
    facts["module_pahole_features"] = ",".join(point.module_pahole.features) or "(none)"
    assert configured == str(point.kernel.pahole.code), (
        f"CONFIG_PAHOLE_VERSION={configured} but the kernel was built with pahole "
        f"{point.kernel.pahole.version} ({point.kernel.pahole.path})")


def test_btf_base_present_as_facts_predict(
    kernel: KernelBuild, hello_ko: ModuleBuild, btf_base_expected: Expectation,
    facts: dict[str, object],
) -> None:
    expected = btf_base_expected
    ko = elf_facts(hello_ko.ko)
    present = ko.btf_base is not None
    facts.update(btf_base_expected=expected.btf_base, btf_base_present=present,
                 btf_base_reason=expected.reason,
                 module_btf_bytes=ko.btf.type_len if ko.btf else 0,
                 module_btf_base_bytes=ko.btf_base.type_len if ko.btf_base else 0)
    # Counted once, when the module was built (suites/conftest.py _module).
    counts = json.loads(hello_ko.ko.with_suffix(".elf-facts.json").read_text())
    facts["module_btf_types"] = counts["btf_types"]
    facts["module_btf_base_types"] = counts["btf_base_types"]
    assert present == expected.btf_base, (
        f"{hello_ko.ko.name}: .BTF.base {'present' if present else 'absent'}, expected "
        f"{'present' if expected.btf_base else 'absent'}: {expected.reason}")

