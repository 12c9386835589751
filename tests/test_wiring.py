"""kbtf's run wired end to end over fakes (issue 33 item 8; as kunit_tool's tests drive
kunit.py over fakes): a kind of unit kbtf has never seen, written only against
plan/unit.Unit, goes through the plan (./kbtf plan's entries, --point), the run's one list
of units, the outcomes pytest reports, the facts its tests write and the records
(matrix.json, summary.md, run.json): nothing in the run names its kind."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.arches import Arch, get_arch
from harness.plan.kernelreq import KernelRequest
from harness.run import runplan
from harness.run.context import RunContext
from harness.run.options import RunOptions


@dataclass(frozen=True)
class UmlKernel:
    """A new kind of unit (say, a User-Mode Linux kernel): only the Unit protocol."""

    name: str
    kernel: str

    @property
    def id(self) -> str:
        return f"um-{self.kernel}-{self.name}"

    @property
    def group(self) -> str:
        return f"um-{self.kernel}"

    @property
    def arch(self) -> Arch:
        return get_arch("x86_64")

    @property
    def describe(self) -> str:
        return f"User-Mode Linux {self.kernel} ({self.name})"

    @property
    def source_kernel(self) -> KernelRequest | None:
        return None

    def rerun(self, tests: Sequence[str] = ()) -> str:
        return shlex.join(["./kbtf", "pytest", "suites/", "--uml", self.kernel, "-k", self.id])

    def facts(self) -> dict[str, object]:
        return {"arch": "um", "kernel": self.kernel}


def test_a_new_kind_of_unit_goes_from_plan_to_records(tmp_path: Path) -> None:
    units = [UmlKernel("a", "7.2"), UmlKernel("b", "7.2"), UmlKernel("a", "6.12")]
    # the plan: one entry per kernel, its units, the arguments that run just it
    entries = runplan.units(units, ["suites/"], tmp_path)
    assert [(e["id"], e["points"]) for e in entries] == [
        ("um-7.2", ["um-7.2-a", "um-7.2-b"]), ("um-6.12", ["um-6.12-a"])]
    assert entries[1]["args"] == ["suites/", "--point", "um-6.12"]
    assert entries[0]["kernel_cached"] is True  # nothing kbtf builds from source
    chosen = runplan.select(runplan.RunPlan(list(units)), ["um-7.2"]).units
    assert chosen == units[:2]
    # the run: its one list, the outcomes pytest reports, the facts tests write
    run = RunContext(RunOptions(), tmp_path, tmp_path / "cache", list(chosen), [], False)
    run.record("suites/test_uml.py::test_boots[um-7.2-a]", "passed")
    run.record("suites/test_uml.py::test_module[um-7.2-b-kbtf_hello]", "failed")
    run.record("suites/test_other.py::test_x[nobody]", "passed")  # no unit's: not recorded
    facts = run.facts_record(chosen[0])
    facts["boot_seconds"] = 0.4
    run.write_facts(chosen[0].id, dict(facts))
    assert run.finish() == []
    # the records
    matrix = {r["point"]: r for r in json.loads((tmp_path / "matrix.json").read_text())}
    assert matrix["um-7.2-a"]["facts"] == {"arch": "um", "kernel": "7.2", "boot_seconds": 0.4,
                                           "rerun": units[0].rerun()}
    assert matrix["um-7.2-b"]["outcomes"] == {"test_module[kbtf_hello]": "failed"}
    summary = (tmp_path / "summary.md").read_text()
    assert "| um-7.2-b |" in summary and "test_module[kbtf_hello] (failed)" in summary
    assert json.loads((tmp_path / "run.json").read_text()) == {"finished": True, "errors": []}


def test_a_fact_a_unit_s_tests_wrote_and_its_record_lost_fails_the_run(tmp_path: Path) -> None:
    unit = UmlKernel("a", "7.2")
    run = RunContext(RunOptions(), tmp_path, tmp_path / "cache", [unit], [], False)
    run.facts_record(unit)["accel"] = "tcg"  # written by a test, never written out
    lost = run.finish()
    assert lost == ["um-7.2-a: facts its tests produced are missing from its record: accel"]
    assert "## Errors of the run" in (tmp_path / "summary.md").read_text()


def test_a_unit_kind_without_a_way_to_build_is_not_silently_built(tmp_path: Path) -> None:
    # the controller builds only what it knows how to; a unit of a new kind needs nothing
    # built, and asking for its kernels builds nothing rather than failing
    unit = UmlKernel("a", "7.2")
    run = RunContext(RunOptions(), tmp_path, tmp_path / "cache", [unit], [], False)
    said: list[str] = []
    run.build({(unit.id, "")}, said.append)
    assert said == []


@pytest.fixture(autouse=True)
def _no_kvm_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RunContext, "_kvm_verdict", lambda self: False)
