"""./kbtf shell: one unit of a run's plan booted, its modules or selftests at hand, its
shell handed to the user's terminal. The unit: the --point given, else the run's first
BPF CI job, matrix point or distro kernel."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from harness.builds.distro import DistroKernel
from harness.builds.kbuild import Progress
from harness.errors import ConfigError, KbtfError
from harness.guest.pool import GuestPool
from harness.guest.session import GuestSession
from harness.plan.matrix import MatrixPoint
from harness.plan.vmtest import VmtestPoint
from harness.run.context import RunContext

# Seconds a command given to ./kbtf shell (after --) may run in the guest.
COMMAND_TIMEOUT = 3600


def open_shell(ctx: RunContext, say: Progress, wait: Callable[[], None],
               command: str | None = None) -> int:
    """Build what the run's first unit needs, boot its guest, say where things are in it,
    ``wait()`` (the terminal is handed over after it), then interact until the guest
    exits (0); with ``command``, run it there instead (from a BPF CI job's selftests dir),
    its output on the terminal, and return its exit code. Raises ConfigError (nothing to
    boot), what the builds, the boot and the command raise."""
    pool = GuestPool()
    try:
        session, where = _boot(ctx, pool, say)
        if command is not None:
            workdir = "/kbtf/selftests" if isinstance(ctx.units[0], VmtestPoint) else "/"
            say(f"kbtf: {session.name} ({where}): {command}")
            res = session.run(f"cd {workdir} && {command}", timeout=COMMAND_TIMEOUT)
            print(res.stdout, end="" if res.stdout.endswith("\n") else "\n", flush=True)
            if res.stderr:
                print(res.stderr, end="" if res.stderr.endswith("\n") else "\n",
                      file=sys.stderr, flush=True)
            return res.rc
        say(f"kbtf: shell on {session.name} ({where}); the repository is /kbtf/repo, the run "
            f"dir /kbtf/run. Leave with 'exit' or Ctrl-]")
        wait()
        session.interact()
        return 0
    finally:
        pool.close_all()


def _boot(ctx: RunContext, pool: GuestPool, say: Progress) -> tuple[GuestSession, str]:
    """The guest of the run's first unit, booted, and what it has at hand."""
    unit = ctx.units[0] if ctx.units else None
    if isinstance(unit, VmtestPoint):
        ctx.build({(unit.id, "vmtest")}, say)
        run = ctx.vmtest_run(unit)
        return run.guest(pool, run.selftests()), (
            f"{unit.id}: cd /kbtf/selftests; ./{unit.job.binary} -a <test>; bpf_testmod.ko is "
            "there")
    if isinstance(unit, MatrixPoint):
        return _boot_point(ctx, unit, pool, say)
    if isinstance(unit, DistroKernel):
        return ctx.distro_run(unit).guest(pool), f"{unit.id} (distro kernel)"
    raise ConfigError("./kbtf shell: this command line has nothing to boot")


def _boot_point(ctx: RunContext, point: MatrixPoint, pool: GuestPool, say: Progress
                ) -> tuple[GuestSession, str]:
    """A matrix point's kernel A booted, with kbtf's and the --module modules built."""
    ctx.build({(point.id, "")}, say)
    run = ctx.point_run(point)
    kernel = run.kernel("")
    built: list[Path] = []
    for spec in ctx.modules:
        try:
            built += run.module(kernel, spec.path, "default").kos
        except KbtfError as exc:
            say(f"kbtf: {spec.name} did not build: {exc}")
    session = run.guest(kernel, pool, "shell")
    return session, f"{point.id}: modules " + " ".join(session.path(p) for p in built)
