"""A BPF CI job's verdicts never drop a red test (issue 32, items 1-8 and 28): a selection
(test/subtest, glob, 'all') is judged on the tests the runner ran; a test that did not run is
a SKIP only when a DENYLIST entry kept it out; a refused bpf_testmod.ko fails what needs it;
the tree's test list is its Makefile's; a runner past its limit is FAILED naming the test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.arches import GCC, Toolchain, get_arch
from harness.errors import ConfigError, ProductFailure
from harness.guest import testprogs
from harness.guest.console import CommandResult
from harness.plan.kernelreq import BPF_CI_BASE, SELFTESTS_DIR, KernelRequest
from harness.plan.ksource import KernelSource
from harness.plan.matrix import MatrixPoint
from harness.plan.pahole import Pahole
from harness.plan.vmtest import (
    VmtestPoint,
    needs_testmod,
    parse_job,
    resolve_jobs,
    select_tests,
    tree_tests,
)
from harness.run.vmtestrun import VmtestRun
from tests.conftest import selftests_makefile

DATA = Path(__file__).parent / "data"

# module_attach's subtests failing (bpf_testmod's .BTF stripped, 7.2.13), captured
STRIPPED = (DATA / "test_progs-7.2.13-module_attach-strip-btf.log").read_text()


def _never(_name: str) -> bool:
    return False


def test_a_failing_subtest_named_as_kbtf_s_rerun_line_names_it_fails() -> None:
    out = testprogs.parse(STRIPPED, rc=1)
    [outcome] = testprogs.judge("module_attach/handle_fentry", out, ["module_attach"], [],
                                _never)
    assert outcome.verdict == "failed" and outcome.name == "module_attach/handle_fentry"
    assert "bpf_testmod_test_read" in outcome.why


def test_a_glob_is_judged_on_every_test_it_matched() -> None:
    text = ("#1 module_attach:FAIL\n#2 module_fentry_shadow:OK\n"
            "Summary: 1/0 PASSED, 0 SKIPPED, 1 FAILED\n")
    found = testprogs.judge("module_*", testprogs.parse(text, rc=1),
                            ["module_attach", "module_fentry_shadow"], [], _never)
    assert [(o.name, o.verdict) for o in found] == [("module_attach", "failed"),
                                                   ("module_fentry_shadow", "passed")]


def test_a_test_the_runner_did_not_run_is_skipped_only_when_a_denylist_entry_denies_it(
        tmp_path: Path) -> None:
    (tmp_path / "DENYLIST.aarch64").write_text("# why\nfexit_sleep   # flaky\nbpf_cookie/multi*\n")
    denied = testprogs.read_denylists([tmp_path / "DENYLIST", tmp_path / "DENYLIST.aarch64"])
    clean = testprogs.parse("Summary: 0/0 PASSED, 0 SKIPPED, 0 FAILED\n", rc=0)
    [skip] = testprogs.judge("fexit_sleep", clean, ["fexit_sleep"], denied, _never)
    assert skip.verdict == "skipped" and "DENYLIST.aarch64:2: fexit_sleep   # flaky" in skip.why
    [sub] = testprogs.judge("bpf_cookie/multi_kprobe_link_api", clean, ["bpf_cookie"], denied,
                            _never)
    assert sub.verdict == "skipped"
    # a -j worker that died mid-test: the runner exits 2 and never reports it (item 5)
    died = testprogs.parse("#1 xdp:OK\n", rc=2)
    [lost] = testprogs.judge("btf_module", died, ["btf_module", "xdp"], denied, _never)
    assert lost.verdict == "failed" and "exited 2" in lost.why
    # exit 0, not denied, in the runner's list and not run (a -j worker that died can
    # leave exit 0): never a SKIP nor a PASS; kbtf cannot name any more than that
    [odd] = testprogs.judge("btf_module", clean, ["btf_module"], denied, _never)
    assert odd.verdict == "failed"
    [none] = testprogs.judge("btf_module", clean, [], denied, _never)  # not even in the tree
    assert none.verdict == "error"


def test_a_refused_bpf_testmod_fails_each_test_that_needs_it() -> None:
    # test_progs' lines when the kernel refused bpf_testmod.ko (seen on a 7.2 job guest
    # with bpf_testmod's BTF header made invalid)
    text = ("Failed to load bpf_testmod.ko into the kernel: -22\n"
            "WARNING! Selftests relying on bpf_testmod.ko will be skipped.\n"
            "#151/1 ksyms_module/libbpf:SKIP\n#151 ksyms_module:SKIP\n"
            "#60/1 core_reloc/kernel:OK\n#60/2 core_reloc/module_probed:SKIP\n"
            "#60 core_reloc:OK\n#70 xdp_adjust_tail:SKIP\n"
            "Summary: 1/1 PASSED, 2 SKIPPED, 0 FAILED\n")
    out = testprogs.parse(text, rc=0)
    assert out.testmod_refused is not None

    def needs(name: str) -> bool:
        return name in ("ksyms_module", "core_reloc")

    dmesg = "BTF: bpf_testmod: Invalid type_len\n"
    [ksyms] = testprogs.judge("ksyms_module", out, [], [], needs, dmesg)
    assert ksyms.verdict == "failed" and "-22" in ksyms.why and "Invalid type_len" in ksyms.why
    [core] = testprogs.judge("core_reloc", out, [], [], needs, dmesg)
    assert core.verdict == "failed" and "core_reloc/module_probed" in core.why
    [other] = testprogs.judge("xdp_adjust_tail", out, [], [], needs, dmesg)
    assert other.verdict == "skipped" and "#70 xdp_adjust_tail:SKIP" in other.why


def test_which_tests_need_bpf_testmod_is_read_from_their_source(tmp_path: Path) -> None:
    (tmp_path / "prog_tests").mkdir()
    (tmp_path / "prog_tests/ksyms_module.c").write_text(
        "void test_ksyms_module(void)\n{\n\tif (!env.has_testmod) {\n")
    (tmp_path / "prog_tests/xdp.c").write_text("void test_xdp(void)\n{}\n")
    assert needs_testmod(tmp_path, "ksyms_module") and not needs_testmod(tmp_path, "xdp")


def _real_6_12_tree(root: Path) -> Path:
    """A selftests dir with the test function heads of Debian's 6.12.118 prog_tests/ and
    its Makefile's list rule (captured)."""
    bpf = root / "bpf"
    for line in (DATA / "prog_tests-6.12.118-heads.txt").read_text().splitlines():
        path, _, head = line.partition(":")
        f = bpf / path
        f.parent.mkdir(parents=True, exist_ok=True)
        with f.open("a") as fh:
            fh.write(head + "\n{\n}\n")
    selftests_makefile(bpf)
    return bpf


