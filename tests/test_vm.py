"""virtme-ng and QEMU command lines."""

from pathlib import Path

from harness import vm
from harness.arches import get_arch


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


def test_kvm_probe_argv_creates_paused_vcpu() -> None:
    argv = vm.kvm_probe_argv("qemu-system-x86_64")
    assert argv[:5] == ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host"]
    assert "-S" in argv and argv[-2:] == ["-monitor", "stdio"]
