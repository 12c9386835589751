"""The plan of a run: its units (plan/unit.py) grouped by kernel, each group with a stable
id and the exact arguments that run only it (``--point ID``), for CI matrices. Pure but for
reading the cache."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from harness import proc
from harness.builds import kbuild
from harness.errors import ConfigError
from harness.plan.kernelreq import KernelRequest
from harness.plan.unit import Unit


@dataclass(frozen=True)
class RunPlan:
    """What a run runs: its units (matrix points, distro kernels, BPF CI jobs)."""

    units: list[Unit]

    def of_kind(self, kind: type[U]) -> list[U]:
        """The units of one kind, for what differs in kind (fetching, building)."""
        return [u for u in self.units if isinstance(u, kind)]


U = TypeVar("U")


def units(found: Sequence[Unit], args: Sequence[str], cache: Path) -> list[dict[str, object]]:
    """One entry per kernel (Unit.group) of the units ``found``: id, label, the unit ids it
    runs, whether its kernel is ready (built in the cache, and how long that build took;
    a distro's always is), and ``args`` plus ``--point ID``."""
    entries: dict[str, dict[str, object]] = {}
    for unit in found:
        entry = entries.setdefault(unit.group, {
            "id": unit.group, "label": unit.describe, "points": [],
            **_cached(unit.source_kernel, cache), "args": [*args, "--point", unit.group]})
        entry["points"].append(unit.id)  # type: ignore[attr-defined]
    return list(entries.values())


def _cached(kernel: KernelRequest | None, cache: Path) -> dict[str, object]:
    """Whether ``kernel`` (None: a distro's, unpacked) is in the cache, and its build
    seconds when recorded (not, when its pahole is not even fetched yet or its clang is a
    build root's that no fetch put on PATH)."""
    if kernel is None:
        return {"kernel_cached": True}
    compiler = kernel.toolchain.programs(kernel.arch)[0]
    if not kernel.pahole.digest or not shutil.which(compiler, path=proc.tool_path()):
        return {"kernel_cached": False}
    entry = kbuild.cached_entry(kernel, cache)
    if entry is None:
        return {"kernel_cached": False}
    meta = json.loads((entry / "kbtf-build.json").read_text())
    return {"kernel_cached": True, "build_seconds": meta.get("build_seconds")}


def select(found: RunPlan, wanted: Sequence[str]) -> RunPlan:
    """The units of the kernels (Unit.group) or the single units named in ``wanted``
    (--point; empty: all). Raises ConfigError for an id the plan does not have."""
    if not wanted:
        return found
    groups = {u.group for u in found.units}
    unknown = [w for w in wanted if w not in groups | {u.id for u in found.units}]
    if unknown:
        raise ConfigError(f"--point {unknown[0]}: not in this run's plan; its ids: "
                          f"{', '.join(sorted(groups))} (./kbtf plan <the same options> lists "
                          "them)")
    return RunPlan([u for u in found.units if u.group in wanted or u.id in wanted])


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
    """``python -m harness.run.runplan github|gitlab PLAN.json``: the plan as a GitHub matrix
    (``{"include": [...]}``, one line) or a GitLab child pipeline (JSON is YAML)."""
    if len(argv) != 2 or argv[0] not in ("github", "gitlab"):
        print("usage: python -m harness.run.runplan github|gitlab PLAN.json", file=sys.stderr)
        return 2
    jobs = ci_jobs(json.loads(Path(argv[1]).read_text()))
    out = {"include": jobs} if argv[0] == "github" else gitlab_child(jobs)
    print(json.dumps(out, separators=(",", ":") if argv[0] == "github" else None, indent=None
                     if argv[0] == "github" else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
