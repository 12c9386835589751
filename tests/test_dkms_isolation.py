"""The real dkms builds a package confined, whatever the host's dkms state (issue 32 items
10-12): a host whose /etc/dkms/framework.conf.d names a signing program and key, whose
/var/lib/dkms holds a MOK key and whose /lib/modules/<release>/modules.dep lists compressed
modules neither signs nor compresses kbtf's build; a package's links are copied by the
rule of every user tree. A stand-in kernel build dir whose Makefile writes the module stands
in for a kernel (dkms runs `make -C <it> M=...`); the host's state is faked inside an outer
bubblewrap, never written to the machine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import REPO
from harness.errors import ConfigError

RELEASE = "6.12.99-kbtf"
pytestmark = pytest.mark.skipif(shutil.which("dkms") is None or shutil.which("bwrap") is None,
                                reason="dkms and bubblewrap are installed by ./kbtf")


def _kernel(root: Path) -> Path:
    kernel = root / "kernel"
    (kernel / "include/config").mkdir(parents=True)
    (kernel / "include/config/kernel.release").write_text(RELEASE + "\n")
    (kernel / ".config").write_text("CONFIG_NET=y\n")
    (kernel / "Makefile").write_text("all modules:\n\t@printf 'ko' > $(M)/hello.ko\n"
                                     "clean:\n\t@true\n")
    return kernel


def _package(root: Path) -> Path:
    pkg = root / "pkg"
    pkg.mkdir()
    (pkg / "dkms.conf").write_text('PACKAGE_NAME="hello"\nPACKAGE_VERSION="1.0"\n'
                                   'BUILT_MODULE_NAME[0]="hello"\n'
                                   'DEST_MODULE_LOCATION[0]="/extra"\n')
    (pkg / "Kbuild").write_text("obj-m := hello.o\n")
    return pkg


# Runs dkmsbuild.build inside the outer bubblewrap; prints what it built.
BUILD = """
import json, sys
from pathlib import Path
from harness.arches import GCC, get_arch
from harness.builds import dkmsbuild

class Target:
    dir, arch, toolchain, vmlinux = Path(sys.argv[1]), get_arch("x86_64"), GCC, Path("/none")

built = dkmsbuild.build(Path(sys.argv[2]), Target(), sys.argv[3], Path(sys.argv[4]), None)
print(json.dumps([str(k) for k in built.kos]))
"""


def _host_state(root: Path) -> list[str]:
    """bwrap arguments that give the machine a dkms state that signs and compresses."""
    etc, var, mods = root / "etc-dkms", root / "var-lib-dkms", root / "lib-modules"
    (etc / "framework.conf.d").mkdir(parents=True)
    sign = root / "sign-file"
    sign.write_text(f"#!/bin/sh\ntouch {root}/signed\n")
    sign.chmod(0o755)
    (root / "mok.key").write_text("key\n")
    (root / "mok.pub").write_text("cert\n")
    (etc / "framework.conf.d/site.conf").write_text(
        f'sign_file="{sign}"\nmok_signing_key="{root}/mok.key"\n'
        f'mok_certificate="{root}/mok.pub"\n')
    var.mkdir()
    (var / "mok.key").write_text("host key\n")
    (mods / RELEASE).mkdir(parents=True)
    (mods / RELEASE / "modules.dep").write_text("kernel/net/x.ko.zst:\n")
    return ["--bind", str(etc), "/etc/dkms", "--bind", str(var), "/var/lib/dkms",
            "--bind", str(mods), str(Path("/lib/modules").resolve())]


def test_the_hosts_dkms_state_neither_signs_nor_compresses_the_build(tmp_path: Path) -> None:
    modules = Path("/lib/modules").resolve()
    created = not modules.exists()
    if created:  # the outer bubblewrap needs a mount point there
        modules.mkdir()
    try:
        done = subprocess.run(
            ["bwrap", "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
             *_host_state(tmp_path), "--", sys.executable, "-c", BUILD,
             str(_kernel(tmp_path)), str(_package(tmp_path)), RELEASE, str(tmp_path / "out")],
            cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        if created:
            modules.rmdir()
    assert done.returncode == 0, done.stderr[-2000:]
    kos = json.loads(done.stdout.strip().splitlines()[-1])
    assert [Path(k).name for k in kos] == ["hello.ko"]  # not hello.ko.zst
    assert not (tmp_path / "signed").exists()  # the host's sign_file never ran


def test_a_packages_link_out_is_refused_and_one_inside_is_copied(tmp_path: Path) -> None:
    from harness.arches import GCC, get_arch
    from harness.builds import dkmsbuild

    class Target:
        dir, arch, toolchain, vmlinux = _kernel(tmp_path), get_arch("x86_64"), GCC, Path("/n")

    pkg = _package(tmp_path)
    (tmp_path / "users-own").mkdir()
    (pkg / "out").symlink_to(tmp_path / "users-own")
    with pytest.raises(ConfigError, match="outside the module directory"):
        dkmsbuild.build(pkg, Target(), RELEASE, tmp_path / "o1", None)
    (pkg / "out").unlink()
    (pkg / "src").mkdir()
    (pkg / "src/data.h").write_text("#define X 1\n")
    (pkg / "data.h").symlink_to("src/data.h")  # inside: copied as the file it names
    built = dkmsbuild.build(pkg, Target(), RELEASE, tmp_path / "o2", None)
    assert [k.name for k in built.kos] == ["hello.ko"]
    copied = tmp_path / "o2/dkms/src/hello-1.0/data.h"
    assert copied.is_file() and not copied.is_symlink()
    assert sorted(p.name for p in pkg.iterdir()) == ["Kbuild", "data.h", "dkms.conf", "src"]


@pytest.mark.parametrize("links", [
    [("sub/up", "..")],  # a link to a directory holding it
    [("a/l", "../b"), ("b/m", "../a")],  # two links leading to each other
    [("x", "x")],  # a link to itself
])
def test_a_loop_of_links_is_refused_in_one_line(tmp_path: Path,
                                                links: list[tuple[str, str]]) -> None:
    from harness.builds.modbuild import copy_module

    pkg = _package(tmp_path)
    for path, target in links:
        (pkg / path).parent.mkdir(parents=True, exist_ok=True)
        (pkg / path).symlink_to(target)
    with pytest.raises(ConfigError, match=r"loop|itself"):
        copy_module(pkg, tmp_path / "copy")
