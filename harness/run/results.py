"""The run directory under results/, matrix.json and the human summary."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness import REPO

RESULTS_DIR = REPO / "results"

# Columns of the summary table: (fact key, heading).
COLUMNS = (
    ("arch", "arch"),
    ("kernel", "kernel"),
    ("toolchain", "toolchain"),
    ("kernel_pahole", "kernel pahole"),
    ("config_pahole_version", "CONFIG_PAHOLE_VERSION"),
    ("module_pahole", "module pahole"),
    ("btf_base_expected", ".BTF.base expected"),
    ("btf_base_present", ".BTF.base present"),
    ("module_btf_types", ".BTF types"),
    ("module_btf_base_types", ".BTF.base types"),
    ("module_btf_loaded", "/sys/kernel/btf/<mod>"),
    ("kheaders_module_built", "kheaders module"),
    ("headers_vmlinux", "headers vmlinux"),
    ("bpftrace", "guest bpftrace"),
    ("accel", "accel"),
    ("boot_seconds", "boot s"),
)


def new_run_dir(base: Path = RESULTS_DIR, shell: bool = False) -> Path:
    """Create results/<timestamp>[-n]/ and point results/latest at it; for a shell
    (./kbtf shell: no test results), results/<timestamp>-shell[-n]/, latest untouched."""
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("-shell" if shell else "")
    for n in range(1000):
        run = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            run.mkdir()
            break
        except FileExistsError:
            continue
    if shell:
        return run
    latest = base / "latest"
    latest.unlink(missing_ok=True)
    latest.symlink_to(run.name)
    return run


@dataclass
class PointRecord:
    """What one matrix point produced."""

    point: str
    facts: dict[str, object] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)  # test name -> passed/failed/...


def summary_table(records: list[PointRecord]) -> str:
    """Markdown table: one row per point (BPF CI jobs have their own, job_table), the facts
    that matter and what did not pass; empty without points."""
    head = ["point", *(h for _, h in COLUMNS), "not passed"]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    records = [r for r in records if "vmtest_job" not in r.facts]
    if not records:
        return ""
    for rec in records:
        bad = [f"{t} ({o})" for t, o in sorted(rec.outcomes.items()) if o != "passed"]
        cells = [rec.point, *(str(rec.facts.get(k, "-")) for k, _ in COLUMNS),
                 ", ".join(bad) or "none"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


# Columns of the BPF CI jobs' table: (fact key, heading).
JOB_COLUMNS = (
    ("vmtest_job", "job"),
    ("kernel", "kernel"),
    ("toolchain", "kernel toolchain"),
    ("kernel_pahole", "kernel pahole"),
    ("bpf_clang", "BPF programs"),
    ("substitution", "substitution"),
    ("guest", "guest"),
)


def job_table(records: list[PointRecord]) -> str:
    """Markdown table: one row per BPF CI job, its toolchain, and its runner's tests by
    outcome (the selftests build, and what did not pass, by name); empty without jobs."""
    head = ["job id", *(h for _, h in JOB_COLUMNS), "tests passed", "build", "not passed"]
    rows = []
    for rec in (r for r in records if "vmtest_job" in r.facts):
        tests = {t: o for t, o in rec.outcomes.items() if t.startswith("test_progs[")}
        bad = [f"{t.removeprefix('test_progs[').rstrip(']')} ({o})"
               for t, o in sorted(tests.items()) if o != "passed"]
        passed = sum(o == "passed" for o in tests.values())
        cells = [rec.point, *(str(rec.facts.get(k, "-")) for k, _ in JOB_COLUMNS),
                 f"{passed}/{len(tests)}", rec.outcomes.get("test_selftests_build", "-"),
                 ", ".join(bad) or "none"]
        rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return ""
    return "\n".join(["| " + " | ".join(head) + " |", "|" + " --- |" * len(head), *rows]) + "\n"


def red_table(records: list[PointRecord]) -> str:
    """Markdown table of a --vmtest-log's red tests: per job and test, CI's verdict, kbtf's,
    and whether it reproduced here; empty without a CI log."""
    rows = []
    for rec in records:
        for test in rec.facts.get("ci_red", []):  # type: ignore[attr-defined]
            here = rec.outcomes.get(f"test_progs[{test}]", "not run")
            verdict = ("reproduced" if here == "failed" else "not reproduced here"
                       if here == "passed" else f"not decided here ({here})")
            rows.append(f"| {rec.point} | {test} | failed | {here} | {verdict} |")
    if not rows:
        return ""
    return "\n".join(["| job id | test | CI | kbtf | verdict |", "| --- | --- | --- | --- | --- |",
                      *rows]) + "\n"


# The per-module table: (heading, the tests that say it, of source points and distro kernels).
MODULE_COLUMNS = (
    ("built, .BTF", ("test_module_builds_with_btf", "test_headers_build_gives_module_btf")),
    ("loads", ("test_module_loads", "test_distro_kernel_loads_module_btf")),
    ("BTF in sysfs", ("test_sys_kernel_btf_lists_the_module_functions",
                      "test_distro_kernel_loads_module_btf")),
    ("kfunc", ("test_bpftrace_kfunc_attaches", "test_bpftrace_kfunc_on_distro_kernel")),
)


def module_table(records: list[PointRecord], modules: list[str]) -> str:
    """Markdown table: per point and module (its default BTF mode), the outcome of each
    MODULE_COLUMNS check, its kind only (the reasons are in the main table; "-": not run
    for it); empty without modules."""
    head = ["point", "module", *(h for h, _ in MODULE_COLUMNS)]
    rows = []
    for rec in records:
        for module in modules:
            mine = {t.split("[")[0]: o for t, o in rec.outcomes.items()
                    if t.endswith(f"[{module}]") or t.endswith(f"[default-{module}]")}
            if mine:
                cells = [next((mine[t].split(":")[0] for t in tests if t in mine), "-")
                         for _, tests in MODULE_COLUMNS]
                rows.append("| " + " | ".join([rec.point, module, *cells]) + " |")
    if not rows:
        return ""
    return "\n".join(["| " + " | ".join(head) + " |", "|" + " --- |" * len(head), *rows]) + "\n"


RUN_STATE = "run.json"  # {"finished": bool, "errors": [...]}: how the run that wrote it ended


def run_finished(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` ran to its end (a cancelled or cut-short run, or one
    that wrote no state, did not)."""
    try:
        return json.loads((run_dir / RUN_STATE).read_text()).get("finished") is True
    except (OSError, ValueError, AttributeError):
        return False


