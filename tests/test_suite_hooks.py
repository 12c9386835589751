"""Hooks of suites/conftest.py on captured shapes: which kernels the selected tests need,
and how outcomes are labelled in summary.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.arches import get_arch
from harness.plan.kernelreq import KernelRequest
from harness.plan.ksource import KernelSource
from harness.plan.matrix import MatrixPoint
from harness.plan.pahole import Pahole
from harness.run.context import POINT_PARTS, RunContext
from suites.conftest import needed_kernels
from suites.recorder import outcome_label


def point(version: str) -> MatrixPoint:
    ph = Pahole(Path(f"/p/{version}"), version, ())
    src = KernelSource(Path("/s"), "6.12.117", "deb:x", "debian6.12.117", "debian:6.12")
    return MatrixPoint(KernelRequest(get_arch("x86_64"), src, ph), ph)


@dataclass
class FakeItem:
    point: MatrixPoint
    fixturenames: list[str] = field(default_factory=list)

    @property
    def callspec(self) -> Any:
        return SimpleNamespace(params={"point": self.point})


def test_needed_kernels_follow_fixture_closures() -> None:
    a, b = point("1.30"), point("1.24")
    items = [FakeItem(a, ["point", "kernel", "guest"]),
             FakeItem(a, ["point", "kernel", "kernel_prime", "guest_prime"]),
             FakeItem(b, ["point", "kernel_refuse"])]
    assert needed_kernels(items) == {(a.id, ""), (a.id, "prime"), (b.id, "refuse")}  # type: ignore[arg-type]


def test_nothing_selected_needs_nothing() -> None:
    assert needed_kernels([]) == set()


def report(**kw: Any) -> pytest.TestReport:
    base: dict[str, Any] = {"nodeid": "t[p]", "location": ("t", 0, "t"), "keywords": {},
                            "outcome": "passed", "longrepr": None, "when": "call"}
    return pytest.TestReport(**{**base, **kw})


def test_outcome_labels() -> None:
    assert outcome_label(report()) == "passed"
    assert outcome_label(report(outcome="failed", when="call")) == "failed"
    assert outcome_label(report(outcome="failed", when="setup")) == "error"
    skip = report(outcome="skipped", when="setup",
                  longrepr=("f.py", 1, "Skipped: module pahole 1.24 < 1.26 rejects it"))
    assert outcome_label(skip) == "skipped: module pahole 1.24 < 1.26 rejects it"
    xf = report(outcome="skipped")
    xf.wasxfail = "kernel finding"
    assert outcome_label(xf) == "xfailed"


def test_the_axis_baseline_compares_with_nothing() -> None:
    from harness.run.planning import no_baseline

    first, second = point("1.30"), point("1.32")
    reason = no_baseline(first, first)
    assert reason is not None and "is the baseline of its pahole axis" in reason
    assert no_baseline(second, first) is None


def test_no_suite_test_rechecks_what_the_harness_enforces() -> None:
    """CONFIG_PAHOLE_VERSION (kbuild refuses a kernel where it is not the pahole's) and
    /sys/kernel/btf/vmlinux (every boot hashes it) are no tests: they could never fail."""
    import ast

    names = {n.name for f in Path(__file__).parent.parent.glob("suites/test_*.py")
             for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, ast.FunctionDef)}
    assert "test_config_pahole_version_is_the_kernels_pahole" not in names
    assert "test_sys_kernel_btf_vmlinux" not in names


def test_a_controller_that_is_pid_1_is_alive() -> None:
    from harness.run.lifecycle import controller_gone

    assert not controller_gone(1, 1)  # ./kbtf as a container entrypoint: PID 1 is the controller
    assert controller_gone(4242, 1)  # reparented to init: the controller died
    assert not controller_gone(4242, 4242)


def test_a_points_parts_are_groups_of_their_own_only_with_workers_to_spread_over() -> None:
    p = point("1.30")
    assert RunContext.point_group(p, "", 2) == p.kernel_id
    assert RunContext.point_group(p, "other-btf", 1) == p.kernel_id
    assert RunContext.point_group(p, "other-btf", 2) == f"{p.kernel_id}/other-btf"
    from suites import test_bpftrace, test_relocation

    stripped = test_bpftrace.test_fentry_fails_without_module_btf
    marks = [*stripped.pytestmark, *test_relocation.pytestmark]  # type: ignore[attr-defined]
    assert {m.args[0] for m in marks if m.name == "part"} == {"other-btf"}
    assert "other-btf" in POINT_PARTS
