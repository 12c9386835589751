"""--plan (./kbtf plan): print the run's plan as JSON and exit, building nothing."""

from __future__ import annotations

import sys

import pytest

from harness.errors import HarnessError
from harness.run.context import RunOptions, plan_json


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
