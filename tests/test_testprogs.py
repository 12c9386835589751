"""test_progs' status lines read back, in the shapes test_progs.c prints them
(print_test_result: `#%-*d %s:%s`, subtests `#%d/%-*d %s/%s:%s`, a skip's count in
parentheses, the summary line), and its JSON summary's logs. No run of a real runner was
captured yet: neither Debian tree's selftests built here (bench/RESULTS.md, session 7)."""

from __future__ import annotations

from harness.guest import testprogs


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


def test_the_line_shapes() -> None:
    text = ("#121/1   kfunc_call/kfunc_syscall_test:OK\n"
            "#121/2   kfunc_call/kfunc_call_test_get_mem:SKIP\n"
            "#121     kfunc_call:OK (SKIP: 1/2)\n"
            "#200     module_attach:SKIP\n"
            "Summary: 1/1 PASSED, 2 SKIPPED, 0 FAILED\n")
    out = testprogs.parse(text)
    assert out.tests["kfunc_call"].verdict == "OK"
    assert [s.name for s in out.tests["kfunc_call"].skipped_subtests()] == [
        "kfunc_call/kfunc_call_test_get_mem"]
    assert out.tests["module_attach"].verdict == "SKIP"


def test_logs_come_from_the_json_summary_where_there_is_one() -> None:
    out = testprogs.parse("#7/2     foo/attach:FAIL\n#7       foo:FAIL\n#8       bar:OK\n")
    testprogs.apply_json(out, {"results": [
        {"name": "foo", "number": 7, "message": "test log\n", "failed": True, "subtests": [
            {"name": "attach", "number": 2, "message": "attach: -22\n", "failed": True}]},
        {"name": "gone", "number": 9, "message": "x", "failed": True, "subtests": []}]})
    assert out.tests["foo"].log == "test log"
    assert out.tests["foo"].subtests["foo/attach"].log == "attach: -22"
    assert out.tests["bar"].log == ""
