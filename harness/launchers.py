"""How guests boot: one entry per launcher, in a registry (like the arch registry). What a
launcher is decides everything that differs between them (the tools it needs, which arches
it boots, whether it brings its own root file system and init, where QEMU's messages go,
how the guest sees host paths); guest/vm.py builds each one's command line. Adding one (a
UML kernel, a microvm machine) is an entry here and its argv in guest/vm.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.errors import ConfigError


@dataclass(frozen=True)
class Launcher:
    """One way to boot a guest."""

    name: str
    tools: tuple[str, ...]  # host programs a run with it needs
    host_arch_only: bool  # it boots the host's own root: guests of the host arch only
    own_root: bool  # a Debian root tree of the guest's arch with kbtf's init (made first)
    stderr_is_console: bool  # QEMU's own stderr shares the kernel console log
    host_paths: bool  # the guest sees the host's paths as they are (not under share mounts)


LAUNCHERS: Mapping[str, Launcher] = {
    # QEMU with a Debian root of the guest's arch and kbtf's init (boots in ~3 s under TCG)
    "kbtf": Launcher("kbtf", ("mmdebstrap",), host_arch_only=False, own_root=True,
                     stderr_is_console=False, host_paths=False),
    # virtme-ng over the host's root (runs the host's bpftrace, needs udev)
    "vng": Launcher("vng", ("vng", "udevadm", "bpftrace"), host_arch_only=True,
                    own_root=False, stderr_is_console=True, host_paths=True),
}
# The guest launcher by default: kbtf's own (boots in 7 s on x86_64 under TCG, virtme-ng in
# 15-20 s: bench/guest_bench.py).
DEFAULT_LAUNCHER = "kbtf"


def get_launcher(name: str) -> Launcher:
    """The registry's launcher ``name``. Raises ConfigError naming the known ones."""
    try:
        return LAUNCHERS[name]
    except KeyError:
        raise ConfigError(f"unknown launcher '{name}': use {' or '.join(LAUNCHERS)}") from None
