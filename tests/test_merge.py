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
    assert "## Missing: points of the plan no finished run reported\n\n- aarch64-k" in summary
    assert "test_x (failed)" in summary and step.read_text() == summary


def test_a_dir_that_is_no_result_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        merge.main(["--out", str(tmp_path / "all"), str(tmp_path / "empty")])


def test_two_runs_that_disagree_keep_the_worse_outcome_and_say_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = job(tmp_path / "a", "x86_64-k", failed=True), job(tmp_path / "b", "x86_64-k")
    rc = merge.main(["--out", str(tmp_path / "all"), str(first), str(second)])
    assert rc == 1
    matrix = json.loads((tmp_path / "all/matrix.json").read_text())
    assert matrix[0]["outcomes"]["test_x"] == "failed"
    assert "x86_64-k test_x: failed in one run, passed in" in capsys.readouterr().out
    assert "kept failed" in (tmp_path / "all/summary.md").read_text()


def test_a_run_that_did_not_finish_leaves_its_points_missing(tmp_path: Path) -> None:
    run = job(tmp_path, "x86_64-k")
    results.write_matrix(run, [results.PointRecord("x86_64-k", {}, {"test_x": "passed"})],
                         finished=False)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps([{"id": "x86_64-k", "points": ["x86_64-k"]}]))
    assert merge.main(["--out", str(tmp_path / "all"), "--plan", str(plan), str(run)]) == 1
    assert "- x86_64-k (its run did not finish)" in (tmp_path / "all/summary.md").read_text()
    assert "did not finish" in (run / "summary.md").read_text()


def test_a_cancelled_or_stopped_session_is_recorded_as_unfinished() -> None:
    from suites.recorder import OutcomeRecorder

    seen: list[bool] = []

    class Run:
        def finish(self, finished: bool) -> None:
            seen.append(finished)

    class Session:
        shouldfail: bool | str = False
        shouldstop: bool | str = False

    recorder = OutcomeRecorder(Run())  # type: ignore[arg-type]
    recorder.pytest_sessionfinish(Session(), pytest.ExitCode.TESTS_FAILED)  # type: ignore[arg-type]
    recorder.pytest_sessionfinish(Session(), pytest.ExitCode.INTERRUPTED)  # type: ignore[arg-type]
    stopped = Session()
    stopped.shouldfail = "stopping after 1 failures"
    recorder.pytest_sessionfinish(stopped, pytest.ExitCode.TESTS_FAILED)  # type: ignore[arg-type]
    assert seen == [True, False, False]


def test_a_runs_own_error_is_carried_into_the_merge(tmp_path: Path) -> None:
    run = job(tmp_path, "x86_64-k")
    results.write_matrix(run, [results.PointRecord("x86_64-k", {}, {"test_x": "passed"})],
                         errors=["x86_64-k: facts its tests produced are missing: accel"])
    assert merge.main(["--out", str(tmp_path / "all"), str(run)]) == 1
    assert "## Errors of the runs" in (tmp_path / "all/summary.md").read_text()
