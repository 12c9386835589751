"""pahole axis: the kernel records the pahole that configured it, and a module carries
.BTF.base exactly when the facts say it should (see harness/btf/btfexpect.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from harness.btf.btfdedup import BY_TREE, duplicates
from harness.btf.btfexpect import Expectation
from harness.btf.elfbtf import elf_facts, module_btf
from harness.btf.paholeaxis import c_diff, c_dump, compare, figures
from harness.builds.kbuild import KernelBuild
from harness.builds.modbuild import ModuleBuild
from harness.plan.matrix import MatrixPoint
from harness.plan.usermod import ModuleSpec
from harness.run.planning import no_baseline
from harness.run.pointrun import PointRun, config_pahole
from suites.conftest import ctx

# Growth of a module's type count over the baseline's that summary.md flags.
DEFAULT_GROWTH_LIMIT = 2.0


def _duplicates_by_whom(point_run: PointRun, kernel: KernelBuild, module_spec: ModuleSpec,
                        ko: Path, count: int) -> str:
    """The table's duplicates cell: the count, and how many the tree's post-processing made
    rather than pahole ("3 (2 by the tree's resolve_btfids)")."""
    if not count:
        return "0"
    found = duplicates(*module_btf(ko, kernel.vmlinux))
    origins = point_run.duplicate_origins(kernel, module_spec.path, "axis", ko.name, found)
    by_tree = sum(len(d.ids) - 1 for d, by in origins if by == BY_TREE)
    return f"{count} ({by_tree} by the tree's resolve_btfids)" if by_tree else str(count)


@pytest.fixture(scope="session")
def baseline(pytestconfig: pytest.Config, point: MatrixPoint) -> MatrixPoint:
    """The first point of the run with the same arch, kernel source and toolchain."""
    return ctx(pytestconfig).baseline(point)


@pytest.fixture(scope="session")
def axis_builds(pytestconfig: pytest.Config, point_run: PointRun, baseline: MatrixPoint,
                kernel: KernelBuild, module_spec: ModuleSpec
                ) -> tuple[ModuleBuild, ModuleBuild, KernelBuild]:
    """(the module built for the point, for the baseline point, the baseline's kernel),
    default BTF mode."""
    base_run = ctx(pytestconfig).point_run(baseline)
    base_kernel = base_run.kernel("")
    dkms = module_spec.dkms is not None  # built as its users get it, BUILD_EXCLUSIVE too
    mine = point_run.module(kernel, module_spec.path, "axis", dkms)
    theirs = mine if baseline == point_run.point else base_run.module(
        base_kernel, module_spec.path, "axis", dkms)
    return mine, theirs, base_kernel


def test_btf_base_present_as_facts_predict(
    kernel: KernelBuild, point: MatrixPoint, hello_ko: ModuleBuild,
    btf_base_expected: Expectation, facts: dict[str, object],
) -> None:
    # CONFIG_PAHOLE_VERSION is the kernel pahole's: kbuild refuses a build where it is not.
    facts["config_pahole_version"] = config_pahole(kernel)
    facts["kernel_pahole_features"] = ",".join(point.kernel.pahole.features) or "(none)"
    facts["module_pahole_features"] = ",".join(point.module_pahole.features) or "(none)"
    expected = btf_base_expected
    ko = elf_facts(hello_ko.ko)
    present = ko.btf_base is not None
    facts.update(btf_base_expected=expected.btf_base, btf_base_present=present,
                 btf_base_reason=expected.reason,
                 module_btf_bytes=ko.btf.type_len if ko.btf else 0,
                 module_btf_base_bytes=ko.btf_base.type_len if ko.btf_base else 0)
    # Counted once, when the module was built (run/pointrun.py checked_module).
    counts = hello_ko.facts_of(hello_ko.ko)
    facts["module_btf_types"] = counts["btf_types"]
    facts["module_btf_base_types"] = counts["btf_base_types"]
    assert present == expected.btf_base, (
        f"{hello_ko.ko.name}: .BTF.base {'present' if present else 'absent'}, expected "
        f"{'present' if expected.btf_base else 'absent'}: {expected.reason}")



def test_pahole_axis_against_baseline(
    pytestconfig: pytest.Config, point: MatrixPoint, baseline: MatrixPoint,
    kernel: KernelBuild, axis_builds: tuple[ModuleBuild, ModuleBuild, KernelBuild],
    module_spec: ModuleSpec, facts: dict[str, object], point_run: PointRun,
) -> None:
    """Each module's BTF against the baseline point's (the first pahole of the axis): a
    function with BTF there but not here is a regression (FAILED); growth of the type count
    beyond --btf-growth-limit is flagged, and fails only when the option is given. The
    module's BTF as C and its diff against the baseline are saved under <point>/btf-c/."""
    mine, theirs, base_kernel = axis_builds
    limit = pytestconfig.option.btf_growth_limit
    out = point_run.run_dir / point.id / "btf-c" / module_spec.name
    out.mkdir(parents=True, exist_ok=True)
    rows = cast(list[dict[str, object]], facts.setdefault("pahole_axis", []))
    problems = []
    base_kos = {ko.name: ko for ko in theirs.kos}
    for ko in mine.kos:
        base_ko = base_kos.get(ko.name)
        if base_ko is None:
            problems.append(f"{ko.name} is not built under the baseline {baseline.id}")
            continue
        here, there = figures(ko, kernel.vmlinux), figures(base_ko, base_kernel.vmlinux)
        cmp = compare(here, there)
        c_here = c_dump(ko, kernel.vmlinux)
        (out / f"{ko.stem}.h").write_text(c_here)
        if baseline != point:
            diff = c_diff(c_dump(base_ko, base_kernel.vmlinux), c_here,
                          f"{baseline.id}/{ko.stem}.h", f"{point.id}/{ko.stem}.h")
            (out / f"{ko.stem}.diff").write_text(diff)
        over = cmp.over(limit or DEFAULT_GROWTH_LIMIT)
        rows.append({"module": f"{module_spec.name}/{ko.name}", "point": point.id,
                     "baseline": baseline.id, "types": here.types, "bytes": here.bytes,
                     "base_types": here.base_types, "functions": len(here.functions),
                     "growth": f"{cmp.growth}x" + (" (over limit)" if over else ""),
                     "lost": ", ".join(cmp.lost_functions) or "none",
                     "duplicates": _duplicates_by_whom(point_run, kernel, module_spec, ko,
                                                       here.duplicates)})
        if cmp.lost_functions:
            problems.append(f"{ko.name}: functions with BTF under {baseline.id} but not here: "
                            f"{', '.join(cmp.lost_functions[:10])}")
        if over and limit is not None:
            problems.append(f"{ko.name}: {here.types} types, {cmp.growth}x the baseline's "
                            f"{there.types} (--btf-growth-limit {limit})")
    assert not problems, "; ".join(problems) + f" (C dumps and diffs: {out})"
    if (alone := no_baseline(point, baseline)) is not None:
        pytest.skip(alone)  # its figures are the table's baseline row; nothing was compared
