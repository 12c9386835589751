"""Which accelerator guests use (KVM or TCG), decided from what a guest does.

``/dev/kvm`` existing proves nothing: on nested or half-working hosts KVM can fail at vCPU
setup, or accept a vCPU and then run no guest code at all. So the run's verdict comes from
a probe that must see guest output: QEMU's own firmware (SeaBIOS) booted under KVM has to
write its banner to the debug console within ``PROBE_SECONDS``. Firmware running is not
Linux running (seen on a nested cloud VM: SeaBIOS printed under KVM, the kernel nothing),
so once the run's kernels are built the controller boots one of the host arch under KVM
until its first output (run/context.py); a silent one is written down for the run
(``SILENT_FILE``). Every boot is also held to a first-output deadline
(harness/guest/session.py); a KVM boot that stays silent is retried under TCG once. Runs
QEMU (the probe) with a timeout, killed with its parent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.errors import ConfigError

log = logging.getLogger("kbtf")

ACCELS = ("auto", "kvm", "tcg")
# How long the probe's firmware may take to print under KVM (it prints in ~0.1 s when KVM
# runs guests; TCG takes ~0.3 s, so a few seconds leave room for a loaded machine).
PROBE_SECONDS = 5.0
# A boot must show guest output (kernel console or serial) within this many seconds, else
# it is a failed start: retried under TCG if it was a KVM boot, a BootError under TCG.
# Measured: first kernel console bytes after ~0.5 s under KVM, 1-4 s under TCG.
FIRST_OUTPUT_SECONDS = {"kvm": 10.0, "tcg": 60.0}
# Said in the log and the summary when a KVM boot was silent and TCG took over.
KVM_SILENT = "KVM accepted a vCPU but ran no guest: using TCG"
# The accelerator a guest reports (summary.md) when it runs under TCG for that reason.
TCG_AFTER_SILENT_KVM = f"tcg ({KVM_SILENT})"
# Written into the run dir when a KVM boot of the run's own kernel stayed silent: every
# process of the run boots under TCG from then on.
SILENT_FILE = "kvm-silent.txt"


def kvm_silent(run_dir: Path) -> str | None:
    """Why KVM ran no guest in this run (None: no KVM boot was silent)."""
    path = run_dir / SILENT_FILE
    return path.read_text().strip() if path.exists() else None


def mark_kvm_silent(run_dir: Path, why: str) -> None:
    """Record for the whole run that a KVM boot stayed silent, and why."""
    tmp = run_dir / f".{SILENT_FILE}.{os.getpid()}"
    tmp.write_text(why + "\n")
    tmp.rename(run_dir / SILENT_FILE)


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_memo(cache_dir: Path, qemu_identity: str) -> Path:
    """Where the kernel probe's verdict is kept for this host boot and QEMU: whether KVM
    ran a Linux guest here does not change until the host reboots or QEMU changes, and
    every run would otherwise spend the probe's 10 s finding out again."""
    boot = BOOT_ID.read_text().strip() if BOOT_ID.exists() else "unknown-boot"
    digest = hashlib.sha256(f"{boot}\n{qemu_identity}".encode()).hexdigest()[:16]
    return cache_dir / "kvm-verdicts" / f"{digest}.json"


def read_memo(memo: Path) -> tuple[bool, str] | None:
    """(KVM ran a guest, what was seen) recorded in ``memo``, or None."""
    try:
        data = json.loads(memo.read_text())
        return bool(data["runs"]), str(data["seen"])
    except (OSError, ValueError, KeyError):
        return None


def write_memo(memo: Path, runs: bool, seen: str) -> None:
    """Record the probe's verdict (temp file + rename)."""
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(f".{memo.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"runs": runs, "seen": seen,
                               "when": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
    tmp.rename(memo)


@dataclass(frozen=True)
class KvmVerdict:
    """Whether KVM runs guests on this machine, and why (not)."""

    usable: bool
    why: str


def probe_argv(qemu: str, out: Path) -> list[str]:
    """QEMU argv that boots only the firmware under KVM, its debug console into ``out``."""
    return [qemu, "-accel", "kvm", "-M", "q35", "-nodefaults", "-display", "none",
            "-monitor", "none", "-serial", "none", "-no-reboot",
            "-chardev", f"file,id=dbg,path={out}",
            "-device", "isa-debugcon,iobase=0x402,chardev=dbg"]


def verdict_from_probe(rc: int | None, output: bytes, stderr: str) -> KvmVerdict:
    """The verdict of a probe whose QEMU exited with ``rc`` (None: still running when the
    probe ended) after its firmware wrote ``output``."""
    if output:
        return KvmVerdict(True, "KVM runs guests (the probe's firmware printed under KVM)")
    if rc is not None:
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        return KvmVerdict(False, f"QEMU with KVM exited {rc}: "
                                 f"{lines[0] if lines else 'no message'}")
    return KvmVerdict(False, f"KVM accepted a vCPU but ran no guest code in "
                             f"{PROBE_SECONDS:.0f}s (the probe's firmware printed nothing)")


def probe_kvm(qemu: str, workdir: Path, kvm_device: Path = Path("/dev/kvm")) -> KvmVerdict:
    """Boot the firmware under KVM and wait for its first output; kill QEMU after.

    Never raises for a broken KVM: every failure is a verdict with its reason.
    """
    if not kvm_device.exists():
        return KvmVerdict(False, f"{kvm_device} does not exist")
    if not os.access(kvm_device, os.R_OK | os.W_OK):
        return KvmVerdict(False, f"{kvm_device} is not readable and writable by this user")
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / "kvm-probe.debugcon", workdir / "kvm-probe.stderr"
    out.write_bytes(b"")
    argv = probe_argv(qemu, out)
    log.info("run: %s", shlex.join(argv))
    with err.open("w") as stderr:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=stderr, preexec_fn=proc.die_with_parent)
    try:
        deadline = time.monotonic() + PROBE_SECONDS * proc.timeout_scale()
        while time.monotonic() < deadline and child.poll() is None and not out.stat().st_size:
            time.sleep(0.05)
        rc = child.poll()
    finally:
        with contextlib.suppress(OSError):
            child.kill()
        child.wait()
    verdict = verdict_from_probe(rc, out.read_bytes(), err.read_text(errors="replace"))
    log.info("KVM probe: %s", verdict.why)
    return verdict


def choose(accel: str, verdict: KvmVerdict) -> tuple[bool, str]:
    """(use KVM for host-arch guests, why) under ``--accel accel`` (auto or kvm) and the
    run's probe ``verdict``. Foreign arches never use KVM (session.boot_spec).

    Raises ConfigError for ``--accel kvm`` where KVM does not run guests.
    """
    if accel == "kvm" and not verdict.usable:
        raise ConfigError(f"--accel kvm: KVM does not run guests here ({verdict.why}); "
                          "use --accel auto or --accel tcg")
    return verdict.usable, verdict.why


def run_verdict(accel: str, host_arch_qemu: str | None, workdir: Path) -> tuple[bool, str]:
    """The run's KVM decision (use KVM for host-arch guests, why), made once by the run's
    controller: ``host_arch_qemu`` is the host arch's QEMU when some guest of the run is of
    the host arch (else None: no probe). Raises ConfigError (``--accel kvm`` where KVM does
    not run guests), ToolMissing."""
    if accel == "tcg" or host_arch_qemu is None:
        why = "--accel tcg" if accel == "tcg" else "no guest of the host arch"
        return False, why
    verdict = probe_kvm(proc.require_tool(host_arch_qemu), workdir)
    return choose(accel, verdict)
