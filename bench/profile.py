"""Benchmark: where a run's wall time goes, per arch and phase, from its own results.

Usage: ./kbtf python -m bench.profile [RESULTS_DIR]   (default: results/latest)
       ./kbtf python -m bench.profile BEFORE_DIR AFTER_DIR   (the two side by side, with ratios)

Reads the workers' logs (kbtf-gw*.log): each line is an event of that worker and the time
since its previous line is charged to it: a guest command to its kind (bpftrace, insmod,
bpftool, ...), a boot to "boot", a host command to its program. The arch of a guest is the
QEMU of its boot; of a host command, its ARCH= or the kernel path it names. Prints a
markdown table (seconds, count) for bench/RESULTS.md, and the junit.xml wall time.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

from harness.arches import ARCHES

_LINE = re.compile(r"^(?P<t>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ (?P<msg>.*)$")
_GUEST_CMD = re.compile(r"^guest (?P<name>\S+): (?P<cmd>.*) -> rc -?\d+$")
_BOOTED = re.compile(r"^guest (?P<name>\S+): shell after")
_QEMU = re.compile(r"^run: \S*qemu-system-(?P<qarch>\w+).*?-pidfile \S*/(?P<name>[^/\s]+)"
                   r"\.qemu\.pid")
_HOST = re.compile(r"^run \(timeout \d+s\): (?:\(cd \S+ && )?(?P<argv>.*)$")
_QEMU_ARCH = {a.qemu.removeprefix("qemu-system-"): a.name for a in ARCHES.values()}
_KERNEL_ARCH = {a.kernel_arch: a.name for a in ARCHES.values()}


def kind_of(command: str) -> str:
    """The kind a guest command is counted under: its program (bpftrace, insmod, ...); of
    a list of commands, the last one's (an insert's removals ride along with its insmod)."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=";")
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: the words as they are
        tokens = command.split()
    lists: list[list[str]] = [[]]
    for token in tokens:  # ";" outside quotes is a token of its own
        lists.append([]) if token == ";" else lists[-1].append(token)
    words = next((w for w in reversed(lists) if w), [])
    return words[0].rsplit("/", 1)[-1] if words else "(empty)"


def host_kind(argv: str) -> tuple[str, str]:
    """(arch or '-', kind) of a host command line."""
    words = argv.split()
    program = words[0].rsplit("/", 1)[-1] if words else "?"
    arch = next((_KERNEL_ARCH.get(w.removeprefix("ARCH="), "-") for w in words
                 if w.startswith("ARCH=")), None)
    if arch is None:
        arch = next((a for a in ARCHES if f"/{a}-" in argv), "-")
    return arch, f"host {program}"


def profile(log_text: str) -> dict[tuple[str, str], list[float]]:
    """(arch, kind) -> durations, from one worker's log. A boot is charged from its QEMU's
    start to its shell answering (the commands of the boot itself included)."""
    spent: dict[tuple[str, str], list[float]] = defaultdict(list)
    arch_of: dict[str, str] = {}
    booting: dict[str, datetime] = {}  # guest -> when its QEMU started
    last: datetime | None = None
    for line in log_text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        t = datetime.strptime(m["t"], "%Y-%m-%d %H:%M:%S,%f")
        took, msg = ((t - last).total_seconds() if last else 0.0), m["msg"]
        if q := _QEMU.match(msg):
            arch_of[q["name"]] = _QEMU_ARCH.get(q["qarch"], q["qarch"])
            spent[(arch_of[q["name"]], "between events")].append(took)
            booting[q["name"]] = t
        elif b := _BOOTED.match(msg):
            start = booting.pop(b["name"], last or t)
            spent[(arch_of.get(b["name"], "?"), "boot")].append((t - start).total_seconds())
        elif (g := _GUEST_CMD.match(msg)) and g["name"] not in booting:
            spent[(arch_of.get(g["name"], "?"), f"guest {kind_of(g['cmd'])}")].append(took)
        elif h := _HOST.match(msg):
            spent[host_kind(h["argv"])].append(took)
        elif not g:
            continue  # an event that is no step: its time goes to the next one
        last = t
    return spent


