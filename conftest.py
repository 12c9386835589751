"""kbtf's pytest options. The suites' hooks and fixtures live in suites/conftest.py."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kbtf", "kbtf matrix point")
    group.addoption("--arch", action="append", default=None, metavar="NAME",
                    help="architecture to build and boot, a matrix axis (repeatable): "
                    "x86_64, aarch64, s390x (default: the host's)")
    group.addoption("--launcher", default=None, choices=["kbtf", "vng"],
                    help="how guests boot: kbtf (QEMU with a Debian root of the guest's arch "
                    "and kbtf's init; the default) or vng (virtme-ng over the host's root; "
                    "host arch only)")
    group.addoption("--accel", default="auto", choices=["auto", "kvm", "tcg"],
                    help="how host-arch guests run: auto (KVM if a probe shows it runs a guest, "
                    "and a KVM boot that prints nothing is retried under TCG; the default), "
                    "kvm (an error if the probe fails) or tcg. Foreign arches are always TCG")
    group.addoption("--kernel", action="append", default=None, metavar="SPEC",
                    help="the kernel source, a matrix axis (repeatable): 'debian:6.1', "
                    "'debian:6.12', 'debian:7.2' (Debian's linux-source-X, fetched into the "
                    "cache) or a PATH to a kernel tree (a git checkout too); default: "
                    "debian:6.12")
    group.addoption("--toolchain", action="append", default=None, metavar="SPEC",
                    help="compiler family, a matrix axis (repeatable): gcc (default), llvm "
                    "(the newest installed clang-N the tree accepts) or llvm-N; modules are "
                    "built with their kernel's")
    group.addoption("--pahole", action="append", default=None, metavar="SPEC",
                    help="the kernel's pahole (a matrix axis, repeatable): 'system', "
                    "'debian:1.24|1.30|1.32' (provisioned), a path to a binary or a pahole "
                    "source checkout (built with cmake); default: the installed pahole if "
                    ">= 1.28, else debian:1.30")
    group.addoption("--module-pahole", action="append", default=None, metavar="SPEC",
                    help="the pahole `make M=` runs (a matrix axis, repeatable; same specs); "
                    "default: the kernel's. Varying it never rebuilds the kernel")
    group.addoption("--module", action="append", default=None, metavar="PATH[:param=value]",
                    help="an out-of-tree module directory (with a Kbuild or Makefile) to "
                    "build, load and check in every BTF mode (repeatable; never written to); "
                    ":param=value pairs are passed to insmod. kbtf's modules/kbtf_hello is "
                    "always checked")
    group.addoption("--dkms", action="append", default=None, metavar="[SUITE:]PACKAGE|DIR",
                    help="a DKMS package for the generic module suite, built by the real dkms "
                    "in private trees (repeatable): Debian's (downloaded from SUITE, default "
                    "bookworm, never installed) or a directory holding a dkms.conf")
    group.addoption("--distro", action="append", default=None, metavar="SPEC",
                    help="a distro's own kernel, a matrix axis (repeatable): debian:bookworm "
                    "(6.1), debian:bookworm-security (6.12+deb12), debian:trixie; its image, "
                    "headers and kbuild packages are downloaded and unpacked into the cache, "
                    "modules built against the headers as the Ubuntu SRU plan does, the image "
                    "booted. Without --arch/--kernel/--pahole/--toolchain only distro tests run")
    group.addoption("--distro-deb", action="append", default=None, metavar="FILE",
                    help="local kernel packages (linux-image, linux-headers, -common, kbuild) "
                    "for distros kbtf cannot download, grouped by release (repeatable)")
    group.addoption("--distro-cmdline", action="append", default=[], metavar="WORD",
                    help="a kernel command line word for the distro kernels' guests "
                    "(repeatable), e.g. module.sig_enforce=1 or lockdown=integrity to see a "
                    "kernel that enforces module signatures (unsigned modules: a skip)")
    group.addoption("--btf-growth-limit", type=float, default=None, metavar="FACTOR",
                    help="fail a point whose module BTF has more than FACTOR times the types "
                    "of the pahole axis's baseline (default: growth over 2.0 is only flagged "
                    "in summary.md and matrix.json)")
    group.addoption("--kconfig-add", action="append", default=[], metavar="FILE|CONFIG_X=v",
                    help="extra kconfig fragment or option, applied after kbtf's (repeatable)")
    group.addoption("--sabotage", default=None,
                    choices=["strip-btf-base", "strip-btf", "corrupt-btf", "warn-on-load",
                             "oops-on-load", "hang-on-load", "warn-at-poweroff"],
                    help="break things on purpose to see the suites fail: strip a BTF section "
                    "from the built modules (objcopy), make their .BTF invalid (its types "
                    "overlapping its strings), or load modules/kbtf_fault after "
                    "kbtf_hello, which WARNs, Oopses or sleeps forever in its init, or WARNs "
                    "while the guest powers off")
    group.addoption("--point", action="append", default=None, metavar="ID",
                    help="run only this unit of the plan (a kernel's points, or a distro "
                    "kernel) or this one point (repeatable); ./kbtf plan lists the ids")
    group.addoption("--plan", action="store_true",
                    help="print the plan of this command line as JSON (one unit per kernel, "
                    "with the arguments that run only it) and exit; builds nothing")
    group.addoption("--vmtest-job", action="append", default=None, metavar="NAME",
                    help="reproduce a BPF CI job by its name, e.g. 'x86_64-gcc / test "
                    "(test_progs, false, 360) / test_progs on x86_64 with gcc' or "
                    "x86_64-gcc/test_progs (repeatable): BPF CI's config of each --kernel, its "
                    "selftests, the runner in a guest; the matrix suites do not run")
    group.addoption("--vmtest-tests", default=None, metavar="all|module-btf|NAME[/SUB],...",
                    help="the tests of a --vmtest-job runner (default, and 'all': its whole "
                    "list in one runner, as BPF CI runs it; 'module-btf': the module-BTF "
                    "tests the tree has, each on its own)")
    group.addoption("--guest-cpus", type=int, default=None, metavar="N",
                    help="vCPUs of a BPF CI job's guest (default: BPF CI's 4, no more than "
                    "this host's cores)")
    group.addoption("--guest-memory", default=None, metavar="SIZE",
                    help="memory of a BPF CI job's guest (default: BPF CI's 5G)")
    group.addoption("--vmtest-log", default=None, metavar="FILE",
                    help="a BPF CI job's log (GitHub's raw download, or pasted): its job and "
                    "its red tests are what runs (unless --vmtest-job/--vmtest-tests say "
                    "otherwise); summary.md says which reproduced")
    group.addoption("--shell", action="store_true",
                    help="boot the first unit of this command line (or its --point) with its "
                    "modules or selftests and hand its shell to the terminal (./kbtf shell)")
    group.addoption("--shell-command", default=None, metavar="CMD",
                    help="with --shell: run CMD in the guest (a BPF CI job's: from its "
                    "selftests dir) and exit with its exit code (./kbtf shell ... -- CMD)")
    group.addoption("--cache-remote", default=None, metavar="oci://HOST[:PORT]/REPO",
                    help="share kernels through an OCI registry: pull an entry before building "
                    "it, push what was built (default: $KBTF_CACHE_REMOTE)")
    group.addoption("--cache-dir", default=None, metavar="DIR",
                    help="build cache (default: $KBTF_CACHE_DIR or ~/.cache/kbtf)")
