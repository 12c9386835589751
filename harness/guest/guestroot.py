"""Guest root trees for foreign architectures: Debian packages extracted with mmdebstrap
(--variant=extract: no maintainer scripts, so no binfmt or qemu-user), plus kbtf's init.
Cached by content (arch, suite, packages, init), built in a temp dir and renamed, shared
through the run's cache remote."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
from pathlib import Path

from harness import provision
from harness.arches import Arch
from harness.builds import cacheremote

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
                   "keyutils", "nftables", "procps", "openssl",
                   "dash")  # /bin/sh: the runners' system() calls ("ip netns add ...")
ROOT_TIMEOUT = 1800  # mmdebstrap: download and extract (~10-15 s measured, the archive may be slow)

# What kbtf's init prints on the serial console just before it starts the shell.
SHELL_MARKER = "KBTF-INIT:SHELL"
# PID 1 of a foreign guest. The kernel passes unknown cmdline words to init as environment:
# kbtf_tty names the serial console the shell runs on.
BUSYBOX = "/bin/busybox"  # busybox-static: its applets load no shared libraries
INIT = """#!/bin/busybox sh
# kbtf guest init: mount what the suites use, then a shell on the serial console;
# power off when it exits. Busybox's static applets, not util-linux's and coreutils'
# programs: each of those loads its shared libraries over 9p first, which made this
# script 2.9 s of an x86_64 boot under TCG (busybox: 1.0 s).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sys /sys
$bb mount -t devtmpfs dev /dev
$bb mkdir -p /dev/pts && $bb mount -t devpts devpts /dev/pts
$bb ln -sf /proc/self/fd /dev/fd   # bpftrace 0.27 needs it; an extract tree has none
$bb mount -t tmpfs tmp /tmp
$bb mount -t tmpfs run /run
$bb mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
$bb mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
$bb mount -t bpf bpf /sys/fs/bpf 2>/dev/null
for f in /sys/bus/virtio/drivers/9pnet_virtio/virtio*/mount_tag; do
    read -r tag <"$f"
    tag=${tag%%[!a-z_]*}   # the tag ends in a NUL
    case "$tag" in kbtf_*) [ -d "/kbtf/${tag#kbtf_}" ] || continue ;; *) continue ;; esac
    $bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 "$tag" "/kbtf/${tag#kbtf_}"
done
# The harness types nothing before this line: input typed early can overflow the tty.
echo "KBTF-INIT:SHELL" >"/dev/$kbtf_tty"
/bin/bash --norc --noprofile --noediting <"/dev/$kbtf_tty" >"/dev/$kbtf_tty" 2>&1
$bb poweroff -f
"""


def root_key(arch: Arch, extra: tuple[str, ...] = ()) -> str:
    """Content address of ``arch``'s root tree (with the ``extra`` packages)."""
    blob = json.dumps({"arch": arch.debian_arch, "suite": SUITE, "packages": PACKAGES,
                       "init": INIT, "shares": SHARES, "version": 1,
                       **({"extra": sorted(extra)} if extra else {})}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def package_version(tree: Path, package: str) -> str | None:
    """The Debian version of ``package`` in root tree ``tree`` ("/": the host's), or None
    if it is not there: the top entry of its Debian changelog (a binNMU's own changelog
    first). An extract tree has no dpkg database, but every package ships its changelog."""
    doc = tree / "usr" / "share" / "doc" / package
    for changelog in [*sorted(doc.glob("changelog.Debian.*.gz")), doc / "changelog.Debian.gz"]:
        if changelog.is_file():
            with gzip.open(changelog, "rt", errors="replace") as f:
                m = re.match(rf"{re.escape(package)} \((?P<version>[^)\s]+)\)", f.readline())
            if m:
                return m["version"]
    return None


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
        sh = tree / "usr" / "bin" / "sh"  # dash's postinst makes it; extract runs none
        if (sh.parent / "dash").is_file() and not sh.exists():
            sh.symlink_to("dash")
        for share in SHARES:
            (tree / "kbtf" / share).mkdir(parents=True, exist_ok=True)
        init = tree / "kbtf" / "init"
        init.write_text(INIT)
        init.chmod(0o755)

    cacheremote.populate(final, lambda d: (d / "tree" / "kbtf" / "init").exists(), fill,
                         "root.log", say)
    return final / "tree"
