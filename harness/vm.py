"""How guests are started: the KVM probe and the virtme-ng command line."""

from __future__ import annotations

import functools
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.arches import Arch

log = logging.getLogger("kbtf")

# Kernel arguments for every guest: a panic or Oops ends the VM at once
# (-no-reboot makes the reboot after panic an exit) instead of hanging until a timeout;
# loglevel=7 overrides virtme-ng's "quiet loglevel=1", which hides WARNINGs from the console.
GUEST_CMDLINE = ("panic=-1", "oops=panic", "loglevel=7")
# Runs QEMU for virtme-ng with PR_SET_PDEATHSIG: QEMU dies with the process that started it.
QEMU_WRAPPER = Path(__file__).resolve().parent / "qemu-pdeathsig"


@dataclass(frozen=True)
class BootSpec:
    """One guest to boot."""

    arch: Arch
    image: Path  # kernel image
    kvm: bool  # hardware acceleration (only when probe_kvm() said it works)
    memory: str = "2G"
    pidfile: Path | None = None  # QEMU writes its pid here, so the harness can always kill it
    btf_sha256: str | None = None  # the build's vmlinux .BTF: the booted kernel must show it


def vng_argv(vng: str, spec: BootSpec) -> list[str]:
    """virtme-ng argv for an interactive guest on the host's root file system (9p).

    Kernel messages go to vng's stderr (hvc0), the shell to its stdout (ttyS0).
    """
    argv = [vng, "--run", str(spec.image), "--force-9p", "--disable-monitor",
            "--qemu", str(QEMU_WRAPPER)]
    argv += ["--memory", spec.memory, "--cpus", "1"]
    if not spec.kvm:
        argv.append("--disable-kvm")
    for arg in GUEST_CMDLINE:
        argv += ["--append", arg]
    qemu_opts = ["-no-reboot"]
    if spec.pidfile is not None:
        qemu_opts += ["-pidfile", str(spec.pidfile)]
    argv.append("--qemu-opts=" + " ".join(qemu_opts))  # must stay last (vng)
    return argv


def qemu_env(arch: Arch) -> dict[str, str]:
    """Environment for vng: the real QEMU the wrapper runs. Raises ToolMissing."""
    return {"KBTF_QEMU": proc.require_tool(arch.qemu), "KBTF_SETPRIV": proc.require_tool("setpriv")}


def kvm_probe_argv(qemu: str) -> list[str]:
    """QEMU argv that creates a paused KVM vCPU and quits (the monitor reads 'quit')."""
    return [qemu, "-accel", "kvm", "-cpu", "host", "-M", "q35", "-nodefaults",
            "-display", "none", "-S", "-monitor", "stdio"]


@functools.cache
def probe_kvm(qemu: str) -> tuple[bool, str]:
    """Whether KVM really runs a vCPU here, and why not.

    /dev/kvm can exist while nested KVM fails at vCPU reset ("failed to set MSR
    0x10a"), so the probe starts QEMU with KVM, paused, and lets it quit.
    """
    if not Path("/dev/kvm").exists():
        return False, "/dev/kvm does not exist"
    argv = kvm_probe_argv(qemu)
    log.info("run: %s", " ".join(argv))
    try:
        out = subprocess.run(argv, input="quit\n", capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False, "KVM probe timed out"
    if out.returncode != 0:
        err = [ln for ln in out.stderr.splitlines() if ln.strip()]
        return False, err[0] if err else f"KVM probe exited {out.returncode}"
    return True, "KVM works"
