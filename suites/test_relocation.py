"""Relocation of distilled base BTF (the seeds' heart). Three kernels from one source, one
vermagic: A (MODULE_ALLOW_BTF_MISMATCH=y), A' = A + kconfigs/prime.config (more vmlinux BTF
types, so ids move; =n) and A_n = A with MODULE_ALLOW_BTF_MISMATCH=n.

- distilled (.BTF.base) built for A, loaded into A': relocated; members still name
  task_struct, sk_buff, list_head, mm_struct.
- split-only built for A' (the larger base), loaded into A_n (=n): refused with the kernel's
  "failed to validate module" error; into A (=y): loaded without /sys/kernel/btf/<mod>.
- split-only built for A, loaded into the larger A' (=n): it should be refused, but 6.12
  only checks split BTF structurally (ids and string offsets stay in range), so it may keep
  the stale BTF with wrong types. That test passes on a kernel that refuses the module with
  the BTF error; a module kept with wrong member types is a strict XFAIL finding quoting
  them; kept with every member right is an XPASS, which fails (strict); a module without
  .BTF.base is a precondition, and anything else (loaded without BTF, a crash) fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from harness.btf.btfexpect import Expectation, ModuleBtfRules, no_relocation
from harness.btf.btfnames import module_struct_members
from harness.btf.elfbtf import elf_facts, vmlinux_types
from harness.builds.kbuild import KernelBuild
from harness.builds.modbuild import MODULES_DIR, ModuleBuild
from harness.errors import HarnessError, KernelFinding
from harness.guest.pool import GuestPool
from harness.guest.session import GuestSession
from harness.run.pointrun import PointRun, note_guest

MOD = "kbtf_types"
BTF_ERROR = re.compile(r"failed to validate module \[kbtf_types\] BTF: -?\d+")
# The kernel saying it dropped a module's BTF and loaded it anyway (=y): 6.12 names the
# mismatch or prints the verifier's complaint; 6.1 only says it failed to validate it.
BTF_MISMATCH = re.compile(r"Kernel module BTF mismatch detected[^\n]*|BPF: *\[\d+\] [^\n]*|"
                          r"failed to validate module \[kbtf_types\] BTF: -?\d+")
# libbpf refusing a BTF blob as invalid (bpftool prints libbpf's own words): the one way a
# kept stale BTF may be unreadable and still be the kernel finding, not a failure.
LIBBPF_REJECTION = re.compile(r"^libbpf: btf: .*$", re.MULTILINE | re.IGNORECASE)
pytestmark = [pytest.mark.relocation, pytest.mark.part("other-btf")]  # context.POINT_PARTS
TYPES = MODULES_DIR / MOD


@pytest.fixture(scope="session")
def kernel_prime(point_run: PointRun) -> KernelBuild:
    """Kernel A' (plan/kernelreq.VARIANTS)."""
    return point_run.kernel("prime")


@pytest.fixture(scope="session")
def kernel_refuse(point_run: PointRun) -> KernelBuild:
    """Kernel A_n (plan/kernelreq.VARIANTS)."""
    return point_run.kernel("refuse")


@pytest.fixture(scope="session")
def types_distilled(point_run: PointRun, kernel: KernelBuild) -> ModuleBuild:
    """modules/kbtf_types built against A the default way (.BTF.base if the tree makes one)."""
    return point_run.module(kernel, TYPES, "distilled")


@pytest.fixture(scope="session")
def types_split(point_run: PointRun, kernel: KernelBuild) -> ModuleBuild:
    """modules/kbtf_types built against A, split BTF only."""
    return point_run.module(kernel, TYPES, "split")


@pytest.fixture(scope="session")
def types_split_for_prime(point_run: PointRun, kernel_prime: KernelBuild) -> ModuleBuild:
    """modules/kbtf_types built against A', split BTF only (to load into A)."""
    return point_run.module(kernel_prime, TYPES, "split-for-prime")


@pytest.fixture
def guest_prime(point_run: PointRun, kernel_prime: KernelBuild, guest_pool: GuestPool,
                facts: dict[str, object]) -> GuestSession:
    return note_guest(facts, point_run.guest(kernel_prime, guest_pool, "guest-A-prime"))


@pytest.fixture
def guest_refuse(point_run: PointRun, kernel_refuse: KernelBuild, guest_pool: GuestPool,
                 facts: dict[str, object]) -> GuestSession:
    return note_guest(facts, point_run.guest(kernel_refuse, guest_pool, "guest-A_n"))


