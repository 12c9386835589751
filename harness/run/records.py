"""What a run records: each unit's facts as its tests write them (journaled), the outcomes
pytest reports under each unit, and matrix.json, summary.md and run.json at the end; the
run's own errors (facts its tests produced that a record lost)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.btf.paholeaxis import axis_table
from harness.guest import cilog
from harness.plan.unit import Unit
from harness.plan.usermod import ModuleSpec
from harness.plan.vmtest import VmtestPoint
from harness.run import results
from harness.run.pointrun import worker_id
from harness.run.vmtestrun import VmtestRun


class FactsRecord(dict[str, object]):
    """A unit's facts as its tests write them down; each key a test writes is appended at
    once to an append-only journal too, so a record that later lost it says so
    (RunContext.lost_facts)."""

    def __init__(self, initial: dict[str, object], journal: Path) -> None:
        super().__init__(initial)
        self._journal = journal

    def __setitem__(self, key: str, value: object) -> None:
        super().__setitem__(key, value)
        self._note([key])

    def setdefault(self, key: str, default: object = None) -> object:
        self._note([key])
        return super().setdefault(key, default)

    def update(self, *args: object, **kwargs: object) -> None:
        new = dict(*args, **kwargs)
        super().update(new)
        self._note(list(new))

    def _note(self, keys: list[str]) -> None:
        with self._journal.open("a") as fh:
            fh.write("".join(f"{k}\n" for k in keys))


def split_test_id(nodeid: str, point_ids: list[str]) -> tuple[str, str] | None:
    """(point id, test name) of a node id: ``file::test[<point>-<more params>]`` gives the
    point and ``test[<more params>]``; None for tests of no point. ``point_ids``: longest
    first (one id may start another)."""
    m = re.fullmatch(r"(?P<test>.*)\[(?P<params>[^\]]*)\](?:@.*)?", nodeid)
    if m is None:
        return None
    name = m["test"].split("::")[-1]
    for point in point_ids:
        if m["params"] == point:
            return point, name
        if m["params"].startswith(point + "-"):
            return point, f"{name}[{m['params'][len(point) + 1:]}]"
    return None


class Records:
    """RunContext's records: needs its ``run_dir``, ``units``, ``modules``, ``outcomes``,
    ``ci_log``, ``_facts`` and ``vmtest_run``."""

    run_dir: Path
    units: list[Unit]
    modules: list[ModuleSpec]
    outcomes: dict[str, dict[str, str]]
    ci_log: cilog.CiLog | None
    _facts: dict[str, FactsRecord]

    def vmtest_run(self, vmtest: VmtestPoint) -> VmtestRun:
        raise NotImplementedError

    def facts_record(self, unit: Unit) -> FactsRecord:
        """The record of ``unit``'s facts its tests fill in this process (FactsRecord): one
        for the process, however often the session fixture is set up (a worker may run both
        parts of a point with another point between them), so what a first part appended
        or joined stays."""
        if unit.id not in self._facts:
            journal = self.run_dir / unit.id / f"produced-{worker_id()}.txt"
            journal.parent.mkdir(parents=True, exist_ok=True)
            self._facts[unit.id] = FactsRecord(unit.facts(), journal)
        return self._facts[unit.id]

    def lost_facts(self, rec: results.PointRecord) -> list[str]:
        """Facts tests of ``rec``'s unit wrote down that its record lacks."""
        produced = {line for f in sorted((self.run_dir / rec.point).glob("produced-*.txt"))
                    for line in f.read_text().splitlines() if line}
        return sorted(produced - set(rec.facts))

    def write_facts(self, point_id: str, facts: dict[str, object]) -> None:
        """Add this process's facts of a point to those it wrote before (a worker may set a
        point's facts up twice, once per part, with another point between), for
        matrix.json and summary.md."""
        out = self.run_dir / point_id / f"facts-{worker_id()}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        known = json.loads(out.read_text()) if out.is_file() else {}
        known.update(facts)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=2, default=str) + "\n")
        tmp.rename(out)

    def point_ids(self) -> list[str]:
        """Every unit's id, longest first (for split_test_id)."""
        return sorted((u.id for u in self.units), key=len, reverse=True)

    def record(self, nodeid: str, label: str) -> None:
        """Remember a test's outcome label under its point (none: a test of no point)."""
        found = split_test_id(nodeid, self.point_ids())
        if found is not None:
            self.outcomes.setdefault(found[0], {})[found[1]] = label

    def finish(self, finished: bool = True) -> list[str]:
        """Write matrix.json and summary.md from the units' facts and outcomes, and
        whether the run ``finished`` (a cancelled or stopped one did not); return the
        run's own errors: facts its tests produced that a record lost."""
        records = [self._record(u) for u in self.units]
        axis = [row for rec in records for row in rec.facts.get("pahole_axis", [])]  # type: ignore[attr-defined]
        # (a cut-short run's session fixtures may never have written their facts)
        lost = [f"{rec.point}: facts its tests produced are missing from its record: "
                f"{', '.join(keys)}" for rec in records
                if finished and (keys := self.lost_facts(rec))]
        preface = ("## Errors of the run\n\n" + "".join(f"- {e}\n" for e in lost) + "\n"
                   if lost else "")
        if len({row["point"] for row in axis}) > 1:
            preface += ("## pahole axis (each module against the first pahole of its arch, "
                        "kernel and toolchain)\n\n" + axis_table(sorted(
                            axis, key=lambda r: (str(r["module"]), r["point"] != r["baseline"]))))
        results.write_matrix(self.run_dir, records, preface, [m.name for m in self.modules],
                             finished, lost)
        return lost

    def _record(self, unit: Unit) -> results.PointRecord:
        """``unit``'s record: its facts, those its tests wrote down, its outcomes, and the
        line that reruns it (just its runner's failed tests, for a BPF CI job)."""
        outcomes = self.outcomes.get(unit.id, {})
        failed = [t.removeprefix("test_progs[").removesuffix("]")
                  for t, label in outcomes.items()
                  if label == "failed" and t.startswith("test_progs[")]
        rec = results.PointRecord(unit.id, facts={**unit.facts(), "rerun": unit.rerun(failed)},
                                  outcomes=outcomes)
        if isinstance(unit, VmtestPoint):
            rec.facts["guest"] = self.vmtest_run(unit).shape_note()
        if self.ci_log is not None and isinstance(unit, VmtestPoint):
            rec.facts["ci_job"] = self.ci_log.job or "-"
            rec.facts["ci_red"] = list(self.ci_log.red) or ["all"]
        for f in sorted((self.run_dir / unit.id).glob("facts-*.json")):
            for key, value in json.loads(f.read_text()).items():
                known = rec.facts.get(key)  # two workers' rows of one list are both kept
                rec.facts[key] = ([*known, *(v for v in value if v not in known)]
                                  if isinstance(known, list) and isinstance(value, list)
                                  else value)
        return rec


