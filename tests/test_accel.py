"""KVM or TCG: the run's probe, the first-output deadline and the TCG retry, driven with a
fake QEMU (a script) instead of a VM."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from harness.arches import get_arch
from harness.errors import ConfigError, SilentStart
from harness.guest import accel, vm
from harness.guest import session as guest
from harness.guest.pool import GuestPool
from harness.guest.session import GuestSession
from harness.run import pointrun

# A QEMU that boots nothing under KVM (it accepts the vCPU, then stays silent), and under
# TCG plays a guest: a kernel banner into the console chardev, kbtf init's marker on the
# serial, then a shell there.
FAKE_QEMU = """#!/bin/bash
case " $* " in *" -accel kvm "*) echo "warning: host doesn't support requested feature" >&2
                                   exec sleep 600;; esac
for a in "$@"; do case "$a" in file,id=kcon,path=*) con=${a#file,id=kcon,path=};; esac; done
echo "Linux version 0.0-fake" >> "${con%,append=on}"
printf 'KBTF-INIT:SHELL\\n'
exec bash --norc --noprofile --noediting -i
"""
# Under KVM every variant is the probe: it writes the firmware banner, stays silent, or fails.
PROBE_QEMUS = {
    "prints": """for a in "$@"; do case "$a" in file,id=dbg,path=*) out=${a#file,id=dbg,path=};;
                 esac; done; printf 'SeaBIOS (version fake)\\n' > "$out"; exec sleep 600""",
    "silent": "exec sleep 600",
    "fails": "echo 'qemu: error: failed to set MSR 0x10a to 0x0' >&2; exit 1",
}


def script(path: Path, body: str) -> str:
    path.write_text(body if body.startswith("#!") else "#!/bin/bash\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def fast_deadlines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(accel, "FIRST_OUTPUT_SECONDS", {"kvm": 0.5, "tcg": 1.5})
    monkeypatch.setattr(accel, "PROBE_SECONDS", 1.0)
    monkeypatch.setattr(guest, "GUEST_WORKDIR", str(tmp_path / "guest-tmp"))


def fake_spec(tmp_path: Path, kvm: bool, qemu_body: str = FAKE_QEMU) -> vm.BootSpec:
    arch = dataclasses.replace(get_arch("x86_64"), qemu=script(tmp_path / "qemu", qemu_body))
    (tmp_path / "root").mkdir(exist_ok=True)
    return vm.BootSpec(arch, Path("/k/bzImage"), kvm, launcher="kbtf", root=tmp_path / "root")


@pytest.mark.parametrize(("body", "usable", "why"), [
    ("prints", True, "firmware printed under KVM"),
    ("silent", False, "accepted a vCPU but ran no guest code"),
    ("fails", False, "exited 1: qemu: error: failed to set MSR 0x10a"),
])
def test_probe_verdict_comes_from_guest_output(tmp_path: Path, fast_deadlines: None,
                                               body: str, usable: bool, why: str) -> None:
    device = tmp_path / "kvm"
    device.write_text("")
    start = time.monotonic()
    verdict = accel.probe_kvm(script(tmp_path / "qemu", PROBE_QEMUS[body]), tmp_path, device)
    assert verdict.usable is usable and why in verdict.why
    assert time.monotonic() - start < 5  # the silent QEMU was killed at the probe deadline


def test_probe_without_the_device(tmp_path: Path) -> None:
    verdict = accel.probe_kvm("qemu-never-run", tmp_path, tmp_path / "no-kvm")
    assert not verdict.usable and "does not exist" in verdict.why


def test_choose() -> None:
    works, broken = accel.KvmVerdict(True, "ok"), accel.KvmVerdict(False, "ran no guest")
    assert accel.choose("auto", works) == (True, "ok")
    assert accel.choose("auto", broken) == (False, "ran no guest")
    assert accel.run_verdict("tcg", "qemu-never-run", Path("/nowhere")) == (False, "--accel tcg")
    assert accel.run_verdict("auto", None, Path("/nowhere"))[0] is False  # no host-arch guest
    with pytest.raises(ConfigError, match="--accel kvm: KVM does not run guests here "
                                          r"\(ran no guest\); use --accel auto or --accel tcg"):
        accel.choose("kvm", broken)


def test_guest_that_prints_boots(tmp_path: Path, fast_deadlines: None) -> None:
    session = GuestSession(fake_spec(tmp_path, kvm=False), tmp_path / "logs", "guest-A-gw0")
    try:
        session.start(timeout=30)
        assert session.run("echo", "hi").stdout == "hi\n" and session.accel == "tcg"
    finally:
        session.kill()


def test_silent_tcg_boot_is_a_boot_error_at_the_first_output_deadline(
        tmp_path: Path, fast_deadlines: None) -> None:
    session = GuestSession(fake_spec(tmp_path, kvm=False, qemu_body="exec sleep 600"),
                           tmp_path / "logs", "guest-A-gw0")
    start = time.monotonic()
    with pytest.raises(SilentStart, match=r"no output at all .* 2s after QEMU started under TCG"
                       ) as err:
        session.start(timeout=300)
    assert time.monotonic() - start < 10  # the first-output deadline, not the boot deadline
    assert err.value.log == session.qemu_log and not session.alive


def test_silent_kvm_boot_is_retried_under_tcg_once(tmp_path: Path, fast_deadlines: None) -> None:
    pool = GuestPool()
    logdir = tmp_path / "logs"
    start = time.monotonic()
    session = pool.get("A", lambda boot: GuestSession(fake_spec(tmp_path, kvm=True), logdir,
                                                      "guest-A-gw0", boot))
    try:
        assert time.monotonic() - start < 15
        assert not session.spec.kvm and session.accel == accel.TCG_AFTER_SILENT_KVM
        assert session.run("true").ok
        # The silent attempt's logs stay; QEMU's warning is in its own log, not the console.
        assert "requested feature" in (logdir / "guest-A-gw0.kvm-silent.qemu.log").read_text()
        assert (logdir / "guest-A-gw0.kvm-silent.console.log").read_text() == ""
        assert "Linux version" in session.console_log.read_text()
        # Later guests of this process go straight to TCG.
        other = pool.get("A'", lambda boot: GuestSession(fake_spec(tmp_path, kvm=True), logdir,
                                                         "guest-A-prime-gw0", boot))
        assert not other.spec.kvm and not (logdir / "guest-A-prime-gw0.kvm-silent.qemu.log"
                                           ).exists()
    finally:
        pool.close_all()


def test_probe_with_a_real_kernel_needs_its_first_output(tmp_path: Path,
                                                          fast_deadlines: None) -> None:
    prints = GuestSession(fake_spec(tmp_path, kvm=False), tmp_path / "a", "kvm-probe")
    assert prints.shows_output() and not prints.alive
    start = time.monotonic()
    silent = GuestSession(fake_spec(tmp_path, kvm=True), tmp_path / "b", "kvm-probe")
    assert not silent.shows_output() and not silent.alive
    assert time.monotonic() - start < 5


def test_a_silent_kvm_boot_sends_the_run_to_tcg(tmp_path: Path) -> None:
    run_dir = tmp_path
    assert pointrun.run_kvm(run_dir, True)
    session = GuestSession(fake_spec(tmp_path, kvm=True), tmp_path, "guest-A-gw0")
    session.accel = accel.TCG_AFTER_SILENT_KVM  # what the pool's TCG retry leaves
    pointrun.kvm_checked(session, run_dir, True)
    assert accel.kvm_silent(run_dir) is not None and not pointrun.run_kvm(run_dir, True)
    later = pointrun.with_accel_note(
        GuestSession(fake_spec(tmp_path, kvm=False), tmp_path, "guest-A-prime-gw0"), run_dir, True)
    assert later.accel == accel.TCG_AFTER_SILENT_KVM  # the summary says why
    assert not pointrun.run_kvm(run_dir, False)


def test_the_kernel_probe_verdict_is_kept_per_host_boot_and_qemu(tmp_path: Path) -> None:
    memo = accel.boot_memo(tmp_path, "/usr/bin/qemu-system-x86_64 1")
    assert memo != accel.boot_memo(tmp_path, "/usr/bin/qemu-system-x86_64 2")  # QEMU changed
    assert accel.read_memo(memo) is None
    accel.write_memo(memo, False, "x86_64-debian6.12 printed nothing in 10s under KVM")
    assert accel.read_memo(memo) == (False, "x86_64-debian6.12 printed nothing in 10s under KVM")
    memo.write_text("{not json")
    assert accel.read_memo(memo) is None  # a damaged memo: probe again
