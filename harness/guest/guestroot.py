"""Guest root trees for foreign architectures: Debian packages extracted with mmdebstrap
(--variant=extract: no maintainer scripts, so no binfmt or qemu-user), plus kbtf's init.
Cached by content (arch, suite, packages, init), built in a temp dir and renamed, shared
through the run's cache remote."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from harness import provision
from harness.arches import Arch
from harness.build import cacheremote

log = logging.getLogger("kbtf")

# sid: its bpftrace (0.27) reads fentry arguments right on big-endian s390x; trixie's 0.23
# reads them as 0 (bpftrace's "Fixes for s390 big endian systems", PR #5272).
SUITE = "sid"
PACKAGES = ("bash", "coreutils", "util-linux", "mount", "kmod", "busybox-static", "bpftrace",
            "bpftool", "grep", "sed", "gzip", "tar", "xz-utils")
# Where the guest sees the host dirs shared with it (harness/guest/vm.py mounts them):
# selftests only in BPF CI jobs' guests, modules (the kernel's own) in distro guests.
SHARES = ("run", "repo", "out", "selftests", "modules")
# What BPF selftests runners need beyond PACKAGES: the tools BPF CI's runners install
# (libbpf/ci run-vmtest/install-dependencies.sh) for a guest that runs on their root.
VMTEST_PACKAGES = ("binutils", "ethtool", "gawk", "iproute2", "iptables", "iputils-ping",
                   "keyutils", "nftables", "procps", "openssl")
ROOT_TIMEOUT = 1800  # mmdebstrap: download and extract (~10-15 s measured, the archive may be slow)

# What kbtf's init prints on the serial console just before it starts the shell.
SHELL_MARKER = "KBTF-INIT:SHELL"
# PID 1 of a foreign guest. The kernel passes unknown cmdline words to init as environment:
# kbtf_tty names the serial console the shell runs on.
INIT = """#!/bin/bash
# kbtf guest init: mount what the suites use, then a shell on the serial console;
# power off when it exits.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
ln -sf /proc/self/fd /dev/fd   # bpftrace 0.27 needs it; an extract tree has none
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
for tag in $(cat /sys/bus/virtio/drivers/9pnet_virtio/virtio*/mount_tag | tr '\\0' '\\n'); do
    case "$tag" in kbtf_*) [ -d "/kbtf/${tag#kbtf_}" ] || continue ;; *) continue ;; esac
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 "$tag" "/kbtf/${tag#kbtf_}"
done
# The harness types nothing before this line: input typed early can overflow the tty.
echo "KBTF-INIT:SHELL" >"/dev/$kbtf_tty"
/bin/bash --norc --noprofile --noediting <"/dev/$kbtf_tty" >"/dev/$kbtf_tty" 2>&1
busybox poweroff -f
"""


def root_key(arch: Arch, extra: tuple[str, ...] = ()) -> str:
    """Content address of ``arch``'s root tree (with the ``extra`` packages)."""
    blob = json.dumps({"arch": arch.debian_arch, "suite": SUITE, "packages": PACKAGES,
                       "init": INIT, "shares": SHARES, "version": 1,
                       **({"extra": sorted(extra)} if extra else {})}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def ensure_root(arch: Arch, cache_dir: Path, extra: tuple[str, ...] = (),
                say: cacheremote.Progress = log.info) -> Path:
    """The root tree for ``arch``, with PACKAGES and the ``extra`` ones (made once into
    ``cache_dir``/roots/<name>/tree, or pulled from the run's cache remote).

    Raises ToolMissing if mmdebstrap is absent, CommandError (naming the log) if it fails.
    """
    final = cache_dir / "roots" / f"{arch.debian_arch}-{SUITE}-{root_key(arch, extra)}"

    def fill(tmp: Path) -> None:
        say(f"kbtf: making the {arch.name} guest root {final.name} (mmdebstrap, {SUITE})")
        tree = tmp / "tree"
        provision.make_tree(tree, SUITE, arch.debian_arch, (*PACKAGES, *extra), "extract",
                            tmp / "root.log", ROOT_TIMEOUT)
        # An extract tree lacks the merged-/usr links a normal install creates.
        for link in ("bin", "sbin", "lib"):
            if not (tree / link).exists() and (tree / "usr" / link).is_dir():
                (tree / link).symlink_to(f"usr/{link}")
        for share in SHARES:
            (tree / "kbtf" / share).mkdir(parents=True, exist_ok=True)
        init = tree / "kbtf" / "init"
        init.write_text(INIT)
        init.chmod(0o755)

    cacheremote.populate(final, (final / "tree" / "kbtf" / "init").exists, fill, "root.log", say)
    return final / "tree"
