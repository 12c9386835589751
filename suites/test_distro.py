"""Distro kernels (--distro, --distro-deb): the Ubuntu SRU plan's check for out-of-tree
module BTF, on the distro's own packages. Each module (kbtf_hello and every --module) is
built against the headers package exactly as its users build it (`make -C <headers>
M=<module> modules`, the `pahole` on PATH; for a release newer than this machine, inside a
build root of that release), then loaded into the distro's own kernel, booted
with its own modules.

A headers package that ships no vmlinux makes Makefile.modfinal print "Skipping BTF
generation ... due to unavailability of vmlinux": the module gets no .BTF. That is the bug
the plan exists to catch, so it fails the .BTF test, naming the missing file.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import pytest

from harness.btf import bpftrace
from harness.btf.btfexpect import expect_btf_base, read_rules
from harness.btf.elfbtf import elf_facts
from harness.builds.distro import DistroKernel
from harness.builds.modbuild import SKIPPED_BTF, ModuleBuild
from harness.guest import modload
from harness.guest.pool import GuestPool
from harness.guest.session import GuestSession
from harness.plan.usermod import ModuleSpec
from harness.run.pointrun import DistroRun, config_pahole
from suites.conftest import ctx


@pytest.fixture(scope="session")
def distro_run(pytestconfig: pytest.Config, distro_kernel: DistroKernel) -> DistroRun:
    """A distro kernel's pipeline: module builds against its headers, its guest."""
    return ctx(pytestconfig).distro_run(distro_kernel)


@pytest.fixture(scope="session")
def distro_module(distro_run: DistroRun, module_spec: ModuleSpec) -> ModuleBuild:
    """The module built against the distro's headers, the SRU plan's way."""
    return distro_run.module(module_spec.path, module_spec.dkms is not None)


@pytest.fixture
def distro_guest(distro_run: DistroRun, guest_pool: GuestPool) -> GuestSession:
    """The distro's own kernel booted with kbtf's guest root; it shows the package's release."""
    return distro_run.guest(guest_pool)


def test_headers_build_gives_module_btf(distro_kernel: DistroKernel,
                                        distro_module: ModuleBuild) -> None:
    btf_modules = distro_kernel.config().get("CONFIG_DEBUG_INFO_BTF_MODULES")
    if btf_modules is None or btf_modules.value != "y":
        pytest.fail(f"{distro_kernel.release} is configured without DEBUG_INFO_BTF_MODULES "
                    f"({distro_kernel.headers}/.config): its out-of-tree modules get no BTF")
    if distro_module.btf_skipped:
        line = next(ln for ln in distro_module.log.read_text().splitlines()
                    if SKIPPED_BTF in ln)
        pytest.fail(f"{line.strip()}: the headers package ships no vmlinux "
                    f"({distro_kernel.vmlinux} missing), so out-of-tree modules get no BTF "
                    f"(log: {distro_module.log})")
    for ko in distro_module.kos:
        facts = elf_facts(ko)
        assert facts.btf is not None, f"{ko.name} has no .BTF (sections: {facts.sections})"


def test_btf_base_as_the_headers_rules_predict(distro_kernel: DistroKernel,
                                               distro_module: ModuleBuild) -> None:
    rules = read_rules(distro_kernel.headers)
    expected = expect_btf_base(rules, config_pahole(distro_kernel), distro_kernel.module_pahole())
    for ko in distro_module.kos:
        present = elf_facts(ko).btf_base is not None
        assert present == expected.btf_base, (
            f"{ko.name}: .BTF.base {'present' if present else 'absent'}, expected "
            f"{'present' if expected.btf_base else 'absent'}: {expected.reason}")


@pytest.fixture
def distro_loaded(distro_guest: GuestSession, distro_module: ModuleBuild,
                  module_spec: ModuleSpec) -> Iterator[list[str]]:
    """The module's .ko files inserted into the distro kernel (unsigned: it loads tainted);
    removed after the test. A kernel that enforces signatures is a skip naming it."""
    loaded: list[str] = []
    try:
        modload.insert(distro_guest, distro_module, module_spec.params, loaded)
        yield loaded
    finally:
        modload.remove(distro_guest, loaded)


@pytest.mark.lifetime
def test_distro_guest_shuts_down_cleanly(distro_kernel: DistroKernel,
                                         guest_pool: GuestPool) -> None:
    """A splat while the distro guest powers off is the distro kernel's, named here."""
    if not guest_pool.close_owned(distro_kernel.id):
        pytest.skip(f"no guest of {distro_kernel.id} ran in this process")


def test_distro_kernel_loads_module_btf(distro_guest: GuestSession,
                                        distro_loaded: list[str]) -> None:
    for name in distro_loaded:
        present = distro_guest.run("test", "-s", f"/sys/kernel/btf/{name}").ok
        dmesg = distro_guest.run("dmesg | grep -i btf | tail -3").stdout.strip()
        assert present, (f"/sys/kernel/btf/{name} missing after insmod into "
                         f"{distro_guest.spec.release}; dmesg: {dmesg or '(nothing)'}")


def test_bpftrace_kfunc_on_distro_kernel(distro_guest: GuestSession,
                                         distro_loaded: list[str]) -> None:
    distro_guest.run("mountpoint -q /sys/kernel/tracing || "
                     "mount -t tracefs nodev /sys/kernel/tracing")
    listed = distro_guest.run(bpftrace.MODULE_FILTER_FUNCTIONS).stdout
    for name in distro_loaded:
        funcs = sorted(bpftrace.traceable(listed, name))
        if not funcs:
            continue
        probe = f"kfunc:{name}:{funcs[0]}"
        res = distro_guest.run("bpftrace", "-e", bpftrace.attach_program(probe), timeout=300)
        out = (res.stdout + res.stderr).strip()
        assert res.ok, f"bpftrace {shlex.quote(probe)} failed ({res.rc}): {out}"
        return
    pytest.fail(f"no traceable function in {', '.join(distro_loaded)}")
