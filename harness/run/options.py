"""A run's command line, typed (suites/conftest.py and conftest.py define the options), and
what it asks for before anything is planned: a --vmtest-log's job and red tests, the
modules of the generic suite."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from harness import REPO
from harness.errors import ConfigError
from harness.guest import cilog
from harness.plan.usermod import OWN_MODULES, ModuleSpec, parse_dkms, parse_spec


@dataclass(frozen=True)
class RunOptions:
    """The command line of a run, typed (conftest.py defines the options)."""

    arch: list[str] | None = None
    kernel: list[str] | None = None
    pahole: list[str] | None = None
    module_pahole: list[str] | None = None
    toolchain: list[str] | None = None
    launcher: str | None = None
    kconfig_add: list[str] = field(default_factory=list)
    module: list[str] | None = None
    distro: list[str] | None = None
    distro_deb: list[str] | None = None
    distro_cmdline: list[str] = field(default_factory=list)
    sabotage: str | None = None
    accel: str = "auto"
    cache_dir: str | None = None
    btf_growth_limit: float | None = None
    point: list[str] | None = None  # --point: run only these units of the plan
    vmtest_job: list[str] | None = None  # --vmtest-job: BPF CI jobs to reproduce
    vmtest_tests: str | None = None  # --vmtest-tests: which tests of their runners
    vmtest_log: str | None = None  # --vmtest-log: a BPF CI job's log: its job and red tests
    guest_cpus: int | None = None  # --guest-cpus: a BPF CI job's guest's vCPUs
    guest_memory: str | None = None  # --guest-memory: its memory
    dkms: list[str] | None = None  # --dkms: DKMS packages (Debian's or a user's dir)
    cache_remote: str | None = None  # --cache-remote: an OCI registry sharing kernels
    shell: bool = False  # ./kbtf shell: one guest handed to the terminal, no test run

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace | object) -> RunOptions:
        """The options of a parsed command line (pytest's ``config.option``)."""
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls)})

    @property
    def distro_only(self) -> bool:
        """Only --distro/--distro-deb given: no kernel is built from source."""
        return bool(self.distro or self.distro_deb) and not any(
            (self.arch, self.kernel, self.pahole, self.module_pahole, self.toolchain))

    @property
    def no_matrix(self) -> bool:
        """The matrix suites do not run: only distro kernels, or BPF CI jobs (whose
        --kernel/--pahole options are theirs)."""
        return self.distro_only or bool(self.vmtest_job)


def with_ci_log(options: RunOptions) -> tuple[RunOptions, cilog.CiLog | None]:
    """``options`` with what a --vmtest-log says filled in where the command line says
    nothing: the job (its whole name) and the tests to run (its red ones), and the log.
    Raises ConfigError (no log there, no red test in it, no job name in it or given)."""
    if not options.vmtest_log:
        return options, None
    log_file = Path(options.vmtest_log).expanduser()
    found = cilog.load(log_file)
    jobs = options.vmtest_job or ([found.job] if found.job else [])
    if not jobs:
        raise ConfigError(f"--vmtest-log {log_file}: it names no job (no 'Complete job name:' "
                          "line): add --vmtest-job with the row's name")
    tests = options.vmtest_tests or (",".join(found.red) if found.red else "all")
    return replace(options, vmtest_job=jobs, vmtest_tests=tests), found


def module_specs(given: Iterable[str], dkms: Iterable[str], cache: Path) -> list[ModuleSpec]:
    """The modules the generic suite checks: kbtf's own, each --module, then each --dkms
    package (once each; packages as planned: fetch_dkms brings them).
    Raises ConfigError on a bad --module or --dkms."""
    specs = [parse_spec(s, REPO) for s in [*OWN_MODULES, *given]]
    specs += [parse_dkms(s, cache) for s in dkms]
    return list({s.path: s for s in specs}.values())


