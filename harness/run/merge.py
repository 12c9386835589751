"""``./kbtf merge``: the results of several runs (CI jobs of one plan, each with --point) as
one: one junit.xml (junitparser), one matrix.json and summary.md, and GITHUB_STEP_SUMMARY
when set. A point of the plan that no finished run reported is listed as missing, never
dropped; two runs that disagree on a test keep the worse outcome and say so."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from junitparser import JUnitXml

from harness.errors import ConfigError
from harness.run import results

# Outcomes from the worst to the best: a merge keeps the worse of two for one test.
RANK = ("error", "failed", "xpassed", "skipped", "xfailed", "passed")


def _rank(label: str) -> int:
    kind = label.split(":")[0]
    return RANK.index(kind) if kind in RANK else 0


@dataclass
class Merged:
    """Several runs' records as one: each test's worst outcome, the tests two runs
    disagree on (said, never hidden), and the points only runs that did not finish
    reported (missing: a cut-short run's outcomes are incomplete)."""

    records: list[results.PointRecord]
    conflicts: list[str] = field(default_factory=list)
    unfinished: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)  # the runs' own errors (lost facts)

    def missing(self, planned: Sequence[str]) -> list[str]:
        """Points of the plan (``planned``: their ids) that no finished run reported, and,
        plan or not, those only a run that did not finish reported."""
        ran = {r.point for r in self.records if r.outcomes} - self.unfinished
        return list(dict.fromkeys([*(p for p in planned if p not in ran),
                                   *sorted(self.unfinished)]))


def merge_records(run_dirs: Sequence[Path]) -> Merged:
    """Each point's record across ``run_dirs`` (their matrix.json), facts of later runs
    added to earlier ones, each test's worse outcome kept. Raises ConfigError for a dir
    without matrix.json."""
    merged: dict[str, results.PointRecord] = {}
    conflicts: list[str] = []
    errors: list[str] = []
    finished: set[str] = set()
    unfinished: set[str] = set()
    for run in run_dirs:
        matrix = run / "matrix.json"
        if not matrix.is_file():
            raise ConfigError(f"{run}: no matrix.json: not a kbtf result dir")
        done = results.run_finished(run)
        errors += [f"{run}: {e}" for e in results.run_errors(run)]
        for rec in json.loads(matrix.read_text()):
            point = rec["point"]
            (finished if done else unfinished).add(point)
            into = merged.setdefault(point, results.PointRecord(point))
            into.facts.update(rec["facts"])
            for test, label in rec["outcomes"].items():
                before = into.outcomes.get(test)
                if before is not None and before != label:
                    worse = min(before, label, key=_rank)
                    conflicts.append(f"{point} {test}: {before} in one run, {label} in "
                                     f"{run}: kept {worse}")
                    label = worse
                into.outcomes[test] = label
    return Merged(list(merged.values()), conflicts, unfinished - finished, errors)


def merge(run_dirs: Sequence[Path], out: Path, planned: Sequence[str] = ()) -> Merged:
    """Write the merged junit.xml, matrix.json and summary.md into ``out``; return what
    was merged. Raises ConfigError."""
    out.mkdir(parents=True, exist_ok=True)
    junit = JUnitXml()
    for run in run_dirs:
        if (run / "junit.xml").is_file():
            junit += JUnitXml.fromfile(str(run / "junit.xml"))
    junit.write(str(out / "junit.xml"))
    merged = merge_records(run_dirs)
    absent = merged.missing(planned)
    preface = ("## Missing: points of the plan no finished run reported\n\n"
               + "".join(f"- {p}" + (" (its run did not finish)" if p in merged.unfinished
                                     else "") + "\n" for p in absent)) if absent else ""
    if merged.errors:
        preface = ("## Errors of the runs\n\n" + "".join(f"- {e}\n" for e in merged.errors)
                   + "\n" + preface)
    if merged.conflicts:
        preface += ("## Runs that disagree (the worse outcome is kept)\n\n"
                    + "".join(f"- {c}\n" for c in merged.conflicts))
    summary = results.write_matrix(out, merged.records, preface,
                                   finished=not merged.unfinished, errors=merged.errors)
    if step_summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(step_summary, "a") as fh:
            fh.write(summary.read_text())
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    """``./kbtf merge [--plan PLAN.json] --out DIR RUN_DIR...``; exit 1 when a point of the
    plan is missing or two runs disagree on a test."""
    parser = argparse.ArgumentParser(prog="./kbtf merge", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where the merged results go")
    parser.add_argument("--plan", type=Path, help="./kbtf plan's JSON: its points must be there")
    parser.add_argument("runs", type=Path, nargs="+", help="result dirs (results/<run>)")
    args = parser.parse_args(argv)
    planned = ([p for unit in json.loads(args.plan.read_text()) for p in unit["points"]]
               if args.plan else [])
    try:
        merged = merge(args.runs, args.out, planned)
    except ConfigError as exc:
        parser.error(str(exc))
    absent = merged.missing(planned)
    for conflict in merged.conflicts:
        print(f"kbtf: runs disagree: {conflict}")
    for error in merged.errors:
        print(f"kbtf: ERROR of a run: {error}")
    print(f"kbtf: merged {len(args.runs)} runs into {args.out}"
          + (f"; missing: {', '.join(absent)}" if absent else ""))
    return 1 if absent or merged.conflicts or merged.errors else 0


if __name__ == "__main__":
    sys.exit(main())
