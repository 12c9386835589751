"""The plan of a run (./kbtf plan, --point): one unit per kernel build with the arguments
that run only it; --point checks its ids against the plan."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.arches import get_arch
from harness.errors import ConfigError
from harness.plan.kernelreq import KernelRequest
from harness.plan.ksource import KernelSource
from harness.plan.matrix import MatrixPoint
from harness.plan.pahole import Pahole
from harness.run import runplan

SRC = KernelSource(Path("/s"), "6.12.117", "deb:x", "debian6.12.117", "debian:6.12")
P130 = Pahole(Path("/p/1.30"), "1.30", (), digest="a")
P132 = Pahole(Path("/p/1.32"), "1.32", (), digest="b")


def point(arch: str, module_pahole: Pahole = P130) -> MatrixPoint:
    return MatrixPoint(KernelRequest(get_arch(arch), SRC, P130), module_pahole)


def test_one_unit_per_kernel_with_the_arguments_that_run_only_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runplan, "_cached", lambda p, cache: {"kernel_cached": False})
    points = [point("x86_64"), point("x86_64", P132), point("s390x")]
    units = runplan.units(points, ["suites/", "--module-pahole", "debian:1.32"], Path("/c"))
    assert [u["id"] for u in units] == ["x86_64-debian6.12.117-gcc-pahole1.30",
                                        "s390x-debian6.12.117-gcc-pahole1.30"]
    assert units[0]["points"] == [points[0].id, points[1].id]  # the module-pahole axis rides along
    assert units[1]["args"] == ["suites/", "--module-pahole", "debian:1.32", "--point",
                                "s390x-debian6.12.117-gcc-pahole1.30"]


def test_point_selects_a_unit_or_a_point_and_refuses_others() -> None:
    points = [point("x86_64"), point("x86_64", P132), point("s390x")]
    found = runplan.RunPlan(list(points))
    assert runplan.select(found, []) == found
    assert runplan.select(found, ["x86_64-debian6.12.117-gcc-pahole1.30"]).units == points[:2]
    assert runplan.select(found, [points[1].id]).units == [points[1]]
    with pytest.raises(ConfigError, match=re.escape(
            "--point aarch64-x: not in this run's plan; its ids: "
            "s390x-debian6.12.117-gcc-pahole1.30, x86_64-debian6.12.117-gcc-")):
        runplan.select(found, ["aarch64-x"])
