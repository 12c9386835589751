"""bpftrace in the guest (the guest root's own bpftrace): kprobes on a module function
count exactly the calls made from userspace; fentry (kfunc) with typed args needs the
module's BTF and fails without it, with bpftrace saying the function has no BTF.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import replace

import pytest

from harness import proc
from harness.btf.bpftrace import map_value, missing_btf_error, printed_values
from harness.build.kbuild import KernelBuild
from harness.build.modbuild import MODULES_DIR, ModuleBuild
from harness.guest import modload
from harness.guest.session import GuestSession
from harness.run.pointrun import PointRun

CALLS = 5
SABOTAGE_FAULTS = {"warn-on-load": "warn", "oops-on-load": "oops"}


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
    """Run ``program`` while ``trigger`` runs (bpftrace -c); (rc, stdout + stderr)."""
    # bpftrace splits -c on spaces (no shell quoting) and wants an absolute path: run the
    # trigger from a script, with bash (a foreign arch's extract root has no /bin/sh).
    script = "/tmp/kbtf/trigger.sh"
    assert guest.run(f"printf '%s\\n' {shlex.quote(trigger)} > {script}").ok
    res = guest.run("bpftrace", "-e", program, "-c", f"/bin/bash {script}", timeout=300)
    return res.rc, res.stdout + res.stderr


def test_kprobe_counts_exactly_the_userspace_calls(guest: GuestSession,
                                                   hello_loaded: ModuleBuild) -> None:
    trigger = f"for i in $(seq {CALLS}); do echo $i > /proc/kbtf_hello; done"
    rc, out = _bpftrace(guest, "kprobe:kbtf_hello_poke { @calls = count(); }", trigger)
    assert rc == 0, f"bpftrace kprobe failed ({rc}): {out.strip()}"
    assert map_value(out, "@calls") == CALLS, (
        f"want @calls: {CALLS}, bpftrace printed: {out.strip()}")


def test_fentry_reads_typed_args_from_module_btf(guest: GuestSession, kernel: KernelBuild,
                                                 hello_loaded: ModuleBuild,
                                                 facts: dict[str, object]) -> None:
    version = guest.once_per_boot("bpftrace-version", lambda: guest.run("bpftrace --version"))
    facts["bpftrace"] = version.stdout.strip() or version.stderr.strip()
    program = 'kfunc:kbtf_hello:kbtf_hello_poke { printf("value=%d\\n", args->value); }'
    rc, out = _bpftrace(guest, program, "echo 42 > /proc/kbtf_hello")
    assert rc == 0, f"bpftrace kfunc failed ({rc}): {out.strip()}"
    values = printed_values(out, "value")
    hint = ""
    if kernel.arch.big_endian and values == [0]:
        hint = (f" ({facts['bpftrace']} on big-endian {kernel.arch.name} reads fentry "
                "arguments as 0: bpftrace's big-endian argument decoding bug, fixed upstream "
                "in 'Fixes for s390 big endian systems', bpftrace PR #5272)")
    assert values == [42], f"kfunc args->value not read as 42 once: {out.strip()}{hint}"


@pytest.fixture
def hello_without_btf(guest: GuestSession, hello_loaded: ModuleBuild, kernel: KernelBuild
                      ) -> Iterator[ModuleBuild]:
    """kbtf_hello with .BTF and .BTF.base stripped, loaded instead of the normal one."""
    ko = hello_loaded.ko.with_name("kbtf_hello.nobtf.ko")
    proc.run([kernel.arch.tool("objcopy"), "--remove-section", ".BTF",
              "--remove-section", ".BTF.base", hello_loaded.ko, ko], timeout=60)
    assert guest.run("rmmod kbtf_hello").ok
    assert guest.run("insmod", guest.path(ko)).ok
    yield replace(hello_loaded, kos=(ko,))
    guest.run("rmmod kbtf_hello")
    guest.run("insmod", guest.path(hello_loaded.ko))


def test_fentry_fails_without_module_btf(guest: GuestSession,
                                         hello_without_btf: ModuleBuild) -> None:
    assert not guest.run("test", "-e", "/sys/kernel/btf/kbtf_hello").ok
    program = 'kfunc:kbtf_hello:kbtf_hello_poke { printf("value=%d\\n", args->value); }'
    rc, out = _bpftrace(guest, program, "echo 42 > /proc/kbtf_hello")
    assert rc != 0, f"bpftrace kfunc attached to a module without BTF: {out.strip()}"
    assert printed_values(out, "value") == []
    assert missing_btf_error(out, "kbtf_hello_poke"), (
        f"bpftrace kfunc failed, but not because kbtf_hello_poke has no BTF: {out.strip()}")
