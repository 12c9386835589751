"""Generic module suite: every module -- kbtf's modules/kbtf_hello and each --module -- in
every BTF mode of the kernel's era builds with .BTF, carries .BTF.base exactly as the tree's
rules predict, loads (its modules in dependency order), shows its functions in
/sys/kernel/btf/<mod> to bpftool, lets bpftrace attach a kprobe and a kfunc to one of its
functions (chosen from its own BTF), and unloads.

Each test fails when what it checks is broken: a kernel without DEBUG_INFO_BTF_MODULES gives
a .ko without .BTF and no /sys/kernel/btf/<mod>; a stripped .BTF fails the bpftool and kfunc
tests (--sabotage strip-btf).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from harness.btf import bpftrace
from harness.btf.btfdedup import BY_PAHOLE, BY_TREE, duplicates
from harness.btf.btfexpect import ModuleBtfRules, expect_btf_base
from harness.btf.elfbtf import elf_facts, module_btf, module_functions, vmlinux_types
from harness.builds.kbuild import KernelBuild
from harness.builds.modbuild import ModuleBuild
from harness.errors import KernelFinding, ProductFailure
from harness.guest import bpftracerun, modload
from harness.guest.session import GuestSession
from harness.plan.matrix import MatrixPoint
from harness.plan.usermod import ModuleSpec, load_order, module_name
from harness.run.pointrun import PointRun, config_pahole


def test_vmlinux_has_btf(kernel: KernelBuild, facts: dict[str, object]) -> None:
    elf = elf_facts(kernel.vmlinux)
    assert elf.btf is not None, f"{kernel.vmlinux} has no .BTF section"
    assert elf.btf.type_len > 0
    # Informational (matrix.json): vmlinux may hold duplicates dedup cannot resolve.
    found = duplicates(vmlinux_types(kernel.vmlinux))
    facts["vmlinux_duplicate_types"] = sum(len(d.ids) - 1 for d in found)


def test_module_builds_with_btf(module_build: ModuleBuild) -> None:
    assert not module_build.btf_skipped, (
        f"Makefile.modfinal printed 'Skipping BTF generation': see {module_build.log}")
    for ko in module_build.kos:
        facts = elf_facts(ko)
        assert facts.btf is not None, f"{ko.name} has no .BTF section (sections: {facts.sections})"
        assert facts.btf.type_len > 0, f"{ko.name}: .BTF holds no types"


def test_btf_base_as_the_rules_predict(
    module_build: ModuleBuild, kernel: KernelBuild, point: MatrixPoint, btf_mode: str,
    btf_rules: ModuleBtfRules,
) -> None:
    expected = expect_btf_base(btf_rules, config_pahole(kernel), point.module_pahole,
                               split_only=btf_mode == "split")
    for ko in module_build.kos:
        present = elf_facts(ko).btf_base is not None
        assert present == expected.btf_base, (
            f"{ko.name} ({btf_mode} build): .BTF.base {'present' if present else 'absent'}, "
            f"expected {'present' if expected.btf_base else 'absent'}: {expected.reason}")


def test_module_btf_has_no_duplicate_types(module_build: ModuleBuild, kernel: KernelBuild,
                                           point_run: PointRun, module_spec: ModuleSpec,
                                           btf_mode: str) -> None:
    """BTF dedup never emits two identical types. A duplicate pahole's own output already
    had is pahole's (or its libbpf's) dedup failure: FAILED. One the tree's post-processing
    of that output added (7.x: resolve_btfids adds FUNC_PROTOs after pahole's dedup) is a
    finding about the kernel tree, not about pahole: a strict XFAIL naming it."""
    tree_made: list[str] = []
    for ko in module_build.kos:
        split, base = module_btf(ko, kernel.vmlinux)
        found = duplicates(split, base)
        if not found:
            continue
        origins = point_run.duplicate_origins(kernel, module_spec.path, btf_mode, ko.name, found)
        by_pahole = [d for d, by in origins if by == BY_PAHOLE]
        assert not by_pahole, (
            f"{ko.name}: {sum(len(d.ids) - 1 for d in by_pahole)} duplicate types in pahole's "
            "own split BTF (a dedup failure of pahole or its libbpf), e.g. "
            + "; ".join(d.describe() for d in by_pahole[:4]))
        tree_made += [f"{ko.name}: {d.describe()}" for d, _ in origins]
    if tree_made:
        raise KernelFinding(f"kernel finding: {BY_TREE} adds duplicate types to module BTF "
                            f"after pahole's dedup ({len(tree_made)} of them): "
                            + "; ".join(tree_made[:4]))


@pytest.fixture
def module_loaded(guest: GuestSession, module_build: ModuleBuild, module_spec: ModuleSpec
                  ) -> list[str]:
    """The build's modules in guest A, in dependency order (inserted once per boot and
    build: they stay loaded until another build of the same names, or test_rmmod). Their
    names. A refused insmod fails the test (ModuleLoadFailure), except where the module
    needs hardware or a module this kernel lacks: a skip naming why
    (harness/guest/modload.py)."""
    return modload.ensure_loaded(guest, module_build, module_spec.params)


def test_module_loads(guest: GuestSession, module_loaded: list[str]) -> None:
    for name in module_loaded:
        assert guest.run("grep", "-q", f"^{name} ", "/proc/modules").ok, \
            f"{name} is not in /proc/modules after insmod"


def _guest_functions(guest: GuestSession, build: ModuleBuild, name: str) -> set[str]:
    """FUNC names bpftool reads from /sys/kernel/btf/<name> in the guest."""
    read = bpftracerun.btf_functions(guest, build, name)
    assert not read.error, f"bpftool btf dump /sys/kernel/btf/{name} failed: {read.error}"
    return set(read.functions)


def test_sys_kernel_btf_lists_the_module_functions(
    guest: GuestSession, module_loaded: list[str], module_build: ModuleBuild,
    kernel: KernelBuild, facts: dict[str, object],
) -> None:
    for ko, name in zip(*_ordered(module_build), strict=True):
        present = guest.run("test", "-s", f"/sys/kernel/btf/{name}").ok
        if module_build.name == "kbtf_hello" and module_build.btf_mode == "default":
            facts["module_btf_loaded"] = present
        dmesg = "" if present else guest.run("dmesg | grep -i btf | tail -3").stdout.strip()
        assert present, (f"/sys/kernel/btf/{name} missing after insmod; dmesg: "
                         f"{dmesg or '(nothing)'}")
        built = module_functions(ko, kernel.vmlinux)
        seen = _guest_functions(guest, module_build, name)
        assert seen, f"bpftool lists no FUNC in /sys/kernel/btf/{name}"
        assert built <= seen, (f"/sys/kernel/btf/{name} lacks functions its .BTF has: "
                               f"{sorted(built - seen)[:10]}")


def _ordered(build: ModuleBuild) -> tuple[list[Path], list[str]]:
    """The build's .ko files in load order, and their module names."""
    ordered, _ = load_order(list(build.kos))
    return ordered, [module_name(k) for k in ordered]


