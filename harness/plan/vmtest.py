"""BPF CI (vmtest) jobs: their names -> what to reproduce, the tests they run. Pure.

BPF CI posts a row per job on every patch. The forms it has used:

- ``<arch>-<cc>[-<ver>] / test (<runner>, <continue_on_error>, <timeout_min>) / <runner> on
  <arch> with <cc>[-<ver>]`` (``x86_64-llvm-18 / test (test_progs, false, 360) / ...``),
- ``<arch> <cc>-<ver> / test (...) / ...`` (newer: ``x86_64 gcc-15 / test (...) / ...``),

and kbtf takes a short ``<arch>-<cc>[-<ver>]/<runner>`` for typing. ``_parallel`` runners
are their runner run with -j.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.arches import ARCHES, GCC, Arch, Toolchain, get_arch
from harness.errors import ConfigError
from harness.plan import toolchain
from harness.plan.kernelreq import BPF_CI_BASE, KernelRequest
from harness.plan.ksource import KernelSource
from harness.plan.matrix import MatrixPoint
from harness.plan.pahole import Pahole

# Runner -> the selftests binary it runs (tools/testing/selftests/bpf).
RUNNERS = {
    "test_progs": "test_progs",
    "test_progs_no_alu32": "test_progs-no_alu32",
    "test_progs_cpuv4": "test_progs-cpuv4",
    "test_maps": "test_maps",
    "test_verifier": "test_verifier",
}
# Rows that are no test job: what kbtf does instead.
OTHER_ROWS = {
    "build": "kbtf builds the kernel and the selftests as part of each test job: give a test "
             "row of the same arch and compiler, e.g. --vmtest-job '{short}/test_progs'",
    "build-release": "the LLVM -O2 selftests build is not reproduced (no test runs on it): "
                     "give a test row, e.g. --vmtest-job '{short}/test_progs'",
    "veristat": "veristat rows are not reproduced (they compare verifier statistics of BPF "
                "object files, not a kernel's behaviour): give a test row, e.g. "
                "--vmtest-job '{short}/test_progs'",
}
FORMS = ("'<arch>-<cc>[-<ver>] / test (<runner>, <continue_on_error>, <timeout_min>) / "
         "<runner> on <arch> with <cc>[-<ver>]', '<arch> <cc>-<ver> / test (...) / ...', "
         "or '<arch>-<cc>[-<ver>]/<runner>'")
_TOOLCHAIN = r"(?P<arch>[a-z0-9_]+)[- ](?P<cc>gcc|llvm)(?:-(?P<ver>\d+))?"
_FULL = re.compile(rf"{_TOOLCHAIN} / test \((?P<runner>\w+), (?P<coe>true|false), "
                   rf"(?P<timeout>\d+)\)(?: / (?P<tail>.*))?")
_SHORT = re.compile(rf"{_TOOLCHAIN}/(?P<runner>\w+)")
_ROW = re.compile(rf"{_TOOLCHAIN} / (?P<row>[\w-]+)(?: / .*)?")


@dataclass(frozen=True)
class VmtestJob:
    """One BPF CI test job to reproduce."""

    arch: str  # kbtf's arch name
    compiler: str  # "gcc" or "llvm"
    version: str | None  # the compiler's major version, when the job names one
    runner: str  # a RUNNERS key
    parallel: bool = False  # a _parallel row: the runner with -j
    timeout_min: int | None = None  # the job's own timeout in CI (full names only)

    @property
    def binary(self) -> str:
        """The selftests program the job runs."""
        return RUNNERS[self.runner]

    @property
    def toolchain(self) -> str:
        """The --toolchain spelling of the job's compiler: gcc, gcc-15, llvm-18."""
        return self.compiler + (f"-{self.version}" if self.version else "")

    @property
    def bpf_llvm_version(self) -> int:
        """The LLVM major version the job compiles its BPF programs with: its own llvm-N, a
        gcc row's (or an unversioned llvm row's) BPF CI's."""
        return int(self.version) if self.compiler == "llvm" and self.version else BPF_CI_LLVM

    @property
    def short(self) -> str:
        """The short job name kbtf takes and prints: x86_64-llvm-18/test_progs_parallel."""
        runner = self.runner + ("_parallel" if self.parallel else "")
        return f"{self.arch}-{self.toolchain}/{runner}"


