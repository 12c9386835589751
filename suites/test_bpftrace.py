"""bpftrace in the guest (the guest root's own bpftrace): kprobes on a module function
count exactly the calls made from userspace; fentry (kfunc) with typed args needs the
module's BTF and fails without it, with bpftrace saying the function has no BTF.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.btf.bpftrace import (
    HELLO,
    HELLO_KFUNC,
    HELLO_KPROBE,
    HELLO_VALUES,
    map_value,
    missing_btf_error,
    printed_values,
)
from harness.builds.kbuild import KernelBuild
from harness.builds.modbuild import MODULES_DIR, ModuleBuild, without_btf
from harness.guest import bpftracerun, modload
from harness.guest.session import GuestSession
from harness.run.pointrun import PointRun

SABOTAGE_FAULTS = {"warn-on-load": "warn", "oops-on-load": "oops", "hang-on-load": "hang",
                   "warn-at-poweroff": "poweroff"}


@pytest.fixture
def fault_ko(pytestconfig: pytest.Config, point_run: PointRun, kernel: KernelBuild
             ) -> ModuleBuild | None:
    """modules/kbtf_fault, built only for --sabotage warn-on-load / oops-on-load."""
    if pytestconfig.option.sabotage not in SABOTAGE_FAULTS:
        return None
    return point_run.module(kernel, MODULES_DIR / "kbtf_fault", "default")


@pytest.fixture
def hello_loaded(guest: GuestSession, hello_ko: ModuleBuild, fault_ko: ModuleBuild | None,
                 pytestconfig: pytest.Config) -> ModuleBuild:
    """kbtf_hello in guest A (once per boot), then kbtf_fault for --sabotage *-on-load."""
    modload.ensure_loaded(guest, hello_ko)
    if fault_ko is not None:
        modload.load_fault(guest, fault_ko, SABOTAGE_FAULTS[pytestconfig.option.sabotage])
    return hello_ko


def _bpftrace(guest: GuestSession, program: str, trigger: str) -> tuple[int, str]:
    """(rc, stdout + stderr) of ``program`` run while ``trigger`` runs."""
    res = bpftracerun.with_trigger(guest, program, trigger)
    return res.rc, res.stdout + res.stderr


def _probes(guest: GuestSession, hello: ModuleBuild, program: str) -> tuple[int, str]:
    """(rc, output) of kbtf_hello's exercise (HELLO: its probes while its trigger runs):
    the bpftrace run the loaded build's tests share, module_btf's too (a start costs 7-13 s
    under TCG); ``program`` alone with the trigger when that run failed, so each test is
    decided by its own probe."""
    both = bpftracerun.shared_run(guest, hello)
    return both if both[0] == 0 else _bpftrace(guest, program, HELLO.trigger)


def test_kprobe_counts_exactly_the_userspace_calls(guest: GuestSession,
                                                   hello_loaded: ModuleBuild) -> None:
    rc, out = _probes(guest, hello_loaded, HELLO_KPROBE)
    assert rc == 0, f"bpftrace kprobe failed ({rc}): {out.strip()}"
    assert map_value(out, "@calls") == len(HELLO_VALUES), (
        f"want @calls: {len(HELLO_VALUES)}, bpftrace printed: {out.strip()}")


def test_fentry_reads_typed_args_from_module_btf(guest: GuestSession, kernel: KernelBuild,
                                                 hello_loaded: ModuleBuild,
                                                 facts: dict[str, object]) -> None:
    facts["bpftrace"] = bpftracerun.version(guest)
    rc, out = _probes(guest, hello_loaded, HELLO_KFUNC)
    assert rc == 0, f"bpftrace kfunc failed ({rc}): {out.strip()}"
    values = printed_values(out, "value")
    hint = ""
    if kernel.arch.big_endian and values and not any(values):
        hint = (f" ({facts['bpftrace']} on big-endian {kernel.arch.name} reads fentry "
                "arguments as 0: bpftrace's big-endian argument decoding bug, fixed upstream "
                "in 'Fixes for s390 big endian systems', bpftrace PR #5272)")
    assert values == list(HELLO_VALUES), (f"kfunc args->value read as {values}, the calls "
                                          f"were {list(HELLO_VALUES)}: {out.strip()}{hint}")


@pytest.fixture
def hello_without_btf(guest: GuestSession, hello_loaded: ModuleBuild, kernel: KernelBuild
                      ) -> Iterator[ModuleBuild]:
    """kbtf_hello with .BTF and .BTF.base stripped, loaded instead of the normal one."""
    stripped = without_btf(hello_loaded, kernel.arch)
    modload.swap(guest, "kbtf_hello", stripped)
    yield stripped
    if guest.alive:
        modload.swap(guest, "kbtf_hello", hello_loaded)


@pytest.mark.part("other-btf")
def test_fentry_fails_without_module_btf(guest: GuestSession,
                                         hello_without_btf: ModuleBuild) -> None:
    assert not guest.run("test", "-e", "/sys/kernel/btf/kbtf_hello").ok
    rc, out = _bpftrace(guest, HELLO_KFUNC, "echo 42 > /proc/kbtf_hello")
    assert rc != 0, f"bpftrace kfunc attached to a module without BTF: {out.strip()}"
    assert printed_values(out, "value") == []
    assert missing_btf_error(out, "kbtf_hello_poke"), (
        f"bpftrace kfunc failed, but not because kbtf_hello_poke has no BTF: {out.strip()}")
