"""GuestPool: a lost guest is booted again for the next test, under a new log name; a second
loss in a row ends the point; a passing test breaks the row."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.arches import get_arch
from harness.errors import BootError, HarnessError, KernelTrouble
from harness.guest import vm
from harness.guest.console import CommandResult
from harness.guest.pool import GuestPool
from harness.guest.session import GuestSession, boot_name


class FakeSession(GuestSession):
    """A session that 'boots' without QEMU; ``alive`` is set by the test."""

    def __init__(self, logdir: Path, boot: int) -> None:
        super().__init__(vm.BootSpec(get_arch("x86_64"), Path("/k/bzImage"), False), logdir,
                         "guest-A-gw0", boot)
        self.is_alive = False

    def start(self, timeout: float = 300) -> None:
        self.is_alive = True

    @property
    def alive(self) -> bool:
        return self.is_alive


def get(pool: GuestPool, boots: list[FakeSession], tmp_path: Path) -> FakeSession:
    def make(boot: int) -> FakeSession:
        boots.append(FakeSession(tmp_path, boot))
        return boots[-1]

    session = pool.get("key", make)
    assert isinstance(session, FakeSession)
    return session


def test_live_guest_is_reused(tmp_path: Path) -> None:
    pool, boots = GuestPool(), list[FakeSession]()
    first = get(pool, boots, tmp_path)
    assert get(pool, boots, tmp_path) is first and len(boots) == 1


def test_lost_guest_reboots_once_with_its_own_logs(tmp_path: Path) -> None:
    pool, boots = GuestPool(), list[FakeSession]()
    first = get(pool, boots, tmp_path)
    first.is_alive = False
    second = get(pool, boots, tmp_path)
    assert second is not first and second.boot == 2
    assert first.console_log.name == "guest-A-gw0.console.log"
    assert second.console_log.name == "guest-A-gw0.boot2.console.log"
    second.is_alive = False
    with pytest.raises(HarnessError, match="lost twice in a row") as err:
        get(pool, boots, tmp_path)
    assert err.value.log == second.console_log  # the last boot's log, kept
    with pytest.raises(HarnessError):  # the point stays ended
        get(pool, boots, tmp_path)


def test_a_passing_test_breaks_the_row(tmp_path: Path) -> None:
    pool, boots = GuestPool(), list[FakeSession]()
    first = get(pool, boots, tmp_path)
    first.is_alive = False
    second = get(pool, boots, tmp_path)
    pool.passed(second)
    second.is_alive = False
    third = get(pool, boots, tmp_path)
    assert third.boot == 3


def test_boot_name() -> None:
    assert boot_name("guest-A-gw0", 1) == "guest-A-gw0"
    assert boot_name("guest-A-gw0", 3) == "guest-A-gw0.boot3"


def sha_guest(tmp_path: Path, want: str, release: str | None = None) -> GuestSession:
    """A guest that must show vmlinux BTF of sha256 ``want`` (and ``release``)."""
    spec = vm.BootSpec(get_arch("x86_64"), Path("/k/bzImage"), False, btf_sha256=want,
                       release=release)
    return GuestSession(spec, tmp_path, "guest-A-gw0")


def test_the_guest_must_run_the_kernel_that_was_built(tmp_path: Path) -> None:
    ok = CommandResult("sha256sum", 0, "ab" * 32 + "  /sys/kernel/btf/vmlinux\n", "")
    guest = sha_guest(tmp_path, "ab" * 32)
    assert guest._identity_command() == "sha256sum /sys/kernel/btf/vmlinux"
    guest._check_kernel_identity(ok)
    with pytest.raises(BootError, match="does not run the kernel that was built"):
        sha_guest(tmp_path, "cd" * 32)._check_kernel_identity(ok)
    unreadable = CommandResult("sha256sum", 1, "", "sha256sum: /sys/kernel/btf/vmlinux: No such "
                               "file or directory\n")
    with pytest.raises(BootError, match="cannot read /sys/kernel/btf/vmlinux"):
        sha_guest(tmp_path, "ab" * 32)._check_kernel_identity(unreadable)


def test_one_first_command_checks_release_and_btf(tmp_path: Path) -> None:
    guest = sha_guest(tmp_path, "ab" * 32, release="6.12.117")
    assert guest._identity_command() == "uname -r; sha256sum /sys/kernel/btf/vmlinux"
    both = CommandResult("", 0, "6.12.117\n" + "ab" * 32 + "  /sys/kernel/btf/vmlinux\n", "")
    guest._check_kernel_identity(both)
    with pytest.raises(BootError, match=r"runs kernel 6\.1\.0, not 6\.12\.117"):
        guest._check_kernel_identity(CommandResult("", 0, "6.1.0\n" + "ab" * 32 + "\n", ""))
    plain = vm.BootSpec(get_arch("x86_64"), Path("/k/bzImage"), False)
    assert GuestSession(plain, tmp_path, "guest-A-gw0")._identity_command() == "true"


class TroubledSession(FakeSession):
    """Its shutdown shows a kernel WARNING."""

    def close(self, timeout: float = 30) -> None:
        self.is_alive = False
        raise KernelTrouble("guest-A-gw0: kernel warning during 'shutdown': WARNING: CPU: 0 "
                            "PID: 1 at kernel/module/main.c:123", log=self.console_log)


def test_shutdown_trouble_belongs_to_the_point_that_owns_the_guest(tmp_path: Path) -> None:
    pool = GuestPool()
    pool.get("kernel-A", lambda boot: TroubledSession(tmp_path, boot), owner="point-1")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "guest-A-gw0.console.log").write_text("")  # a quiet shutdown
    pool.get("kernel-B", lambda boot: FakeSession(tmp_path / "b", boot), owner="point-2")
    assert pool.close_owned("point-2") == ["guest-A-gw0"]
    with pytest.raises(KernelTrouble, match="WARNING: CPU: 0 PID: 1"):
        pool.close_owned("point-1")
    assert pool.close_owned("point-1") == []  # closed once: nothing left for the session end
    pool.close_all()  # nothing raises at the end of the session


def test_losses_count_per_point_and_crashes_are_no_losses(tmp_path: Path) -> None:
    pool, boots = GuestPool(), list[FakeSession]()

    def get_for(owner: str) -> FakeSession:
        def make(boot: int) -> FakeSession:
            boots.append(FakeSession(tmp_path, boot))
            return boots[-1]
        session = pool.get("kernel-A", make, owner=owner)
        assert isinstance(session, FakeSession)
        return session

    for _ in range(3):  # the kernel crashed under p1's tests three times: FAILED tests, no loss
        crashed = get_for("p1")
        crashed.crashed, crashed.is_alive = True, False
    lost = get_for("p1")
    lost.is_alive = False  # a harness loss (QEMU vanished) under p1
    lost_again = get_for("p1")
    lost_again.is_alive = False
    with pytest.raises(HarnessError, match="lost twice in a row"):
        get_for("p1")
    assert get_for("p2").alive  # p2 shares the kernel: its guest is booted again


def test_a_boot_that_fails_is_a_loss(tmp_path: Path) -> None:
    pool, starts = GuestPool(), []

    class FailingBoot(FakeSession):
        def start(self, timeout: float = 300) -> None:
            starts.append(self.boot)
            raise BootError("no shell by the boot deadline")

    for _ in range(2):
        with pytest.raises(BootError):
            pool.get("k", lambda boot: FailingBoot(tmp_path, boot), owner="p")
    with pytest.raises(HarnessError, match="lost twice"):
        pool.get("k", lambda boot: FailingBoot(tmp_path, boot), owner="p")
    assert starts == [1, 2]


def test_kill_never_signals_a_stranger_named_by_a_stale_pidfile(tmp_path: Path) -> None:
    import subprocess

    stranger = subprocess.Popen(["sleep", "30"])
    try:
        session = GuestSession(vm.BootSpec(get_arch("x86_64"), Path("/k/bzImage"), False),
                               tmp_path, "guest-A-gw0")
        session._pidfile.write_text(f"{stranger.pid}\n")  # left by a QEMU killed earlier
        session.kill()

        class Lost:  # the pexpect child of a guest that was started, then lost
            pid = None

            def close(self, force: bool = False) -> None:
                pass

        session._child = Lost()  # type: ignore[assignment]
        session._pidfile.write_text(f"{stranger.pid}\n")
        session.kill()  # reaches the pidfile: the pid is no QEMU of this session
        time.sleep(0.1)
        assert stranger.poll() is None, "kill() signalled a process it did not start"
        assert not session._pidfile.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_our_qemu_is_recognised_by_its_pidfile_argument(tmp_path: Path) -> None:
    import subprocess

    session = GuestSession(vm.BootSpec(get_arch("x86_64"), Path("/k/bzImage"), False),
                           tmp_path, "guest-A-gw0")
    # Stands in for QEMU: a live process whose argv names the pidfile.
    qemu = subprocess.Popen(["bash", "-c", "sleep 30; true", "qemu", "-pidfile",
                             str(session._pidfile)])
    try:
        session._pidfile.write_text(f"{qemu.pid}\n")
        deadline = time.monotonic() + 10  # until the child has exec'd its argv
        while session._our_qemu() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert session._our_qemu() == qemu.pid
    finally:
        qemu.kill()
        qemu.wait()


def test_a_guest_lost_before_its_console_quotes_the_serial_consoles_fault(
        tmp_path: Path) -> None:
    from harness.errors import GuestLost

    session = GuestSession(vm.BootSpec(get_arch("s390x"), Path("/k/bzImage"), False),
                           tmp_path, "guest-A-gw0")
    session.console_log.write_text("")
    # s390x 7.2.13 at a random base under QEMU 7.2's TCG (captured)
    session.serial_log.write_text("Linux version 7.2.13 (root@vm) #1 SMP PREEMPT\n"
                                  "Kernel fault: interruption code 0001 ilc:1\n"
                                  "Kernel random base: 3fffd108000\n"
                                  "PSW : 0400c00180000000 000003fffd208002 (000003fffd208002)\n")
    with pytest.raises(GuestLost, match="serial console says: Kernel fault: interruption "
                       "code 0001 ilc:1 / PSW : 0400c"):
        session._lost("boot", "QEMU exited")
