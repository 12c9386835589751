"""test_progs' status lines read back, in the shapes test_progs.c prints them
(print_test_result: `#%-*d %s:%s`, subtests `#%d/%-*d %s/%s:%s`, a skip's count in
parentheses, the summary line), and its JSON summary's logs; and real runs captured from
Debian's 7.2.13 and 6.12.117 trees (BPF CI config kernels, clang-21 selftests, TCG guests):
passing tests with and without subtests, skipped subtests, and module_attach with
bpf_testmod's .BTF stripped."""

from __future__ import annotations

from pathlib import Path

from harness.guest import testprogs

DATA = Path(__file__).parent / "data"


def test_a_captured_7_2_run_with_skipped_subtests() -> None:
    out = testprogs.parse((DATA / "test_progs-7.2.13-btf_tag-ok.log").read_text())
    tag = out.tests["btf_tag"]
    assert tag.verdict == "OK" and len(tag.subtests) == 9
    assert [s.name for s in tag.skipped_subtests()][:2] == [
        "btf_tag/btf_type_tag_user_mod1", "btf_tag/btf_type_tag_user_mod2"]
    assert len(tag.skipped_subtests()) == 7 and not tag.failed_subtests()
    assert out.summary == "Summary: 1/2 PASSED, 7 SKIPPED, 0 FAILED"


def test_a_captured_7_2_run_without_module_btf_fails_each_subtest_with_its_log() -> None:
    out = testprogs.parse((DATA / "test_progs-7.2.13-module_attach-strip-btf.log").read_text())
    attach = out.tests["module_attach"]
    assert attach.verdict == "FAIL"
    failed = {s.name: s.log for s in attach.failed_subtests()}
    assert "module_attach/handle_raw_tp" in failed and "module_attach/handle_fentry" in failed
    assert "failed to resolve CO-RE relocation" in failed["module_attach/handle_raw_tp"]
    assert "failed to find kernel BTF type ID of 'bpf_testmod_test_read'" in failed[
        "module_attach/handle_fentry"]
    assert out.summary is not None and out.summary.endswith("1 FAILED")


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


def test_captured_6_12_runs_a_test_with_subtests_and_one_without() -> None:
    calls = testprogs.parse((DATA / "test_progs-6.12.117-kfunc_call-ok.log").read_text())
    kfunc = calls.tests["kfunc_call"]
    assert kfunc.verdict == "OK" and len(kfunc.subtests) == 20
    assert "kfunc_call/kfunc_syscall_test_fail" in kfunc.subtests
    assert not kfunc.failed_subtests() and not kfunc.skipped_subtests()
    attach = testprogs.parse((DATA / "test_progs-6.12.117-module_attach-ok.log").read_text())
    assert attach.tests["module_attach"].verdict == "OK"
    assert attach.tests["module_attach"].subtests == {}  # 6.12's has none (7.2's has 14)
    assert attach.summary == "Summary: 1/0 PASSED, 0 SKIPPED, 0 FAILED"


def test_a_runner_that_reports_as_a_whole_is_one_verdict_by_its_exit_code() -> None:
    from harness.guest.testprogs import parse_whole

    # test_verifier's own lines (aarch64 guest, 7.2.13): no test_progs status lines
    out = ("#0/u BPF_ATOMIC_AND without fetch OK\n#0/p BPF_ATOMIC_AND without fetch OK\n"
           "Summary: 2 PASSED, 0 SKIPPED, 0 FAILED\n")
    ok = parse_whole(out, "gzopen /boot/config-7.2.13: No such file or directory\n", 0)
    assert ok.summary == "Summary: 2 PASSED, 0 SKIPPED, 0 FAILED"
    assert ok.tests["all"].verdict == "OK" and not ok.tests["all"].log
    failed = parse_whole(out.replace("0 FAILED", "1 FAILED"), "verifier log: R1 !read_ok", 1)
    assert failed.tests["all"].verdict == "FAIL" and "R1 !read_ok" in failed.tests["all"].log
    assert parse_whole("", "Segmentation fault", 139).summary is None
