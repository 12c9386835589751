"""virtme-ng and QEMU command lines."""

import gzip
from pathlib import Path

from harness.arches import get_arch
from harness.guest import vm
from harness.guest.guestroot import package_version


def spec(kvm: bool, pidfile: Path | None = None) -> vm.BootSpec:
    return vm.BootSpec(get_arch("x86_64"), Path("/c/bzImage"), kvm, pidfile=pidfile)


def test_vng_argv_tcg() -> None:
    argv = vm.vng_argv("/v/vng", spec(False, Path("/r/q.pid")))
    assert argv[:5] == ["/v/vng", "--run", "/c/bzImage", "--force-9p", "--disable-monitor"]
    assert argv[argv.index("--qemu") + 1] == str(vm.QEMU_WRAPPER)
    assert "--disable-kvm" in argv
    assert argv[argv.index("--memory") + 1] == "2G"
    # loglevel=7 after virtme-ng's own "quiet loglevel=1": WARNINGs reach the console log.
    assert argv[-7:-1] == ["--append", "panic=-1", "--append", "oops=panic",
                           "--append", "loglevel=7"]
    assert argv[-1] == "--qemu-opts=-no-reboot -pidfile /r/q.pid"


def test_vng_argv_kvm_has_no_disable_flag() -> None:
    argv = vm.vng_argv("vng", spec(True))
    assert "--disable-kvm" not in argv
    assert argv[-1] == "--qemu-opts=-no-reboot"


def test_kbtf_launcher_qemu_argv_and_guest_paths(tmp_path: Path) -> None:
    run = Path("/r/run")
    shares = (vm.Share("run", run), vm.Share("repo", Path("/repo")),
              vm.Share("out", run / "p/guests/g.out", writable=True))
    s390 = vm.BootSpec(get_arch("s390x"), Path("/k/bzImage"), False, launcher="kbtf",
                       root=Path("/roots/s390x"), shares=shares, pidfile=Path("/r/q.pid"))
    argv = vm.qemu_argv("qemu-system-s390x", s390, tmp_path / "console.log")
    assert argv[:6] == ["qemu-system-s390x", "-M", "s390-ccw-virtio", "-cpu", "max", "-accel"]
    assert "-nodefaults" not in argv  # s390x keeps its SCLP console for -serial
    cmdline = argv[argv.index("-append") + 1]
    assert "console=hvc0" in cmdline and "kbtf_tty=ttysclp0" in cmdline
    assert "init=/kbtf/init" in cmdline and "loglevel=7" in cmdline
    assert cmdline.split()[-1] == "nokaslr"  # s390x's own word (arches.py says why)
    assert "local,id=fs_root,path=/roots/s390x,security_model=none,readonly=on" in argv
    assert "virtio-9p-ccw,fsdev=fs_out,mount_tag=kbtf_out" in argv
    assert "local,id=fs_out,path=/r/run/p/guests/g.out,security_model=mapped-xattr" in argv
    assert not [a for a in argv if "security_model=none" in a and "readonly=on" not in a]
    # The most specific share wins: the writable out dir inside the read-only run dir.
    assert s390.guest_path(run / "p/guests/g.out/k.tar.xz") == "/kbtf/out/k.tar.xz"
    assert s390.guest_path(run / "p/modules/m.ko") == "/kbtf/run/p/modules/m.ko"
    assert vm.BootSpec(get_arch("x86_64"), Path("/k"), False).guest_path(run) == "/r/run"


def test_the_root_and_immutable_shares_are_cached_by_the_guest_the_others_not() -> None:
    shares = (vm.Share("run", Path("/r")), vm.Share("out", Path("/o"), writable=True),
              vm.Share("selftests", Path("/s"), immutable=True))
    spec = vm.BootSpec(get_arch("x86_64"), Path("/k"), False, launcher="kbtf",
                       root=Path("/root"), shares=shares)
    assert "rootflags=trans=virtio,version=9p2000.L,msize=512000,cache=loose " in \
        vm.kbtf_cmdline(spec.arch)
    assert vm.remount_commands(spec) == [
        "umount /kbtf/selftests && mount -t 9p -o trans=virtio,version=9p2000.L,"
        "msize=512000,cache=loose,ro kbtf_selftests /kbtf/selftests"]


def test_vngs_writable_shares_get_a_mapped_security_model(tmp_path: Path) -> None:
    import os
    import subprocess

    printer = tmp_path / "qemu"
    printer.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    printer.chmod(0o755)
    argv = ["-fsdev", "local,id=virtfs1,path=/,security_model=none,readonly=on",
            "-fsdev", "local,id=virtfs3,path=/r/out dir,security_model=none,multidevs=remap",
            "-append", "a b"]
    out = subprocess.run([str(vm.QEMU_WRAPPER), *argv], capture_output=True, text=True,
                         check=True, env={**os.environ, "KBTF_QEMU": str(printer)}).stdout
    assert out.splitlines() == [
        "-fsdev", "local,id=virtfs1,path=/,security_model=none,readonly=on",
        "-fsdev", "local,id=virtfs3,path=/r/out dir,security_model=mapped-xattr,multidevs=remap",
        "-append", "a b"]


def test_guest_init_is_a_clean_busybox_script(tmp_path: Path) -> None:
    """kbtf's init is plain text busybox's sh parses (a NUL or a raw newline from a Python
    escape would break the share mounts of every guest), and its reading of a 9p mount tag
    (NUL-terminated in sysfs) gives the tag."""
    import subprocess

    from harness.guest.guestroot import INIT

    assert not [c for c in INIT if ord(c) < 32 and c not in "\n\t"]
    script = tmp_path / "init"
    script.write_text(INIT)
    assert subprocess.run(["busybox", "sh", "-n", str(script)], check=False).returncode == 0
    (tmp_path / "mount_tag").write_bytes(b"kbtf_run\0")
    trim = next(line for line in INIT.splitlines() if "tag=${tag%%" in line).split("#")[0]
    out = subprocess.run(["busybox", "sh", "-c", f'read -r tag <"{tmp_path}/mount_tag"; '
                          f'{trim}; printf %s "$tag"'], capture_output=True, text=True,
                         check=True).stdout
    assert out == "kbtf_run"


def test_a_roots_package_version_comes_from_its_debian_changelog(tmp_path: Path) -> None:
    doc = tmp_path / "usr/share/doc/bpftrace"
    doc.mkdir(parents=True)
    with gzip.open(doc / "changelog.Debian.gz", "wt") as f:
        f.write("bpftrace (0.27.1-1) unstable; urgency=medium\n\n  * New upstream.\n")
    assert package_version(tmp_path, "bpftrace") == "0.27.1-1"
    with gzip.open(doc / "changelog.Debian.s390x.gz", "wt") as f:  # a binNMU's
        f.write("bpftrace (0.27.1-1+b1) unstable; urgency=low, binary-only=yes\n")
    assert package_version(tmp_path, "bpftrace") == "0.27.1-1+b1"
    assert package_version(tmp_path, "bash") is None
