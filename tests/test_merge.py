"""./kbtf merge: per-job results of one plan as one junit.xml, matrix.json and summary.md;
a point of the plan no job reported is listed as missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from junitparser import JUnitXml

from harness.run import merge, results

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest"
 tests="2" failures="{f}" errors="0" skipped="0"><testcase classname="suites.test_module_btf"
 name="test_module_loads[{p}]"/><testcase classname="suites.test_pahole" name="test_x[{p}]">
{failure}</testcase></testsuite></testsuites>"""


def job(tmp_path: Path, point: str, failed: bool = False) -> Path:
    run = tmp_path / point
    run.mkdir()
    results.write_matrix(run, [results.PointRecord(point, {"arch": point.split("-")[0]},
                                                   {"test_module_loads": "passed",
                                                    "test_x": "failed" if failed else "passed"})])
    (run / "junit.xml").write_text(JUNIT.format(
        p=point, f=int(failed), failure='<failure message="boom"/>' if failed else ""))
    return run


def test_jobs_merge_into_one_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    step = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    runs = [job(tmp_path, "x86_64-k"), job(tmp_path, "s390x-k", failed=True)]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps([{"id": u, "points": [u]} for u in
                                ("x86_64-k", "s390x-k", "aarch64-k")]))
    rc = merge.main(["--out", str(tmp_path / "all"), "--plan", str(plan), *map(str, runs)])
    assert rc == 1  # aarch64-k is missing
    cases = [c for suite in JUnitXml.fromfile(str(tmp_path / "all/junit.xml")) for c in suite]
    assert len(cases) == 4
    matrix = json.loads((tmp_path / "all/matrix.json").read_text())
    assert [r["point"] for r in matrix] == ["x86_64-k", "s390x-k"]
    summary = (tmp_path / "all/summary.md").read_text()
    assert "## Missing: points of the plan no run reported\n\n- aarch64-k" in summary
    assert "test_x (failed)" in summary and step.read_text() == summary


def test_a_dir_that_is_no_result_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        merge.main(["--out", str(tmp_path / "all"), str(tmp_path / "empty")])