def parse_job(name: str) -> VmtestJob:
    """The job a BPF CI job name (any form above) stands for.

    Raises ConfigError, one line: an unknown form (listing the forms), arch or runner, a
    name whose parts disagree, or a row that is no test job (saying what kbtf does).
    """
    text = " ".join(name.split())
    m = _FULL.fullmatch(text) or _SHORT.fullmatch(text)
    if m is None:
        row = _ROW.fullmatch(text)
        if row is not None and row["row"] in OTHER_ROWS:
            short = f"{row['arch']}-{row['cc']}" + (f"-{row['ver']}" if row["ver"] else "")
            raise ConfigError(f"--vmtest-job {name!r} is a {row['row']} row: "
                              + OTHER_ROWS[row["row"]].format(short=short))
        raise ConfigError(f"--vmtest-job {name!r}: not a BPF CI job name; use {FORMS}")
    job = _job(name, m)
    tail = m.groupdict().get("tail")
    if tail and not _tail_agrees(tail, job):
        raise ConfigError(f"--vmtest-job {name!r}: its last part {tail!r} does not name "
                          f"{job.short}'s runner, arch and compiler")
    return job


def _job(name: str, m: re.Match[str]) -> VmtestJob:
    """The VmtestJob of a matched name. Raises ConfigError for an unknown arch or runner."""
    if m["arch"] not in ARCHES:
        raise ConfigError(f"--vmtest-job {name!r}: unknown arch {m['arch']!r}: BPF CI and kbtf "
                          f"test {', '.join(ARCHES)}")
    runner, parallel = m["runner"], m["runner"].endswith("_parallel")
    runner = runner.removesuffix("_parallel") if parallel else runner
    if runner not in RUNNERS or (parallel and not runner.startswith("test_progs")):
        raise ConfigError(f"--vmtest-job {name!r}: unknown runner {m['runner']!r}: use "
                          f"{', '.join(RUNNERS)} (test_progs runners also as <runner>_parallel)")
    timeout = m.groupdict().get("timeout")
    return VmtestJob(m["arch"], m["cc"], m["ver"], runner, parallel,
                     int(timeout) if timeout else None)


def _tail_agrees(tail: str, job: VmtestJob) -> bool:
    """Whether a full name's last part ('<runner> on <arch> with <cc>') names ``job``."""
    m = re.fullmatch(r"(?P<runner>\w+) on (?P<arch>\w+) with (?P<cc>[\w.-]+)", tail.strip())
    if m is None:
        return False
    runner = job.runner + ("_parallel" if job.parallel else "")
    return (m["runner"], m["arch"], m["cc"]) == (runner, job.arch, job.toolchain)


# --vmtest-tests module-btf: test_progs' module-BTF tests (those the tree has): module BTF
# loading, bpf_testmod's kfuncs and ksyms, fentry and kprobes on module functions, CO-RE
# relocations against module types, split and distilled BTF.
MODULE_BTF = "module-btf"
MODULE_BTF_TESTS = (
    "btf_distill", "btf_module", "btf_split", "btf_sysfs", "btf_tag", "core_reloc",
    "kfunc_call", "kfunc_module_order", "kprobe_multi_testmod_test", "ksyms_module",
    "module_attach", "module_fentry_shadow", "struct_ops_module",
)
# The selftests Makefile's rule that generates the runner's test list (tests.h): a sed
# substitution over prog_tests/*.c printing DEFINE_TEST(<name>) for each test function.
_LIST_RULE = re.compile(r"sed -n -E '(s/[^']*DEFINE_TEST[^']*)'")
_DEFINED = re.compile(r"^DEFINE_TEST\((\w+)\)$", re.MULTILINE)
LIST_TIMEOUT = 120  # seconds for sed over a tree's prog_tests/*.c


def list_rule(selftests: Path) -> str:
    """The sed expression the tree's selftests Makefile makes the runner's test list with.

    Raises ConfigError when the Makefile has none kbtf can read (the list is a fact of the
    tree, never guessed)."""
    makefile = selftests / "Makefile"
    text = makefile.read_text(errors="replace") if makefile.is_file() else ""
    m = _LIST_RULE.search(text)
    if m is None:
        raise ConfigError(f"{makefile}: no sed rule printing DEFINE_TEST(...): kbtf cannot "
                          f"read which tests this tree's test_progs has")
    return m[1].replace("$$", "$")


def tree_tests(selftests: Path, files: list[Path] | None = None) -> list[str]:
    """The test_progs tests of a tree's tools/testing/selftests/bpf (of just ``files`` of
    its prog_tests/, when given), sorted: its Makefile's own sed rule run over the files,
    as the build runs it to make the runner's list.

    Raises ConfigError if it has no prog_tests/ or no rule kbtf can read, CommandError if
    sed fails."""
    files = files if files is not None else sorted((selftests / "prog_tests").glob("*.c"))
    if not files and not (selftests / "prog_tests").is_dir():
        raise ConfigError(f"{selftests} has no prog_tests/*.c: not a tree with BPF selftests")
    if not files:
        return []
    out = proc.run(["sed", "-n", "-E", list_rule(selftests), *files], timeout=LIST_TIMEOUT)
    return sorted(set(_DEFINED.findall(out.stdout)))


