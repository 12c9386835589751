"""The plan of a run from its options (its units: matrix points, distro kernels, BPF CI
jobs), and the units with what the plan names fetched. ./kbtf plan prints the plan."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from harness import provision
from harness.builds import distro, fetch, kbuild
from harness.errors import ConfigError
from harness.plan import ksource, matrix, pahole, toolchain
from harness.plan.matrix import MatrixPoint, resolve_points
from harness.plan.unit import Unit
from harness.plan.vmtest import VmtestPoint, resolve_jobs
from harness.run import runplan
from harness.run.options import RunOptions, with_ci_log
from harness.run.runplan import RunPlan


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


def vmtest_points(names: list[str], kernel_specs: list[str] | None,
                  pahole_specs: list[str] | None, kconfig_add: tuple[str, ...], cache: Path
                  ) -> list[VmtestPoint]:
    """The BPF CI jobs of --vmtest-job ``names`` on each --kernel (default: kbtf's), with
    the first --pahole (default: the newest Debian's, as BPF CI builds pahole's master):
    the plan, nothing fetched but apt lists. Raises HarnessError (a job name kbtf cannot
    map, a tool missing)."""
    if not names:
        return []
    sources = [ksource.resolve(s, cache)
               for s in dict.fromkeys(kernel_specs or [ksource.DEFAULT_KERNEL])]
    newest = max(provision.DEBIAN_PAHOLES, key=pahole.version_code)
    ph = matrix.resolve_pahole(pahole_specs[0] if pahole_specs else f"debian:{newest}", cache)

    @functools.cache
    def suite_clangs(suite: str) -> list[int]:
        return [int(m[1]) for name in provision.package_names(cache, suite)
                if (m := re.fullmatch(r"clang-(\d+)", name))]

    jobs = resolve_jobs(names, sources, ph, kconfig_add, toolchain.installed_clangs(),
                        suite_clangs)
    for arch in dict.fromkeys(v.point.kernel.arch for v in jobs):
        matrix.host_tools(arch, "kbtf")
    return jobs