@pytest.fixture
def traceable(guest: GuestSession, module_build: ModuleBuild, module_loaded: list[str]
              ) -> tuple[str, str]:
    """(module, function): the first function, by name, of the first module whose BTF names
    functions ftrace can attach to (available_filter_functions). A module without such a
    function fails the test (the module's BTF is what is missing), not the harness."""
    found = bpftracerun.traceable_function(guest, module_build)
    if found is None:
        raise ProductFailure(f"no function of {', '.join(module_loaded)} has BTF in "
                             "/sys/kernel/btf/<module> and is traceable "
                             "(available_filter_functions)", log=guest.console_log)
    return found


def _attaches(guest: GuestSession, build: ModuleBuild, probe: str) -> tuple[int, str]:
    """Whether ``probe`` attaches to ``build``'s loaded module: decided by the bpftrace run
    the build's tests share (bpftracerun.shared_run); only if that run fails is ``probe``
    tried alone, so each test is decided by its own."""
    rc, out = bpftracerun.shared_run(guest, build)
    if rc == 0:
        return rc, out
    res = guest.run("bpftrace", "-e", bpftrace.attach_program(probe),
                    timeout=bpftracerun.BPFTRACE_TIMEOUT)
    return res.rc, (res.stdout + res.stderr).strip()


def test_bpftrace_kprobe_attaches(guest: GuestSession, module_build: ModuleBuild,
                                  traceable: tuple[str, str]) -> None:
    _, func = traceable
    rc, out = _attaches(guest, module_build, f"kprobe:{func}")
    assert rc == 0, f"bpftrace kprobe:{func} failed ({rc}): {out}"


def test_bpftrace_kfunc_attaches(guest: GuestSession, module_build: ModuleBuild,
                                 traceable: tuple[str, str]) -> None:
    mod, func = traceable
    rc, out = _attaches(guest, module_build, f"kfunc:{mod}:{func}")
    assert rc == 0, (f"bpftrace {shlex.quote(f'kfunc:{mod}:{func}')} failed ({rc}): {out}")


def test_rmmod(guest: GuestSession, module_loaded: list[str]) -> None:
    for name in reversed(module_loaded):
        res = guest.run("rmmod", name)
        assert res.ok, f"rmmod {name} failed: {res.stderr.strip()}"
        assert not guest.run("test", "-e", f"/sys/kernel/btf/{name}").ok, \
            f"/sys/kernel/btf/{name} still exists after rmmod"
