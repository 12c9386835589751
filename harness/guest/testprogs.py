"""test_progs' output read back: each test's and subtest's verdict from its status lines
(`#12      kfunc_call:OK`, `#12/3    kfunc_call/kfunc_syscall_test:FAIL`, `...:SKIP`), with
the log test_progs prints for a failing one before its status line, or, where the runner
writes a JSON summary (-J: the failed tests, their logs and their failed subtests' logs),
the logs from there. Pure."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.plan.vmtest import glob_match

# `#<n>[/<m>] <name>[/<sub>]:<VERDICT>`; test_progs pads the number with spaces.
# (a subtest's name may hold ':' and spaces: "btf_dump/btf_dump: incremental")
_STATUS = re.compile(r"^#(?P<num>\d+)(?:/(?P<sub>\d+))?\s+(?P<name>[^\s:/]+(?:/.+?)?)"
                     r":(?P<verdict>OK|FAIL|SKIP)(?: \((?P<why>[^)]*)\))?\s*$")
NO_TEST = 2  # test_progs' exit code when no test ran (EXIT_NO_TEST)
# test_progs' line when the kernel refuses bpf_testmod.ko (it then skips what needs it).
_TESTMOD_REFUSED = re.compile(r"Failed to load bpf_testmod\.ko into the kernel")
# test_progs' watchdog killing a test that ran past -w seconds (7.x; 120 s by default).
_WATCHDOG_KILL = re.compile(r"WATCHDOG: test case (?P<test>\S+) executes for \d+ seconds, "
                            r"terminating.*")
_SUMMARY = re.compile(r"^Summary: (?P<passed>\d+)/(?P<subpassed>\d+) PASSED, "
                      r"(?P<skipped>\d+) SKIPPED, (?P<failed>\d+) FAILED\s*$")


@dataclass
class TestResult:
    """One test of test_progs (or one subtest: ``name`` 'test/sub')."""

    name: str
    verdict: str  # OK, FAIL or SKIP
    log: str = ""  # what test_progs printed for it before its status line (failures)
    line: str = ""  # its status line, as the runner printed it
    subtests: dict[str, TestResult] = field(default_factory=dict)

    def failed_subtests(self) -> list[TestResult]:
        return [s for s in self.subtests.values() if s.verdict == "FAIL"]

    def skipped_subtests(self) -> list[TestResult]:
        return [s for s in self.subtests.values() if s.verdict == "SKIP"]


@dataclass
class RunnerOutput:
    """A test_progs run: its tests in order and its summary line (None: it never got there,
    e.g. it crashed)."""

    tests: dict[str, TestResult]
    summary: str | None
    rc: int | None = None  # the runner's exit code (None: not known)
    testmod_refused: str | None = None  # the runner's line saying bpf_testmod.ko did not load
    watchdog: str | None = None  # its watchdog's line when it killed a test (-w; 7.x)


def parse(text: str, rc: int | None = None, stderr: str = "") -> RunnerOutput:
    """The verdicts of a test_progs run's output ``text`` (console line endings allowed)
    that exited ``rc``, its watchdog's kill line read from ``stderr`` too."""
    tests: dict[str, TestResult] = {}
    pending: list[str] = []
    summary = refused = None
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if refused is None and _TESTMOD_REFUSED.search(line):
            refused = line.strip()
        m = _STATUS.match(line)
        if m is None:
            if _SUMMARY.match(line):
                summary = line.strip()
            else:
                pending.append(line)
            continue
        log = "\n".join(pending).strip()
        pending = []
        name = m["name"]
        if m["sub"] is not None and "/" in name:
            top = name.split("/", 1)[0]
            parent = tests.setdefault(top, TestResult(top, "RUNNING"))
            parent.subtests[name] = TestResult(name, m["verdict"], log, line.strip())
        else:
            result = tests.setdefault(name, TestResult(name, m["verdict"]))
            result.verdict = m["verdict"]
            result.log = log if m["verdict"] == "FAIL" else ""
            result.line = line.strip()
    killed = _WATCHDOG_KILL.search(stderr + "\n" + text)
    return RunnerOutput(tests, summary, rc, refused, killed[0].strip() if killed else None)


def last_report(text: str) -> str:
    """Where a runner whose output is ``text`` was when it stopped: its last verdict line
    and the lines after it (the test it was in)."""
    lines = [ln.rstrip("\r") for ln in text.splitlines()]
    last = max((n for n, ln in enumerate(lines) if _STATUS.match(ln)), default=-1)
    if last < 0:
        return "the runner reported no test before it"
    after = [ln for ln in lines[last + 1:] if ln.strip()][-5:]
    return (f"the runner's last report before it: {lines[last].strip()!r}"
            + ("; then: " + " / ".join(after) if after else ""))


