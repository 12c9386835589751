"""BPF CI job names: every name of the seed's CI matrix, the newer form and the short one."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.plan.vmtest import VmtestJob, parse_job

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
