"""Running host programs: every argv is logged exactly, so it can be rerun by hand."""

from __future__ import annotations

import ctypes
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.errors import BuildError, ToolMissing

log = logging.getLogger("kbtf")

# Host program -> Debian package that provides it (bookworm).
APT_PACKAGE: Mapping[str, str] = {
    "make": "make",
    "gcc": "gcc",
    "flex": "flex",
    "bison": "bison",
    "bc": "bc",
    "cpio": "cpio",
    "xz": "xz-utils",
    "zstd": "zstd",
    "pahole": "dwarves",
    "bpftool": "bpftool",
    "bpftrace": "bpftrace",
    "busybox": "busybox-static",
    "patchelf": "patchelf",
    "udevadm": "udev",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-aarch64": "qemu-system-arm",
    "qemu-system-s390x": "qemu-system-s390x",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "s390x-linux-gnu-gcc": "gcc-s390x-linux-gnu",
    "vng": "virtme-ng (pip, in the venv: run ./kbtf)",
}


def require_tool(name: str) -> str:
    """Return the absolute path of host program ``name``.

    Raises ToolMissing naming the package that provides it.
    """
    path = shutil.which(name, path=tool_path())
    if path is None:
        pkg = APT_PACKAGE.get(name, name)
        fix = pkg if pkg.startswith("virtme") else f"apt-get install {pkg}"
        raise ToolMissing(f"missing tool '{name}': install it with {fix}, or run ./kbtf once")
    return path


def tool_path() -> str:
    """PATH with the venv's bin and sbin dirs, where Debian keeps bpftool and insmod."""
    venv_bin = str(Path(os.path.realpath(sys.executable)).parent)
    parts = [str(Path(sys.executable).parent), venv_bin]
    parts += os.environ.get("PATH", "").split(os.pathsep)
    parts += ["/usr/local/sbin", "/usr/sbin", "/sbin"]
    return os.pathsep.join(dict.fromkeys(p for p in parts if p))


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the harness process dies (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    logfile: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (never through a shell), logging it; output goes to ``logfile`` if given.

    Raises BuildError naming the log when ``check`` and the command fails.
    """
    args = [os.fspath(a) for a in argv]
    line = shlex.join(args)
    where = f"(cd {shlex.quote(str(cwd))} && {line})" if cwd else line
    log.info("run: %s", where)
    full_env = {**os.environ, "PATH": tool_path(), **(env or {})}
    if logfile is None:
        proc = subprocess.run(args, cwd=cwd, env=full_env, text=True, capture_output=True,
                              preexec_fn=die_with_parent)
    else:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with logfile.open("a") as fh:
            fh.write(f"$ {where}\n")
            fh.flush()
            proc = subprocess.run(
                args, cwd=cwd, env=full_env, text=True, stdout=fh, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
    if check and proc.returncode != 0:
        detail = (proc.stderr or "").strip().splitlines()[-1:] if logfile is None else []
        raise BuildError(
            f"command failed with exit {proc.returncode}: {line}"
            + (f": {detail[0]}" if detail else ""),
            log=logfile,
        )
    return proc
