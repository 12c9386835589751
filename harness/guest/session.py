"""A live guest: boot it, run commands with real exit codes, watch its console, kill it."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import shlex
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, NoReturn, Protocol, TypeVar, cast

import pexpect

from harness import proc
from harness.arches import Arch
from harness.btf.elfbtf import section_data
from harness.errors import (
    BootError,
    GuestLost,
    GuestTimeout,
    HarnessError,
    KernelTrouble,
    ProductFailure,
    SilentStart,
)
from harness.guest import accel, console, guestroot, vm
from harness.guest.console import CommandResult
from harness.launchers import Launcher, get_launcher

log = logging.getLogger("kbtf")

GUEST_WORKDIR = "/tmp/kbtf"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# How long the kernel console may lag behind the shell before a sync gives up.
CONSOLE_SYNC_SECONDS = 10.0
_LIVE: set[GuestSession] = set()
T = TypeVar("T")


def _kill_all() -> None:
    """atexit: no guest outlives the harness process."""
    for session in list(_LIVE):
        session.kill()


atexit.register(_kill_all)


def boot_name(name: str, boot: int) -> str:
    """Log name of boot number ``boot`` of guest ``name``: the first keeps the plain name,
    later ones add .bootN, so no boot's logs overwrite another's."""
    return name if boot == 1 else f"{name}.boot{boot}"


class GuestSession:
    """One booted guest driven over its serial console (pexpect).

    Commands run one at a time; each ends with a unique sentinel line carrying the exit
    code and the command's stdout/stderr. Kernel messages go to a separate console log
    (hvc0), read after every command and while waiting: a panic/Oops/BUG kills the guest,
    a WARNING does not; both raise KernelTrouble once, quoting the console lines.
    """

    def __init__(self, spec: vm.BootSpec, logdir: Path, name: str, boot: int = 1) -> None:
        self.spec = spec
        self.name = boot_name(name, boot)
        self.boot = boot
        self._logdir, self._base = logdir, name
        self.console_log = logdir / f"{self.name}.console.log"  # kernel messages (hvc0)
        self.serial_log = logdir / f"{self.name}.serial.log"  # shell transcript (ttyS0)
        # QEMU's own messages (kbtf launcher; under vng they are in the console log).
        self.qemu_log = logdir / f"{self.name}.qemu.log"
        self._pidfile = logdir / f"{self.name}.qemu.pid"
        self._child: pexpect.spawn[str] | None = None
        self._serial: IO[str] | None = None
        self._serial_start = 0  # serial log offset where the guest's output begins
        self._first_output: tuple[float, float] | None = None  # (deadline, its seconds)
        self.accel = "kvm" if spec.kvm else "tcg"  # for the summary
        self.crashed = False  # the kernel crashed (panic, Oops, BUG): the product, not a loss
        self.boot_trouble: ProductFailure | None = None  # the kernel's trouble at boot
        self._seen = 0  # console offset up to which trouble was already reported
        self.memo: dict[str, object] = {}  # results of work done inside this boot
        self.boot_seconds = 0.0

    # -- lifecycle ---------------------------------------------------------------

    def start(self, timeout: float = 300) -> None:
        """Boot the guest, wait for its shell and check it runs the kernel that was built.

        Raises SilentStart (no output by the first-output deadline), BootError naming the
        logs (QEMU did not start, no shell in time, another kernel runs), KernelTrouble if
        the kernel crashed while booting.
        """
        start = time.monotonic()
        self._spawn()
        deadline = start + timeout * proc.timeout_scale()
        first = accel.FIRST_OUTPUT_SECONDS["kvm" if self.spec.kvm else "tcg"] * proc.timeout_scale()
        self._first_output = (start + first, first)
        try:
            self._reach_shell(deadline, start)
            answer = self.run(self._identity_command(), timeout=120)
            self.boot_seconds = time.monotonic() - start  # to the first command's answer
            self._check_kernel_identity(answer)
        except (GuestLost, GuestTimeout) as exc:
            self.kill()
            raise BootError(f"guest {self.name} died during boot: {exc}",
                            log=self.console_log) from None
        except KernelTrouble as trouble:  # a splat at boot: the kernel's, never a loss
            self.crashed = True
            self.boot_trouble = trouble
            self.kill()
            raise
        except BaseException:
            self.kill()
            raise
        log.info("guest %s: shell after %.1fs, kernel checked after %.1fs", self.name,
                 self.boot_seconds, time.monotonic() - start)

    def _spawn(self) -> None:
        """Start QEMU (or vng) for this guest, its logs fresh. Raises ToolMissing."""
        spec = dataclasses.replace(self.spec, pidfile=self._pidfile)
        argv = vm.launch_argv(spec, self.console_log)
        for share in spec.shares:
            share.host.mkdir(parents=True, exist_ok=True)
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        self.console_log.write_text("")
        self.qemu_log.write_text("")
        self._pidfile.unlink(missing_ok=True)
        log.info("run: %s", shlex.join(argv))
        self._serial = self.serial_log.open("w")
        self._serial.write(f"$ {shlex.join(argv)}\n")
        self._serial_start = self._serial.tell()
        # Under vng QEMU's stderr is the kernel console; the kbtf launcher's console is a
        # chardev file, so QEMU's own warnings go apart and never pass for guest output.
        stderr_path = str(self.console_log if self.launcher.stderr_is_console else self.qemu_log)

        def child_setup() -> None:
            # vng (or QEMU itself, with the kbtf launcher) dies with the harness, even on
            # SIGKILL of a worker; under vng, QEMU dies with its own parent (the wrapper in
            # vm.py) and gets SIGHUP when vng's session ends.
            proc.die_with_parent()
            os.dup2(os.open(stderr_path, os.O_WRONLY | os.O_APPEND), 2)

        env = {**os.environ, "PATH": proc.tool_path(), **vm.qemu_env(spec.arch)}
        self._child = pexpect.spawn(
            argv[0], argv[1:], encoding="utf-8", codec_errors="replace", env=env,
            dimensions=(50, 4000), preexec_fn=child_setup, echo=False,
        )
        self._child.logfile_read = self._serial
        _LIVE.add(self)

    def _reach_shell(self, deadline: float, start: float) -> None:
        """Wait for the guest's shell and set up the command session in it (the setup line
        rides along with the ping that finds the shell: one round trip fewer)."""
        child = self._require_alive("boot")
        if self.launcher.own_root:
            self._wait_for_init(deadline)
            log.info("guest %s: init starts the shell after %.1fs", self.name,
                     time.monotonic() - start)
            self._wait_for_shell(deadline, "no shell", self._setup_line())
            return
        self._wait_for_shell(deadline, "no shell")
        if not self.launcher.own_root:
            # A plain bash: no readline, no rc files, no echo, no \n -> \r\n from the
            # guest's own tty (the console adds one more \r; decode_result drops it). Wait
            # for it before typing more: input typed during the exec can be lost. (kbtf's
            # init starts such a bash itself.)
            child.sendline("exec /bin/bash --norc --noprofile --noediting")
            self._wait_for_shell(deadline, "bash did not start", self._setup_line())

    def _setup_line(self) -> str:
        """The line that makes the guest's shell kbtf's command session: no echo, no prompt,
        kbtf's PATH, the immutable shares mounted cached (kbtf launcher), kbtf_run."""
        remounts = "".join(f"{c}; " for c in vm.remount_commands(self.spec)
                           ) if self.launcher.own_root else ""
        bb = self._busybox()
        return (f"{bb}stty -echo -onlcr; PS1=; export PATH={GUEST_PATH}; {remounts}"
                f"{bb}mkdir -p {GUEST_WORKDIR}; cd /; " + console.session_setup(GUEST_WORKDIR))

    def _busybox(self) -> str:
        """The prefix that runs a boot-time program as a static busybox applet in kbtf's
        root (coreutils' programs load their shared libraries first: 50-100 ms each under
        TCG); '' under vng (the host's tree may have no busybox)."""
        return f"{guestroot.BUSYBOX} " if self.launcher.own_root else ""

    def _identity_command(self) -> str:
        """A boot's first command: what _check_kernel_identity reads (``uname -r`` when a
        release is expected, the vmlinux BTF's sha256 when it is known), else ``true``."""
        commands = []
        if self.spec.release is not None:
            commands.append("uname -r")
        if self.spec.btf_sha256:
            commands.append(f"{self._busybox()}sha256sum /sys/kernel/btf/vmlinux")
        return "; ".join(commands) or "true"

    def _check_kernel_identity(self, first: CommandResult) -> None:
        """The guest's /sys/kernel/btf/vmlinux must be the built vmlinux's .BTF, byte for
        byte, and ``uname -r`` the expected release when one is given (a distro kernel
        whose headers ship no vmlinux), as ``first`` (_identity_command's result) says.
        Raises BootError if either cannot be read or differs (another kernel booted)."""
        lines = first.stdout.splitlines()
        if self.spec.release is not None:
            uname = lines.pop(0).strip() if lines else ""
            if uname != self.spec.release:
                raise BootError(f"guest {self.name} runs kernel {uname or '(unreadable)'}, "
                                f"not {self.spec.release}", log=self.serial_log)
        want = self.spec.btf_sha256
        if want is None:
            return
        got = lines[0].split()[0] if first.ok and lines and lines[0].split() else None
        if got is None:
            raise BootError(f"guest {self.name}: cannot read /sys/kernel/btf/vmlinux to check "
                            f"which kernel runs: {first.stderr.strip()}", log=self.serial_log)
        if got != want:
            raise BootError(f"guest {self.name} does not run the kernel that was built: "
                            f"/sys/kernel/btf/vmlinux sha256 {got[:16]}..., {self.spec.image}'s "
                            f"vmlinux .BTF {want[:16]}...", log=self.serial_log)

    def close(self, timeout: float = 30) -> None:
        """Shut the guest down (exit the shell: init powers off), else kill it.

        Raises KernelTrouble if the console shows trouble not reported yet (also during
        the shutdown itself).
        """
        child = self._child
        if child is not None and child.isalive():
            try:
                child.sendline("exit")
                child.expect(pexpect.EOF, timeout=timeout)
            except (pexpect.TIMEOUT, OSError):
                log.warning("guest %s did not power off in %.0fs: killing it", self.name, timeout)
        self.kill()
        self.check_console("shutdown")

    def kill(self) -> None:
        """Kill QEMU and vng now. Safe to call twice."""
        _LIVE.discard(self)
        if self._child is not None and (pid := self._our_qemu()) is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self._pidfile.unlink(missing_ok=True)
        if self._child is not None:
            if self._child.pid is not None:
                with contextlib.suppress(OSError):
                    os.killpg(self._child.pid, signal.SIGKILL)
            self._child.close(force=True)
            self._child = None
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    def _our_qemu(self) -> int | None:
        """The pid in this session's pidfile if that process is the QEMU this session
        started (its command line names this very pidfile), else None: a stale pidfile's pid
        may belong to anything by now."""
        try:
            pid = int(self._pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if os.fsencode(self._pidfile) in cmdline else None

    @property
    def out_dir(self) -> Path:
        """The host dir this guest may write to (its writable share).

        Raises HarnessError if it has none.
        """
        for share in self.spec.shares:
            if share.writable:
                return share.host
        raise HarnessError(f"guest {self.name} has no writable output dir")

    def path(self, host: Path) -> str:
        """Where this guest sees host path ``host`` (a module, a script).

        Raises HarnessError if the guest cannot see it.
        """
        try:
            return self.spec.guest_path(host)
        except ValueError as exc:
            raise HarnessError(f"guest {self.name}: {exc}") from None

    def once_per_boot(self, key: str, make: Callable[[], T]) -> T:
        """``make()``'s result, computed once per boot (state inside the guest, like a
        build in its /tmp, lives as long as the boot)."""
        if key not in self.memo:
            self.memo[key] = make()
        return cast(T, self.memo[key])

    @property
    def launcher(self) -> Launcher:
        """How this guest boots (launchers.LAUNCHERS)."""
        return get_launcher(self.spec.launcher)

    @property
    def alive(self) -> bool:
        """True while the guest process runs."""
        return self._child is not None and self._child.isalive()

    # -- commands ----------------------------------------------------------------

    def run(self, command: str, *args: str, timeout: float = 120) -> CommandResult:
        """Run a shell command in the guest; ``args`` are appended shell-quoted.

        Returns the real exit code and output. Raises KernelTrouble if the kernel printed
        trouble during the command (quoting it; fatal trouble kills the guest), GuestLost
        if QEMU went away without any, GuestTimeout (after killing it) on timeout.
        """
        if args:
            command = command + " " + shlex.join(args)
        timeout *= proc.timeout_scale()
        child = self._require_alive(command)
        token = uuid.uuid4().hex[:16]
        for line in console.wrap_command(command, token):
            child.sendline(line)
        pattern = console.sentinel_pattern(token)
        deadline = time.monotonic() + timeout
        while True:
            self.check_console(command)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise GuestTimeout(f"guest {self.name}: {command!r} timed out after "
                                   f"{timeout:.0f}s; guest killed", log=self.serial_log)
            try:
                child.expect(pattern, timeout=min(0.5, remaining))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                self._lost(command, "QEMU exited")
            match = child.match
            assert isinstance(match, re.Match)
            result = console.decode_result(command, match)
            log.info("guest %s: %s -> rc %d", self.name, command, result.rc)
            self.check_console(command)
            return result

    def console_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the kernel's console log ("" before any)."""
        if not self.console_log.exists():
            return ""
        return "\n".join(self.console_log.read_text(errors="replace").splitlines()[-lines:])

    def interact(self) -> None:
        """Hand the guest's shell to the terminal until it exits (the guest powers off) or
        the user types Ctrl-] (the guest is then killed). Raises GuestLost if it is gone."""
        child = self._require_alive("shell")
        child.sendline("cd /kbtf; PS1='kbtf-guest# '")
        # pexpect hands interact's bytes to the (text) serial log: the session is not
        # logged while the user has it.
        child.logfile = child.logfile_read = child.logfile_send = None
        try:
            child.interact(escape_character="\x1d")
        finally:
            self.kill()

    def sync_console(self, what: str) -> None:
        """Wait until every kernel message so far is in the console log (a marker written
        to /dev/kmsg shows up there), then check it. Raises like run()."""
        if not self.alive:
            self.check_console(what)
            return
        token = uuid.uuid4().hex[:16]
        marker = f"kbtf: console sync {token}"
        self.run(f"printf '<4>{marker}\\n' >/dev/kmsg")
        deadline = time.monotonic() + CONSOLE_SYNC_SECONDS
        while marker not in self.console_log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                log.warning("guest %s: console sync marker not seen after %.0fs", self.name,
                            CONSOLE_SYNC_SECONDS)
                break
            time.sleep(0.05)
        self.check_console(what)

    def check_console(self, what: str) -> None:
        """Raise KernelTrouble for trouble on the console not reported yet, quoting it;
        fatal trouble kills the guest first."""
        text = self.console_log.read_text(errors="replace")
        trouble = console.find_trouble(text, self._seen)
        if trouble is None:
            return
        self._seen = trouble.end
        if trouble.fatal:
            self.crashed = True
            self.kill()
            # The guest is dead: what follows (the panic) belongs to this crash.
            self._seen = len(self.console_log.read_text(errors="replace"))
            raise KernelTrouble(f"guest {self.name}: kernel crashed or hung during {what!r}:\n"
                                f"{trouble.excerpt}", log=self.console_log)
        raise KernelTrouble(f"guest {self.name}: kernel warning during {what!r}:\n"
                            f"{trouble.excerpt}", log=self.console_log, fatal=False)

    def _wait_for_init(self, deadline: float) -> None:
        """Wait, typing nothing, for kbtf's init to say it starts the shell.

        Raises BootError at ``deadline``, KernelTrouble/GuestLost if the guest died.
        """
        child = self._require_alive("boot")
        while True:
            try:
                child.expect_exact(guestroot.SHELL_MARKER, timeout=0.5)
                return
            except pexpect.TIMEOUT:
                self.check_console("boot")
                self._check_first_output()
                if time.monotonic() > deadline:
                    raise BootError(f"guest {self.name}: kbtf's init never started the shell "
                                    f"(no {guestroot.SHELL_MARKER} by the boot deadline)",
                                    log=self.console_log) from None
            except pexpect.EOF:
                self._lost("boot", "QEMU exited")

    def _wait_for_shell(self, deadline: float, what: str, setup: str = "") -> None:
        """Ping until the shell answers, waiting longer between pings (0.5 s to 4 s: a
        flood of typed lines could overflow the tty); each ping runs ``setup`` first (it
        must bear running twice, and gets 4 s before the first ping is repeated: the
        guest of a BPF CI kernel, slow under TCG, took over 3 s for bash's start and the
        selftests share's remount, and got the line three times). Raises BootError saying
        ``what`` at ``deadline``."""
        wait = 4.0 if setup else 0.5
        while not self._ping(min(wait, max(0.1, deadline - time.monotonic())), setup):
            if time.monotonic() > deadline:
                raise BootError(f"guest {self.name}: {what} by the boot deadline",
                                log=self.serial_log)
            wait = min(wait * 2, 4.0)

    def _ping(self, timeout: float, setup: str = "") -> bool:
        """Type a marker command (after ``setup``); True if the shell answered within
        ``timeout``."""
        child = self._require_alive("boot")
        token = uuid.uuid4().hex[:16]
        child.sendline(f"{setup}{'; ' if setup else ''}printf '\\nKBTF-%s:READY\\n' {token}")
        try:
            child.expect(rf"KBTF-{token}:READY", timeout=timeout)
            return True
        except pexpect.TIMEOUT:
            self.check_console("boot")
            self._check_first_output()
            return False
        except pexpect.EOF:
            self._lost("boot", "QEMU exited")
        return False

    def _output_seen(self) -> bool:
        """Whether the guest wrote anything yet: serial bytes, or kernel console text that is
        not QEMU's own (under vng QEMU's stderr shares the console log: a QEMU warning is no
        guest output, whatever the launcher)."""
        serial = self._serial is not None and self._serial.tell() > self._serial_start
        if serial:
            return True
        if self.console_log.stat().st_size == 0:
            return False
        return console.guest_wrote(self.console_log.read_text(errors="replace"))

    def _check_first_output(self) -> None:
        """Raise SilentStart if the guest has shown no output by its first-output deadline
        (checked until the first output; the boot deadline covers the rest)."""
        if self._first_output is None:
            return
        if self._output_seen():
            self._first_output = None
        elif time.monotonic() > self._first_output[0]:
            under = "KVM" if self.spec.kvm else "TCG"
            raise SilentStart(f"guest {self.name}: no output at all (kernel console or serial) "
                              f"{self._first_output[1]:.0f}s after QEMU started under {under}",
                              log=self.console_log if self.launcher.stderr_is_console
                              else self.qemu_log)

    def _require_alive(self, command: str) -> pexpect.spawn[str]:
        if self._child is None:
            raise GuestLost(f"guest {self.name} is not running (needed for {command!r})",
                            log=self.console_log)
        return self._child

    def _lost(self, command: str, why: str) -> NoReturn:
        """QEMU went away: KernelTrouble if the console says why, else GuestLost."""
        self.kill()
        self.check_console(command)
        said = self.qemu_log.read_text(errors="replace").strip().splitlines() \
            if self.qemu_log.exists() else []
        if said:
            raise GuestLost(f"guest {self.name} lost during {command!r}: {why}, saying: "
                            f"{said[-1]}", log=self.qemu_log)
        # Before its console driver runs, a kernel writes to the serial console (s390x's
        # decompressor: "Kernel fault: interruption code ...").
        serial = self.serial_log.read_text(errors="replace") if self.serial_log.exists() else ""
        early = [ln for ln in serial.splitlines() if ln.startswith(("Kernel fault", "PSW"))]
        if early:
            raise GuestLost(f"guest {self.name} lost during {command!r}: {why}; the serial "
                            f"console says: {' / '.join(early[:2])}", log=self.serial_log)
        raise GuestLost(f"guest {self.name} lost during {command!r}: {why}, no kernel trouble "
                        "on the console", log=self.console_log)


class Bootable(Protocol):
    """A kernel kbtf boots: a kernel build (KernelBuild) or a distro's (DistroKernel)."""

    @property
    def arch(self) -> Arch: ...

    @property
    def image(self) -> Path: ...

    @property
    def vmlinux(self) -> Path: ...  # its .BTF is what the booted kernel must show (if present)


def boot_spec(kernel: Bootable, launcher: str, cache_dir: Path,
              shares: tuple[vm.Share, ...] = (), kvm: bool = False, *,
              initrd: Path | None = None, release: str | None = None,
              cmdline: tuple[str, ...] = (), root_packages: tuple[str, ...] = (),
              shape: tuple[int, str] | None = None) -> vm.BootSpec:
    """How to boot ``kernel`` with ``launcher``, the one way every guest is booted: KVM only
    for the host arch and only if the run's verdict (``kvm``, guest/accel.py) allows it,
    the guest root for the kbtf launcher (built once), the vmlinux BTF (when there is a
    vmlinux) and the ``release`` the guest must show; ``root_packages``: more packages in
    the guest root; ``shape``: its vCPUs and memory (default one and 2G).

    Raises ToolMissing, CommandError (the root could not be made).
    """
    arch = kernel.arch
    btf = section_data(kernel.vmlinux, ".BTF") if kernel.vmlinux.is_file() else None
    root = (guestroot.ensure_root(arch, cache_dir, root_packages)
            if get_launcher(launcher).own_root else None)
    cpus, memory = shape or (1, "2G")
    return vm.BootSpec(arch, kernel.image, kvm and arch.is_host(), memory=memory, cpus=cpus,
                       btf_sha256=hashlib.sha256(btf).hexdigest() if btf else None,
                       launcher=launcher, root=root, shares=shares, initrd=initrd,
                       release=release, cmdline=cmdline)