def run_errors(run_dir: Path) -> list[str]:
    """The errors of its own the run in ``run_dir`` recorded (lost facts)."""
    try:
        errors = json.loads((run_dir / RUN_STATE).read_text()).get("errors", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [str(e) for e in errors] if isinstance(errors, list) else []


def write_matrix(run_dir: Path, records: list[PointRecord], preface: str = "",
                 modules: list[str] | None = None, finished: bool = True,
                 errors: list[str] | None = None) -> Path:
    """Write matrix.json, summary.md (``preface``, markdown, first), whether the run
    ``finished`` and its own ``errors``; return the summary's path."""
    (run_dir / RUN_STATE).write_text(json.dumps({"finished": finished,
                                                 "errors": errors or []}) + "\n")
    if not finished:
        preface = ("**This run did not finish: its results are incomplete.**\n\n"
                   + preface)
    (run_dir / "matrix.json").write_text(
        json.dumps([asdict(r) for r in records], indent=2, default=str) + "\n"
    )
    summary = run_dir / "summary.md"
    reruns = "".join(f"- `{r.facts['rerun']}`\n" for r in records if "rerun" in r.facts)
    per_module = module_table(records, modules or [])
    summary.write_text("# kbtf results\n\n" + (preface + "\n" if preface else "")
                       + summary_table(records)
                       + (f"\n## BPF CI jobs\n\n{jobs}" if (jobs := job_table(records)) else "")
                       + (f"\n## CI's red tests\n\n{red}" if (red := red_table(records)) else "")
                       + ("\n## Modules (default BTF mode)\n\n" + per_module if per_module
                          else "")
                       + ("\nRerun one point:\n\n" + reruns if reruns else ""))
    return summary