def needs_testmod(selftests: Path, test: str) -> bool:
    """Whether ``test``'s prog_tests/ file refers to bpf_testmod (``env.has_testmod``,
    its kfuncs, its BTF): the runner skips or fails it when bpf_testmod is not loaded."""
    for f in sorted((selftests / "prog_tests").glob("*.c")):
        text = f.read_text(errors="replace")
        if re.search(rf"^void (?:serial_)?test_{re.escape(test)}\(", text, re.MULTILINE):
            return "testmod" in text
    return False


def glob_match(name: str, pattern: str) -> bool:
    """test_progs' own matching of a -a/-d pattern: ``*`` is its only wildcard."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), name) is not None


def select_tests(available: list[str], wanted: str | None) -> list[str]:
    """The tests to run: by default or 'all', the runner's whole list in one runner, as BPF
    CI runs it (["all"]); 'module-btf': MODULE_BTF_TESTS ``available`` has; or 'name,name/
    sub,...' as test_progs' -a takes them. Raises ConfigError for a name or glob no test
    of the tree matches, or an empty subtest."""
    if wanted is None or wanted == "all":
        return ["all"]
    if wanted == MODULE_BTF:
        return [t for t in MODULE_BTF_TESTS if t in available]
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    for name in names:
        top, slash, sub = name.partition("/")
        if slash and not sub:
            raise ConfigError(f"--vmtest-tests {name!r}: no subtest after '/' (test_progs "
                              f"would run none of {top!r}'s): give {top!r} or {top}/SUBTEST")
        if not any(glob_match(t, top) for t in available):
            near = [t for t in available if top.strip("*") in t or t in top][:5]
            raise ConfigError(f"--vmtest-tests: no test {top!r} in this tree's test_progs"
                              + (f" (near: {', '.join(near)})" if near else ""))
    return names


def compiler_for(job: VmtestJob, host: list[int], suite_clangs: Callable[[str], list[int]]
                 ) -> tuple[Toolchain, str]:
    """The toolchain kbtf builds ``job``'s kernel with, and the substitution it made (""
    when none): gcc is the host's gcc (a job naming gcc-N says so); llvm-N is found as
    ``find_llvm`` does (host, then a suite's build root, else the nearest).

    Raises ConfigError when neither the host nor any suite has a clang.
    """
    if job.compiler == "gcc":
        return GCC, (f"{job.toolchain} -> the host's gcc" if job.version else "")
    want = int(job.version) if job.version else max(host, default=BPF_CI_LLVM)
    chain = find_llvm(want, host, suite_clangs, f"{job.short}'s kernel")
    note = "" if chain.version == want else \
        f"kernel: {job.toolchain} is in no Debian suite -> {chain.label}"
    return chain, note


# The LLVM BPF CI compiles a gcc job's BPF programs with (kernel-patches/bpf's matrix, its
# LLVM_VERSION, 2026-12): a gcc row names no LLVM, so kbtf takes CI's.
BPF_CI_LLVM = 21
# Debian suites a BPF compiler comes from when the host has not got it, oldest first (the
# oldest root is the closest to the host that built the kernel).
LLVM_SUITES = ("bookworm", "trixie", "sid")


def find_llvm(want: int, host: list[int], suite_clangs: Callable[[str], list[int]],
              what: str) -> Toolchain:
    """clang-``want`` from the host if installed, else from the oldest of LLVM_SUITES
    offering it, else the nearest version anywhere (newer on a tie); ``suite_clangs(suite)``
    lists the clang-N versions a suite offers (read only as far as needed).

    Raises ConfigError naming ``what`` when neither the host nor any suite has a clang."""
    if want in host:
        return Toolchain.llvm(want)
    for suite in LLVM_SUITES:
        if want in suite_clangs(suite):
            return Toolchain.llvm(want, suite)
    found = [Toolchain.llvm(v) for v in host] + [Toolchain.llvm(v, s) for s in LLVM_SUITES
                                                 for v in suite_clangs(s)]
    if not found:
        raise ConfigError(f"{what}: no clang-N on this machine or in Debian "
                          f"{', '.join(LLVM_SUITES)}")
    return min(found, key=lambda b: (abs(b.version - want), -b.version))


def bpf_llvm_for(job: VmtestJob, host: list[int], suite_clangs: Callable[[str], list[int]]
                 ) -> tuple[Toolchain, str]:
    """The LLVM for ``job``'s BPF programs: its own llvm-N (a gcc job: BPF_CI_LLVM), found
    as ``find_llvm`` does, with the substitution said ("" if none).

    Raises ConfigError when neither the host nor any suite has a clang."""
    want = job.bpf_llvm_version
    found = find_llvm(want, host, suite_clangs, f"{job.short}'s BPF programs")
    note = "" if found.version == want else \
        f"BPF programs: llvm-{want} is in no Debian suite -> {found.label}"
    return found, note


# test_progs and its flavours report each test (`#N name:OK`); the other runners are one
# result each (their exit code and last lines).
TEST_PROGS_RUNNERS = ("test_progs", "test_progs_no_alu32", "test_progs_cpuv4")


@dataclass(frozen=True)
class VmtestPoint:
    """A BPF CI job on one kernel tree: its kernel (BPF CI's configuration of the tree) and
    what compiles its BPF programs."""

    job: VmtestJob
    point: MatrixPoint  # the kernel: config_base BPF_CI_BASE, the job's arch and compiler
    bpf_llvm: Toolchain  # compiles the BPF programs (BPF CI: its LLVM version, any compiler)
    substitution: str = ""  # what kbtf runs instead of what the job names ("" if nothing)

    @property
    def id(self) -> str:
        """Names the job and the kernel in test ids: x86_64-llvm-18~llvm-19-test_progs-
        debian6.12.117 (``~``: the substitute kbtf runs; ``~bpf-clang-N``: the BPF
        programs' one)."""
        chain = self.job.toolchain
        actual = self.point.kernel.toolchain.name
        if self.substitution and actual != chain:
            chain += f"~{actual}"
        if self.bpf_llvm.version != self.job.bpf_llvm_version:
            chain += f"~bpf-{self.bpf_llvm.clang}"
        runner = self.job.runner + ("_parallel" if self.job.parallel else "")
        return f"{self.job.arch}-{chain}-{runner}-{self.point.kernel.source.label}"

    @property
    def group(self) -> str:
        """Its kernel (Unit.group): jobs on one kernel share its builds."""
        return self.point.kernel_id

    @property
    def arch(self) -> Arch:
        return self.point.kernel.arch

    @property
    def describe(self) -> str:
        return f"{self.job.short} on {self.point.kernel.source.label} (BPF CI job)"

    @property
    def source_kernel(self) -> KernelRequest:
        return self.point.kernel

    def facts(self) -> dict[str, object]:
        """What summary.md and matrix.json say of the job before any test ran."""
        k = self.point.kernel
        return {"arch": k.arch.name, "kernel": k.source.label, "toolchain": k.toolchain.label,
                "kernel_pahole": k.pahole.identity, "vmtest_job": self.job.short,
                "bpf_clang": self.bpf_llvm.label, "substitution": self.substitution or "-"}

    @property
    def per_test(self) -> bool:
        """Whether each test of the runner is its own result (test_progs flavours)."""
        return self.job.runner in TEST_PROGS_RUNNERS

    def rerun(self, tests: Sequence[str] = ()) -> str:
        """The command line that reruns this job (just ``tests``, when given)."""
        args = ["./kbtf", "pytest", "suites/", "--vmtest-job", self.job.short,
                "--kernel", self.point.kernel.source.spec]
        if tests:
            args += ["--vmtest-tests", ",".join(tests)]
        return shlex.join(args)


def resolve_jobs(names: list[str], sources: list[KernelSource], ph: Pahole,
                 kconfig_add: tuple[str, ...], installed_clangs: list[int],
                 suite_clangs: Callable[[str], list[int]]) -> list[VmtestPoint]:
    """One VmtestPoint per job name and kernel source (the plan: nothing is read from the
    trees, which may not be fetched yet; ``suite_clangs`` as for bpf_llvm_for).

    Raises ConfigError (a name kbtf cannot map, no clang), ToolMissing (a compiler's
    programs).
    """
    found = []
    jobs: dict[str, VmtestJob] = {}  # one job however it is spelt: keyed by what it runs
    for name in names:
        job = parse_job(name)
        jobs.setdefault(job.short, job)
    for job in jobs.values():
        chain, note = compiler_for(job, installed_clangs, suite_clangs)
        arch = get_arch(job.arch)
        if not chain.suite:  # the host's: its programs must be installed
            toolchain.resolve(chain.name, arch)
        bpf, bpf_note = bpf_llvm_for(job, installed_clangs, suite_clangs)
        notes = "; ".join(n for n in (note, bpf_note) if n)
        for source in sources:
            req = KernelRequest(arch, source, ph, kconfig_add, toolchain=chain,
                                config_base=BPF_CI_BASE)
            found.append(VmtestPoint(job, MatrixPoint(req, ph, "kbtf"), bpf, notes))
    return found
