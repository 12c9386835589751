"""kbtf's CI definitions (.github/workflows/kbtf.yml, .gitlab-ci.yml) against the official
schemas (check-jsonschema's vendored copies, offline), and the plan-to-matrix step on a real
plan (tests/data/plan-default.json: `./kbtf plan` of the default command line)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run import runplan

ROOT = Path(__file__).resolve().parent.parent
CHECK = Path(sys.executable).parent / "check-jsonschema"
PLAN = Path(__file__).parent / "data" / "plan-default.json"


def valid(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECK), "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("schema", "path"), [
    ("vendor.github-workflows", ROOT / ".github/workflows/kbtf.yml"),
    ("vendor.gitlab-ci", ROOT / ".gitlab-ci.yml"),
])
def test_ci_definitions_follow_the_official_schemas(schema: str, path: Path) -> None:
    res = valid(schema, path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_broken_definition_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "kbtf.yml"
    broken.write_text((ROOT / ".github/workflows/kbtf.yml").read_text()
                      .replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    assert valid("vendor.github-workflows", broken).returncode != 0


def test_the_real_plan_becomes_a_matrix_and_a_child_pipeline(tmp_path: Path) -> None:
    units = json.loads(PLAN.read_text())
    jobs = runplan.ci_jobs(units)
    assert [j["points"] for j in jobs] == [f"--point {u['id']}" for u in units]
    child = tmp_path / "child-pipeline.yml"
    child.write_text(json.dumps(runplan.gitlab_child(jobs)))  # JSON is YAML
    res = valid("vendor.gitlab-ci", child)
    assert res.returncode == 0, res.stdout + res.stderr
    out = subprocess.run([sys.executable, "-m", "harness.run.runplan", "github", str(PLAN)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert json.loads(out) == {"include": jobs} and "\n" not in out.strip()


def test_past_256_units_jobs_run_several() -> None:
    units: list[dict[str, object]] = [{"id": f"u{n}", "label": f"unit {n}"} for n in range(600)]
    jobs = runplan.ci_jobs(units)
    assert len(jobs) == runplan.MATRIX_LIMIT
    ran = [p for j in jobs for p in j["points"].split() if p != "--point"]
    assert sorted(ran) == sorted(str(u["id"]) for u in units)
