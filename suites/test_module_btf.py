"""Foundation suite: an out-of-tree module gets BTF, loads, and shows up in /sys/kernel/btf.

Each test fails when the kernel feature it checks is broken: a kernel without
DEBUG_INFO_BTF_MODULES gives a .ko without .BTF and no /sys/kernel/btf/<mod>.
"""

from __future__ import annotations

import json

from harness.elfbtf import elf_facts
from harness.guest import GuestSession
from harness.kbuild import KernelBuild
from harness.modbuild import ModuleBuild

MOD = "kbtf_hello"


def test_vmlinux_has_btf(kernel: KernelBuild) -> None:
    facts = elf_facts(kernel.vmlinux)
    assert facts.btf is not None, f"{kernel.vmlinux} has no .BTF section"
    assert facts.btf.type_len > 0


def test_module_has_btf_section(hello_ko: ModuleBuild) -> None:
    facts = elf_facts(hello_ko.ko)
    assert not hello_ko.btf_skipped, f"modfinal skipped BTF generation: see {hello_ko.log}"
    assert facts.btf is not None, f"{hello_ko.ko} has no .BTF section (sections: {facts.sections})"
    assert facts.btf.type_len > 0, f"{hello_ko.ko}: .BTF holds no types"


def test_sys_kernel_btf_vmlinux(guest: GuestSession) -> None:
    res = guest.run("test -s /sys/kernel/btf/vmlinux")
    assert res.ok, "/sys/kernel/btf/vmlinux is missing or empty in the guest"


def test_insmod(guest: GuestSession, hello_loaded: ModuleBuild) -> None:
    res = guest.run("grep", f"^{MOD} ", "/proc/modules")
    assert res.ok, f"{MOD} is not in /proc/modules after insmod"


def test_sys_kernel_btf_module(guest: GuestSession, hello_loaded: ModuleBuild,
                               facts: dict[str, object]) -> None:
    res = guest.run("test", "-s", f"/sys/kernel/btf/{MOD}")
    facts["module_btf_loaded"] = res.ok
    dmesg = guest.run("dmesg | grep -i btf | tail -3").stdout.strip()
    assert res.ok, f"/sys/kernel/btf/{MOD} missing after insmod; dmesg: {dmesg or '(nothing)'}"


def test_bpftool_names_module_function(guest: GuestSession, hello_loaded: ModuleBuild) -> None:
    # bpftool reads /sys/kernel/btf/vmlinux as the base of a module's split BTF itself.
    res = guest.run("bpftool", "-j", "btf", "dump", "file", f"/sys/kernel/btf/{MOD}")
    assert res.ok, f"bpftool btf dump failed: {res.stderr.strip()}"
    funcs = {t["name"] for t in json.loads(res.stdout)["types"] if t["kind"] == "FUNC"}
    assert "kbtf_hello_poke" in funcs, f"module BTF lacks kbtf_hello_poke; FUNCs: {sorted(funcs)}"


def test_rmmod(guest: GuestSession, hello_loaded: ModuleBuild) -> None:
    assert guest.run("rmmod", MOD).ok, f"rmmod {MOD} failed"
    assert not guest.run("test", "-e", f"/sys/kernel/btf/{MOD}").ok, \
        f"/sys/kernel/btf/{MOD} still exists after rmmod"
    assert guest.run("insmod", guest.path(hello_loaded.ko)).ok, "re-insmod after rmmod failed"
