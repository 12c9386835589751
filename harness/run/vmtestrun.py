"""One BPF CI job's pipeline (--vmtest-job): its kernel (BPF CI's configuration of the tree,
through PointRun), its selftests built for that kernel, a guest that sees them, and each
test of the runner run there the way BPF CI runs it (from the selftests dir, with the
tree's DENYLIST files, bpf_testmod loaded by the runner itself)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.btf.elfbtf import overlap_btf_sections
from harness.builds import kbuild, modbuild, selftests
from harness.builds.selftests import Selftests
from harness.errors import HarnessError, KbtfError, KernelTrouble, ProductFailure
from harness.guest import guestroot, testprogs
from harness.guest.pool import GuestPool
from harness.guest.session import GuestSession, boot_name, boot_spec
from harness.guest.vm import Share
from harness.plan.kernelreq import SELFTESTS_DIR
from harness.plan.vmtest import (
    VmtestPoint,
    glob_match,
    needs_testmod,
    tree_tests,
)
from harness.run.pointrun import (
    CORRUPT_BTF,
    STRIP,
    PointRun,
    guest_shares,
    raise_recorded,
    record_failure,
    worker_id,
)

# Seconds one test of a runner may take in a TCG guest (BPF CI gives a whole job 360 min
# under KVM; single tests take seconds, the slowest a few minutes there).
TEST_TIMEOUT = 900
# BPF CI's guest (kernel-patches/vmtest's run-vmtest): 4 vCPUs, 5 GB, and its kernel
# command line; kbtf gives no more vCPUs than the host has cores.
CI_CPUS, CI_MEMORY = 4, "5G"
CI_CMDLINE = ("panic=-1", "sysctl.vm.panic_on_oom=1", "hardlockup_all_cpu_backtrace=1",
              "softlockup_all_cpu_backtrace=1", "kasan_multi_shot", "no5lvl",
              "log_buf_len=16M")
ALL_TIMEOUT, GUEST_MARGIN = 6 * 3600, 120  # the whole runner's limit; the guest's beyond
TIMED_OUT = (124, 137)  # timeout(1)'s exit codes: the limit, then its KILL
# Where the runner writes its JSON summary in the guest (its tmpfs).
JSON_SUMMARY = "/tmp/kbtf-test_progs.json"
JSON_MARK = "KBTF-JSON-SUMMARY"  # between the runner's output and its JSON summary
COPY_TIMEOUT = 900  # linking (or copying) the selftests dir for a sabotaged run


@dataclass(frozen=True)
class VmtestRun:
    """``vmtest`` in the run writing to ``run_dir``, with kbtf's cache at ``cache_dir``."""

    vmtest: VmtestPoint
    run_dir: Path
    cache_dir: Path
    kvm: bool = False
    sabotage: str | None = None  # --sabotage strip-btf(-base) / corrupt-btf: the test modules
    cpus: int | None = None  # --guest-cpus (None: BPF CI's, as the host allows)
    memory: str | None = None  # --guest-memory (None: BPF CI's)

    @property
    def shape(self) -> tuple[int, str]:
        """The guest's vCPUs and memory: --guest-cpus/--guest-memory, else BPF CI's, with no
        more vCPUs than this host has cores."""
        cpus = self.cpus or min(CI_CPUS, os.cpu_count() or 1)
        return cpus, self.memory or CI_MEMORY

    def shape_note(self) -> str:
        """The guest's shape against BPF CI's, for summary.md."""
        cpus, memory = self.shape
        said = f"{cpus} vCPUs, {memory}"
        if (cpus, memory) == (CI_CPUS, CI_MEMORY):
            return f"{said} (as BPF CI)"
        why = (f"this host has {os.cpu_count()} cores" if not self.cpus and cpus < CI_CPUS
               else "as asked")
        return f"{said} (BPF CI: {CI_CPUS} vCPUs, {CI_MEMORY}; {why})"

    @property
    def point_run(self) -> PointRun:
        """The kernel's pipeline (builds, failure markers) as for any point."""
        return PointRun(self.vmtest.point, self.run_dir, self.cache_dir, None, self.kvm)

    @property
    def dir(self) -> Path:
        return self.run_dir / self.vmtest.id

    def kernel(self) -> kbuild.KernelBuild:
        """The job's kernel from the cache. Raises like PointRun.kernel."""
        return self.point_run.kernel("")

    def selftests(self, progress: kbuild.Progress | None = None) -> Selftests:
        """The job's runner and test modules built for its kernel (cached by content).
        Raises the error of an earlier failed build in this run again, else what
        selftests.ensure raises."""
        raise_recorded(self.dir / "selftests-failed.json")
        return selftests.ensure(self.kernel(), self.vmtest.bpf_llvm, self.vmtest.job.binary,
                                self.cache_dir, progress or (lambda _msg: None),
                                guestroot.SUITE)

    def build(self, progress: kbuild.Progress) -> None:
        """Build the kernel, then the selftests (the controller, before tests are
        distributed); a failure is written down for the tests, not raised."""
        self.point_run.build_kernel("", progress)
        try:
            self.selftests(progress)
        except KbtfError as exc:
            record_failure(self.dir / "selftests-failed.json", exc)
            progress(f"kbtf: {self.vmtest.id} selftests: {exc}")

    def guest(self, pool: GuestPool, built: Selftests) -> GuestSession:
        """The live guest of this process running the job's kernel, with the ``built``
        selftests shared at /kbtf/selftests (read only) and the runner's packages in its
        root."""
        kernel = self.kernel()
        logdir = self.dir / "guests"
        base = f"vmtest-{worker_id()}"

        shared = self.sabotaged(built)

        def make(boot: int) -> GuestSession:
            shares = (*guest_shares(self.run_dir, logdir / f"{boot_name(base, boot)}.out"),
                      Share("selftests", shared, immutable=True))
            spec = boot_spec(kernel, "kbtf", self.cache_dir, shares, self.kvm,
                             root_packages=guestroot.VMTEST_PACKAGES, cmdline=CI_CMDLINE,
                             shape=self.shape)
            return GuestSession(spec, logdir, base, boot)

        # a guest is keyed by all it carries: the kernel and the selftests share
        key = f"{kernel.key}:{shared}"
        return pool.get(key, make, self.vmtest.id)

    def sabotaged(self, built: Selftests) -> Path:
        """The selftests dir the guest sees: the cached one, or with --sabotage strip-* or
        corrupt-btf a run-local tree of hard links to it (a copy where links cannot be
        made) whose test modules (the .ko files the runner loads) are copies with the
        section removed or their .BTF made invalid."""
        section = STRIP.get(self.sabotage or "")
        if section is None and self.sabotage != CORRUPT_BTF:
            return built.bpf_dir
        tree = self.dir / f"selftests-{self.sabotage}"
        if not tree.is_dir():
            tmp = tree.with_name(tree.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            linked = proc.run(["cp", "-al", built.bpf_dir, tmp], timeout=COPY_TIMEOUT,
                              check=False)
            if linked.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                proc.run(["cp", "-a", built.bpf_dir, tmp], timeout=COPY_TIMEOUT)
            for ko in sorted(tmp.glob("*.ko")):
                data = ko.read_bytes()
                ko.unlink()  # a copy of its own: never through the link into the cache
                ko.write_bytes(data)
                if section is not None:
                    modbuild.remove_section(ko, self.vmtest.point.kernel.arch, section)
                else:
                    overlap_btf_sections(ko)
            tmp.rename(tree)
        return tree

    def denylists(self) -> list[Path]:
        """The tree's DENYLIST files a test_progs flavour runs with (those it has)."""
        tree = self.vmtest.point.kernel.source.path / SELFTESTS_DIR
        return [tree / name for name in ("DENYLIST", f"DENYLIST.{self.vmtest.job.arch}")
                if (tree / name).is_file()]

    def runner_argv(self, tests: list[str]) -> list[str]:
        """The runner's command line in the guest: from the selftests dir; a test_progs
        flavour with the tree's DENYLIST files and just ``tests`` (-a each); test_verifier
        and test_maps plainly, as BPF CI runs them (they take no such options:
        test_verifier reads "-d@DENYLIST" as test number 0)."""
        built = selftests.Selftests(Path("/kbtf/selftests"), self.vmtest.job.binary)
        argv = [f"./{built.runner}"]
        if not self.vmtest.per_test:
            return argv
        if self.vmtest.job.parallel:
            argv.append("-j")
        argv += [f"-d@{path.name}" for path in self.denylists()]
        for test in tests:
            argv += ["-a", test]
        return argv

    def time_limit(self, tests: list[str]) -> int:
        """Seconds the runner may take for ``tests``: TEST_TIMEOUT for each test of the
        tree they name (a glob names several); all of them: the job's own timeout in CI,
        else ALL_TIMEOUT."""
        whole = (self.vmtest.job.timeout_min or 0) * 60 or ALL_TIMEOUT
        if not tests:
            return whole
        tree = tree_tests(self.vmtest.point.kernel.source.path / SELFTESTS_DIR)
        named = sum(max(1, sum(glob_match(t, test.split("/")[0]) for t in tree))
                    for test in tests)
        return min(TEST_TIMEOUT * named, whole)

    def run_tests(self, session: GuestSession, tests: list[str]) -> testprogs.RunnerOutput:
        """Run ``tests`` in ``session`` under kbtf's time limit; their verdicts. The output
        goes to <job>/runs/<first test>.log (as it comes, to the guest's out dir: a crash
        keeps it). Raises KernelTrouble (a splat, quoted, with the runner's last report),
        GuestTimeout (the guest stopped answering), ProductFailure (past the limit, naming
        the tests not finished, or no verdict at all: the runner or the kernel broke)."""
        session.once_per_boot("loopback", lambda: _loopback_up(session))
        limit = self.time_limit(tests)
        argv = ["timeout", "-k", "10", str(limit), *self.runner_argv(tests)]
        json_summary = self.vmtest.per_test and "json-summary" in (
            self.vmtest.point.kernel.source.path / SELFTESTS_DIR / "test_progs.c"
        ).read_text(errors="replace")
        if json_summary:
            argv += ["-J", JSON_SUMMARY]
        live = session.out_dir / "runner.log"
        command = (f"cd /kbtf/selftests && {{ {shlex.join(argv)}; }} 2>&1 | tee "
                   f"{session.path(live)} ; r=${{PIPESTATUS[0]}}")
        if json_summary:  # the summary comes back with the output: one round trip a test
            command += f"; printf '\\n{JSON_MARK}\\n'; cat {JSON_SUMMARY}"
        try:
            result = session.run(command + "; exit $r", timeout=limit + GUEST_MARGIN)
        except KernelTrouble as trouble:  # the runner's last words name where it was
            said = live.read_text(errors="replace") if live.is_file() else ""
            raise KernelTrouble(f"{trouble.args[0]}\n{testprogs.last_report(said)}",
                                trouble.log, trouble.fatal) from None
        stdout, _, summary = result.stdout.partition(f"\n{JSON_MARK}\n")
        out = self.dir / "runs" / f"{(tests or ['all'])[0].replace('/', '_').replace('*', '_')}.log"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"$ {command}\n# exit {result.rc}\n{stdout}\n"
                       f"# stderr:\n{result.stderr}")
        tail = (stdout + result.stderr).strip()[-300:]
        if result.rc and "error while loading shared libraries" in tail:  # the root lacks one
            raise HarnessError(f"{self.vmtest.job.binary} cannot start in kbtf's guest "
                               f"root: {tail!r}", log=out)
        parsed = (testprogs.parse(stdout, result.rc, result.stderr) if self.vmtest.per_test
                  else testprogs.parse_whole(stdout, result.stderr, result.rc))
        if result.rc in TIMED_OUT:
            unfinished = [t for t in tests or ["all"] if t.split("/")[0] not in parsed.tests]
            raise ProductFailure(f"{self.vmtest.job.binary}: {', '.join(unfinished) or 'all'} "
                                 f"ran past kbtf's limit of {limit}s and was killed; console "
                                 f"tail:\n{session.console_tail()}", log=out)
        if not self.vmtest.per_test:  # test_verifier, test_maps: one verdict, the exit code
            return parsed
        if summary:
            with contextlib.suppress(ValueError):
                testprogs.apply_json(parsed, json.loads(summary))
        if not parsed.tests and parsed.summary is None:
            raise ProductFailure(f"{self.vmtest.job.binary} printed no test verdict (exit "
                                 f"{result.rc}): {tail!r}", log=out)
        return parsed

    def judge(self, session: GuestSession, selection: str, built: Selftests
              ) -> list[testprogs.Outcome]:
        """Run ``selection`` ('all' or a test_progs -a name) and judge each test it names
        (testprogs.judge: against the tree's test list less what ``built`` left out, the
        DENYLIST files and which tests need bpf_testmod). Raises like run_tests."""
        out = self.run_tests(session, [] if selection == "all" else [selection])
        dmesg = ""
        if out.testmod_refused:
            # the loader's words ("failed to validate module [bpf_testmod] BTF: -22")
            res = session.run("dmesg | grep -E 'bpf_testmod|BTF' | tail -n 20")
            dmesg = res.stdout
        tree = self.vmtest.point.kernel.source.path / SELFTESTS_DIR
        aside = {t for a in built.set_aside() for t in a.tests}
        return testprogs.judge(selection, out, [t for t in tree_tests(tree) if t not in aside],
                               testprogs.read_denylists(self.denylists()),
                               functools.partial(needs_testmod, tree), dmesg)


def _loopback_up(session: GuestSession) -> None:
    """Bring the guest's loopback up, as a booted system has it (kbtf's init does not):
    test_maps' sockmap tests connect to 127.0.0.1. Raises HarnessError if it fails."""
    res = session.run("ip link set dev lo up")
    if not res.ok:
        raise HarnessError(f"guest {session.name}: cannot bring lo up: {res.stderr.strip()}",
                           log=session.serial_log)
