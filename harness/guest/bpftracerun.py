"""bpftrace in a live guest (the guest root's own bpftrace): a program run while a trigger
command runs. Its output is read by btf/bpftrace.py."""

from __future__ import annotations

import shlex

from harness.errors import HarnessError
from harness.guest import guestroot
from harness.guest.console import CommandResult
from harness.guest.session import GUEST_WORKDIR, GuestSession

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
