"""A BPF CI job's log read back (--vmtest-log, issue 34 item 1): as GitHub serves it raw
(timestamps, ANSI colours, group markers; the data file wraps test_progs output captured
from real runs on Debian's 7.2.13 tree in that format) and as pasted text."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.guest import cilog

DATA = Path(__file__).parent / "data"
RAW = DATA / "ci-log-x86_64-gcc-15-test_progs-raw.txt"


def test_a_raw_github_log_gives_the_job_its_red_tests_and_tools() -> None:
    found = cilog.load(RAW)
    assert found.job == ("x86_64 gcc-15 / test (test_progs, false, 360) / test_progs on "
                         "x86_64 with gcc-15")
    assert found.red[:3] == ("module_attach/handle_raw_tp", "module_attach/handle_tp_btf",
                             "module_attach/handle_fentry")
    assert all(r.startswith("module_attach/") for r in found.red)
    assert (found.compiler, found.pahole) == ("gcc 15.2.0", "1.30")


def test_pasted_text_reads_the_same() -> None:
    pasted = cilog.clean(RAW.read_text())
    assert cilog.read(pasted) == cilog.read(RAW.read_text())
    assert "\x1b[" not in pasted and "##[group]" not in pasted and "2026-11-30T" not in pasted


def test_a_failed_test_without_failed_subtests_is_red_itself() -> None:
    found = cilog.read("#12      kfunc_call:FAIL\n#13      btf_module:OK\n"
                       "Summary: 1/0 PASSED, 0 SKIPPED, 1 FAILED\n")
    assert found.red == ("kfunc_call",) and found.job is None


def test_a_log_without_red_or_file_is_one_line(tmp_path: Path) -> None:
    green = tmp_path / "green.txt"
    green.write_text("#13      btf_module:OK\nSummary: 1/0 PASSED, 0 SKIPPED, 0 FAILED\n")
    with pytest.raises(ConfigError, match="no red test in it"):
        cilog.load(green)
    with pytest.raises(ConfigError, match=r"--vmtest-log .*: No such file"):
        cilog.load(tmp_path / "absent.txt")
    verifier = tmp_path / "verifier.txt"
    verifier.write_text("Summary: 700 PASSED, 0 SKIPPED, 2 FAILED\n")
    assert cilog.load(verifier).whole_failed


def test_the_log_fills_the_job_and_tests_the_command_line_leaves_out() -> None:
    from harness.run.options import RunOptions, with_ci_log

    options, found = with_ci_log(RunOptions(vmtest_log=str(RAW)))
    assert found is not None and options.vmtest_job == [found.job]
    assert options.vmtest_tests == ",".join(found.red)
    mine, _ = with_ci_log(RunOptions(vmtest_log=str(RAW), vmtest_tests="btf_module"))
    assert mine.vmtest_tests == "btf_module"


def test_the_summary_says_which_red_tests_reproduced() -> None:
    from harness.run import results

    rec = results.PointRecord("x86_64-gcc-15~gcc-test_progs-debian7.2.13", facts={
        "vmtest_job": "x86_64-gcc-15/test_progs",
        "ci_red": ["module_attach/handle_fentry", "btf_module", "ksyms_module"]},
        outcomes={"test_progs[module_attach/handle_fentry]": "failed",
                  "test_progs[btf_module]": "passed",
                  "test_progs[ksyms_module]": "skipped: denied"})
    table = results.red_table([rec])
    assert "| module_attach/handle_fentry | failed | failed | reproduced |" in table
    assert "| btf_module | failed | passed | not reproduced here |" in table
    assert "not decided here (skipped: denied)" in table
