"""The stale-split-BTF finding of suites/test_relocation.py, run against a fake guest: it
is an XFAIL only when the kernel kept split BTF with wrong member types; right members are
a failure (the finding is gone); a guest lost or crashed while reading the BTF is never an
xfail; a module with .BTF.base is not the case under test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TEST_FILE = """
import pytest
import suites.test_relocation as rel
from harness.guest.console import CommandResult
from harness.errors import GuestLost, KernelTrouble
from harness.builds.modbuild import ModuleBuild
from pathlib import Path

class FakeGuest:
    name = "fake"
    def __init__(self, loaded, members=None, read_error=None, bpftool=None):
        self.loaded, self.members, self.read_error = loaded, members, read_error
        self.bpftool = bpftool  # (rc, stderr) of bpftool, if it fails
    def path(self, host):
        return str(host)
    def run(self, command, *args, timeout=120):
        full = " ".join([command, *args])
        if full.startswith("insmod"):
            return CommandResult(full, 0 if self.loaded else 1, "", "")
        if full.startswith("dmesg") and not full.startswith("dmesg -C") and not self.loaded:
            return CommandResult(full, 0, "failed to validate module [kbtf_types] BTF: -22\\n", "")
        if full.startswith("bpftool") and self.read_error is not None:
            raise self.read_error
        if full.startswith("bpftool") and self.bpftool is not None:
            return CommandResult(full, self.bpftool[0], "", self.bpftool[1])
        return CommandResult(full, 0, "", "")

RIGHT = dict((m, t) for m, t in rel.MEMBERS)
WRONG = {**RIGHT, "task": "struct list_head *"}

@pytest.fixture
def types_split():
    return ModuleBuild("kbtf_types", "split", (Path(KO),), Path("build.log"), False)

def run(guest, types_split, request, monkeypatch, members, unreadable=None):
    monkeypatch.setattr(rel, "read_members", lambda g, k: (members, unreadable))
    rel.test_split_module_for_smaller_base_is_not_silently_wrong(
        guest, None, types_split, {"A": 1, "A'": 2}, {})

def test_wrong_members(types_split, request, monkeypatch):
    run(FakeGuest(True), types_split, request, monkeypatch, WRONG)

def test_right_members(types_split, request, monkeypatch):
    run(FakeGuest(True), types_split, request, monkeypatch, RIGHT)

def test_unreadable(types_split, request, monkeypatch):
    run(FakeGuest(True), types_split, request, monkeypatch, None,
        "libbpf: btf: type [65675]: referenced type [65351] is not FUNC_PROTO")

def test_bpftool_missing(types_split, request):
    guest = FakeGuest(True, bpftool=(127, "bash: line 1: bpftool: command not found"))
    rel.test_split_module_for_smaller_base_is_not_silently_wrong(
        guest, None, types_split, {"A": 1, "A'": 2}, {})

def test_bpftool_fails_otherwise(types_split, request):
    guest = FakeGuest(True, bpftool=(255, "Error: failed to load BTF from /sys/kernel/btf/"
                                          "kbtf_types: No such file or directory"))
    rel.test_split_module_for_smaller_base_is_not_silently_wrong(
        guest, None, types_split, {"A": 1, "A'": 2}, {})

def test_refused(types_split, request, monkeypatch):
    run(FakeGuest(False), types_split, request, monkeypatch, None)

def test_guest_lost_while_reading(types_split, request):
    guest = FakeGuest(True, read_error=GuestLost("QEMU exited"))
    rel.test_split_module_for_smaller_base_is_not_silently_wrong(
        guest, None, types_split, {"A": 1, "A'": 2}, {})

def test_kernel_crash_while_reading(types_split, request):
    guest = FakeGuest(True, read_error=KernelTrouble("BUG: kernel NULL pointer dereference"))
    rel.test_split_module_for_smaller_base_is_not_silently_wrong(
        guest, None, types_split, {"A": 1, "A'": 2}, {})
"""


@pytest.fixture
def split_ko(data: Path, tmp_path: Path) -> Path:
    """A split-only module: the captured distilled kbtf_types.ko without .BTF.base."""
    ko = tmp_path / "kbtf_types-split.ko"
    subprocess.run([shutil.which("objcopy") or "objcopy", "--remove-section", ".BTF.base",
                    str(data / "kbtf_types-distilled.ko"), str(ko)], check=True)
    return ko


def run_cases(pytester: pytest.Pytester, ko: Path) -> pytest.RunResult:
    pytester.makepyfile(test_cases=f"KO = {str(ko)!r}\n" + TEST_FILE)
    return pytester.runpytest_inprocess("-p", "suites.blame", "-p", "no:cacheprovider", "-rA",
                                        "-W", "ignore::pytest.PytestUnknownMarkWarning",
                                        "-W", "ignore::pytest.PytestAssertRewriteWarning")


def test_each_case_gets_its_verdict(pytester: pytest.Pytester, split_ko: Path) -> None:
    result = run_cases(pytester, split_ko)
    result.assert_outcomes(passed=1, xfailed=2, failed=3, errors=2)
    result.stdout.fnmatch_lines_random([
        "XFAIL test_cases.py::test_wrong_members*member task is 'struct list_head *'*",
        "FAILED test_cases.py::test_right_members*",
        "*every member reads right: the finding this test expects is gone*",
        "PASSED test_cases.py::test_refused*",
        "XFAIL test_cases.py::test_unreadable*rejected by libbpf*not FUNC_PROTO*",
        "ERROR test_cases.py::test_guest_lost_while_reading*",
        "ERROR test_cases.py::test_bpftool_missing*",
        "*HarnessError: the guest has no bpftool*",
        "FAILED test_cases.py::test_bpftool_fails_otherwise*",
        "*bpftool cannot read /sys/kernel/btf/kbtf_types in A': Error: failed to load BTF*",
        "FAILED test_cases.py::test_kernel_crash_while_reading*",
    ])


def test_a_module_with_btf_base_is_not_the_case_under_test(pytester: pytest.Pytester,
                                                           data: Path) -> None:
    result = run_cases(pytester, data / "kbtf_types-distilled.ko")
    result.assert_outcomes(failed=8)
