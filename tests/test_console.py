"""Console parsing: command framing, sentinels, panic detection."""

import re
from pathlib import Path

from harness.guest import console


def test_ansi_c_quote_single_line_and_escapes() -> None:
    q = console.ansi_c_quote("echo 'a'\\\nb ü")
    assert "\n" not in q
    assert q == "$'echo \\'a\\'\\\\\\x0ab \\xc3\\xbc'"


def test_wrap_command_chunks_long_commands() -> None:
    short = console.wrap_command("true", "tok")
    assert short == ["kbtf_run tok $'true'"]
    lines = console.wrap_command("x" * 3000, "tok")
    assert lines[0] == "kbtf_c=" and lines[-1] == 'kbtf_run tok "$kbtf_c"'
    assert all(len(line) < 1100 for line in lines)


def test_sentinel_parses_stdout_stderr_rc_with_crlf() -> None:
    typed = "kbtf_run abc $'echo hi'\r\n"
    out = typed + "\r\nKBTF-abc-O\r\nhi\r\r\ntwo\r\n\r\nKBTF-abc-E\r\noops\r\n\r\nKBTF-abc-R:3\r\n"
    m = re.search(console.sentinel_pattern("abc"), out)
    assert m is not None
    res = console.decode_result("echo hi", m)
    assert (res.rc, res.stdout, res.stderr, res.ok) == (3, "hi\ntwo\n", "oops\n", False)


def test_sentinel_of_another_token_does_not_match() -> None:
    out = "\nKBTF-old-O\n\nKBTF-old-E\n\nKBTF-old-R:0\n"
    assert re.search(console.sentinel_pattern("new"), out) is None


def test_empty_output() -> None:
    m = re.search(console.sentinel_pattern("t"), "\nKBTF-t-O\n\nKBTF-t-E\n\nKBTF-t-R:0\n")
    assert m is not None
    assert console.decode_result("true", m).stdout == ""


def test_session_setup_uses_workdir() -> None:
    line = console.session_setup("/tmp/w")
    assert "kbtf_run()" in line and ">/tmp/w/o" in line and "@W@" not in line


def test_find_trouble_on_captured_panic(data: Path) -> None:
    trouble = console.find_trouble((data / "panic-console.log").read_text())
    assert trouble is not None and trouble.fatal
    assert trouble.excerpt.splitlines()[0].endswith(
        "BUG: kernel NULL pointer dereference, address: 0000000000000000")
    assert "Kernel panic - not syncing" in trouble.excerpt


def test_no_trouble_on_clean_console(data: Path) -> None:
    assert console.find_trouble((data / "clean-console.log").read_text()) is None


def test_warning_then_oops_on_a_captured_console(data: Path) -> None:
    """A real 6.12 console: kbtf_fault's WARN_ON(1), then its NULL dereference."""
    text = (data / "warn-oops-console.log").read_text()
    warning = console.find_trouble(text)
    assert warning is not None and not warning.fatal
    lines = warning.excerpt.splitlines()
    assert lines[0].startswith("WARNING: CPU: 0 PID: 222 at ") and "kbtf_fault.c:27" in lines[0]
    assert lines[-1] == "---[ end trace 0000000000000000 ]---"
    crash = console.find_trouble(text, warning.end)
    assert crash is not None and crash.fatal
    assert crash.excerpt.startswith("BUG: kernel NULL pointer dereference")
    assert console.find_trouble(text, len(text)) is None


def test_trouble_before_the_offset_was_already_reported(data: Path) -> None:
    text = (data / "panic-console.log").read_text()
    first = console.find_trouble(text)
    assert first is not None
    nxt = console.find_trouble(text, first.end)
    assert nxt is None or "Kernel panic" in nxt.excerpt


def test_hangs_are_fatal_trouble() -> None:
    """A module that never returns from its init: the hung-task detector's report (6.12's
    wording), a soft lockup and an RCU stall end the guest and fail the test."""
    for line in ("[   62.110231] INFO: task insmod:187 blocked for more than 30 seconds.",
                 "[   44.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:187]",
                 "[   90.1] rcu: INFO: rcu_preempt self-detected stall on CPU",
                 "[   90.1] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:"):
        text = "[    1.0] kbtf_fault: sleeping uninterruptibly forever\n" + line + "\n"
        trouble = console.find_trouble(text, 0)
        assert trouble is not None and trouble.fatal, line
        assert line.split("] ", 1)[1] in trouble.excerpt
    assert console.find_trouble("[ 1.0] INFO: task list updated\n", 0) is None