@pytest.fixture(scope="module")
def ids_moved(kernel: KernelBuild, kernel_prime: KernelBuild, facts: dict[str, object]
              ) -> dict[str, int]:
    """Precondition: A' has more vmlinux BTF types than A, so every split BTF id built for
    A (which starts after A's last base id) points elsewhere in A' (host-side bpftool)."""
    counts = {"A": len(vmlinux_types(kernel.vmlinux)),
              "A'": len(vmlinux_types(kernel_prime.vmlinux))}
    facts["vmlinux_btf_types"] = counts
    if counts["A"] == counts["A'"]:
        raise HarnessError(f"kconfigs/prime.config did not change the vmlinux BTF type count "
                           f"({counts}): relocation would not be exercised")
    return counts


# Members of struct kbtf_types_state and the C types they must resolve to.
MEMBERS = (("task", "struct task_struct *"), ("skb", "struct sk_buff *"),
           ("node", "struct list_head"), ("mm", "struct mm_struct *"))


def read_members(guest: GuestSession, kernel: KernelBuild
                 ) -> tuple[dict[str, str] | None, str | None]:
    """Member -> C type of struct kbtf_types_state in the guest's /sys/kernel/btf/kbtf_types
    (None if the struct is not there), or why bpftool could not read that BTF. The guest
    dumps only the module's split types as JSON; their vmlinux references are named from
    the host's dump of ``kernel``'s vmlinux.
    """
    dump = guest.run("bpftool", "-j", "btf", "dump", "file", f"/sys/kernel/btf/{MOD}")
    if dump.rc == 127:
        raise HarnessError(f"the guest has no bpftool: {dump.stderr.strip()}")
    if not dump.ok:
        return None, (dump.stderr.strip() or dump.stdout.strip())
    members = module_struct_members(dump.stdout, vmlinux_types(kernel.vmlinux),
                                    "kbtf_types_state")
    return members, None


def module_members(guest: GuestSession, kernel: KernelBuild) -> dict[str, str] | None:
    """read_members, failing the test if bpftool cannot read the kernel's module BTF."""
    members, unreadable = read_members(guest, kernel)
    assert unreadable is None, (f"bpftool cannot read /sys/kernel/btf/{MOD} in the guest: "
                                f"{unreadable}")
    return members


def wrong_members(members: dict[str, str] | None) -> list[str]:
    """The MEMBERS that ``members`` does not resolve to their right C type, described."""
    if members is None:
        return ["struct kbtf_types_state is absent"]
    return [f"member {m} is {members.get(m)!r}, want {want!r}" for m, want in MEMBERS
            if members.get(m) != want]


def _load(guest: GuestSession, ko: ModuleBuild) -> tuple[bool, str]:
    """insmod ``ko`` into ``guest``: (loaded?, the kernel's BTF line or dmesg tail)."""
    guest.run(f"rmmod {MOD} 2>/dev/null; dmesg -C")  # leftovers of an earlier test, if any
    res = guest.run("insmod", guest.path(ko.ko))
    dmesg = guest.run("dmesg").stdout
    m = BTF_ERROR.search(dmesg) or BTF_MISMATCH.search(dmesg)
    return res.ok, m.group(0) if m else ("dmesg: " + " | ".join(dmesg.strip().splitlines()[-3:]))


def _has_sysfs_btf(guest: GuestSession) -> bool:
    return guest.run("test", "-e", f"/sys/kernel/btf/{MOD}").ok


@pytest.fixture
def unload(request: pytest.FixtureRequest) -> Iterator[None]:
    """rmmod kbtf_types from the guests the test used (the test's own fixture values: the
    guest fixtures are torn down before this one)."""
    yield
    for g in request.node.funcargs.values():
        if isinstance(g, GuestSession) and g.alive:
            g.run("rmmod", MOD)


@pytest.fixture(scope="session")
def relocatable(btf_rules: ModuleBtfRules, kernel: KernelBuild,
                btf_base_expected: Expectation) -> None:
    """Skips (before any guest boots) where relocation cannot happen: a module loader that
    never reads .BTF.base (6.1), or a module build that makes no distilled base."""
    if reason := no_relocation(btf_rules, kernel.source.version):
        pytest.skip(reason)
    if not btf_base_expected.btf_base:
        pytest.skip(f"no distilled base to relocate: {btf_base_expected.reason}")


@pytest.mark.usefixtures("relocatable", "unload")
def test_distilled_module_relocates_into_rebuilt_kernel(
    guest_prime: GuestSession, kernel_prime: KernelBuild, types_distilled: ModuleBuild,
    ids_moved: dict[str, int], facts: dict[str, object],
) -> None:
    # A module that should carry .BTF.base but does not is loaded all the same: its stale
    # split BTF must then fail the member checks below (test_pahole says why it is missing).
    has_base = elf_facts(types_distilled.ko).btf_base is not None
    what = "distilled module" if has_base else "module without the expected .BTF.base"
    loaded, btf_line = _load(guest_prime, types_distilled)
    assert loaded, f"{what} refused by A' (vmlinux types {ids_moved}): {btf_line}"
    assert guest_prime.run("test", "-s", f"/sys/kernel/btf/{MOD}").ok, \
        f"{what} loaded into A' without /sys/kernel/btf/{MOD}: {btf_line}"
    members = module_members(guest_prime, kernel_prime)
    facts["relocated_task_member"] = (members or {}).get("task")
    wrong = wrong_members(members)
    assert not wrong, (f"{what} loaded into A' but its BTF was not relocated: "
                       f"{'; '.join(wrong)} (vmlinux types {ids_moved})")


