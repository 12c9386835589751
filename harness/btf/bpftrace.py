"""bpftrace programs and their output (pure): map values and printed values, parsed
exactly; did a kfunc probe fail for want of BTF? What kbtf's own modules do when poked
(their exercise), and the one program a loaded module build's probes share."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    """What a kbtf module does when userspace pokes it: the probes that see each call and
    the shell command that makes the calls."""

    probes: tuple[str, ...]
    trigger: str


HELLO_KPROBE = "kprobe:kbtf_hello_poke { @calls = count(); }"
HELLO_KFUNC = 'kfunc:kbtf_hello:kbtf_hello_poke { printf("value=%d\\n", args->value); }'
# modules/kbtf_hello: writing N to /proc/kbtf_hello calls kbtf_hello_poke(N) once.
HELLO_VALUES = (42, 7, -1, 65536, 3)
HELLO = Exercise((HELLO_KPROBE, HELLO_KFUNC),
                 "; ".join(f"echo {v} > /proc/kbtf_hello" for v in HELLO_VALUES))
# kbtf's own modules with an exercise, by module name.
EXERCISES: Mapping[str, Exercise] = {"kbtf_hello": HELLO}


def missing_btf_error(output: str, func: str) -> str | None:
    """The line where bpftrace says ``func`` has no BTF (so a kfunc/fentry probe on it cannot
    attach), or None if it failed for another reason or did not fail.

    Wordings: 0.17 "kfunc:F: no BTF data for F"; 0.27 'Could not parse arguments of "F":
    BTF data for the function not found', or, when the module has no BTF at all (0.27 lists
    fentry targets from BTF), "No matches for fentry M:F." -- seen after the same guest had
    the module with BTF loaded and removed.
    """
    name = re.escape(func)
    pattern = re.compile(rf"^.*(?:no BTF (?:data |found |info )?for.*\b{name}\b|"
                         rf"\b{name}\b.*BTF data for the function not found|"
                         rf"No matches for fentry (?:\w+:)?{name}\.).*$",
                         re.IGNORECASE | re.MULTILINE)
    m = pattern.search(output)
    return m.group(0).strip() if m else None


def map_value(output: str, name: str) -> int | None:
    """The value bpftrace printed for scalar map ``name`` (``@calls: 5``), or None."""
    values = re.findall(rf"^{re.escape(name)}: (-?\d+)\s*$", output, re.MULTILINE)
    return int(values[-1]) if values else None


def printed_values(output: str, key: str) -> list[int]:
    """Every integer printed as a whole ``key=N`` line, in order."""
    return [int(v) for v in re.findall(rf"^{re.escape(key)}=(-?\d+)\s*$", output, re.MULTILINE)]


def attach_program(*probes: str) -> str:
    """A bpftrace program that attaches ``probes``, counts their hits and exits 100 ms
    after (an interval probe, attached after them: BEGIN would run before any attach): it
    exits 0 exactly when every probe attached. A second's wait was 1 s of every start."""
    return f"{_counted(probes)} interval:ms:100 {{ exit(); }}"


def _counted(probes: tuple[str, ...]) -> str:
    return " ".join(f"{p} {{ @hits{n} = count(); }}" for n, p in enumerate(probes))


def shared_program(attach: tuple[str, ...], exercise: Exercise | None) -> str:
    """One program for every probe the tests of a loaded module build ask about: the
    ``attach`` probes counted (as attach_program()), and the module's exercise probes; it
    exits with the exercise's trigger (bpftrace -c), or 100 ms after attaching without one.
    A bpftrace start costs 7-13 s under TCG, so a build's tests share one."""
    if exercise is None:
        return attach_program(*attach)
    return " ".join(filter(None, (_counted(attach), *exercise.probes)))


# A guest command listing the module lines of available_filter_functions (those ending in
# "[module]", all traceable() reads): a few lines over the serial console instead of the
# whole file (5-7 s under TCG). grep exits 1 when no module function is listed.
MODULE_FILTER_FUNCTIONS = "grep -F ' [' /sys/kernel/tracing/available_filter_functions"


def traceable(available_filter_functions: str, module: str) -> set[str]:
    """The functions of ``module`` ftrace can attach to, from the text of
    /sys/kernel/tracing/available_filter_functions ("name [module]" lines)."""
    return {ln.split()[0] for ln in available_filter_functions.splitlines()
            if ln.endswith(f"[{module}]")}
