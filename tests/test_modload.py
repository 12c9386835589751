"""The one insmod path against a fake guest: a kernel that enforces signatures is a missing
prerequisite naming what the guest says (sig_enforce, lockdown), any other refusal the
module's or kernel's failure. The messages are those of Debian's 6.12.117+deb12-amd64
booted with module.sig_enforce=1 and with lockdown=integrity."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.builds.modbuild import ModuleBuild
from harness.errors import MissingPrerequisite, ModuleLoadFailure
from harness.guest import modload
from harness.guest.console import CommandResult

REJECTED = "insmod: ERROR: could not insert module {ko}: Key was rejected by service"


class FakeGuest:
    """Answers insmod with ``insmod_error`` and the enforcement files with ``facts``."""

    console_log = Path("console.log")
    alive = True

    def __init__(self, insmod_error: str, facts: dict[str, str], dmesg: str = "") -> None:
        self.insmod_error, self.facts, self.dmesg = insmod_error, facts, dmesg
        self.memo: dict[str, object] = {}

    def once_per_boot(self, key: str, make: Callable[[], object]) -> object:
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def path(self, host: Path) -> str:
        return str(host)

    def run(self, command: str, *args: str, timeout: float = 120) -> CommandResult:
        full = " ".join([command, *args])
        if command.rsplit("; ", 1)[-1] == "insmod":  # after the removals and dmesg -C
            return CommandResult(full, 1, "", self.insmod_error.format(ko=args[0]))
        if full.startswith("dmesg |"):
            return CommandResult(full, 0, self.dmesg, "")
        for path, value in self.facts.items():
            if full == f"cat {path}":
                return CommandResult(full, 0, value + "\n", "")
        return CommandResult(full, 0, "", "")


def build(tmp_path: Path) -> ModuleBuild:
    """A build holding a real module (its .modinfo gives the load order)."""
    ko = Path(__file__).parent / "data" / "kbtf_types-distilled.ko"
    return ModuleBuild("kbtf_types", "default", (ko,), tmp_path / "build.log", False)


def test_enforced_signatures_are_a_missing_prerequisite(tmp_path: Path) -> None:
    guest = FakeGuest(REJECTED, {
        "/sys/module/module/parameters/sig_enforce": "Y",
        "/sys/kernel/security/lockdown": "[none] integrity confidentiality"})
    with pytest.raises(MissingPrerequisite, match=(
            r"Key was rejected by service: the kernel enforces module signatures "
            r"\(sig_enforce=Y, lockdown: \[none\] integrity confidentiality\): sign it")):
        modload.insert(guest, build(tmp_path), (), [])  # type: ignore[arg-type]


def test_lockdown_is_signature_enforcement_too(tmp_path: Path) -> None:
    # What Debian's 6.12.117+deb12-amd64 said booted with lockdown=integrity.
    guest = FakeGuest("insmod: ERROR: could not insert module {ko}: Operation not permitted", {
        "/sys/module/module/parameters/sig_enforce": "N",
        "/sys/kernel/security/lockdown": "none [integrity] confidentiality"},
        dmesg="[    8.247659] Lockdown: insmod: unsigned module loading is restricted; see "
              "man kernel_lockdown.7\n")
    with pytest.raises(MissingPrerequisite, match=(
            r"Operation not permitted: the kernel enforces module signatures "
            r"\(sig_enforce=N, lockdown: none \[integrity\] confidentiality\)")):
        modload.insert(guest, build(tmp_path), (), [])  # type: ignore[arg-type]


def test_other_refusals_are_the_module_failing(tmp_path: Path) -> None:
    guest = FakeGuest("insmod: ERROR: could not insert module {ko}: Invalid parameters", {})
    with pytest.raises(ModuleLoadFailure, match="Invalid parameters"):
        modload.insert(guest, build(tmp_path), (), [])  # type: ignore[arg-type]


@pytest.mark.parametrize(("stderr", "dmesg", "reason"), [
    ("insmod: ERROR: could not insert module m.ko: No such device", "", modload.HARDWARE),
    # ENXIO is the module's own failure, however alike its message reads.
    ("insmod: ERROR: could not insert module m.ko: No such device or address", "", None),
    # Free dmesg text (a driver's message) never makes a refusal a missing prerequisite.
    ("insmod: ERROR: could not insert module m.ko: Invalid argument",
     "[ 3.1] m: No such device found, giving up", None),
    ("insmod: ERROR: could not insert module m.ko: Operation not permitted",
     "[ 8.2] Lockdown: insmod: unsigned module loading is restricted; see man kernel_lockdown.7",
     modload.SIGNATURES),
    ("insmod: ERROR: could not insert module m.ko: Operation not permitted",
     "[ 8.2] m: unsigned module loading is restricted", None),
])
def test_refusal_matches_the_errno_exactly(stderr: str, dmesg: str, reason: str | None) -> None:
    assert modload.refusal(stderr, dmesg) == reason


def test_enxio_from_init_fails_the_module(tmp_path: Path) -> None:
    guest = FakeGuest("insmod: ERROR: could not insert module {ko}: No such device or address", {})
    with pytest.raises(ModuleLoadFailure, match="No such device or address"):
        modload.insert(guest, build(tmp_path), (), [])  # type: ignore[arg-type]


class KernelModulesGuest(FakeGuest):
    """A guest whose own kernel modules (modprobe -d /kbtf/modules) hold ``available``."""

    def __init__(self, available: set[str]) -> None:
        super().__init__("", {})
        self.available = available
        self.inserted: list[str] = []

    def run(self, command: str, *args: str, timeout: float = 120) -> CommandResult:
        if "modprobe -d" in command:
            name = re.findall(r"modprobe -d \S+ (\w+)", command)[0]
            return CommandResult(command, 0 if name in self.available else 1, "", "")
        if command.rsplit("; ", 1)[-1] == "insmod":
            self.inserted.append(args[0])
            return CommandResult(command, 0, "", "")
        return super().run(command, *args, timeout=timeout)


def test_a_dependency_on_the_kernels_own_module_is_modprobed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = build(tmp_path)
    deps = {"kbtf_types_distilled": ("videodev",)}
    monkeypatch.setattr(modload, "load_order", lambda kos: (kos, deps))
    guest = KernelModulesGuest({"videodev"})
    loaded: list[str] = []
    modload.insert(guest, b, (), loaded)  # type: ignore[arg-type]
    assert loaded == ["kbtf_types_distilled"] and guest.inserted == [str(b.kos[0])]
    with pytest.raises(MissingPrerequisite, match="depends on videodev, which no given module"):
        modload.insert(KernelModulesGuest(set()), b, (), [])  # type: ignore[arg-type]


def test_an_insert_is_one_guest_command(tmp_path: Path) -> None:
    """The removal of an earlier load and the kernel log's clearing ride along with the
    insmod: one round trip (0.1-0.3 s under TCG each)."""
    guest = KernelModulesGuest(set())
    commands: list[str] = []
    real = guest.run

    def run(command: str, *args: str, timeout: float = 120) -> CommandResult:
        commands.append(command)
        return real(command, *args, timeout=timeout)

    guest.run = run  # type: ignore[method-assign]
    modload.insert(guest, build(tmp_path), (), [])  # type: ignore[arg-type]
    assert commands == ["rmmod kbtf_types_distilled 2>/dev/null; dmesg -C; insmod"]


def test_a_build_stays_loaded_until_something_replaces_it(tmp_path: Path) -> None:
    """ensure_loaded inserts a build once per boot: again only when kbtf inserted another
    build (or parameters) under its names, or the module is gone from /proc/modules."""
    b = build(tmp_path)
    copy = tmp_path / "split" / b.kos[0].name
    copy.parent.mkdir()
    copy.write_bytes(b.kos[0].read_bytes())
    other = ModuleBuild("kbtf_types", "split", (copy,), tmp_path / "build.log", False)
    guest = KernelModulesGuest(set())
    listed = {"ok": True}
    real = guest.run

    def run(command: str, *args: str, timeout: float = 120) -> CommandResult:
        if command.startswith("grep -q"):
            return CommandResult(command, 0 if listed["ok"] else 1, "", "")
        return real(command, *args, timeout=timeout)

    guest.run = run  # type: ignore[method-assign]
    for _ in range(3):
        assert modload.ensure_loaded(guest, b) == ["kbtf_types_distilled"]  # type: ignore[arg-type]
    assert len(guest.inserted) == 1
    modload.ensure_loaded(guest, b, ("x=1",))  # type: ignore[arg-type]
    modload.ensure_loaded(guest, other)  # type: ignore[arg-type]
    modload.ensure_loaded(guest, other)  # type: ignore[arg-type]
    assert len(guest.inserted) == 3
    listed["ok"] = False  # removed behind kbtf's back (test_rmmod)
    modload.ensure_loaded(guest, other)  # type: ignore[arg-type]
    assert len(guest.inserted) == 4
