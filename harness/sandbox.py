"""Running what a user's package says, confined (bubblewrap): the machine's file system read
only, the machine's dkms state hidden (its framework config, keys, /var/lib/dkms and
/lib/modules, each an empty tmpfs inside), no network, only kbtf's own private trees
writable. For what kbtf must run but did not write: a dkms.conf (a bash snippet), dkms's
build of a package (its MAKE lines, PRE_BUILD scripts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness import proc

# The machine's dkms state: what decides signing keys, framework overrides and module
# compression on a user's machine, never in kbtf's builds.
HOST_STATE = (Path("/etc/dkms"), Path("/var/lib/dkms"), Path("/var/lib/shim-signed"),
              Path("/lib/modules"))


def confined(argv: Sequence[str | Path], writable: Sequence[Path],
             hidden: Sequence[Path] = HOST_STATE) -> list[str]:
    """``argv`` run under bubblewrap: / read only, each of ``hidden`` (those that exist) an
    empty tmpfs, each of ``writable`` bound writable, in new network, IPC and PID
    namespaces, dying with kbtf. Raises ToolMissing without bwrap."""
    bwrap = proc.require_tool("bwrap")
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path in hidden:
        if path.exists():
            args += ["--tmpfs", str(path.resolve())]  # a link (/lib -> usr/lib): its target
    for path in writable:
        args += ["--bind", str(path), str(path)]
    return [*args, "--unshare-net", "--unshare-ipc", "--unshare-pid", "--die-with-parent",
            "--", *map(str, argv)]
