"""Host commands: exact argv, a timeout that takes the whole process group down."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from harness import proc
from harness.errors import CommandError, CommandTimeout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() \
        else "X"
    return state not in ("Z", "X")


def test_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = f"sleep 300 & echo $! > {pidfile}; wait"
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match="timed out after 1s") as err:
        proc.run(["sh", "-c", script], timeout=1, logfile=tmp_path / "log")
    assert time.monotonic() - start < 10
    assert err.value.log == tmp_path / "log"
    assert "killed after 1s" in (tmp_path / "log").read_text()
    time.sleep(0.2)
    assert not _alive(int(pidfile.read_text())), "the grandchild (a pahole under make) lives on"


def test_stream_times_out_a_silent_command(tmp_path: Path) -> None:
    lines: list[str] = []
    with pytest.raises(CommandTimeout):
        proc.stream(["sh", "-c", "echo one; sleep 300"], timeout=1, logfile=tmp_path / "log",
                    on_line=lines.append)
    assert lines == ["one\n"]


def test_stream_returns_the_exit_code(tmp_path: Path) -> None:
    rc = proc.stream(["sh", "-c", "echo a; exit 3"], timeout=30, logfile=tmp_path / "log",
                     on_line=lambda line: None)
    assert rc == 3
    assert (tmp_path / "log").read_text() == "$ sh -c 'echo a; exit 3'\na\n"


def test_failure_names_the_last_stderr_line() -> None:
    with pytest.raises(CommandError, match=r"exit 2: sh -c .*: boom"):
        proc.run(["sh", "-c", "echo boom >&2; exit 2"], timeout=30)


def test_timeout_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBTF_TIMEOUT_SCALE", "0.01")
    start = time.monotonic()
    with pytest.raises(CommandTimeout):
        proc.run(["sleep", "30"], timeout=100)
    assert time.monotonic() - start < 5


def test_qemu_wrapper_dies_with_its_parent(tmp_path: Path) -> None:
    """harness/guest/qemu-pdeathsig: what it runs gets SIGKILL when its parent dies (SIGKILL)."""
    from harness.guest import vm

    pidfile = tmp_path / "qemu.pid"
    parent = subprocess.Popen(
        ["python3", "-c", "import subprocess, sys; subprocess.Popen(sys.argv[1:]).wait()",
         str(vm.QEMU_WRAPPER), "-c", f"echo $$ > {pidfile}; exec sleep 300"],
        env={**os.environ, "KBTF_QEMU": "/bin/sh", "KBTF_SETPRIV": proc.require_tool("setpriv")})
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    qemu = int(pidfile.read_text())
    assert _alive(qemu)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(qemu):
        assert time.monotonic() < deadline, "the wrapped process outlived its parent"
        time.sleep(0.05)
