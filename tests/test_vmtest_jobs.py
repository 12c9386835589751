"""BPF CI job names: every name of the seed's CI matrix, the newer form and the short one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.plan.vmtest import VmtestJob, parse_job
from tests.conftest import selftests_makefile

NAMES = [ln for ln in (Path(__file__).parent / "data/bpf-ci-job-names.txt").read_text()
         .splitlines() if ln and not ln.startswith("#")]


@pytest.mark.parametrize("name", NAMES)
def test_every_job_name_of_the_seed_parses_or_says_what_instead(name: str) -> None:
    if " / test (" in name:
        job = parse_job(name)
        assert name.startswith(f"{job.arch}-{job.toolchain} / test (")
        assert name.endswith(f" on {job.arch} with {job.toolchain}")
    else:
        with pytest.raises(ConfigError, match=r"is a (build|build-release|veristat) row: "):
            parse_job(name)


def test_the_forms_give_the_same_job() -> None:
    full = parse_job("x86_64-llvm-18 / test (test_progs_cpuv4, false, 360) / "
                     "test_progs_cpuv4 on x86_64 with llvm-18")
    assert full == VmtestJob("x86_64", "llvm", "18", "test_progs_cpuv4", False, 360)
    assert full.binary == "test_progs-cpuv4" and full.toolchain == "llvm-18"
    newer = parse_job("x86_64 gcc-15 / test (test_progs, false, 360) / test_progs on x86_64 "
                      "with gcc-15")
    assert (newer.arch, newer.toolchain, newer.runner) == ("x86_64", "gcc-15", "test_progs")
    short = parse_job("aarch64-gcc/test_progs_no_alu32")
    assert short == VmtestJob("aarch64", "gcc", None, "test_progs_no_alu32")
    assert short.binary == "test_progs-no_alu32"
    assert short.short == "aarch64-gcc/test_progs_no_alu32"


def test_parallel_rows_are_their_runner_with_j() -> None:
    job = parse_job("x86_64-gcc / test (test_progs_no_alu32_parallel, true, 30) / "
                    "test_progs_no_alu32_parallel on x86_64 with gcc")
    assert (job.runner, job.parallel, job.timeout_min) == ("test_progs_no_alu32", True, 30)
    assert job.short == "x86_64-gcc/test_progs_no_alu32_parallel"


@pytest.mark.parametrize(("name", "says"), [
    ("x86_64-gcc test_progs", "not a BPF CI job name; use '<arch>-<cc>"),
    ("riscv64-gcc/test_progs", "unknown arch 'riscv64'"),
    ("x86_64-gcc/test_foo", "unknown runner 'test_foo'"),
    ("x86_64-gcc/test_maps_parallel", "unknown runner 'test_maps_parallel'"),
    ("x86_64-gcc / test (test_progs, false, 360) / test_progs on s390x with gcc",
     "does not name x86_64-gcc/test_progs's runner, arch and compiler"),
    ("x86_64-llvm-17 / build-release / build for x86_64 with llvm-17-O2",
     "LLVM -O2 selftests build is not reproduced"),
])
def test_bad_names_are_one_line_errors(name: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_job(name)
    assert "\n" not in str(err.value)


def test_compiler_of_a_job_is_the_host_s_or_a_suite_s_or_the_nearest_said() -> None:
    from harness.arches import GCC, Toolchain
    from harness.plan.vmtest import compiler_for

    suites = {"bookworm": [14, 16, 19], "trixie": [17, 18, 19, 22], "sid": [19, 21, 22, 23]}
    offers = suites.__getitem__
    host = [19, 16, 14]
    assert compiler_for(parse_job("x86_64-llvm-19/test_progs"), host, offers) == (
        Toolchain("llvm", "-19"), "")
    # not on the host: the oldest suite that has it builds the kernel, no substitution
    assert compiler_for(parse_job("x86_64-llvm-21/test_progs"), host, offers) == (
        Toolchain("llvm", "-21", "sid"), "")
    assert compiler_for(parse_job("x86_64-llvm-18/test_progs"), host, offers) == (
        Toolchain("llvm", "-18", "trixie"), "")
    # in no suite: the nearest, said (newer on a tie)
    assert compiler_for(parse_job("x86_64-llvm-20/test_progs"), host, offers) == (
        Toolchain("llvm", "-21", "sid"),
        "kernel: llvm-20 is in no Debian suite -> llvm-21 (sid build root)")
    assert compiler_for(parse_job("x86_64-llvm-15/test_progs"), host, lambda _s: [])[0] == \
        Toolchain("llvm", "-16")
    assert compiler_for(parse_job("x86_64-gcc/test_progs"), host, offers) == (GCC, "")
    assert compiler_for(parse_job("x86_64 gcc-15 / test (test_progs, false, 360) / "
                                  "test_progs on x86_64 with gcc-15"), host, offers) == (
        GCC, "gcc-15 -> the host's gcc")
    with pytest.raises(ConfigError, match="no clang-N on this machine or in Debian"):
        compiler_for(parse_job("s390x-llvm-18/test_progs"), [], lambda _s: [])


def test_a_root_toolchain_builds_host_programs_with_the_host_gcc() -> None:
    from harness.arches import Toolchain, get_arch

    x86 = get_arch("x86_64")
    assert Toolchain("llvm", "-19").make_vars(x86) == ["LLVM=-19"]
    rooted = Toolchain("llvm", "-21", "sid")
    assert rooted.make_vars(x86) == ["LLVM=-21", "HOSTCC=gcc", "HOSTCXX=g++",
                                     "HOSTLDFLAGS=-fuse-ld=bfd"]
    assert rooted.name == "llvm-21" and rooted.label == "llvm-21 (sid build root)"


def test_bpf_programs_get_the_jobs_llvm_from_the_host_or_the_oldest_suite_having_it() -> None:
    from harness.arches import Toolchain
    from harness.plan.vmtest import BPF_CI_LLVM, bpf_llvm_for

    suites = {"bookworm": [14, 16, 19], "trixie": [17, 18, 19, 22], "sid": [19, 21, 22, 23]}
    offers = suites.__getitem__
    llvm18 = parse_job("x86_64-llvm-18/test_progs")
    assert bpf_llvm_for(llvm18, [18, 19], offers) == (Toolchain.llvm(18), "")
    assert bpf_llvm_for(llvm18, [19], offers) == (Toolchain.llvm(18, "trixie"), "")
    # a gcc row names no LLVM: BPF CI's
    gcc = parse_job("x86_64-gcc/test_progs")
    assert bpf_llvm_for(gcc, [19], offers)[0].version == BPF_CI_LLVM
    assert bpf_llvm_for(parse_job("x86_64-llvm-21/test_progs"), [19], offers) == (
        Toolchain.llvm(21, "sid"), "")
    near, note = bpf_llvm_for(parse_job("x86_64-llvm-20/test_progs"), [19], offers)
    assert near == Toolchain.llvm(21, "sid")  # 19 and 21 are as near: the newer
    assert note == "BPF programs: llvm-20 is in no Debian suite -> llvm-21 (sid build root)"
    with pytest.raises(ConfigError, match="no clang-N on this machine or in Debian"):
        bpf_llvm_for(llvm18, [], lambda _suite: [])


def test_a_substituted_bpf_llvm_is_in_the_job_id() -> None:
    from harness.arches import GCC, Toolchain, get_arch
    from harness.plan.kernelreq import BPF_CI_BASE, KernelRequest
    from harness.plan.ksource import KernelSource
    from harness.plan.matrix import MatrixPoint
    from harness.plan.pahole import Pahole
    from harness.plan.vmtest import VmtestPoint

    src = KernelSource(Path("/s"), "7.2.13", "deb:x", "debian7.2.13", "debian:7.2")
    ph = Pahole(Path("/p"), "1.32", (), digest="d")
    req = KernelRequest(get_arch("x86_64"), src, ph, toolchain=GCC, config_base=BPF_CI_BASE)
    job = parse_job("x86_64-gcc/test_progs")
    plain = VmtestPoint(job, MatrixPoint(req, ph), Toolchain.llvm(21, "sid"))
    assert plain.id == "x86_64-gcc-test_progs-debian7.2.13"
    swapped = VmtestPoint(job, MatrixPoint(req, ph), Toolchain.llvm(22, "sid"),
                          "BPF programs: clang-21 is in no Debian suite -> clang-22 (sid ...)")
    assert swapped.id == "x86_64-gcc~bpf-clang-22-test_progs-debian7.2.13"


def _tree(tmp_path: Path) -> Path:
    tests = tmp_path / "tools/testing/selftests/bpf/prog_tests"
    tests.mkdir(parents=True)
    (tests / "module_attach.c").write_text("void test_module_attach(void)\n{\n}\n")
    (tests / "kfunc_call.c").write_text("static void test_main(void) {}\n"
                                        "void test_kfunc_call(void)\n{\n}\n")
    (tests / "struct_ops_module.c").write_text("void serial_test_struct_ops_module(void)\n{}\n")
    (tests / "xdp.c").write_text("void test_xdp(void)\n{}\n")
    selftests_makefile(tests.parent)
    return tests.parent


def test_the_tests_of_a_tree_and_the_default_selection(tmp_path: Path) -> None:
    from harness.plan.vmtest import select_tests, tree_tests

    tree = _tree(tmp_path)
    tests = tree_tests(tree)
    assert tests == ["kfunc_call", "module_attach", "struct_ops_module", "xdp"]
    assert select_tests(tests, "module-btf") == ["kfunc_call", "module_attach",
                                                 "struct_ops_module"]
    assert select_tests(tests, None) == select_tests(tests, "all") == ["all"]  # as CI runs it
    assert select_tests(tests, "xdp,module_attach/sub,kfunc*") == [
        "xdp", "module_attach/sub", "kfunc*"]
    with pytest.raises(ConfigError, match=r"no test 'module' .*near: module_attach"):
        select_tests(tests, "module")
    with pytest.raises(ConfigError, match="no prog_tests"):
        tree_tests(tmp_path)
    assert tree_tests(tree, [tree / "prog_tests/xdp.c"]) == ["xdp"]


def test_a_job_on_a_kernel_names_both_and_its_substitution() -> None:
    from harness.arches import Toolchain, get_arch
    from harness.plan.kernelreq import BPF_CI_BASE, KernelRequest
    from harness.plan.ksource import KernelSource
    from harness.plan.matrix import MatrixPoint
    from harness.plan.pahole import Pahole
    from harness.plan.vmtest import VmtestPoint

    src = KernelSource(Path("/s"), "6.12.117", "deb:x", "debian6.12.117", "debian:6.12")
    ph = Pahole(Path("/p"), "1.30", (), digest="d")
    req = KernelRequest(get_arch("aarch64"), src, ph, toolchain=Toolchain("llvm", "-19"),
                        config_base=BPF_CI_BASE)
    job = VmtestPoint(parse_job("aarch64-llvm-18/test_progs_no_alu32"), MatrixPoint(req, ph),
                      Toolchain.llvm(18, "trixie"),
                      "kernel: llvm-18 is in no Debian suite -> llvm-19")
    assert job.id == "aarch64-llvm-18~llvm-19-test_progs_no_alu32-debian6.12.117"
    assert job.point.kernel_id == "aarch64-debian6.12.117-llvm-19-pahole1.30-bpf-ci"
    assert job.rerun(["module_attach"]) == (
        "./kbtf pytest suites/ --vmtest-job aarch64-llvm-18/test_progs_no_alu32 --kernel "
        "debian:6.12 --vmtest-tests module_attach")


def test_the_runner_takes_the_trees_denylists_that_exist(tmp_path: Path) -> None:
    from harness.arches import GCC, Toolchain, get_arch
    from harness.plan.kernelreq import BPF_CI_BASE, SELFTESTS_DIR, KernelRequest
    from harness.plan.ksource import KernelSource
    from harness.plan.matrix import MatrixPoint
    from harness.plan.pahole import Pahole
    from harness.plan.vmtest import VmtestPoint
    from harness.run.vmtestrun import VmtestRun

    tree = tmp_path / "linux"
    (tree / SELFTESTS_DIR).mkdir(parents=True)
    (tree / SELFTESTS_DIR / "DENYLIST").write_text("# comment\nsend_signal\n")
    (tree / SELFTESTS_DIR / "DENYLIST.aarch64").write_text("fexit_sleep\n")
    (tree / SELFTESTS_DIR / "DENYLIST.s390x").write_text("xdp\n")
    src = KernelSource(tree, "7.2.13", "deb:x", "debian7.2.13", "debian:7.2")
    ph = Pahole(Path("/p"), "1.32", (), digest="d")

    def argv(name: str, tests: list[str]) -> list[str]:
        job = parse_job(name)
        req = KernelRequest(get_arch(job.arch), src, ph, toolchain=GCC, config_base=BPF_CI_BASE)
        point = VmtestPoint(job, MatrixPoint(req, ph), Toolchain.llvm(21, "sid"))
        return VmtestRun(point, tmp_path / "run", tmp_path / "cache").runner_argv(tests)

    assert argv("aarch64-gcc/test_progs", ["module_attach", "kfunc_call/sub"]) == [
        "./test_progs", "-d@DENYLIST", "-d@DENYLIST.aarch64", "-a", "module_attach",
        "-a", "kfunc_call/sub"]
    assert argv("x86_64-gcc/test_progs_no_alu32_parallel", ["btf_module"]) == [
        "./test_progs-no_alu32", "-j", "-d@DENYLIST", "-a", "btf_module"]
    # test_verifier takes no test_progs options: it read "-d@DENYLIST" as test number 0 and
    # ran that one test alone (aarch64-gcc/test_verifier on 7.2.13, seen here)
    assert argv("aarch64-gcc/test_verifier", []) == ["./test_verifier"]
    assert argv("s390x-gcc/test_maps", []) == ["./test_maps"]


def test_the_runners_json_summary_comes_back_with_its_output_in_one_command(
        tmp_path: Path) -> None:
    from harness.arches import GCC, Toolchain, get_arch
    from harness.guest.console import CommandResult
    from harness.plan.kernelreq import BPF_CI_BASE, SELFTESTS_DIR, KernelRequest
    from harness.plan.ksource import KernelSource
    from harness.plan.matrix import MatrixPoint
    from harness.plan.pahole import Pahole
    from harness.plan.vmtest import VmtestPoint
    from harness.run.vmtestrun import JSON_MARK, VmtestRun

    tree = tmp_path / "linux"
    (tree / SELFTESTS_DIR).mkdir(parents=True)
    (tree / SELFTESTS_DIR / "test_progs.c").write_text('{ "json-summary", ... }\n')
    (tree / SELFTESTS_DIR / "prog_tests").mkdir()
    (tree / SELFTESTS_DIR / "prog_tests/btf_sysfs.c").write_text("void test_btf_sysfs(void)\n{}\n")
    selftests_makefile(tree / SELFTESTS_DIR)
    src = KernelSource(tree, "7.2.13", "deb:x", "debian7.2.13", "debian:7.2")
    ph = Pahole(Path("/p"), "1.32", (), digest="d")
    req = KernelRequest(get_arch("x86_64"), src, ph, toolchain=GCC, config_base=BPF_CI_BASE)
    run = VmtestRun(VmtestPoint(parse_job("x86_64-gcc/test_progs"), MatrixPoint(req, ph),
                                Toolchain.llvm(21, "sid")), tmp_path / "run", tmp_path / "cache")
    commands: list[str] = []

    class Session:
        name, serial_log, out_dir = "vmtest-gw0", tmp_path / "serial.log", tmp_path / "out"

        def path(self, host: Path) -> str:
            return f"/kbtf/out/{host.name}"

        def __init__(self) -> None:
            self.memo: dict[str, object] = {}

        def once_per_boot(self, key: str, make: Callable[[], object]) -> object:
            if key not in self.memo:
                self.memo[key] = make()
            return self.memo[key]

        def run(self, command: str, timeout: float = 120) -> CommandResult:
            commands.append(command)
            return CommandResult(command, 0, "#1 btf_sysfs:OK\nSummary: 1/0 PASSED, 0 SKIPPED, "
                                 f"0 FAILED\n\n{JSON_MARK}\n" + '{"success":1,"results":['
                                 '{"name":"btf_sysfs","number":1,"failed":false}]}\n', "")

    session = Session()
    out = run.run_tests(session, ["btf_sysfs"])  # type: ignore[arg-type]
    # the loopback once per boot (test_maps' sockmap tests connect to 127.0.0.1), then one
    # command a test
    assert commands[0] == "ip link set dev lo up" and len(commands) == 2
    assert "-J /tmp/kbtf-test_progs.json; } 2>&1 | tee /kbtf/out/runner.log" in commands[1]
    run.run_tests(session, ["btf_sysfs"])  # type: ignore[arg-type]
    assert len(commands) == 3
    assert out.tests["btf_sysfs"].verdict == "OK" and out.summary is not None
    log = (tmp_path / "run" / run.vmtest.id / "runs" / "btf_sysfs.log").read_text()
    assert "\"success\"" not in log and "Summary: 1/0 PASSED" in log
