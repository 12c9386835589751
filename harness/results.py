"""The run directory under results/ and its human summary."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def new_run_dir(base: Path = RESULTS_DIR) -> Path:
    """Create results/<timestamp>-<n>/ and point results/latest at it."""
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        run = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            run.mkdir()
            break
        except FileExistsError:
            continue
    latest = base / "latest"
    latest.unlink(missing_ok=True)
    latest.symlink_to(run.name)
    return run


@dataclass
class PointRecord:
    """What one matrix point produced, for matrix.json and the summary."""

    point: str
    facts: dict[str, object] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)  # test name -> passed/failed/...


def write_matrix(run_dir: Path, records: list[PointRecord]) -> Path:
    """Write matrix.json and summary.md; return the summary's path."""
    (run_dir / "matrix.json").write_text(
        json.dumps([asdict(r) for r in records], indent=2, default=str) + "\n"
    )
    lines = ["# kbtf results", ""]
    for rec in records:
        lines.append(f"## {rec.point}")
        for k, v in sorted(rec.facts.items()):
            lines.append(f"- {k}: {v}")
        lines.append("")
        lines.append("| test | outcome |")
        lines.append("| --- | --- |")
        for name, outcome in sorted(rec.outcomes.items()):
            lines.append(f"| {name} | {outcome} |")
        lines.append("")
    summary = run_dir / "summary.md"
    summary.write_text("\n".join(lines))
    return summary
