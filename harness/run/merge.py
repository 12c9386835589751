"""``./kbtf merge``: the results of several runs (CI jobs of one plan, each with --point) as
one: one junit.xml (junitparser), one matrix.json and summary.md, and GITHUB_STEP_SUMMARY
when set. A point of the plan that no run reported is listed as missing, never dropped."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from junitparser import JUnitXml

from harness.errors import ConfigError
from harness.run import results


def merge_records(run_dirs: Sequence[Path]) -> list[results.PointRecord]:
    """Each point's record across ``run_dirs`` (their matrix.json), facts and outcomes of
    later runs added to earlier ones. Raises ConfigError for a dir without matrix.json."""
    merged: dict[str, results.PointRecord] = {}
    for run in run_dirs:
        matrix = run / "matrix.json"
        if not matrix.is_file():
            raise ConfigError(f"{run}: no matrix.json: not a kbtf result dir")
        for rec in json.loads(matrix.read_text()):
            into = merged.setdefault(rec["point"], results.PointRecord(rec["point"]))
            into.facts.update(rec["facts"])
            into.outcomes.update(rec["outcomes"])
    return list(merged.values())


def missing(records: Sequence[results.PointRecord], planned: Sequence[str]) -> list[str]:
    """Points of the plan (``planned``: their ids) that no run reported an outcome for."""
    ran = {r.point for r in records if r.outcomes}
    return [p for p in planned if p not in ran]


def merge(run_dirs: Sequence[Path], out: Path, planned: Sequence[str] = ()) -> Path:
    """Write the merged junit.xml, matrix.json and summary.md into ``out``; return the
    summary's path. Raises ConfigError."""
    out.mkdir(parents=True, exist_ok=True)
    junit = JUnitXml()
    for run in run_dirs:
        if (run / "junit.xml").is_file():
            junit += JUnitXml.fromfile(str(run / "junit.xml"))
    junit.write(str(out / "junit.xml"))
    records = merge_records(run_dirs)
    absent = missing(records, planned)
    preface = ("## Missing: points of the plan no run reported\n\n"
               + "".join(f"- {p}\n" for p in absent)) if absent else ""
    summary = results.write_matrix(out, records, preface)
    if step_summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(step_summary, "a") as fh:
            fh.write(summary.read_text())
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``./kbtf merge [--plan PLAN.json] --out DIR RUN_DIR...``; exit 1 when a point of the
    plan is missing."""
    parser = argparse.ArgumentParser(prog="./kbtf merge", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where the merged results go")
    parser.add_argument("--plan", type=Path, help="./kbtf plan's JSON: its points must be there")
    parser.add_argument("runs", type=Path, nargs="+", help="result dirs (results/<run>)")
    args = parser.parse_args(argv)
    planned = ([p for unit in json.loads(args.plan.read_text()) for p in unit["points"]]
               if args.plan else [])
    try:
        summary = merge(args.runs, args.out, planned)
    except ConfigError as exc:
        parser.error(str(exc))
    absent = missing(merge_records(args.runs), planned)
    print(f"kbtf: merged {len(args.runs)} runs into {summary.parent}"
          + (f"; missing: {', '.join(absent)}" if absent else ""))
    return 1 if absent else 0


if __name__ == "__main__":
    sys.exit(main())