def parse_whole(stdout: str, stderr: str, rc: int) -> RunnerOutput:
    """The verdict of a runner that reports as a whole (test_verifier, test_maps): one test,
    'all', OK on exit code 0, else FAIL with the last lines of its output; its summary the
    last line of its stdout (test_verifier's "Summary: 700 PASSED, 0 SKIPPED, 0 FAILED"),
    None when it printed nothing there."""
    out = [ln.rstrip("\r") for ln in stdout.splitlines() if ln.strip()]
    both = out + [ln.rstrip("\r") for ln in stderr.splitlines() if ln.strip()]
    result = TestResult("all", "OK" if rc == 0 else "FAIL",
                        "" if rc == 0 else "\n".join(both[-20:]))
    return RunnerOutput({"all": result}, out[-1].strip() if out else None, rc)


def apply_json(out: RunnerOutput, summary: dict[str, object]) -> None:
    """Take the failing tests' and subtests' logs from test_progs' JSON summary (-J) into
    ``out`` (its verdicts stay the status lines')."""
    results = summary.get("results", [])
    for entry in results if isinstance(results, list) else []:
        test = out.tests.get(str(entry.get("name", "")))
        if test is None:
            continue
        if entry.get("message"):
            test.log = str(entry["message"]).strip()
        for sub in entry.get("subtests", []):
            found = test.subtests.get(f"{test.name}/{sub.get('name', '')}")
            if found is not None and sub.get("message"):
                found.log = str(sub["message"]).strip()


def selects(pattern: str, name: str) -> bool:
    """Whether ``pattern`` (``test[/sub]``, as -a/-d take it) names ``name`` (a test or
    ``test/sub``): a pattern without a subtest part names a test and all its subtests."""
    want_test, _, want_sub = pattern.partition("/")
    test, _, sub = name.partition("/")
    return glob_match(test, want_test) and (not want_sub or (
        bool(sub) and glob_match(sub, want_sub)))


@dataclass(frozen=True)
class Denial:
    """One entry of the DENYLIST files test_progs was given (-d@FILE): ``test[/sub]``."""

    pattern: str
    where: str  # FILE:LINE and the line, for quoting

    def covers(self, name: str) -> bool:
        """Whether this entry keeps the runner from running ``name`` (test or test/sub)."""
        return selects(self.pattern, name)


def read_denylists(files: list[Path]) -> list[Denial]:
    """The entries of DENYLIST ``files`` (those that exist), read as test_progs reads them:
    a line, less its ``#`` comment and surrounding blanks, is one pattern (spaces inside
    belong to it); a test named whole in one entry and with subtests in another is denied
    only those subtests (test_progs merges them so)."""
    found = []
    for path in files:
        if not path.is_file():
            continue
        for n, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
            pattern = raw.split("#", 1)[0].strip()
            if pattern:
                found.append(Denial(pattern, f"{path.name}:{n}: {raw.strip()}"))
    with_subs = {d.pattern.partition("/")[0] for d in found if "/" in d.pattern}
    return [d for d in found if "/" in d.pattern or d.pattern not in with_subs]


@dataclass(frozen=True)
class Outcome:
    """The verdict of one test or subtest a selection named, with the runner's words."""

    name: str
    verdict: str  # "passed", "failed", "skipped" or "error" (the harness cannot say)
    why: str = ""
    parts: tuple[Outcome, ...] = ()  # its subtests' outcomes


def judge(selection: str, out: RunnerOutput, tree: list[str], denied: list[Denial],
          needs_testmod: Callable[[str], bool], dmesg: str = "") -> list[Outcome]:
    """The outcomes of ``selection`` ('all', or a name, ``test/sub`` or glob as test_progs'
    -a takes it) in ``out``, against the tree's test list ``tree``: each test (or subtest)
    of the runner that it matched, and each test of the tree it names that did not run:
    denied (a SKIP quoting the DENYLIST line), else FAILED (the runner or the kernel
    broke before it). A runner that exited non-zero or never summed up while everything
    it reported passed is FAILED too. When nothing ran and the runner ended well, an
    "error" outcome (kbtf cannot say why). A test that needs bpf_testmod (``needs_testmod``,
    read from its source) and was skipped, or passed with skipped subtests, in a run
    where the kernel refused bpf_testmod.ko is FAILED quoting the runner's line and
    ``dmesg``."""
    top, _, sub = selection.partition("/")
    every = selection == "all"
    ran = [t for n, t in out.tests.items() if every or glob_match(n, top)]
    found: list[Outcome] = []
    killed = _WATCHDOG_KILL.search(out.watchdog or "")
    if killed and (every or glob_match(killed["test"].split("/")[0], top)):
        found.append(Outcome(killed["test"], "failed", f"{killed['test']}: ran past the "
                             f"runner's time and its watchdog killed it: {out.watchdog!r}"))
    for test in ran:
        refused = _refusal(out, dmesg) if needs_testmod(test.name) else ""
        subs = [s for n, s in test.subtests.items() if glob_match(n.partition("/")[2], sub)]
        if not sub or (not subs and test.verdict in ("FAIL", "SKIP", "RUNNING")):
            found.append(_judge_test(test, refused))  # (it ended before the subtest)
        found += [_judge_one(s, refused) for s in subs]
    # test_progs exits 2 (EXIT_NO_TEST) when it ran nothing at all: no breakage then
    stopped = out.summary is None or (out.rc not in (0, None) and not (
        out.rc == NO_TEST and not out.tests))
    missing = [t for t in tree if (every or glob_match(t, top)) and t not in out.tests
               and not (killed and killed["test"].split("/")[0] == t)]
    if found or (missing and not every and sub == ""):
        found += [_not_run(t, out, denied, stopped) for t in missing]
        if stopped and all(o.verdict not in ("failed", "skipped") for o in found):
            found.append(Outcome(selection, "failed", _stopped(out)))
        return found
    return [_not_run(selection, out, denied, stopped, tree)]


