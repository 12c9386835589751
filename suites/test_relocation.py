"""Relocation of distilled base BTF (the seeds' heart): modules built against kernel A and
loaded into kernel A' (same vermagic, more vmlinux types, so base type ids moved).

- distilled (.BTF.base): relocated on load; its struct members still name vmlinux types.
- split-only: A' (MODULE_ALLOW_BTF_MISMATCH=n) refuses it with the kernel's BTF error;
  A (=y) loads a split module built for A' without /sys/kernel/btf/<mod>.
- a kernel that accepts stale split BTF must show the BTF is wrong: that fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from harness.elfbtf import btf_types, elf_facts
from harness.errors import HarnessError
from harness.guest import GuestSession
from harness.kbuild import KernelBuild
from harness.modbuild import ModuleBuild

MOD = "kbtf_types"
BTF_ERROR = re.compile(r"failed to validate module \[kbtf_types\] BTF: -?\d+")


def _type_id(vmlinux_types: list[dict[str, object]], kind: str, name: str) -> int:
    for t in vmlinux_types:
        if t["kind"] == kind and t["name"] == name:
            return int(str(t["id"]))
    raise HarnessError(f"vmlinux BTF has no {kind} {name}")


@pytest.fixture(scope="module")
def ids_moved(kernel: KernelBuild, kernel_prime: KernelBuild) -> dict[str, int]:
    """Precondition: task_struct has another BTF id in A' than in A (host-side bpftool)."""
    a = _type_id(btf_types(kernel.vmlinux), "STRUCT", "task_struct")
    b = _type_id(btf_types(kernel_prime.vmlinux), "STRUCT", "task_struct")
    if a == b:
        raise HarnessError(f"kconfigs/reloc.config did not move task_struct (id {a} in both): "
                           "relocation would not be exercised")
    return {"A": a, "A'": b}


def member_type(c_dump: str, member: str) -> str | None:
    """The declared type of ``member`` of struct kbtf_types_state in a `format c` dump."""
    body = re.search(r"struct kbtf_types_state \{(.*?)\n\};", c_dump, re.DOTALL)
    if body is None:
        return None
    m = re.search(rf"^\s*(.+?)\s*\b{member};", body.group(1), re.MULTILINE)
    return m.group(1) if m else None


def _load(guest: GuestSession, ko: ModuleBuild) -> tuple[bool, str]:
    """insmod ``ko`` into ``guest``: (loaded?, the kernel's BTF line or dmesg tail)."""
    guest.run("rmmod", MOD)  # leftovers from an earlier test, if any
    guest.run("dmesg -C")
    res = guest.run("insmod", str(ko.ko))
    dmesg = guest.run("dmesg").stdout
    m = BTF_ERROR.search(dmesg)
    return res.ok, m.group(0) if m else ("dmesg: " + " | ".join(dmesg.strip().splitlines()[-3:]))


def _stale_btf_finding(guest: GuestSession) -> str | None:
    """If /sys/kernel/btf/kbtf_types exists, what its `task` member names, when wrong."""
    if not guest.run("test", "-e", f"/sys/kernel/btf/{MOD}").ok:
        return None
    dump = guest.run("bpftool", "btf", "dump", "file", f"/sys/kernel/btf/{MOD}", "format", "c")
    declared = member_type(dump.stdout, "task")
    return f"the kernel kept split BTF built for another vmlinux: member task is {declared!r}"


@pytest.fixture
def unload(guest: GuestSession, guest_prime: GuestSession) -> Iterator[None]:
    yield
    for g in (guest, guest_prime):
        if g.alive:
            g.run("rmmod", MOD)


@pytest.mark.usefixtures("unload")
def test_distilled_module_relocates_into_rebuilt_kernel(
    guest_prime: GuestSession, types_distilled: ModuleBuild, ids_moved: dict[str, int],
    facts: dict[str, object],
) -> None:
    if elf_facts(types_distilled.ko).btf_base is None:
        pytest.skip(f"{types_distilled.ko.name} has no .BTF.base (module pahole or the "
                    "kernel's CONFIG_PAHOLE_VERSION gives no distilled base): nothing to relocate")
    loaded, btf_line = _load(guest_prime, types_distilled)
    assert loaded, f"distilled module refused by A' (task_struct id {ids_moved}): {btf_line}"
    assert guest_prime.run("test", "-s", f"/sys/kernel/btf/{MOD}").ok, \
        f"distilled module loaded into A' without /sys/kernel/btf/{MOD}: {btf_line}"
    dump = guest_prime.run("bpftool", "btf", "dump", "file", f"/sys/kernel/btf/{MOD}",
                           "format", "c")
    assert dump.ok, f"bpftool btf dump failed: {dump.stderr.strip()}"
    facts["relocated_task_member"] = member_type(dump.stdout, "task")
    for member, want in (("task", "struct task_struct *"), ("skb", "struct sk_buff *"),
                         ("node", "struct list_head"), ("mm", "struct mm_struct *")):
        got = member_type(dump.stdout, member)
        assert got == want, (f"after relocation into A', member {member} is {got!r}, "
                             f"want {want!r} (task_struct ids {ids_moved})")


@pytest.mark.usefixtures("unload")
def test_split_module_refused_when_mismatch_not_allowed(
    guest_prime: GuestSession, types_split: ModuleBuild, ids_moved: dict[str, int],
    facts: dict[str, object],
) -> None:
    assert elf_facts(types_split.ko).btf_base is None, "split-only variant has .BTF.base"
    loaded, btf_line = _load(guest_prime, types_split)
    facts["split_into_A_prime"] = "loaded" if loaded else f"refused: {btf_line}"
    if loaded:
        stale = _stale_btf_finding(guest_prime)
        pytest.fail(stale or f"A' (MODULE_ALLOW_BTF_MISMATCH=n) loaded split BTF built for A "
                    f"and dropped its BTF instead of refusing it: {btf_line}")
    assert BTF_ERROR.search(btf_line), f"insmod failed, but not with the BTF error: {btf_line}"


@pytest.mark.usefixtures("unload")
def test_split_module_loads_without_btf_when_mismatch_allowed(
    guest: GuestSession, types_split_for_prime: ModuleBuild, ids_moved: dict[str, int],
    facts: dict[str, object],
) -> None:
    loaded, btf_line = _load(guest, types_split_for_prime)
    facts["split_into_A"] = "loaded" if loaded else f"refused: {btf_line}"
    assert loaded, f"A (MODULE_ALLOW_BTF_MISMATCH=y) refused a split module: {btf_line}"
    stale = _stale_btf_finding(guest)
    assert stale is None, stale
    assert BTF_ERROR.search(btf_line), f"no BTF validation message in dmesg: {btf_line}"
