"""A live guest: boot it, run commands with real exit codes, watch its console, kill it."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import re
import shlex
import signal
import time
import uuid
from pathlib import Path
from typing import IO, NoReturn

import pexpect

from harness import console, proc, vm
from harness.console import CommandResult
from harness.errors import BootError, GuestLost, GuestTimeout

log = logging.getLogger("kbtf")

GUEST_WORKDIR = "/tmp/kbtf"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_LIVE: set[GuestSession] = set()


def _kill_all() -> None:
    """atexit: no guest outlives the harness process."""
    for session in list(_LIVE):
        session.kill()


atexit.register(_kill_all)


class GuestSession:
    """One booted guest driven over its serial console (pexpect).

    Commands run one at a time; each ends with a unique sentinel line carrying the
    exit code and base64 stdout/stderr. Kernel messages go to a separate console log
    (hvc0), which is checked for panic/Oops/BUG while waiting.
    """

    def __init__(self, spec: vm.BootSpec, logdir: Path, name: str) -> None:
        self.spec = spec
        self.name = name
        self.console_log = logdir / f"{name}.console.log"  # kernel messages (hvc0)
        self.serial_log = logdir / f"{name}.serial.log"  # shell transcript (ttyS0)
        self._pidfile = logdir / f"{name}.qemu.pid"
        self._child: pexpect.spawn[str] | None = None
        self._serial: IO[str] | None = None
        self.boot_seconds = 0.0

    # -- lifecycle ---------------------------------------------------------------

    def start(self, timeout: float = 300) -> None:
        """Boot the guest and wait for its shell. Raises BootError naming the logs."""
        spec = dataclasses.replace(self.spec, pidfile=self._pidfile)
        argv = vm.vng_argv(proc.require_tool("vng"), spec)
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        self.console_log.write_text("")
        self._pidfile.unlink(missing_ok=True)
        log.info("run: %s", shlex.join(argv))
        self._serial = self.serial_log.open("w")
        self._serial.write(f"$ {shlex.join(argv)}\n")
        console_path = str(self.console_log)

        def child_setup() -> None:
            # Die with the harness (even on SIGKILL of a worker); QEMU, in our
            # session, gets SIGHUP when vng (the session leader) dies.
            proc.die_with_parent()
            fd = os.open(console_path, os.O_WRONLY | os.O_APPEND)
            os.dup2(fd, 2)

        start = time.monotonic()
        self._child = pexpect.spawn(
            argv[0], argv[1:], encoding="utf-8", codec_errors="replace",
            env={**os.environ, "PATH": proc.tool_path()}, dimensions=(50, 4000),
            preexec_fn=child_setup, echo=False,
        )
        self._child.logfile_read = self._serial
        _LIVE.add(self)
        deadline = start + timeout
        try:
            self._wait_for_shell(deadline, "no shell")
            # A plain bash: no readline, no rc files, no echo, no \n -> \r\n from the guest's
            # own tty (the console adds one more \r; decode_result drops it). Wait for it before
            # typing more: input typed during the exec can be lost.
            self._child.sendline("exec /bin/bash --norc --noprofile --noediting")
            self._wait_for_shell(deadline, "bash did not start")
            self._child.sendline(f"stty -echo -onlcr; PS1=; export PATH={GUEST_PATH}; "
                                 f"mkdir -p {GUEST_WORKDIR}; cd /; "
                                 + console.session_setup(GUEST_WORKDIR))
            self.run("true", timeout=60)
        except (GuestLost, GuestTimeout) as exc:
            self.kill()
            raise BootError(f"guest {self.name} died during boot: {exc}",
                            log=self.console_log) from None
        except BaseException:
            self.kill()
            raise
        self.boot_seconds = time.monotonic() - start
        log.info("guest %s: shell after %.1fs", self.name, self.boot_seconds)

    def close(self, timeout: float = 30) -> None:
        """Shut the guest down cleanly (exit the shell: init powers off), else kill it."""
        child = self._child
        if child is not None and child.isalive():
            try:
                child.sendline("exit")
                child.expect(pexpect.EOF, timeout=timeout)
            except (pexpect.TIMEOUT, OSError):
                log.warning("guest %s did not power off in %.0fs: killing it", self.name, timeout)
        self.kill()

    def kill(self) -> None:
        """Kill QEMU and vng now. Safe to call twice."""
        _LIVE.discard(self)
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(self._pidfile.read_text().strip()), signal.SIGKILL)
        if self._child is not None:
            if self._child.pid is not None:
                with contextlib.suppress(OSError):
                    os.killpg(self._child.pid, signal.SIGKILL)
            self._child.close(force=True)
            self._child = None
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    @property
    def alive(self) -> bool:
        """True while the guest process runs."""
        return self._child is not None and self._child.isalive()

    # -- commands ----------------------------------------------------------------

    def run(self, command: str, *args: str, timeout: float = 120) -> CommandResult:
        """Run a shell command in the guest; ``args`` are appended shell-quoted.

        Returns the real exit code and output. Raises GuestLost if the guest died
        (with the console excerpt), GuestTimeout (after killing it) on timeout.
        """
        if args:
            command = command + " " + shlex.join(args)
        child = self._require_alive(command)
        token = uuid.uuid4().hex[:16]
        for line in console.wrap_command(command, token):
            child.sendline(line)
        pattern = console.sentinel_pattern(token)
        deadline = time.monotonic() + timeout
        while True:
            self._check_console(command)
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
            return result

    def _wait_for_shell(self, deadline: float, what: str) -> None:
        """Ping until the shell answers. Raises BootError saying ``what`` at ``deadline``."""
        while not self._ping(min(2.0, max(0.1, deadline - time.monotonic()))):
            if time.monotonic() > deadline:
                raise BootError(f"guest {self.name}: {what} by the boot deadline",
                                log=self.console_log)

    def _ping(self, timeout: float) -> bool:
        """Type a marker command; True if the shell answered within ``timeout``."""
        child = self._require_alive("boot")
        token = uuid.uuid4().hex[:16]
        child.sendline(f"printf '\\nKBTF-%s:READY\\n' {token}")
        try:
            child.expect(rf"KBTF-{token}:READY", timeout=timeout)
            return True
        except pexpect.TIMEOUT:
            self._check_console("boot")
            return False
        except pexpect.EOF:
            self._lost("boot", "QEMU exited")
        return False

    def _require_alive(self, command: str) -> pexpect.spawn[str]:
        if self._child is None:
            raise GuestLost(f"guest {self.name} is not running (needed for {command!r})",
                            log=self.console_log)
        return self._child

    def _check_console(self, command: str) -> None:
        trouble = console.find_trouble(self.console_log.read_text(errors="replace"))
        if trouble:
            self._lost(command, trouble)

    def _lost(self, command: str, why: str) -> NoReturn:
        excerpt = console.find_trouble(self.console_log.read_text(errors="replace")) or why
        self.kill()
        raise GuestLost(f"guest {self.name} lost during {command!r}:\n{excerpt}",
                        log=self.console_log)
