"""bench/profile.py charges each worker-log event the time since the previous one, to the
arch of its guest (from the boot's QEMU) or of its host command."""

from __future__ import annotations

from pathlib import Path

from bench.profile import comparison, kind_of, profile

LOG = (Path(__file__).parent / "data" / "profile-worker.log").read_text()


def test_events_are_charged_to_their_arch_and_kind() -> None:
    spent = profile(LOG)
    assert spent[("s390x", "guest bpftrace")] == [12.0]
    assert spent[("s390x", "guest insmod")] == [2.0]
    assert spent[("s390x", "boot")] == [5.2]  # QEMU start to the shell, its `true` included
    assert spent[("s390x", "host make")] == [0.2]
    assert ("s390x", "guest true") not in spent


def test_a_list_of_commands_counts_as_its_last() -> None:
    assert kind_of("rmmod kbtf_hello 2>/dev/null; dmesg -C; insmod /kbtf/run/m.ko") == "insmod"
    assert kind_of("bpftrace -e 'kprobe:f { @c = count(); }'") == "bpftrace"


def test_two_runs_side_by_side_with_ratios() -> None:
    before = {("x86_64", "boot"): [8.0, 8.0], ("x86_64", "guest bpftrace"): [7.0]}
    after = {("x86_64", "boot"): [4.0, 4.0], ("s390x", "boot"): [3.0]}
    text = comparison(before, after)
    assert "| x86_64 | boot | 16.0 (2) | 8.0 (2) | 0.50 |" in text
    assert "| s390x | boot | 0.0 (0) | 3.0 (1) | - |" in text
    assert "| x86_64 | guest bpftrace | 7.0 (1) | 0.0 (0) | 0.00 |" in text
    assert text.splitlines()[-1] == "| all | worker time | 23 | 11 | 0.48 |"
