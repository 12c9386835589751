"""The selftests build's handling of a tree whose programs do not all compile (captured make
-k output of Debian's 7.2 and 6.12 trees), and the shell suite's command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.builds import selftests
from harness.builds.selftests import SetAside
from tests.conftest import selftests_makefile

DATA = Path(__file__).parent / "data"


def test_failed_sources_quote_each_ones_first_compiler_error() -> None:
    found = selftests.failed_sources((DATA / "selftests-make-k.log").read_text())
    assert found == [
        ("progs/cpumask_failure.c", "progs/cpumask_common.h:64:5: error: conflicting types "
                                    "for 'bpf_cpumask_populate'"),
        ("prog_tests/bpf_attr_size.c", "prog_tests/bpf_attr_size.c:8:10: fatal error: "
                                       "cgroup_skb_direct_packet_access.skel.h: No such file "
                                       "or directory"),
    ]


def _tree(root: Path) -> Path:
    bpf = root / "tools/testing/selftests/bpf"
    (bpf / "progs").mkdir(parents=True)
    (bpf / "prog_tests").mkdir()
    (bpf / "progs/cpumask_failure.c").write_text("int x;\n")
    (bpf / "progs/kfunc_call_test.c").write_text("int y;\n")
    (bpf / "prog_tests/cpumask.c").write_text(
        '#include "cpumask_failure.skel.h"\n#include "cpumask_success.skel.h"\n'
        'void test_cpumask(void)\n{}\n')
    (bpf / "progs/cpumask_success.c").write_text("int z;\n")
    (bpf / "prog_tests/kfunc_call.c").write_text(
        '#include "kfunc_call_test.skel.h"\nvoid test_kfunc_call(void)\n{}\n')
    (bpf / "prog_tests/bpf_attr_size.c").write_text("void test_bpf_attr_size(void)\n{}\n")
    (bpf / "prog_tests/tests.h").write_text("DEFINE_TEST(cpumask)\n")
    selftests_makefile(bpf)
    return bpf


def test_set_aside_moves_a_program_with_its_users_and_a_test_alone(tmp_path: Path) -> None:
    bpf = _tree(tmp_path / "tree")
    log = (DATA / "selftests-make-k.log").read_text() + (
        "make: *** [Makefile:889: /x/bpf/cpumask_success.bpf.o] Error 1\n")
    moved = selftests._set_aside(bpf, log, tmp_path / "entry")
    assert [(a.program, a.files, a.tests) for a in moved] == [
        ("progs/cpumask_failure.c", ("prog_tests/cpumask.c",), ("cpumask",)),
        ("prog_tests/bpf_attr_size.c", ("prog_tests/bpf_attr_size.c",), ("bpf_attr_size",)),
        # its user was set aside with the first: still named
        ("progs/cpumask_success.c", ("prog_tests/cpumask.c",), ("cpumask",)),
    ]
    assert not (bpf / "prog_tests/tests.h").exists()  # the runner's list is made again
    left = sorted(str(p.relative_to(bpf)) for p in bpf.rglob("*.c"))
    assert not (bpf / "progs/cpumask_success.c").exists()
    assert left == ["prog_tests/kfunc_call.c", "progs/kfunc_call_test.c"]
    assert (tmp_path / "entry/set-aside/progs/cpumask_failure.c").is_file()


def test_a_built_entry_says_which_tests_were_left_out(tmp_path: Path) -> None:
    aside = SetAside("progs/cpumask_failure.c", "error: x", ("prog_tests/cpumask.c",),
                     ("cpumask",))
    (tmp_path / "selftests.json").write_text(json.dumps({"set_aside": [aside.__dict__]}))
    built = selftests.Selftests(tmp_path, "test_progs")
    assert built.set_aside() == [aside]
    assert built.left_out("cpumask/populate") == aside
    assert built.left_out("kfunc_call") is None


def test_the_shell_suite_keeps_the_runs_options_but_its_selection() -> None:
    from suites.test_shell import shell_argv

    argv = shell_argv(["suites/", "-n", "auto", "--kernel", "debian:7.2", "-k", "insmod",
                       "--point=x", "--accel", "tcg", "suites/test_pahole.py::test_a", "-n2"],
                      "unit-1")
    assert argv[1:] == ["-m", "pytest", "suites/", "--shell", "-p", "no:cacheprovider",
                        "--kernel", "debian:7.2", "--accel", "tcg", "--point", "unit-1"]


def test_an_llvm_jobs_selftests_are_built_inside_its_kernels_clang_root(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from harness.arches import Toolchain, get_arch
    from harness.builds import buildroot
    from harness.builds.kbuild import KernelBuild
    from harness.plan.ksource import KernelSource
    from harness.plan.pahole import Pahole

    made: list[tuple[str, list[str]]] = []

    def ensure(_cache: Path, suite: str, packages: list[str],
               foreign: tuple[str, ...] = ()) -> buildroot.BuildRoot:
        made.append((suite, list(packages)))
        return buildroot.BuildRoot(Path("/roots") / suite, suite)

    monkeypatch.setattr(buildroot, "ensure", ensure)
    src = KernelSource(Path("/s"), "7.2.13", "deb:x", "debian7.2.13", "debian:7.2")
    ph = Pahole(Path("/p/usr/bin/pahole"), "1.32", (), digest="d")
    kernel = KernelBuild(Path("/k"), "key", get_arch("x86_64"), src, ph,
                         Toolchain("llvm", "-21", "sid"))
    # that clang links against sid's glibc: the runner, its libbpf and the bpftool the build
    # runs are all made (and run) inside the root, the runner linked for the sid guest
    where = replace(selftests._where(kernel, Toolchain.llvm(21, "sid"), Path("/c")),
                    guest_suite="sid")
    assert where.root is not None and where.root.suite == "sid" and where.link == "dynamic"
    assert {"gcc", "make", "clang-21", "lld-21", "libelf-dev"} <= set(made[0][1])
    # a host clang kernel: on the host, nothing made
    host = replace(kernel, toolchain=Toolchain("llvm", "-19"))
    assert selftests._where(host, Toolchain.llvm(19), Path("/c")).root is None and len(made) == 1


def test_every_runner_gets_bpf_testmod_built_with_it() -> None:
    """test_progs depends on bpf_testmod.ko, test_verifier (which loads it) does not: the
    make line names it (an aarch64 test_verifier build made no bpf_testmod.ko before)."""
    from harness.arches import GCC, Toolchain, get_arch
    from harness.builds.kbuild import KernelBuild
    from harness.plan.ksource import KernelSource
    from harness.plan.pahole import Pahole

    src = KernelSource(Path("/s"), "7.2.13", "deb:x", "debian7.2.13", "debian:7.2")
    ph = Pahole(Path("/p/usr/bin/pahole"), "1.32", (), digest="d")
    kernel = KernelBuild(Path("/k"), "key", get_arch("aarch64"), src, ph, GCC)
    for runner in ("test_progs", "test_verifier", "test_maps"):
        argv = selftests._make(kernel, Toolchain.llvm(21, "sid"), runner, Path("/st"),
                               Path("/h"), "dynamic")
        assert argv[-2:] == [runner, "bpf_testmod.ko"], argv[-4:]
