"""bench/profile.py charges each worker-log event the time since the previous one, to the
arch of its guest (from the boot's QEMU) or of its host command."""

from __future__ import annotations

from pathlib import Path

from bench.profile import kind_of, profile

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
