"""Benchmark: the main job of an earlier revision and of this checkout, back to back on the
same machine state (same cache, one right after the other), then their phases side by side
with ratios (bench/profile.py). This VM's speed drifts by 10-20% between runs minutes apart,
so a before/after figure is only fair when both runs are taken this way.

Usage: ./kbtf python -m bench.compare REV [PYTEST_ARG ...]   (default: the main job's args)
The revision is checked out into a temporary git worktree that uses this checkout's .venv;
both runs read and fill the same kbtf cache (module builds are kept by content, so the
earlier revision's are reused where they are the same). The worktree is removed after.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from bench.profile import comparison, junit_wall, run_profile
from harness import REPO, proc

RUN_TIMEOUT = 3600  # a warm main job takes 2-3 min; a cold one, kernel builds included, ~45
GIT_TIMEOUT = 120


def main_job(tree: Path, pytest_args: list[str]) -> tuple[Path, float]:
    """Run the main job in ``tree`` (setup skipped: this checkout's .venv), its output in
    ``<tree>/results/compare.log``. Returns (its results dir, wall seconds)."""
    log = tree / "results" / "compare.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    proc.run([tree / "kbtf", "pytest", "suites/", *pytest_args], timeout=RUN_TIMEOUT,
             logfile=log, cwd=tree, env={**os.environ, "KBTF_SKIP_SETUP": "1"}, check=False)
    wall = time.monotonic() - start
    print(f"{tree}: {wall:.1f} s; {log.read_text().strip().splitlines()[-1]}", flush=True)
    return (tree / "results" / "latest").resolve(), wall


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rev, pytest_args = sys.argv[1], sys.argv[2:] or ["-n", "auto", "-q", "-p", "no:cacheprovider"]
    with tempfile.TemporaryDirectory(prefix="kbtf-compare-") as tmp:
        before = Path(tmp) / "before"
        proc.run(["git", "-C", REPO, "worktree", "add", "--detach", before, rev],
                 timeout=GIT_TIMEOUT)
        try:
            (before / ".venv").symlink_to(REPO / ".venv")
            runs = [main_job(before, pytest_args), main_job(REPO, pytest_args)]
            for (run, wall), name in zip(runs, (rev, "this checkout"), strict=True):
                print(f"{name}: junit time {junit_wall(run)} s, {wall:.1f} s with ./kbtf; "
                      f"{run}")
            print()
            print(comparison(run_profile(runs[0][0]), run_profile(runs[1][0])))
        finally:
            proc.run(["git", "-C", REPO, "worktree", "remove", "--force", before],
                     timeout=GIT_TIMEOUT, check=False)


if __name__ == "__main__":
    main()
