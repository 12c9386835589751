"""The plan of a run: its independently buildable units (a kernel build and the points that
run on it, or a distro kernel), each with a stable id and the exact arguments that run only
it (``--point ID``), for CI matrices. Pure but for reading the cache."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import proc
from harness.build import kbuild
from harness.build.distro import DistroKernel
from harness.errors import ConfigError
from harness.plan.matrix import MatrixPoint
from harness.plan.vmtest import VmtestPoint


@dataclass(frozen=True)
class RunPlan:
    """What a run runs: matrix points, distro kernels, BPF CI jobs."""

    points: list[MatrixPoint]
    distros: list[DistroKernel]
    vmtest: list[VmtestPoint] = field(default_factory=list)


def units(points: Sequence[MatrixPoint], distros: Sequence[DistroKernel], args: Sequence[str],
          cache: Path, vmtest: Sequence[VmtestPoint] = ()) -> list[dict[str, object]]:
    """One entry per kernel of ``points`` (its id: the points' kernel_id), per distro
    kernel and per BPF CI job: id, label, the point ids it runs, whether its kernel A is in
    the cache (and how long that build took), and ``args`` plus ``--point ID``."""
    entries: dict[str, dict[str, object]] = {}
    for p in points:
        unit = entries.setdefault(p.kernel_id, {
            "id": p.kernel_id, "label": f"{p.kernel.arch.name} {p.kernel.source.label} "
            f"{p.kernel.toolchain.name} {p.kernel.pahole.label}", "points": [],
            **_cached(p, cache), "args": [*args, "--point", p.kernel_id]})
        unit["points"].append(p.id)  # type: ignore[attr-defined]
    for k in distros:
        entries[k.label] = {"id": k.label, "label": f"{k.arch.name} {k.release} (distro)",
                            "points": [k.label], "kernel_cached": True,
                            "args": [*args, "--point", k.label]}
    for v in vmtest:
        entries[v.id] = {"id": v.id, "label": f"{v.job.short} on {v.point.kernel.source.label}"
                         " (BPF CI job)", "points": [v.id], **_cached(v.point, cache),
                         "args": [*args, "--point", v.id]}
    return list(entries.values())


def _cached(point: MatrixPoint, cache: Path) -> dict[str, object]:
    """Whether ``point``'s kernel A is in the cache, and its build seconds when recorded
    (not, when its pahole is not even fetched yet or its clang is a build root's that
    no fetch put on PATH)."""
    compiler = point.kernel.toolchain.programs(point.kernel.arch)[0]
    if not point.kernel.pahole.digest or not shutil.which(compiler, path=proc.tool_path()):
        return {"kernel_cached": False}
    entry = kbuild.cached_entry(point.kernel, cache)
    if entry is None:
        return {"kernel_cached": False}
    meta = json.loads((entry / "kbtf-build.json").read_text())
    return {"kernel_cached": True, "build_seconds": meta.get("build_seconds")}


def select(found: RunPlan, wanted: Sequence[str]) -> RunPlan:
    """The points, distro kernels and BPF CI jobs of the units (or single points) named in
    ``wanted`` (--point; empty: all). Raises ConfigError for an id the plan does not have."""
    if not wanted:
        return found
    units_ = ({p.kernel_id for p in found.points} | {k.label for k in found.distros}
              | {v.id for v in found.vmtest})
    unknown = [w for w in wanted if w not in units_ | {p.id for p in found.points}]
    if unknown:
        raise ConfigError(f"--point {unknown[0]}: not in this run's plan; its ids: "
                          f"{', '.join(sorted(units_))} (./kbtf plan <the same options> lists "
                          "them)")
    return RunPlan([p for p in found.points if p.kernel_id in wanted or p.id in wanted],
                   [k for k in found.distros if k.label in wanted],
                   [v for v in found.vmtest if v.id in wanted])


# GitHub Actions runs at most this many jobs of one matrix.
MATRIX_LIMIT = 256


def ci_jobs(units_: Sequence[dict[str, object]], limit: int = MATRIX_LIMIT
            ) -> list[dict[str, str]]:
    """CI jobs for a plan: one per unit, or, past ``limit`` units, ``limit`` jobs each
    running several units (round robin). Each: a name and its ``--point`` arguments."""
    groups: list[list[dict[str, object]]] = [[] for _ in range(min(limit, len(units_)))]
    for n, unit in enumerate(units_):
        groups[n % len(groups)].append(unit)
    return [{"name": str(g[0]["label"]) if len(g) == 1 else f"group {n + 1} of {len(groups)}",
             "points": " ".join(f"--point {u['id']}" for u in g)}
            for n, g in enumerate(groups)]


def gitlab_child(jobs: Sequence[dict[str, str]]) -> dict[str, object]:
    """A GitLab child pipeline running ``jobs`` (ci_jobs), results kept as artifacts."""
    return {f"kbtf {job['name']}": {
        "stage": "test", "image": "debian:bookworm", "timeout": "3h",
        "script": [f"./kbtf pytest suites/ -n auto $KBTF_ARGS {job['points']}"],
        "artifacts": {"when": "always", "paths": ["results/"], "reports": {
            "junit": "results/latest/junit.xml"}}} for job in jobs} | {"stages": ["test"]}


def main(argv: Sequence[str]) -> int:
    """``python -m harness.run.plan github|gitlab PLAN.json``: the plan as a GitHub matrix
    (``{"include": [...]}``, one line) or a GitLab child pipeline (JSON is YAML)."""
    if len(argv) != 2 or argv[0] not in ("github", "gitlab"):
        print("usage: python -m harness.run.plan github|gitlab PLAN.json", file=sys.stderr)
        return 2
    jobs = ci_jobs(json.loads(Path(argv[1]).read_text()))
    out = {"include": jobs} if argv[0] == "github" else gitlab_child(jobs)
    print(json.dumps(out, separators=(",", ":") if argv[0] == "github" else None, indent=None
                     if argv[0] == "github" else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