def test_the_tree_s_test_list_is_its_makefile_s(tmp_path: Path) -> None:
    tests = tree_tests(_real_6_12_tree(tmp_path))
    # `void test_x()` counts as the Makefile's `\((void)?\)` has it: 35 more than before
    assert len(tests) == 579 and "btf_module" in tests and "btf_split" in tests
    assert select_tests(tests, "module-btf") == [
        "btf_distill", "btf_module", "btf_split", "btf_tag", "core_reloc", "kfunc_call",
        "kfunc_module_order", "kprobe_multi_testmod_test", "ksyms_module", "module_attach",
        "module_fentry_shadow", "struct_ops_module"]
    assert select_tests(tests, None) == select_tests(tests, "all") == ["all"]
    assert select_tests(tests, "btf_module") == ["btf_module"]


def test_a_tree_whose_list_rule_kbtf_cannot_read_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "prog_tests").mkdir()
    (tmp_path / "prog_tests/x.c").write_text("void test_x(void)\n{}\n")
    (tmp_path / "Makefile").write_text("all:\n")
    with pytest.raises(ConfigError, match="no sed rule"):
        tree_tests(tmp_path)


def test_one_job_in_two_spellings_is_one_job() -> None:
    src = KernelSource(Path("/s"), "7.2.13", "deb:x", "debian7.2.13", "debian:7.2")
    ph = Pahole(Path("/p"), "1.32", (), digest="d")
    jobs = resolve_jobs(["x86_64-gcc/test_progs",
                         "x86_64-gcc / test (test_progs, false, 360) / test_progs on x86_64 "
                         "with gcc"], [src], ph, (), [21], lambda _s: [])
    assert len(jobs) == 1