def _junit_suite(run: Path) -> ElementTree.Element | None:
    """The testsuite element of results dir ``run``'s junit.xml, if there is one."""
    try:
        root = ElementTree.parse(run / "junit.xml").getroot()
    except (OSError, ElementTree.ParseError):
        return None
    return root if root.tag == "testsuite" else root.find("testsuite")


def junit_wall(run: Path) -> float | None:
    """The test session's time from junit.xml, if there is one."""
    suite = _junit_suite(run)
    return float(suite.get("time", 0)) if suite is not None else None


def table(spent: dict[tuple[str, str], list[float]]) -> str:
    """Markdown table, biggest first."""
    rows = sorted(spent.items(), key=lambda kv: -sum(kv[1]))
    out = ["| arch | phase | seconds | count | mean s |", "| --- | --- | --- | --- | --- |"]
    out += [f"| {arch} | {kind} | {sum(d):.1f} | {len(d)} | {sum(d) / len(d):.1f} |"
            for (arch, kind), d in rows if sum(d) >= 0.5]
    return "\n".join(out)


def session_span(run: Path) -> tuple[datetime, datetime] | None:
    """The test session's start and end (junit.xml's timestamp and time), in the logs'
    local time; None without a junit.xml."""
    suite = _junit_suite(run)
    if suite is None or not suite.get("timestamp"):
        return None
    start = datetime.fromisoformat(suite.get("timestamp", "")).astimezone().replace(tzinfo=None)
    return start, start + timedelta(seconds=float(suite.get("time", 0)))


def event_times(log_text: str) -> list[datetime]:
    """The times of a worker log's lines."""
    return [datetime.strptime(m["t"], "%Y-%m-%d %H:%M:%S,%f")
            for line in log_text.splitlines() if (m := _LINE.match(line))]


def run_profile(run: Path) -> dict[tuple[str, str], list[float]]:
    """(arch, kind) -> durations over every worker log of results dir ``run``; with a
    junit.xml, also each worker's start-up (the session's start to its first event:
    collection, xdist's start) and its idle tail (its last event to the session's end)."""
    spent: dict[tuple[str, str], list[float]] = defaultdict(list)
    span = session_span(run)
    for log in sorted(run.glob("kbtf-gw*.log")) or [run / "kbtf-main.log"]:
        text = log.read_text(errors="replace")
        for key, durations in profile(text).items():
            spent[key] += durations
        if span and (times := event_times(text)):
            spent[("-", "worker start-up")].append((times[0] - span[0]).total_seconds())
            spent[("-", "worker idle at the end")].append((span[1] - times[-1]).total_seconds())
    return spent


def comparison(before: dict[tuple[str, str], list[float]],
               after: dict[tuple[str, str], list[float]]) -> str:
    """Markdown table of both runs' seconds per (arch, phase) and after/before, biggest
    first (by the later run), and the totals."""
    keys = sorted(set(before) | set(after), key=lambda k: -sum(after.get(k, [])))
    out = ["| arch | phase | before s (count) | after s (count) | after/before |",
           "| --- | --- | --- | --- | --- |"]
    for arch, kind in keys:
        b, a = before.get((arch, kind), []), after.get((arch, kind), [])
        if max(sum(b), sum(a)) < 0.5:
            continue
        ratio = f"{sum(a) / sum(b):.2f}" if sum(b) else "-"
        out.append(f"| {arch} | {kind} | {sum(b):.1f} ({len(b)}) | {sum(a):.1f} ({len(a)}) "
                   f"| {ratio} |")
    total_b, total_a = (sum(sum(d) for d in x.values()) for x in (before, after))
    out.append(f"| all | worker time | {total_b:.0f} | {total_a:.0f} | "
               f"{total_a / total_b if total_b else 0:.2f} |")
    return "\n".join(out)


def main() -> None:
    runs = [Path(a) for a in sys.argv[1:3]] or [Path("results/latest")]
    for run in runs:
        spent = run_profile(run)
        print(f"run {run.resolve().name}: junit time {junit_wall(run)} s; worker time charged "
              f"{sum(sum(d) for d in spent.values()):.0f} s")
    print()
    if len(runs) == 2:
        print(comparison(run_profile(runs[0]), run_profile(runs[1])))
    else:
        print(table(run_profile(runs[0])))


if __name__ == "__main__":
    main()