def _refusal(out: RunnerOutput, dmesg: str) -> str:
    """Why tests that need bpf_testmod could not run ("" when the runner loaded it)."""
    if out.testmod_refused is None:
        return ""
    return (f"the kernel refused bpf_testmod.ko, which it needs; test_progs: "
            f"{out.testmod_refused!r}" + (f"\nkernel log:\n{dmesg.strip()}" if dmesg.strip()
                                          else ""))


def _judge_one(result: TestResult, refused: str) -> Outcome:
    """A subtest's (or subtest-less test's) outcome."""
    if result.verdict == "FAIL":
        return Outcome(result.name, "failed", f"{result.name}: FAIL\n{result.log}".strip())
    if result.verdict == "SKIP":
        if refused:
            return Outcome(result.name, "failed", f"{result.name}: skipped: {refused}")
        return Outcome(result.name, "skipped", f"{result.name}: test_progs skipped it: "
                       f"{result.log or repr(result.line)}")
    return Outcome(result.name, "passed")


def _judge_test(test: TestResult, refused: str) -> Outcome:
    """A test's outcome, its subtests' as its parts."""
    parts = tuple(_judge_one(s, refused) for s in test.subtests.values())
    skipped = [p.name for p in parts if p.verdict in ("skipped", "failed")
               and test.subtests[p.name].verdict == "SKIP"]
    if test.verdict == "RUNNING":  # its subtests' lines, never its own: it did not end
        return Outcome(test.name, "failed", f"{test.name}: the runner never reported its end "
                       f"({_stopped_any(parts)})", parts)
    if test.verdict == "FAIL":
        failed = [s for s in test.failed_subtests()]
        logs = "\n".join(f"--- {s.name}\n{s.log}" for s in failed) or test.log
        why = (f"{test.name}: FAIL ({', '.join(s.name for s in failed) or 'the test itself'})"
               f"\n{logs}")
        return Outcome(test.name, "failed", why, parts)
    if refused and (test.verdict == "SKIP" or skipped):
        what = f"subtests {', '.join(skipped)} skipped" if skipped else "skipped"
        return Outcome(test.name, "failed", f"{test.name}: {what}: {refused}", parts)
    if test.verdict == "SKIP":
        return Outcome(test.name, "skipped", f"{test.name}: test_progs skipped it: "
                       f"{test.log or repr(test.line)}", parts)
    return Outcome(test.name, "passed", f"{len(skipped)} subtests skipped by the runner: "
                   + ", ".join(skipped) if skipped else "", parts)


def _stopped(out: RunnerOutput) -> str:
    return (f"the runner exited {out.rc}" if out.rc not in (0, None) else
            "the runner ended") + (f" after {out.summary!r}" if out.summary else
                                   " without its summary line")


def _stopped_any(parts: tuple[Outcome, ...]) -> str:
    return f"{len(parts)} subtests reported"


def _not_run(selection: str, out: RunnerOutput, denied: list[Denial], stopped: bool,
             tree: list[str] | None = None) -> Outcome:
    """Why the runner ran nothing ``selection`` names (the tests of ``tree`` it names, when
    given, else ``selection`` itself)."""
    top, _, sub = selection.partition("/")
    names = [selection] if tree is None else [
        t + (f"/{sub}" if sub else "") for t in tree if selection == "all" or glob_match(t, top)]
    denials = {n: next((d for d in denied if d.covers(n)), None) for n in names}
    if names and all(denials.values()):
        lines = sorted({d.where for d in denials.values() if d is not None})
        return Outcome(selection, "skipped", f"{selection}: denied by the tree's DENYLIST "
                       f"files: {'; '.join(lines)}")
    if stopped or tree is None:
        return Outcome(selection, "failed", f"{selection}: not run: {_stopped(out)} (it is in "
                       f"no DENYLIST file)")
    return Outcome(selection, "error", f"{selection}: the runner exited 0 without running it, "
                   f"and no DENYLIST entry names it")