def _job_run(tmp_path: Path, name: str = "x86_64-gcc/test_progs") -> VmtestRun:
    tree = tmp_path / "linux"
    (tree / SELFTESTS_DIR).mkdir(parents=True, exist_ok=True)
    (tree / SELFTESTS_DIR / "test_progs.c").write_text("/* no json */\n")
    (tree / SELFTESTS_DIR / "prog_tests").mkdir(exist_ok=True)
    for test in ("module_attach", "btf_module"):
        (tree / SELFTESTS_DIR / "prog_tests" / f"{test}.c").write_text(
            f"void test_{test}(void)\n{{}}\n")
    selftests_makefile(tree / SELFTESTS_DIR)
    src = KernelSource(tree, "6.12.118", "deb:x", "debian6.12.118", "debian:6.12")
    ph = Pahole(Path("/p"), "1.30", (), digest="d")
    job = parse_job(name)
    req = KernelRequest(get_arch(job.arch), src, ph, toolchain=GCC, config_base=BPF_CI_BASE)
    return VmtestRun(VmtestPoint(job, MatrixPoint(req, ph), Toolchain.llvm(21, "sid")),
                     tmp_path / "run", tmp_path / "cache")


class _Session:
    """A guest whose runner answers ``rc`` and ``stdout``."""

    def __init__(self, tmp_path: Path, rc: int, stdout: str) -> None:
        self.name, self.serial_log = "vmtest-gw0", tmp_path / "serial.log"
        self.out_dir = tmp_path / "out"
        self.memo: dict[str, object] = {}
        self.rc, self.stdout = rc, stdout
        self.commands: list[tuple[str, float]] = []

    def once_per_boot(self, key: str, make: Callable[[], object]) -> object:
        return self.memo.setdefault(key, make())

    def run(self, command: str, timeout: float = 120) -> CommandResult:
        self.commands.append((command, timeout))
        if "test_progs" not in command:
            return CommandResult(command, 0, "", "")
        return CommandResult(command, self.rc, self.stdout, "")

    def console_tail(self, lines: int = 30) -> str:
        return "INFO: task test_progs:93 blocked for more than 30 seconds."

    def path(self, host: Path) -> str:
        return f"/kbtf/out/{host.name}"


def test_a_test_past_its_time_is_failed_naming_it(tmp_path: Path) -> None:
    run = _job_run(tmp_path)
    session = _Session(tmp_path, 124, "#1 btf_module:OK\n")
    with pytest.raises(ProductFailure, match=r"(?s)module_attach ran past kbtf's limit.*blocked"):
        run.run_tests(session, ["module_attach"])  # type: ignore[arg-type]
    command, timeout = session.commands[-1]
    assert command.startswith("cd /kbtf/selftests && { timeout -k 10 900 ./test_progs")
    assert timeout > 900  # the guest is given up only after the runner's own limit
    assert run.time_limit(["*_*"]) == 2 * 900  # a glob: each test it names


