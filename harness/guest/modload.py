"""A built module directory's .ko files inserted into a live guest and removed again: the
one insmod path of the generic and the distro suites."""

from __future__ import annotations

import re

from harness.builds.modbuild import ModuleBuild
from harness.errors import MissingPrerequisite, ModuleLoadFailure
from harness.guest.session import GuestSession
from harness.plan.usermod import load_order, module_name

# insmod's errno messages (strerror, the last words of kmod's "could not insert module X:
# <message>") that mean a missing prerequisite, not a broken module: the skip reason.
# Matched whole: ENXIO's "No such device or address" is the module failing, not ENODEV.
HARDWARE = "it needs hardware this guest lacks (or parameters: --module PATH:param=value)"
SIGNATURES = "the kernel enforces module signatures"
PREREQUISITE_ERRORS = {
    "No such device": HARDWARE,  # ENODEV: the probe found no device
    "Key was rejected by service": SIGNATURES,  # EKEYREJECTED: unsigned, enforced
    "Required key not available": SIGNATURES,  # ENOKEY: signed by a key it does not trust
}
# EPERM is signature enforcement only when the kernel's lockdown LSM says so for this very
# insmod (security/lockdown/lockdown.c: "Lockdown: <comm>: <what> is restricted; ...").
LOCKDOWN = re.compile(r"^\S*\s*(?:\[[^]]*\] )?Lockdown: insmod: unsigned module loading is "
                      r"restricted", re.MULTILINE)


def refusal(insmod_stderr: str, dmesg: str) -> str | None:
    """The skip reason of an insmod refusal that is a missing prerequisite (the errno
    message insmod printed, or EPERM with the kernel's lockdown line), else None."""
    errno_message = insmod_stderr.strip().splitlines()[-1].rsplit(": ", 1)[-1] \
        if insmod_stderr.strip() else ""
    if errno_message in PREREQUISITE_ERRORS:
        return PREREQUISITE_ERRORS[errno_message]
    if errno_message == "Operation not permitted" and LOCKDOWN.search(dmesg):
        return SIGNATURES
    return None


# Where a guest sees its kernel's own modules (<dir>/lib/modules/<release>, with
# modules.dep), when it has them: a distro kernel's image (pointrun.DistroRun).
KERNEL_MODULES = "/kbtf/modules"


def kernel_module(guest: GuestSession, name: str) -> bool:
    """Whether module ``name`` of the kernel's own is loaded, or loads from the modules the
    guest has of its kernel (modprobe, with its dependencies)."""
    script = (f'[ -d /sys/module/{name} ] || {{ [ -d "{KERNEL_MODULES}/lib/modules/$(uname -r)" ]'
              f' && modprobe -d {KERNEL_MODULES} {name}; }}')
    return guest.run(script).ok


def insert(guest: GuestSession, build: ModuleBuild, params: tuple[str, ...],
           loaded: list[str]) -> None:
    """Insert ``build``'s .ko files in dependency order with ``params`` (a module of the same
    name loaded before is removed first), appending each inserted name to ``loaded`` (so a
    caller can remove what got in even when a later one fails).

    Raises MissingPrerequisite (a dependency no given module provides, hardware, enforced
    signatures), ModuleLoadFailure (any other refusal: the module's or kernel's failure).
    """
    ordered, outside = load_order(list(build.kos))
    names = [module_name(k) for k in ordered]
    # One guest command an insmod (a round trip is 0.1-0.3 s under TCG): the first also
    # removes the modules of these names (failures ignored: most are not loaded), and each
    # clears the kernel log first, so a refusal's dmesg is this insmod's.
    removals = "".join(f"rmmod {n} 2>/dev/null; " for n in reversed(names))
    for ko, name in zip(ordered, names, strict=True):
        unloadable = [d for d in outside.get(name, ()) if not kernel_module(guest, d)]
        if unloadable:
            raise MissingPrerequisite(f"{name} depends on {', '.join(unloadable)}, which no "
                                      "given module provides and the guest cannot load")
        res = guest.run(f"{removals}dmesg -C; insmod", guest.path(ko), *params)
        removals = ""
        if not res.ok:
            why = res.stderr.strip()
            dmesg = guest.run("dmesg | tail -5").stdout.strip()
            if (reason := refusal(why, dmesg)) is not None:
                if reason == SIGNATURES:
                    reason += f" ({enforcement(guest)}): sign it with a key the kernel trusts"
                raise MissingPrerequisite(f"insmod {ko.name}: {why}: {reason}")
            raise ModuleLoadFailure(f"insmod {ko.name} failed ({res.rc}): {why}; dmesg: "
                                    f"{dmesg}", log=guest.console_log)
        loaded.append(name)
        _held(guest)[name] = (str(ko), params)


def ensure_loaded(guest: GuestSession, build: ModuleBuild, params: tuple[str, ...] = ()
                  ) -> list[str]:
    """``build``'s modules in ``guest`` with ``params``, in dependency order; inserted
    unless kbtf's last insert of those names in this boot was this very build with these
    parameters and all of them are still in /proc/modules (an insert costs a removal and an
    insmod, 0.5-0.9 s under TCG). They stay loaded for the boot: a later insert of the same
    names, swap() or an rmmod replaces them. Returns their names. Raises like insert()."""
    ordered = load_order(list(build.kos))[0]
    names = [module_name(k) for k in ordered]
    held = _held(guest)
    if names and all(held.get(n) == (str(k), params) for n, k in zip(names, ordered,
                                                                       strict=True)):
        listed = " && ".join(f"grep -q '^{n} ' /proc/modules" for n in names)
        if guest.run(listed).ok:
            return names
    loaded: list[str] = []
    insert(guest, build, params, loaded)
    return loaded


def _held(guest: GuestSession) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Module name -> (.ko path, parameters) kbtf last inserted under that name this boot."""
    return guest.once_per_boot("modload:held", dict)


def load_fault(guest: GuestSession, fault: ModuleBuild, mode: str) -> None:
    """modules/kbtf_fault inserted with ``mode`` (warn, oops): --sabotage *-on-load. What it
    makes the kernel print is found on the console (KernelTrouble), not here."""
    guest.run("insmod", guest.path(fault.ko), f"mode={mode}")


def swap(guest: GuestSession, name: str, build: ModuleBuild) -> None:
    """Replace loaded module ``name`` with ``build``'s module. Raises ModuleLoadFailure
    when the kernel refuses either step (the product's failure)."""
    _held(guest).pop(name, None)
    for argv in (("rmmod", name), ("insmod", guest.path(build.ko))):
        res = guest.run(*argv)
        if not res.ok:
            raise ModuleLoadFailure(f"{' '.join(argv)} failed ({res.rc}): "
                                    f"{res.stderr.strip()}", log=guest.console_log)
    _held(guest)[name] = (str(build.ko), ())


def remove(guest: GuestSession, names: list[str]) -> None:
    """rmmod ``names`` in reverse order, if the guest still runs (failures ignored)."""
    for name in reversed(names):
        if guest.alive:
            guest.run("rmmod", name)


def enforcement(guest: GuestSession) -> str:
    """What the guest says about signature enforcement: module.sig_enforce and the
    lockdown mode (Secure Boot's lockdown enforces signatures too)."""
    sig = guest.run("cat /sys/module/module/parameters/sig_enforce").stdout.strip()
    guest.run("mountpoint -q /sys/kernel/security || "
              "mount -t securityfs securityfs /sys/kernel/security")
    lockdown = guest.run("cat /sys/kernel/security/lockdown").stdout.strip()
    return f"sig_enforce={sig or 'unknown'}, lockdown: {lockdown or 'unknown'}"
