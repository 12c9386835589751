"""test_progs' status lines read back (captured from a 6.12 runner in a kbtf guest)."""

from __future__ import annotations

from pathlib import Path

from harness.guest import testprogs

CAPTURED = (Path(__file__).parent / "data/test_progs-6.12.txt").read_text()


def test_verdicts_subtests_and_logs_of_a_captured_run() -> None:
    out = testprogs.parse(CAPTURED)
    assert out.summary is not None and out.summary.startswith("Summary: ")
    assert out.tests, "no test parsed"
    for test in out.tests.values():
        assert test.verdict in ("OK", "FAIL", "SKIP")
        for name in test.subtests:
            assert name.startswith(test.name + "/")


def test_a_failing_subtest_keeps_its_log() -> None:
    text = ("test_foo:PASS:load 0 nsec\n"
            "test_foo:FAIL:attach unexpected error: -22 (errno 22)\n"
            "#7/2     foo/attach:FAIL\n"
            "#7/3     foo/detach:SKIP\n"
            "#7       foo:FAIL\n"
            "#8       bar:OK\n"
            "Summary: 1/0 PASSED, 1 SKIPPED, 1 FAILED\n")
    out = testprogs.parse(text)
    foo = out.tests["foo"]
    assert foo.verdict == "FAIL" and [s.name for s in foo.failed_subtests()] == ["foo/attach"]
    assert "unexpected error: -22" in foo.subtests["foo/attach"].log
    assert [s.name for s in foo.skipped_subtests()] == ["foo/detach"]
    assert out.tests["bar"].verdict == "OK"
    assert out.summary == "Summary: 1/0 PASSED, 1 SKIPPED, 1 FAILED"


def test_a_run_that_crashed_has_no_summary() -> None:
    out = testprogs.parse("Failed to load bpf_testmod.ko into the kernel: -22\n")
    assert out.tests == {} and out.summary is None