def test_two_jobs_on_one_kernel_do_not_share_a_guest(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    keys = []

    class Pool:
        def get(self, key: str, make: object, owner: str) -> object:
            keys.append(key)
            return object()

    class Kernel:
        key = "x86_64-debian6.12.118-gcc-bpf-ci-k1"

    class Built:
        def __init__(self, path: Path) -> None:
            self.bpf_dir = path

    for name, share in (("x86_64-gcc/test_progs", "a"), ("x86_64-gcc/test_progs_no_alu32", "b")):
        run = _job_run(tmp_path, name)
        monkeypatch.setattr(VmtestRun, "kernel", lambda self: Kernel())
        run.guest(Pool(), Built(tmp_path / share))  # type: ignore[arg-type]
    assert len(set(keys)) == 2


def test_an_unknown_vmtest_test_stops_the_run_at_start_with_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.builds import fetch
    from harness.run import context, planning, results
    from harness.run.options import RunOptions
    from harness.run.runplan import RunPlan

    run = _job_run(tmp_path)
    _real_6_12_tree(run.vmtest.point.kernel.source.path / SELFTESTS_DIR / "..")
    monkeypatch.setattr(planning, "resolve", lambda _o, _c: RunPlan([run.vmtest]))
    monkeypatch.setattr(fetch, "fetch", lambda points, *_a: points)
    monkeypatch.setattr(results, "new_run_dir", lambda **_k: tmp_path / "results")
    monkeypatch.setattr(context.RunContext, "_kvm_verdict", lambda self: False)
    (tmp_path / "results").mkdir()
    options = RunOptions(vmtest_job=["x86_64-gcc/test_progs"], cache_dir=str(tmp_path),
                                 vmtest_tests="btf_modul")
    with pytest.raises(ConfigError, match=r"^--vmtest-tests: no test 'btf_modul' .*near: "
                                          r"btf, btf_module"):
        context.RunContext.start(options, None, lambda _m: None)


def test_a_test_the_runners_watchdog_killed_is_failed_naming_it() -> None:
    # 7.x's test_progs kills a test past -w seconds (120 by default) with SIGSEGV
    stderr = ("WATCHDOG: test case module_attach/handle_fentry executes for 10 seconds...\n"
              "WATCHDOG: test case module_attach/handle_fentry executes for 120 seconds, "
              "terminating with SIGSEGV\n")
    out = testprogs.parse("#1 btf_module:OK\n", rc=139, stderr=stderr)
    [killed, *_] = testprogs.judge("module_attach", out, ["module_attach"], [], _never)
    assert killed.verdict == "failed" and killed.name == "module_attach/handle_fentry"
    assert "terminating with SIGSEGV" in killed.why


def test_helpers_cases_hold(tmp_path: Path) -> None:
    """The review's reproductions (issue 32 items 1, 2, 4, 5): a glob whose matched test
    never ran, a named test whose runner crashed after it, a subtest of a test that skipped
    before it, test_progs' '*'-only globs, whole DENYLIST lines and their merging."""
    # a glob: ksyms_btf ran, ksyms_module (in the tree, not denied) never did
    out = testprogs.parse("#1 ksyms_btf:OK\nSummary: 1/0 PASSED, 0 SKIPPED, 0 FAILED\n", rc=0)
    found = {o.name: o.verdict for o in testprogs.judge(
        "ksyms_*", out, ["ksyms_btf", "ksyms_module"], [], _never)}
    assert found == {"ksyms_btf": "passed", "ksyms_module": "failed"}
    # a named test that passed, then the runner crashed
    crashed = testprogs.parse("#3 bar:OK\n", rc=139)
    assert "failed" in [o.verdict for o in testprogs.judge("bar", crashed, ["bar"], [], _never)]
    # subtest lines without the test's own line: it never ended
    running = testprogs.parse("#3/1 bar/a:OK\n", rc=139)
    assert next(o.verdict for o in testprogs.judge("bar", running, ["bar"], [], _never)) == \
        "failed"
    # test/sub of a test that skipped before any subtest: the runner's skip, or with a
    # refused bpf_testmod, FAILED quoting it
    skipped = testprogs.parse("#1 foo:SKIP\nSummary: 0/0 PASSED, 1 SKIPPED, 0 FAILED\n", rc=0)
    [s] = testprogs.judge("foo/lskel", skipped, ["foo"], [], _never)
    assert s.verdict == "skipped" and "#1 foo:SKIP" in s.why
    refused = testprogs.parse("Failed to load bpf_testmod.ko into the kernel: -22\n"
                              "#1 foo:SKIP\nSummary: 0/0 PASSED, 1 SKIPPED, 0 FAILED\n", rc=0)
    [r] = testprogs.judge("foo/lskel", refused, ["foo"], [], lambda _n: True)
    assert r.verdict == "failed" and "-22" in r.why
    # '*' is test_progs' only wildcard: a subtest name with [ ] is itself
    bracket = testprogs.parse("#4/2 bar/check x[0] access:SKIP\n#4 bar:OK\n"
                              "Summary: 1/0 PASSED, 1 SKIPPED, 0 FAILED\n", rc=0)
    [b] = testprogs.judge("bar/check x[0] access", bracket, ["bar"], [], _never)
    assert b.verdict == "skipped"
    # DENYLIST: a whole line is a pattern; foo whole + foo/a elsewhere denies only foo/a
    (tmp_path / "DENYLIST").write_text("sockmap_listen/sockmap VSOCK test_x  # flaky\nfoo\n")
    (tmp_path / "DENYLIST.x86_64").write_text("foo/a\n")
    denied = testprogs.read_denylists([tmp_path / "DENYLIST", tmp_path / "DENYLIST.x86_64"])
    assert [d.pattern for d in denied] == ["sockmap_listen/sockmap VSOCK test_x", "foo/a"]


def test_two_units_of_one_name_are_refused_before_any_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two trees of one version gave two jobs one id: one's results overwrote the other's
    (the review's case, issue 32 item 8)."""
    from harness.builds import distro
    from harness.run import planning
    from harness.run.options import RunOptions

    one = _job_run(tmp_path / "a").vmtest
    two = _job_run(tmp_path / "b").vmtest
    assert one.id == two.id
    monkeypatch.setattr(planning, "vmtest_points", lambda *_a: [one, two])
    monkeypatch.setattr(distro, "resolve", lambda *_a: [])
    options = RunOptions(vmtest_job=["x86_64-gcc/test_progs"])
    with pytest.raises(ConfigError, match="two units of this run are both named"):
        planning.resolve(options, tmp_path)


def test_the_second_reviews_cases_hold(tmp_path: Path) -> None:
    """A denied test alone: test_progs exits 2 (EXIT_NO_TEST) having run nothing, which is
    no breakage; a subtest named with ': '; a selection with nothing after '/'."""
    (tmp_path / "DENYLIST.aarch64").write_text("module_attach\n")
    denied = testprogs.read_denylists([tmp_path / "DENYLIST.aarch64"])
    nothing = testprogs.parse("Summary: 0/0 PASSED, 0 SKIPPED, 0 FAILED\n", rc=2)
    assert [o.verdict for o in testprogs.judge(
        "module_attach", nothing, ["module_attach"], denied, _never)] == ["skipped"]
    colon = testprogs.parse("#44/1 btf_dump/btf_dump: incremental:OK\n#44 btf_dump:OK\n"
                            "Summary: 1/1 PASSED, 0 SKIPPED, 0 FAILED\n", rc=0)
    assert [o.verdict for o in testprogs.judge(
        "btf_dump/btf_dump: incremental", colon, ["btf_dump"], [], _never)] == ["passed"]
    with pytest.raises(ConfigError, match="no subtest after '/'"):
        select_tests(["foo"], "foo/")


def test_a_crash_names_the_runners_last_report(tmp_path: Path) -> None:
    """The whole runner in one process: a kernel crash during it quotes where the runner
    was (its output as it came, kept in the guest's out dir)."""
    text = ("#52 btf_tag:OK\n#53/1 fentry_test/fentry:OK\n#53 fentry_test:OK\n"
            "test_fexit_stress:PASS:open 0 nsec\n")
    assert testprogs.last_report(text) == ("the runner's last report before it: "
                                           "'#53 fentry_test:OK'; then: "
                                           "test_fexit_stress:PASS:open 0 nsec")
    assert testprogs.last_report("") == "the runner reported no test before it"


def test_a_jobs_guest_has_ci_s_shape_as_far_as_the_host_allows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses
    import os

    run = _job_run(tmp_path)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert run.shape == (2, "5G")
    assert "this host has 2 cores" in run.shape_note()
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert run.shape == (4, "5G") and run.shape_note() == "4 vCPUs, 5G (as BPF CI)"
    asked = dataclasses.replace(run, cpus=1, memory="3G")
    assert asked.shape == (1, "3G") and "as asked" in asked.shape_note()
