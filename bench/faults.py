"""Fault injection, run by hand (not in CI): kill, stop and hang parts of a real run and
check what kbtf reports, that no QEMU is left, and that the cache is still right.

    ./kbtf python -m bench.faults [--only NAME ...]

Needs a warm cache for the default point (run ./kbtf pytest suites/ -n auto once). Each
fault prints one Markdown row; bench/RESULTS.md keeps the table.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path("/tmp/kbtf-faults")
CACHE = Path(os.environ.get("KBTF_CACHE_DIR", Path.home() / ".cache" / "kbtf"))
QUICK = ["suites/test_module_btf.py", "-n", "1", "--arch", "x86_64"]


@dataclass
class Run:
    """A pytest run of kbtf started in the background."""

    proc: subprocess.Popen[str]
    out: Path

    def text(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def summary(self) -> str:
        lines = [ln.strip("= ") for ln in self.text().splitlines() if re.search(
            r"\d+ (passed|failed|error|errors|skipped)|no tests ran|Interrupted|"
            r"KeyboardInterrupt", ln)]
        return lines[-1] if lines else f"(exit {self.proc.returncode}, no pytest summary)"


def start(name: str, args: list[str], env: dict[str, str] | None = None) -> Run:
    """Start ./kbtf pytest ARGS (pytest is the process started: ./kbtf execs it)."""
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / f"{name}.out"
    fh = out.open("w")
    proc = subprocess.Popen(["./kbtf", "pytest", *args], cwd=ROOT, stdout=fh,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "KBTF_SKIP_SETUP": "1", **(env or {})})
    return Run(proc, out)


def wait_for(what: str, cond: Callable[[], bool], run: Run, timeout: float = 900) -> None:
    """Wait until ``cond()``; exits naming ``what`` if ``run`` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline or run.proc.poll() is not None:
            raise SystemExit(f"faults: gave up waiting for {what} (see {run.out})")
        time.sleep(0.2)


def pids(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if int(p) != os.getpid()]


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def qemu_left(settle: float = 5.0) -> int:
    time.sleep(settle)
    return len(pids("^[^ ]*qemu-system"))


def hit(run: Run, targets: list[int], sig: signal.Signals) -> int:
    """Send ``sig`` to ``targets``, let ``run`` end, and count the QEMU processes left."""
    for pid in targets:
        os.kill(pid, sig)
    run.proc.wait()
    return qemu_left()


def temp_dirs() -> list[Path]:
    return sorted((CACHE / "kernels").glob(".x86_64-*")) if (CACHE / "kernels").exists() else []


def next_run_reuses_cache(name: str) -> str:
    quick = "test_vmlinux_has_btf or test_sys_kernel_btf_vmlinux"
    run = start(f"{name}-next", [*QUICK, "-k", quick])
    run.proc.wait()
    rebuilt = "building kernel" in run.text()
    return f"next run: {run.summary()}{', REBUILT a kernel' if rebuilt else ', cache reused'}"


def row(fault: str, command: str, outcome: str, qemu: int, cache: str) -> str:
    cells = [fault, f"`{command}`", outcome, str(qemu), cache]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


# -- the faults ----------------------------------------------------------------------------


def sigkill_pytest_during_boot(xdist: bool) -> str:
    args = [*QUICK, "-k", "test_sys_kernel_btf_vmlinux"]
    if not xdist:  # -n 0: the tests run in pytest's own process
        args = [a if a != "1" else "0" for a in args]
    name = "sigkill-pytest-boot" + ("-xdist" if xdist else "")
    run = start(name, args)
    wait_for("a QEMU", lambda: bool(pids("^[^ ]*qemu-system")), run)
    time.sleep(2)  # mid-boot
    os.kill(run.proc.pid, signal.SIGKILL)
    run.proc.wait()
    left = qemu_left()
    what = "xdist controller" if xdist else "pytest (no xdist)"
    return row(f"kill -9 of the {what} during a boot", " ".join(["pytest", *args]),
               "run killed: no report (nothing to report)", left, next_run_reuses_cache(name))


def sigkill_worker() -> str:
    args = [*QUICK, "--max-worker-restart", "0"]
    run = start("sigkill-worker", args)
    wait_for("a QEMU", lambda: bool(pids("^[^ ]*qemu-system")), run)
    time.sleep(2)
    left = hit(run, children(run.proc.pid), signal.SIGKILL)  # the controller's children: workers
    crash = re.search(r"worker '?gw\d'? crashed[^\n]*", run.text())
    outcome = run.summary() + (f"; xdist: {crash.group(0)}" if crash else "")
    return row("kill -9 of the xdist worker during a boot", " ".join(["pytest", *args]), outcome,
               left, next_run_reuses_cache("sigkill-worker"))


