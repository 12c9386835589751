"""bpftrace in a live guest (the guest root's own bpftrace): a program run while a trigger
command runs; the function of a loaded module build its probes attach to, and the one
bpftrace run a build's tests share. Its output is read by btf/bpftrace.py."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from harness.btf import bpftrace
from harness.builds.modbuild import ModuleBuild
from harness.errors import HarnessError, ProductFailure
from harness.guest import guestroot
from harness.guest.console import CommandResult
from harness.guest.session import GUEST_WORKDIR, GuestSession
from harness.plan.usermod import load_order, module_name

BPFTRACE_TIMEOUT = 300  # one run costs 3-21 s under TCG (LLVM codegen is emulated)


def with_trigger(guest: GuestSession, program: str, trigger: str) -> CommandResult:
    """Run bpftrace ``program`` while shell command ``trigger`` runs (bpftrace -c).

    bpftrace splits -c on spaces (no shell quoting) and wants an absolute path, so the
    trigger runs from a script, with bash (a foreign arch's extract root has no /bin/sh).
    Raises HarnessError if the script cannot be written.
    """
    script = f"{GUEST_WORKDIR}/trigger.sh"
    wrote = guest.run(f"printf '%s\\n' {shlex.quote(trigger)} > {script}")
    if not wrote.ok:
        raise HarnessError(f"guest {guest.name}: cannot write {script}: {wrote.stderr.strip()}",
                           log=guest.serial_log)
    return guest.run("bpftrace", "-e", program, "-c", f"/bin/bash {script}",
                     timeout=BPFTRACE_TIMEOUT)


@dataclass(frozen=True)
class GuestBtf:
    """What bpftool in the guest reads from /sys/kernel/btf/<module>."""

    functions: frozenset[str]  # its FUNC names (empty when bpftool could not read it)
    error: str  # bpftool's stderr when it failed, else ""


def btf_functions(guest: GuestSession, build: ModuleBuild, name: str) -> GuestBtf:
    """The FUNC names of module ``name``'s BTF as bpftool reads /sys/kernel/btf/<name> in
    the guest, once per boot and loaded ``build`` (a dump costs 0.3-0.6 s under TCG)."""
    def dump() -> GuestBtf:
        res = guest.run("bpftool", "-j", "btf", "dump", "file", f"/sys/kernel/btf/{name}")
        if not res.ok:
            return GuestBtf(frozenset(), res.stderr.strip() or f"bpftool rc {res.rc}")
        return GuestBtf(frozenset(t["name"] for t in json.loads(res.stdout)["types"]
                                  if t["kind"] == "FUNC"), "")
    return guest.once_per_boot(f"btf-functions:{build.kos}:{name}", dump)


def traceable_function(guest: GuestSession, build: ModuleBuild) -> tuple[str, str] | None:
    """(module, function) of loaded ``build`` that kprobes and kfuncs can attach to: the
    first function, by name, of its first module (in load order) whose BTF in
    /sys/kernel/btf/<module> names functions that are in available_filter_functions; None
    when no module has one (its BTF is what is missing). Once per boot and build.

    Raises ProductFailure when the kernel has no readable available_filter_functions.
    """
    def find() -> tuple[str, str] | None:
        guest.run("mountpoint -q /sys/kernel/tracing || "
                  "mount -t tracefs nodev /sys/kernel/tracing")
        listed = guest.run(bpftrace.MODULE_FILTER_FUNCTIONS)
        if listed.rc > 1:
            raise ProductFailure(f"the kernel has no readable available_filter_functions (is "
                                 f"DYNAMIC_FTRACE on?): {listed.stderr.strip()}",
                                 log=guest.console_log)
        for name in (module_name(k) for k in load_order(list(build.kos))[0]):
            attachable = bpftrace.traceable(listed.stdout, name)
            with_btf = btf_functions(guest, build, name).functions
            if funcs := sorted(with_btf & attachable):
                return name, funcs[0]
        return None
    return guest.once_per_boot(f"traceable:{build.kos}", find)


def _attach_probes(found: tuple[str, str] | None) -> tuple[str, ...]:
    """The kprobe and the kfunc on traceable_function()'s function (none without one)."""
    return (f"kprobe:{found[1]}", f"kfunc:{found[0]}:{found[1]}") if found else ()


def shared_run(guest: GuestSession, build: ModuleBuild) -> tuple[int, str]:
    """(rc, stdout + stderr) of the one bpftrace run the tests of loaded ``build`` share,
    once per boot and build: a kprobe and a kfunc on its traceable function, and the
    module's exercise (btf/bpftrace.EXERCISES) run by its trigger. A test whose probes this
    run does not show working runs its own program alone, so that it is decided by its own
    probes. Raises like traceable_function()."""
    def run() -> tuple[int, str]:
        attach = _attach_probes(traceable_function(guest, build))
        exercise = bpftrace.EXERCISES.get(build.name)
        program = bpftrace.shared_program(attach, exercise)
        res = (with_trigger(guest, program, exercise.trigger) if exercise else
               guest.run("bpftrace", "-e", program, timeout=BPFTRACE_TIMEOUT))
        return res.rc, res.stdout + res.stderr
    return guest.once_per_boot(f"bpftrace:{build.kos}", run)


def version(guest: GuestSession) -> str:
    """The guest's bpftrace and its version: on a kbtf root, the Debian package's, from the
    root's Debian changelog on the host (guestroot.package_version; a `bpftrace --version`
    costs 2-3 s under TCG: its LLVM libraries load); elsewhere (vng: the host's PATH) what
    `bpftrace --version` prints."""
    if guest.spec.root is not None and (found := guestroot.package_version(
            guest.spec.root, "bpftrace")):
        return f"bpftrace {found} (Debian package in the guest root)"
    res = guest.once_per_boot("bpftrace-version", lambda: guest.run("bpftrace --version"))
    return res.stdout.strip() or res.stderr.strip()
