"""What a run shows on the terminal besides test results: --plan (./kbtf plan: the plan as
JSON, building nothing), --shell (./kbtf shell: a guest's shell handed to the terminal) and
progress lines."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from harness.errors import HarnessError, KbtfError
from harness.run.context import RunContext
from harness.run.options import RunOptions
from harness.run.planning import plan_json
from harness.run.shell import open_shell


def print_plan(config: pytest.Config) -> None:
    """The plan of this command line (without --plan) as JSON on stdout; exits 0.
    Raises pytest.UsageError for bad input, like a run."""
    args = [str(a) for a in config.invocation_params.args if a != "--plan"]
    try:
        text = plan_json(RunOptions.from_namespace(config.option), args)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)
    sys.stdout.write(text)
    sys.stdout.flush()
    pytest.exit("plan printed", returncode=0)


def progress(config: pytest.Config) -> Callable[[str], None]:
    """Progress lines on the terminal (on stderr before pytest's reporter exists)."""
    def say(msg: str) -> None:
        if (reporter := config.pluginmanager.get_plugin("terminalreporter")) is None:
            return print(msg, file=sys.stderr, flush=True)
        reporter.write_line(msg)
        reporter.flush()
    return say


def shell(config: pytest.Config, run: RunContext) -> None:
    """--shell: build and boot the run's first unit (or its --point), hand its shell to the
    terminal, exit when it ends. Raises pytest.UsageError for bad input or a failed build."""
    if getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("./kbtf shell runs one guest: leave out -n")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def release_terminal() -> None:
        if capture is not None:
            capture.suspend_global_capture(in_=True)

    try:
        rc = open_shell(run, progress(config), release_terminal, config.option.shell_command)
    except KbtfError as exc:
        raise pytest.UsageError(str(exc)) from None
    pytest.exit("shell closed", returncode=rc)