@pytest.mark.usefixtures("unload")
def test_split_module_refused_when_mismatch_not_allowed(
    guest_refuse: GuestSession, kernel_refuse: KernelBuild, types_split_for_prime: ModuleBuild,
    facts: dict[str, object],
) -> None:
    assert elf_facts(types_split_for_prime.ko).btf_base is None, "split-only build has .BTF.base"
    loaded, btf_line = _load(guest_refuse, types_split_for_prime)
    facts["split_for_A'_into_A_n"] = "loaded" if loaded else f"refused: {btf_line}"
    if loaded:
        kept = "dropped its BTF"
        if _has_sysfs_btf(guest_refuse):
            wrong = wrong_members(module_members(guest_refuse, kernel_refuse))
            kept = f"kept its BTF ({'; '.join(wrong) or 'every member right'})"
        pytest.fail(f"A_n (MODULE_ALLOW_BTF_MISMATCH=n) loaded split BTF built for A' and "
                    f"{kept} instead of refusing the module: {btf_line}")
    assert BTF_ERROR.search(btf_line), f"insmod failed, but not with the BTF error: {btf_line}"


@pytest.mark.usefixtures("unload")
def test_split_module_loads_without_btf_when_mismatch_allowed(
    guest: GuestSession, kernel: KernelBuild, types_split_for_prime: ModuleBuild,
    facts: dict[str, object],
) -> None:
    loaded, btf_line = _load(guest, types_split_for_prime)
    facts["split_for_A'_into_A"] = "loaded" if loaded else f"refused: {btf_line}"
    assert loaded, f"A (MODULE_ALLOW_BTF_MISMATCH=y) refused a split module: {btf_line}"
    if _has_sysfs_btf(guest):
        wrong = wrong_members(module_members(guest, kernel))
        pytest.fail(f"A (MODULE_ALLOW_BTF_MISMATCH=y) kept split BTF built for A': "
                    f"{'; '.join(wrong) or 'every member right'}")
    assert BTF_MISMATCH.search(btf_line), f"no BTF mismatch message in dmesg: {btf_line}"


@pytest.mark.usefixtures("unload")
def test_split_module_for_smaller_base_is_not_silently_wrong(
    guest_prime: GuestSession, kernel_prime: KernelBuild, types_split: ModuleBuild,
    ids_moved: dict[str, int], facts: dict[str, object],
) -> None:
    """Split-only BTF built for A, loaded into the larger A' (MODULE_ALLOW_BTF_MISMATCH=n):
    the seeds' answer is a refusal with the kernel's BTF error. A kernel that keeps the
    stale BTF with wrong member types, or so wrong that libbpf rejects it, is a finding
    (strict XFAIL quoting it); one that keeps it with every member right is an XPASS, which
    fails; anything else fails."""
    assert elf_facts(types_split.ko).btf_base is None, (
        f"{types_split.ko.name} (split-only build) has .BTF.base: not a split-only module")
    loaded, btf_line = _load(guest_prime, types_split)
    if not loaded:
        facts["split_for_A_into_A'"] = f"refused: {btf_line}"
        assert BTF_ERROR.search(btf_line), f"insmod failed, but not with the BTF error: {btf_line}"
        return
    assert _has_sysfs_btf(guest_prime), (
        f"A' (MODULE_ALLOW_BTF_MISMATCH=n) loaded split BTF built for A and dropped its BTF "
        f"instead of refusing the module: {btf_line}")
    members, unreadable = read_members(guest_prime, kernel_prime)
    if unreadable is not None:
        rejection = LIBBPF_REJECTION.search(unreadable)
        assert rejection, f"bpftool cannot read /sys/kernel/btf/{MOD} in A': {unreadable}"
    wrong = ([f"its BTF as the kernel keeps it is rejected by libbpf: {unreadable}"]
             if unreadable else wrong_members(members))
    facts["split_for_A_into_A'"] = f"kept stale BTF: {'; '.join(wrong) or 'members right'}"
    assert wrong, (f"A' accepted split BTF built for the smaller A (vmlinux types {ids_moved}) "
                   "without relocating it, and every member reads right: the finding this "
                   "test expects is gone; see what changed")
    raise KernelFinding(f"kernel finding: A' accepted split BTF built for the smaller A "
                        f"(vmlinux types {ids_moved}) without relocating it: {'; '.join(wrong)}")
