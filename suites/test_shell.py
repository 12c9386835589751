"""./kbtf shell: the guest of a unit of the run handed to a terminal (a pty, driven by
pexpect as a user would type): its prompt, a command's output, `exit` powering it off, and
no QEMU of that shell left afterwards.

It runs once per run, on the run's first unit, after the run's builds (nothing is built
for it)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pexpect
import pytest

from harness import proc
from harness.builds.distro import DistroKernel
from harness.plan.matrix import MatrixPoint
from harness.plan.vmtest import VmtestPoint
from suites.conftest import ctx

pytestmark = pytest.mark.lifetime  # after the run's other tests: its own guest, not theirs
REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 600  # the child's plan, fetch check and boot (a boot is seconds to a minute)
COMMAND_TIMEOUT = 120
# Options of this run the shell does not take: xdist's, test selection, the unit choice.
_DROP_WITH_VALUE = ("-n", "--numprocesses", "--dist", "-k", "-m", "--point", "--maxfail")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "shell_unit" in metafunc.fixturenames:
        run = ctx(metafunc.config)
        units = run.units[:1]  # the shell boots the run's first unit
        metafunc.parametrize("shell_unit", units, ids=[u.group for u in units],
                             scope="session")


@pytest.fixture
def shell_built(pytestconfig: pytest.Config, shell_unit: MatrixPoint | VmtestPoint | DistroKernel
                ) -> str:
    """The unit's id, once this run built what its shell boots (a failed build of this run
    is reported once: the shell test is then "not run")."""
    run = ctx(pytestconfig)
    if isinstance(shell_unit, MatrixPoint):
        run.point_run(shell_unit).kernel("")
    elif isinstance(shell_unit, VmtestPoint):
        run.vmtest_run(shell_unit).selftests()
    return shell_unit.group


def shell_argv(args: list[str], unit: str) -> list[str]:
    """The ./kbtf shell command line for ``unit`` with this run's options ``args`` (its
    xdist, selection and --point options and test paths left out)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _DROP_WITH_VALUE:
            skip = arg == name  # the value is the next argument
            continue
        if re.fullmatch(r"-n\d+|-nauto", arg) or (not arg.startswith("-") and (
                arg.startswith("suites") or "::" in arg)):
            continue
        kept.append(arg)
    return [sys.executable, "-m", "pytest", "suites/", "--shell", "-p", "no:cacheprovider",
            *kept, "--point", unit]


def _qemus_under(pid: int) -> list[int]:
    """Pids of the live QEMU processes descending from process ``pid``."""
    parent: dict[int, int] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:]
        child = int(stat.parent.name)
        parent[child], names[child] = int(rest.split()[1]), name
    found = []
    for child, name in names.items():
        up = child
        while up in parent and up not in (pid, 0, 1):
            up = parent[up]
        if up == pid and name.startswith("qemu-system"):
            found.append(child)
    return found


def test_shell_hands_the_guest_to_a_terminal_and_exit_powers_it_off(
        pytestconfig: pytest.Config, shell_built: str) -> None:
    shell_unit = shell_built
    argv = shell_argv([str(a) for a in pytestconfig.invocation_params.args], shell_unit)
    log = ctx(pytestconfig).run_dir / "shell" / f"{shell_unit}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    rerun = "rerun: ./kbtf shell " + shlex.join(argv[argv.index("--shell") + 1:])
    proc.log.info("run (pty, timeout %ds): %s", START_TIMEOUT, " ".join(argv))
    with log.open("w") as out:
        child = pexpect.spawn(argv[0], argv[1:], cwd=str(REPO), encoding="utf-8",
                              codec_errors="replace", timeout=START_TIMEOUT, logfile=out)
        try:
            if child.expect(["kbtf-guest# ", pexpect.EOF]) == 1:
                pytest.fail(f"./kbtf shell ended before its guest's prompt (log: {log})\n{rerun}")
            guests = _qemus_under(child.pid or 0)
            child.sendline("echo kbtf-$((6*7)) $(cat /proc/sys/kernel/osrelease)")
            child.expect(r"kbtf-42 (\S+)", timeout=COMMAND_TIMEOUT)
            child.sendline("exit")
            child.expect(pexpect.EOF, timeout=COMMAND_TIMEOUT)
        except pexpect.TIMEOUT:
            pytest.fail(f"./kbtf shell did not answer in time (log: {log})\n{rerun}")
        finally:
            child.close(force=True)
    assert guests, f"no QEMU under ./kbtf shell while its prompt was up (log: {log})"
    assert child.exitstatus == 0, f"./kbtf shell exited {child.exitstatus} (log: {log})"
    left = [g for g in guests if Path(f"/proc/{g}").exists()]
    assert not left, f"QEMU {left} still running after the shell's exit (log: {log})"
