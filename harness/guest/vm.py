"""How guests are started: the two launchers' command lines (KVM or TCG: harness/guest/accel.py).

- ``vng``: virtme-ng over the host's own root file system (the host arch only).
- ``kbtf``: QEMU directly, a Debian root tree of the guest's arch over 9p (read-only),
  kbtf's init (harness/guest/guestroot.py), the host dirs the tests use shared read-only and one
  output dir shared writable; the shell on the serial console, kernel messages on hvc0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.arches import Arch
from harness.builds import initramfs
from harness.launchers import get_launcher

# Kernel arguments for every guest: a panic or Oops ends the VM at once
# (-no-reboot makes the reboot after panic an exit) instead of hanging until a timeout;
# loglevel=7 overrides virtme-ng's "quiet loglevel=1", which hides WARNINGs from the console.
GUEST_CMDLINE = ("panic=-1", "oops=panic", "loglevel=7")
# Runs QEMU for virtme-ng with PR_SET_PDEATHSIG: QEMU dies with the process that started it.
QEMU_WRAPPER = Path(__file__).resolve().parent / "qemu-pdeathsig"




@dataclass(frozen=True)
class Share:
    """A host dir the guest mounts (kbtf launcher): 9p tag kbtf_<name> at /kbtf/<name>."""

    name: str  # run, repo or out (harness/guestroot.SHARES)
    host: Path
    writable: bool = False
    # Nothing changes it while a guest lives (a cache entry): the guest may cache it, as it
    # does the root (remount_commands).
    immutable: bool = False

    @property
    def guest(self) -> str:
        """Where the guest sees it."""
        return f"/kbtf/{self.name}"


@dataclass(frozen=True)
class BootSpec:
    """One guest to boot."""

    arch: Arch
    image: Path  # kernel image
    kvm: bool  # hardware acceleration (only when the run's KVM verdict allows it)
    memory: str = "2G"
    cpus: int = 1
    pidfile: Path | None = None  # QEMU writes its pid here, so the harness can always kill it
    btf_sha256: str | None = None  # the build's vmlinux .BTF: the booted kernel must show it
    launcher: str = "vng"  # a name of launchers.LAUNCHERS
    root: Path | None = None  # kbtf launcher: the guest's root tree
    shares: tuple[Share, ...] = ()  # kbtf launcher: host dirs the guest mounts
    initrd: Path | None = None  # kbtf launcher: an initramfs loading the modules 9p needs
    release: str | None = None  # the uname -r the booted kernel must show (distro kernels)
    cmdline: tuple[str, ...] = ()  # more kernel command line words (--distro-cmdline)

    def guest_path(self, host: Path) -> str:
        """Where the guest sees host path ``host``: itself under vng (the host's root);
        under a share's mount point for the kbtf launcher. Raises ValueError if not shared."""
        if get_launcher(self.launcher).host_paths:
            return str(host)
        for share in sorted(self.shares, key=lambda s: len(s.host.parts), reverse=True):
            if host == share.host or share.host in host.parents:
                return share.guest + "/" + str(host.relative_to(share.host)).removeprefix(".")
        shared = [str(s.host) for s in self.shares]
        raise ValueError(f"{host} is not shared with the guest (shared: {shared})")


def kbtf_cmdline(arch: Arch, extra: tuple[str, ...] = ()) -> str:
    """Kernel command line of a kbtf-launched guest: messages on hvc0 only (the serial
    carries the shell), the 9p root, kbtf's init and the tty its shell runs on, then
    ``extra``."""
    return " ".join(("console=hvc0", "root=/dev/root", "rootfstype=9p",
                     f"rootflags={initramfs.ROOT_MOUNT_OPTIONS}", "ro",
                     "init=/kbtf/init", f"kbtf_tty={arch.console}", *GUEST_CMDLINE, *arch.cmdline,
                     *extra))


def remount_commands(spec: BootSpec) -> list[str]:
    """Guest commands mounting ``spec``'s immutable shares again, with the root's caching
    options (kbtf's init mounts every share uncached; a 9p channel takes one mount)."""
    return [f"umount {s.guest} && mount -t 9p -o {initramfs.ROOT_MOUNT_OPTIONS},ro "
            f"kbtf_{s.name} {s.guest}"
            for s in spec.shares if s.immutable and not s.writable]


def qemu_argv(qemu: str, spec: BootSpec, console_log: Path) -> list[str]:
    """QEMU argv of the kbtf launcher for ``spec`` (kernel messages into ``console_log``)."""
    assert spec.root is not None, "the kbtf launcher needs a root tree"
    t = spec.arch.virtio_transport
    argv = [qemu, *spec.arch.qemu_machine, "-accel", "kvm" if spec.kvm else "tcg",
            "-m", spec.memory, "-smp", str(spec.cpus), "-display", "none", "-monitor", "none",
            "-no-reboot", "-kernel", str(spec.image),
            "-append", kbtf_cmdline(spec.arch, spec.cmdline),
            "-serial", "stdio",
            "-device", f"virtio-serial-{t}",
            "-chardev", f"file,id=kcon,path={console_log},append=on",
            "-device", "virtconsole,chardev=kcon"]
    if t == "pci":
        argv.insert(1, "-nodefaults")  # no VGA, NIC or default serial: faster, quieter
    mounts = [("root", "/dev/root", spec.root, False)]
    mounts += [(s.name, f"kbtf_{s.name}", s.host, s.writable) for s in spec.shares]
    for name, tag, path, writable in mounts:
        # A writable share maps the guest's owners, modes and device nodes into xattrs: with
        # security_model=none a guest root could plant setuid-root files or device nodes
        # in results/ through a QEMU running as root.
        model = "mapped-xattr" if writable else "none,readonly=on"
        argv += ["-fsdev", f"local,id=fs_{name},path={path},security_model={model}",
                 "-device", f"virtio-9p-{t},fsdev=fs_{name},mount_tag={tag}"]
    if spec.initrd is not None:
        argv += ["-initrd", str(spec.initrd)]
    if spec.pidfile is not None:
        argv += ["-pidfile", str(spec.pidfile)]
    return argv


def launch_argv(spec: BootSpec, console_log: Path) -> list[str]:
    """The command line that boots ``spec`` with its launcher (kernel messages into
    ``console_log``, or on stderr where the launcher puts them there). Raises ToolMissing."""
    if get_launcher(spec.launcher).own_root:
        return qemu_argv(proc.require_tool(spec.arch.qemu), spec, console_log)
    return vng_argv(proc.require_tool("vng"), spec)


def vng_argv(vng: str, spec: BootSpec) -> list[str]:
    """virtme-ng argv for an interactive guest on the host's root file system (9p).

    Kernel messages go to vng's stderr (hvc0), the shell to its stdout (ttyS0).
    """
    argv = [vng, "--run", str(spec.image), "--force-9p", "--disable-monitor",
            "--qemu", str(QEMU_WRAPPER)]
    argv += ["--memory", spec.memory, "--cpus", str(spec.cpus)]
    if not spec.kvm:
        argv.append("--disable-kvm")
    for arg in (*GUEST_CMDLINE, *spec.cmdline):
        argv += ["--append", arg]
    for share in spec.shares:  # the host's root is visible as it is; writable dirs must be said
        if share.writable:
            argv += ["--rwdir", str(share.host)]
    qemu_opts = ["-no-reboot"]
    if spec.pidfile is not None:
        qemu_opts += ["-pidfile", str(spec.pidfile)]
    argv.append("--qemu-opts=" + " ".join(qemu_opts))  # must stay last (vng)
    return argv


def qemu_env(arch: Arch) -> dict[str, str]:
    """Environment for vng: the real QEMU the wrapper runs. Raises ToolMissing."""
    return {"KBTF_QEMU": proc.require_tool(arch.qemu), "KBTF_SETPRIV": proc.require_tool("setpriv")}
