"""kheaders (CONFIG_IKHEADERS), after the seed patch and its selftest: the running kernel
exposes its own headers, they match its configuration, and a module builds against them
(``make -C <extracted headers> M=<module> modules``) and loads into that kernel.

The archive is copied out of the running guest and the module built on the host (a foreign
guest has no compiler; it is also faster than building under TCG). 6.12's archive holds only
include/ and arch/<srcarch>/include/, so the build's non-header pieces (Makefile, scripts,
.config, Module.symvers, a BTF-only vmlinux) come from a scaffold made from the build tree
(harness/builds/kheaders.py, harness/run/kheadersflow.py); every header comes from the
archive.
"""

from __future__ import annotations

import re

import pytest

from harness.btf.btfnames import module_struct_members
from harness.btf.elfbtf import vmlinux_types
from harness.builds import kheaders
from harness.builds.kbuild import KernelBuild
from harness.guest.console import CommandResult
from harness.guest.session import GuestSession
from harness.run import kheadersflow
from harness.run.kheadersflow import MOD, Step
from harness.run.pointrun import PointRun

LOADED = re.compile(r"kbtf_kheaders: loaded by (\S+)\[(-?\d+)\]")


def autoconf_defines(dot_config: str) -> set[tuple[str, str]]:
    """The #defines include/generated/autoconf.h holds for a .config (y, m, values)."""
    out = set()
    for name, value in re.findall(r"^(CONFIG_\w+)=(.*)$", dot_config, re.MULTILINE):
        if value == "y":
            out.add((name, "1"))
        elif value == "m":
            out.add((f"{name}_MODULE", "1"))
        else:
            out.add((name, value))
    return out


@pytest.fixture
def extracted(guest: GuestSession, kernel: KernelBuild) -> Step:
    """The running kernel's archive, extracted on the host (once per boot)."""
    return guest.once_per_boot("kheaders-extracted", lambda: kheadersflow.extract(guest, kernel))


def test_kheaders_archive_exists(guest: GuestSession) -> None:
    res = guest.run("test", "-s", kheaders.ARCHIVE)
    assert res.ok, f"{kheaders.ARCHIVE} missing or empty: is CONFIG_IKHEADERS on?"


def test_kheaders_autoconf_matches_running_config(guest: GuestSession, extracted: Step) -> None:
    assert extracted.ok and extracted.path is not None, extracted.error
    autoconf = extracted.path / "include/generated/autoconf.h"
    assert autoconf.is_file(), "the archive has no include/generated/autoconf.h"
    headers = set(re.findall(r"^#define (CONFIG_\w+) (.*)$", autoconf.read_text(), re.MULTILINE))
    # Not zcat: a /bin/sh script, and an extract root has no /bin/sh. Into the guest's out
    # share, not over the serial console (1.5 s of a TCG guest's time for its ~50 KB).
    copy = guest.out_dir / "running.config"
    config = guest.run(f"gzip -dc /proc/config.gz > {guest.path(copy)}")
    assert config.ok, (f"/proc/config.gz unreadable: is CONFIG_IKCONFIG_PROC on? "
                       f"{config.stderr.strip()}")
    running = autoconf_defines(copy.read_text())
    assert ("CONFIG_IKHEADERS", "1") in running and ("CONFIG_DEBUG_INFO_BTF", "1") in running
    only_headers, only_running = sorted(headers - running), sorted(running - headers)
    assert not only_headers and not only_running, (
        f"kheaders autoconf.h and /proc/config.gz disagree: only in headers "
        f"{only_headers[:10]}, only in running config {only_running[:10]}")


@pytest.fixture
def kheaders_build(guest: GuestSession, extracted: Step, kernel: KernelBuild,
                   point_run: PointRun, facts: dict[str, object]) -> Step:
    """modules/kbtf_kheaders built on the host against the extracted archive (or why not),
    once per boot."""
    point_run.require_usable_module_pahole(kernel)
    built = guest.once_per_boot("kheaders-build", lambda: kheadersflow.build_module(
        extracted, kernel, point_run.point.module_pahole, point_run.cache_dir))
    facts["kheaders_module_built"] = built.ok
    return built


def test_module_builds_against_kheaders(kheaders_build: Step) -> None:
    assert kheaders_build.ok, f"building {MOD} against kheaders failed: {kheaders_build.error}"


@pytest.fixture
def kheaders_loaded(guest: GuestSession, kheaders_build: Step) -> tuple[CommandResult, str]:
    """insmod of the kheaders-built module by a process that prints its pid first, once per
    boot: (insmod's result with that pid in stdout, the module's dmesg line)."""
    def load() -> tuple[CommandResult, str]:
        if not kheaders_build.ok or kheaders_build.path is None:
            return CommandResult("insmod", 1, "", "the module did not build against kheaders"), ""
        guest.run("dmesg -C")
        ko = guest.path(kheaders_build.path / f"{MOD}.ko")
        res = guest.run(f"bash -c 'echo $$; exec insmod {ko}'")
        line = LOADED.search(guest.run("dmesg").stdout)
        return res, line.group(0) if line else ""

    return guest.once_per_boot("kheaders-loaded", load)


def test_kheaders_module_loads_with_running_task_layout(
        kheaders_loaded: tuple[CommandResult, str], guest: GuestSession) -> None:
    """The module reads current->comm and current->pid through the archive's struct
    task_struct: they must be the real insmod process's."""
    res, line = kheaders_loaded
    dmesg = " | ".join(guest.run("dmesg | tail -3").stdout.strip().splitlines())
    assert res.ok, f"insmod of the kheaders-built module failed: {res.stderr.strip()}; " \
                   f"dmesg: {dmesg}"
    pid = res.stdout.split()[0]
    assert line == f"kbtf_kheaders: loaded by insmod[{pid}]", (
        f"the module saw current as {line!r}, the loader was insmod[{pid}]: the archive's "
        f"struct task_struct is not the running kernel's")


def test_kheaders_module_has_btf(kheaders_loaded: tuple[CommandResult, str],
                                 guest: GuestSession, kernel: KernelBuild) -> None:
    """With the scaffold's BTF-only vmlinux (as Debian's and Ubuntu's headers packages ship
    it), the module gets BTF the kernel accepts, and its types resolve to vmlinux's."""
    assert kheaders_loaded[0].ok, "the kheaders-built module did not load"
    dump = guest.run("bpftool", "-j", "btf", "dump", "file", f"/sys/kernel/btf/{MOD}")
    assert dump.ok, f"/sys/kernel/btf/{MOD}: {dump.stderr.strip()}"
    members = module_struct_members(dump.stdout, vmlinux_types(kernel.vmlinux),
                                    "kbtf_kheaders_state")
    assert members is not None, f"/sys/kernel/btf/{MOD} has no struct kbtf_kheaders_state"
    assert members.get("loader") == "struct task_struct *", (
        f"member loader is {members.get('loader')!r}, want 'struct task_struct *': {members}")