def sigstop_qemu() -> str:
    args = [*QUICK]
    latest = ROOT / "results" / "latest"
    before = latest.resolve()
    run = start("sigstop-qemu", args, {"KBTF_TIMEOUT_SCALE": "0.25"})
    log = latest / "kbtf-gw0.log"
    wait_for("a booted guest", lambda: latest.resolve() != before and log.exists()
             and "shell after" in log.read_text(), run)
    time.sleep(1)
    left = hit(run, pids("^[^ ]*qemu-system"), signal.SIGSTOP)
    timeouts = re.findall(r"GuestTimeout: [^\n]*", run.text())
    outcome = run.summary() + (f"; {timeouts[0][:160]}" if timeouts else "")
    reboot = "guest rebooted (boot2 logs)" if list(
        (ROOT / "results" / "latest").rglob("*.boot2.console.log")) else "no reboot"
    return row("kill -STOP of QEMU (timeouts x0.25)", " ".join(["pytest", *args]),
               f"{outcome}; {reboot}", left, next_run_reuses_cache("sigstop-qemu"))


def hung_pahole() -> str:
    WORK.mkdir(parents=True, exist_ok=True)
    real = CACHE / "pahole" / "debian-1.30" / "usr" / "bin" / "pahole"
    script = WORK / "hang-pahole"
    script.write_text(
        "#!/bin/sh\n# Answers the version queries like pahole 1.30, then hangs on real work.\n"
        f'case "$1" in --version|--supported_btf_features) exec {real} "$1";; esac\n'
        "exec sleep 100000\n")
    script.chmod(0o755)
    args = [*QUICK, "--pahole", "debian:1.30", "--module-pahole", str(script)]
    run = start("hung-pahole", args, {"KBTF_TIMEOUT_SCALE": "0.1"})
    run.proc.wait()
    left = qemu_left()
    hung = re.search(r"BuildFailure\)?:? [^\n]*hung[^\n]*", run.text())
    sleeps = len(pids("sleep 100000"))
    outcome = run.summary() + (f"; {hung.group(0)[:170]}" if hung else "")
    return row("pahole that hangs (`--module-pahole`, timeouts x0.1)", " ".join(["pytest", *args]),
               outcome, left, f"hung pahole processes left: {sleeps}")


def signal_during_build(sig: signal.Signals) -> str:
    # A config no cache entry has: a real build starts.
    args = [*QUICK, "--kconfig-add", "CONFIG_NET_SCHED=y"]
    name = f"{sig.name.lower()}-build"
    before = set(temp_dirs())
    run = start(name, args)
    wait_for("the compile", lambda: "compiling" in run.text(), run)
    time.sleep(20)
    os.kill(run.proc.pid, sig)
    t0 = time.monotonic()
    run.proc.wait()
    stop_s = time.monotonic() - t0
    left_tmp = [p for p in temp_dirs() if p not in before]
    time.sleep(10)
    make_left = len(pids(r"make -C .* O=")) + len(pids("cc1 "))
    cache = f"temp dirs left: {len(left_tmp)}"
    if left_tmp:
        sweep = start(f"{name}-sweep", [*QUICK, "--collect-only", "-q"])
        sweep.proc.wait()
        gone = not any(p.exists() for p in left_tmp)
        cache += f"; next run's start {'removed' if gone else 'did NOT remove'} them"
    outcome = f"{run.summary()}; exit {run.proc.returncode} after {stop_s:.1f}s"
    return row(f"{sig.name} of pytest during a kernel build", " ".join(["pytest", *args]),
               f"{outcome}; make/cc1 processes left after 10 s: {make_left}", qemu_left(0), cache)


FAULTS: dict[str, Callable[[], str]] = {
    "sigkill-pytest-boot": lambda: sigkill_pytest_during_boot(xdist=False),
    "sigkill-controller-boot": lambda: sigkill_pytest_during_boot(xdist=True),
    "sigkill-worker": sigkill_worker,
    "sigstop-qemu": sigstop_qemu,
    "hung-pahole": hung_pahole,
    "sigterm-build": lambda: signal_during_build(signal.SIGTERM),
    "sigkill-build": lambda: signal_during_build(signal.SIGKILL),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(FAULTS), default=None)
    args = parser.parse_args()
    print("| fault | command | outcome | QEMU left | cache / leftovers |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.only or FAULTS:
        print(FAULTS[name](), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
