"""Running host programs: every argv is logged exactly, so it can be rerun by hand."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from harness.arches import ARCHES
from harness.errors import CommandError, CommandTimeout, ToolMissing

log = logging.getLogger("kbtf")

# Host program -> Debian package that provides it (bookworm); each arch's compiler, binutils
# and QEMU come from the arch registry.
APT_PACKAGE: Mapping[str, str] = {
    "make": "make",
    "flex": "flex",
    "bison": "bison",
    "bc": "bc",
    "cpio": "cpio",
    "xz": "xz-utils",
    "lz4": "lz4",
    "zstd": "zstd",
    "pahole": "dwarves",
    "bpftool": "bpftool",
    "bpftrace": "bpftrace",
    "busybox": "busybox-static",
    "patchelf": "patchelf",
    "udevadm": "udev",
    "tar": "tar",
    "git": "git",
    "cmake": "cmake",
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "setpriv": "util-linux",
    "vng": "virtme-ng (pip, in the venv: run ./kbtf)",
    "mmdebstrap": "mmdebstrap",
    "bwrap": "bubblewrap",
    "depmod": "kmod",
    **{tool: pkg for arch in ARCHES.values() for tool, pkg in arch.tool_packages().items()},
}


def require_tool(name: str) -> str:
    """Return the absolute path of host program ``name``.

    Raises ToolMissing naming the package that provides it.
    """
    path = shutil.which(name, path=tool_path())
    if path is None:
        pkg = package_of(name)
        fix = pkg if pkg.startswith("virtme") else f"apt-get install {pkg}"
        raise ToolMissing(f"missing tool '{name}': install it with {fix}, or run ./kbtf once")
    return path


def package_of(program: str) -> str:
    """The Debian package that installs ``program`` (its own name when kbtf does not know)."""
    if program in APT_PACKAGE:
        return APT_PACKAGE[program]
    if m := re.fullmatch(r"(clang|ld\.lld|llvm-[a-z]+)-(\d+)", program):
        family = {"clang": "clang", "ld.lld": "lld"}.get(m[1], "llvm")
        return f"{family}-{m[2]}"
    return program


def tool_path() -> str:
    """PATH with the venv's bin and sbin dirs, where Debian keeps bpftool and insmod."""
    venv_bin = str(Path(os.path.realpath(sys.executable)).parent)
    parts = [str(Path(sys.executable).parent), venv_bin]
    parts += os.environ.get("PATH", "").split(os.pathsep)
    parts += ["/usr/local/sbin", "/usr/sbin", "/sbin"]
    return os.pathsep.join(dict.fromkeys(p for p in parts if p))


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """This process gets ``sig`` when its parent dies (PR_SET_PDEATHSIG); as a preexec_fn:
    the child dies with the harness process."""
    ctypes.CDLL(None).prctl(1, sig)


def timeout_scale() -> float:
    """$KBTF_TIMEOUT_SCALE (default 1): multiplies every command's timeout (slow machines,
    or small values to watch the timeouts fire)."""
    try:
        return float(os.environ.get("KBTF_TIMEOUT_SCALE", "1"))
    except ValueError:
        return 1.0


def _kill_group(child: subprocess.Popen[str]) -> None:
    """SIGKILL ``child``'s whole process group (make's compilers, pahole...) and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        child.kill()
    child.wait()


def _timeout_error(line: str, seconds: float, logfile: Path | None) -> CommandTimeout:
    return CommandTimeout(f"command timed out after {seconds:.0f}s and was killed: {line}",
                          log=logfile)


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    logfile: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (never through a shell), logging it; output goes to ``logfile`` if given.

    The command runs in its own process group, which is killed whole when it runs past
    ``timeout`` seconds (times $KBTF_TIMEOUT_SCALE) or when the harness is interrupted.
    Raises CommandTimeout past the timeout, CommandError naming the log when ``check`` and
    the command fails.
    """
    args = [os.fspath(a) for a in argv]
    line = shlex.join(args)
    where = f"(cd {shlex.quote(str(cwd))} && {line})" if cwd else line
    seconds = timeout * timeout_scale()
    log.info("run (timeout %.0fs): %s", seconds, where)
    full_env = {**os.environ, "PATH": tool_path(), **(env or {})}
    with contextlib.ExitStack() as stack:
        if logfile is None:
            out: int | IO[str] = subprocess.PIPE
        else:
            logfile.parent.mkdir(parents=True, exist_ok=True)
            out = stack.enter_context(logfile.open("a"))
            out.write(f"$ {where}\n")
            out.flush()
        child = subprocess.Popen(
            args, cwd=cwd, env=full_env, text=True, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.PIPE if logfile is None else subprocess.STDOUT,
            preexec_fn=die_with_parent, process_group=0,
        )
        try:
            stdout, stderr = child.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            _kill_group(child)
            if logfile is not None:
                out.write(f"# kbtf: killed after {seconds:.0f}s (timeout)\n")  # type: ignore[union-attr]
            raise _timeout_error(line, seconds, logfile) from None
        finally:
            if child.returncode is None:  # interrupted (Ctrl-C, SIGTERM): take the group down
                _kill_group(child)
    done = subprocess.CompletedProcess(args, child.returncode, stdout or "", stderr or "")
    if check and done.returncode != 0:
        raise _failed(done, line, logfile)
    return done


def _failed(done: subprocess.CompletedProcess[str], line: str, logfile: Path | None
            ) -> CommandError:
    """The error of a failed command: its exit code and, without a log, stderr's last line."""
    detail = done.stderr.strip().splitlines()[-1:] if logfile is None else []
    return CommandError(f"command failed with exit {done.returncode}: {line}"
                        + (f": {detail[0]}" if detail else ""), log=logfile)


def stream(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    logfile: Path,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
) -> int:
    """Run ``argv`` with its output appended to ``logfile``, handing each line to
    ``on_line`` (progress). Same process-group, environment and timeout rules as run();
    returns the exit code. Raises CommandTimeout past the timeout.
    """
    args = [os.fspath(a) for a in argv]
    line = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    line = (line + " " if line else "") + shlex.join(args)
    seconds = timeout * timeout_scale()
    log.info("run (timeout %.0fs): %s", seconds, line)
    deadline = time.monotonic() + seconds
    timer: threading.Timer | None = None
    with logfile.open("a") as fh:
        fh.write(f"$ {line}\n")
        fh.flush()
        child = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env={**os.environ, "PATH": tool_path(), **(env or {})},
            preexec_fn=die_with_parent,
            process_group=0,
        )
        # A watchdog: a hung build prints nothing, so the line loop alone cannot time out.
        timer = threading.Timer(seconds, _kill_group, (child,))
        timer.daemon = True
        timer.start()
        try:
            assert child.stdout is not None
            for text in child.stdout:
                fh.write(text)
                on_line(text)
            rc = child.wait()
        finally:
            timer.cancel()
            if child.returncode is None:
                _kill_group(child)
        if time.monotonic() >= deadline:
            fh.write(f"# kbtf: killed after {seconds:.0f}s (timeout)\n")
            raise _timeout_error(line, seconds, logfile)
    return rc


def output(argv: Sequence[str | os.PathLike[str]], *, timeout: float = 60) -> str:
    """stdout of a short query command (``--version`` and the like); '' if it fails.

    Raises CommandTimeout past the timeout.
    """
    return run(argv, timeout=timeout, check=False).stdout
