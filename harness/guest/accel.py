"""Which accelerator guests use (KVM or TCG), decided from what a guest does.

``/dev/kvm`` existing proves nothing: on nested or half-working hosts KVM can fail at vCPU
setup, or accept a vCPU and then run no guest code at all. So the run's verdict comes from
guests kbtf knows to boot, never from a kernel under test: first QEMU's own firmware
(SeaBIOS) under KVM must write its banner to the debug console within ``PROBE_SECONDS``;
firmware running is not Linux running (seen on a nested cloud VM: SeaBIOS printed under
KVM, the kernel nothing), so then Debian's own kernel (``probe_kernel``: a released kernel
that boots) must print on its serial console within ``FIRST_OUTPUT_SECONDS["kvm"]``. That
verdict is kept for the host's boot and QEMU (``boot_memo``), for every later run whatever
its kernels. A kernel under test that then stays silent under KVM is that kernel's
failure (guest/pool.py), never "KVM is broken". Runs QEMU (the probes) with a timeout,
killed with its parent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness import cacheentry, proc, provision
from harness.errors import ConfigError, KbtfError

log = logging.getLogger("kbtf")

ACCELS = ("auto", "kvm", "tcg")
# How long the probe's firmware may take to print under KVM (it prints in ~0.1 s when KVM
# runs guests; TCG takes ~0.3 s, so a few seconds leave room for a loaded machine).
PROBE_SECONDS = 5.0
# A boot must show guest output (kernel console or serial) within this many seconds, else
# it is a failed start: retried under TCG if it was a KVM boot, a BootError under TCG.
# Measured: first kernel console bytes after ~0.5 s under KVM, 1-4 s under TCG.
FIRST_OUTPUT_SECONDS = {"kvm": 10.0, "tcg": 60.0}
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
    out = workdir / "kvm-probe.debugcon"
    rc, output, stderr = _first_output(probe_argv(qemu, out), out, PROBE_SECONDS)
    verdict = verdict_from_probe(rc, output, stderr)
    log.info("KVM probe: %s", verdict.why)
    return verdict


def _first_output(argv: list[str], out: Path, seconds: float, wanted: bytes = b""
                  ) -> tuple[int | None, bytes, str]:
    """Run QEMU ``argv`` until it writes to ``out`` (``wanted`` there, when given), exits
    or ``seconds`` pass; kill it. (its exit code, None if it still ran; what it wrote; its
    stderr)."""
    err = out.with_suffix(".stderr")
    out.write_bytes(b"")
    log.info("run: %s", shlex.join(argv))
    with err.open("w") as stderr:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=stderr, preexec_fn=proc.die_with_parent)
    try:
        deadline = time.monotonic() + seconds * proc.timeout_scale()
        while time.monotonic() < deadline and child.poll() is None and not (
                wanted in out.read_bytes() if wanted else out.stat().st_size):
            time.sleep(0.05)
        rc = child.poll()
    finally:
        with contextlib.suppress(OSError):
            child.kill()
        child.wait()
    return rc, out.read_bytes(), err.read_text(errors="replace")


# What the kernel proper prints first (its banner). The x86 boot stub prints before it, in
# real mode ("Probing EDD ... ok" on the serial): seen on a host whose KVM runs that stub and
# nothing after it, so output alone proves nothing.
LINUX_MARKER = b"Linux version"
# The kernel the Linux probe boots: Debian's released kernel for the host (a kernel known to
# boot), from this suite, by the metapackage's dependency.
PROBE_SUITE = "bookworm"
PROBE_TIMEOUT = 600  # fetching and unpacking it


def probe_kernel(cache_dir: Path, debarch: str = "amd64") -> Path:
    """vmlinuz of Debian PROBE_SUITE's current kernel for ``debarch``, fetched into the
    cache once (never installed). Raises ConfigError (no such kernel), CommandError."""
    meta = f"linux-image-{debarch}"
    image = next((d for d in provision.depends(cache_dir, PROBE_SUITE, meta)
                  if d.startswith("linux-image-")), None)
    if image is None:
        raise ConfigError(f"Debian {PROBE_SUITE}'s {meta} names no kernel image")
    dest = cache_dir / "kvm-probe" / image

    def fill(tmp: Path) -> None:
        log_file = tmp / "fetch.log"
        for deb in provision.download(cache_dir, PROBE_SUITE, (image,), tmp / ".debs", log_file):
            # just /boot/vmlinuz-* (the package's modules are hundreds of MB unpacked)
            proc.run(["sh", "-c", 'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards '
                      '"./boot/vmlinuz-*"', "sh", deb, tmp], logfile=log_file,
                     timeout=PROBE_TIMEOUT)
        found = sorted((tmp / "boot").glob("vmlinuz-*"))
        if not found:
            raise ConfigError(f"{image} holds no /boot/vmlinuz-*", log=log_file)
        found[0].rename(tmp / "vmlinuz")
        shutil.rmtree(tmp / ".debs")
        shutil.rmtree(tmp / "boot")

    cacheentry.populate(dest, lambda: (dest / "vmlinuz").is_file(), fill, "fetch.log")
    return dest / "vmlinuz"


def linux_probe_argv(qemu: str, kernel: Path, out: Path) -> list[str]:
    """QEMU argv that boots ``kernel`` under KVM, its serial console into ``out``."""
    return [qemu, "-accel", "kvm", "-M", "q35", "-m", "256", "-nodefaults", "-display", "none",
            "-monitor", "none", "-no-reboot", "-serial", f"file:{out}", "-kernel", str(kernel),
            "-append", "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1"]


def linux_verdict(qemu: str, cache_dir: Path, workdir: Path) -> KvmVerdict:
    """Whether KVM runs Linux here: Debian's kernel (``probe_kernel``) booted under KVM must
    print within FIRST_OUTPUT_SECONDS["kvm"]; kept for this host boot and QEMU
    (``boot_memo``). Raises ConfigError, CommandError (the probe kernel cannot be had)."""
    kernel = probe_kernel(cache_dir)
    memo = boot_memo(cache_dir, f"{qemu} {os.stat(qemu).st_mtime_ns} {kernel.parent.name} "
                                f"{LINUX_MARKER.decode()}")
    known = read_memo(memo)
    if known is not None:
        return KvmVerdict(known[0], f"{known[1]} (earlier on this host boot: {memo})")
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "kvm-probe-linux.serial"
    seconds = FIRST_OUTPUT_SECONDS["kvm"]
    _, output, _ = _first_output(linux_probe_argv(qemu, kernel, out), out, seconds, LINUX_MARKER)
    runs = LINUX_MARKER in output
    printed = output.strip()[:60].decode(errors="replace")
    seen = (f"Debian's {kernel.parent.name} printed its banner under KVM" if runs else
            f"Debian's {kernel.parent.name} printed no banner in {seconds:.0f}s under KVM "
            f"({'only ' + repr(printed) if printed else 'nothing'}): KVM accepts a vCPU but "
            "runs no Linux guest")
    write_memo(memo, runs, seen)
    return KvmVerdict(runs, seen)


def choose(accel: str, verdict: KvmVerdict) -> tuple[bool, str]:
    """(use KVM for host-arch guests, why) under ``--accel accel`` (auto or kvm) and the
    run's probe ``verdict``. Foreign arches never use KVM (session.boot_spec).

    Raises ConfigError for ``--accel kvm`` where KVM does not run guests.
    """
    if accel == "kvm" and not verdict.usable:
        raise ConfigError(f"--accel kvm: KVM does not run guests here ({verdict.why}); "
                          "use --accel auto or --accel tcg")
    return verdict.usable, verdict.why


def run_verdict(accel: str, host_arch_qemu: str | None, workdir: Path, cache_dir: Path
                ) -> tuple[bool, str]:
    """The run's KVM decision (use KVM for host-arch guests, why), made once by the run's
    controller from guests kbtf knows to boot (the firmware, then Debian's kernel):
    ``host_arch_qemu`` is the host arch's QEMU when some guest of the run is of the host
    arch (else None: no probe). Raises ConfigError (``--accel kvm`` where KVM does not run
    guests, or no probe kernel can be had for it), ToolMissing."""
    if accel == "tcg" or host_arch_qemu is None:
        why = "--accel tcg" if accel == "tcg" else "no guest of the host arch"
        return False, why
    qemu = proc.require_tool(host_arch_qemu)
    verdict = probe_kvm(qemu, workdir)
    if verdict.usable:
        try:
            verdict = linux_verdict(qemu, cache_dir, workdir)
        except KbtfError as exc:
            verdict = KvmVerdict(False, f"no kernel known to boot to probe KVM with: {exc}")
    return choose(accel, verdict)
