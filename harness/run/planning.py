"""The plan of a run from its options (its units: matrix points, distro kernels, BPF CI
jobs), and the units with what the plan names fetched. ./kbtf plan prints the plan."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from harness.builds import distro, fetch, kbuild
from harness.errors import ConfigError
from harness.plan.matrix import MatrixPoint, resolve_points
from harness.plan.unit import Unit
from harness.plan.vmtest import VmtestPoint
from harness.run import runplan
from harness.run.options import RunOptions, with_ci_log
from harness.run.runplan import RunPlan
from harness.run.vmtestrun import vmtest_points


def fetched_units(found: RunPlan, cache: Path, say: Callable[[str], None]) -> list[Unit]:
    """The units of ``found`` with what the plan names fetched (builds/fetch.py for the
    kernels built from source, distro.fetch_kernel for distro kernels), in plan order.
    Raises HarnessError."""
    built = [u for u in found.units if isinstance(u, MatrixPoint | VmtestPoint)]
    points = fetch.fetch([u if isinstance(u, MatrixPoint) else u.point for u in built],
                         cache, say)
    ready: dict[int, Unit] = {id(u): (p if isinstance(u, MatrixPoint) else replace(u, point=p))
                              for u, p in zip(built, points, strict=True)}
    return [ready.get(id(u)) or distro.fetch_kernel(u, cache, say)  # type: ignore[arg-type]
            for u in found.units]


def no_baseline(point: MatrixPoint, baseline: MatrixPoint) -> str | None:
    """Why ``point`` has nothing to compare with on its pahole axis (it is the baseline
    itself), or None."""
    if point != baseline:
        return None
    return (f"{point.id} is the baseline of its pahole axis: no other pahole in this run to "
            "compare its module BTF with (add --pahole or --module-pahole)")


def resolve(options: RunOptions, cache: Path) -> RunPlan:
    """The plan of the run: from options, local files and apt metadata (nothing downloaded
    or built: builds/fetch.py and distro.fetch_kernel bring what it names).
    Raises HarnessError."""
    jobs = vmtest_points(options.vmtest_job or [], options.kernel, options.pahole,
                         tuple(options.kconfig_add), cache)
    points = [] if options.no_matrix else resolve_points(
        options.arch, options.kernel, options.pahole or [], options.kconfig_add, cache,
        options.module_pahole, options.launcher, options.toolchain)
    distros = distro.resolve(options.distro or [], options.distro_deb or [], cache)
    units: list[Unit] = [*points, *distros, *jobs]
    seen: set[str] = set()
    for unit in units:
        if unit.id in seen:  # its results would overwrite another's
            raise ConfigError(f"two units of this run are both named {unit.id}: two --kernel "
                              "trees of one version? give one tree per kernel version")
        seen.add(unit.id)
    return RunPlan(units)


def plan_json(options: RunOptions, args: list[str]) -> str:
    """The plan of ``options`` (the command line ``args``) as JSON: run/runplan.units.
    Reads options, local files and apt metadata; builds nothing. Raises HarnessError."""
    cache = Path(options.cache_dir) if options.cache_dir else kbuild.default_cache_dir()
    options, _ = with_ci_log(options)
    found = runplan.select(resolve(options, cache), options.point or [])
    units = runplan.units(found.units, args, cache)
    return json.dumps(units, indent=2) + "\n"


