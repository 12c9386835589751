"""Benchmark: boot to first guest command (median of several boots) split into its phases,
and the command round trip in a live session, per arch and launcher.

The phases of a kbtf-launcher boot: QEMU and firmware up to the kernel's clock, the kernel
up to running init (its printk time of "Run /kbtf/init", booted with printk.time=1), then
kbtf's init (mounts, the shell) and the handshake with its identity check.

Usage: ./kbtf python -m bench.guest_bench [--arch x86_64] [--launcher kbtf|vng] [--boots 5]
       [--runs 50] [--accel auto|kvm|tcg]
Boots the point's cached kernel A (run the main job once first to build it).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from harness.builds import kbuild
from harness.guest import accel, vm
from harness.guest.session import GuestSession, boot_spec
from harness.launchers import LAUNCHERS
from harness.plan.matrix import resolve_points


def init_seconds(console: str) -> float | None:
    """The kernel's printk time of running kbtf's init, from a console log (None if the
    kernel printed no such line: another launcher, or no printk times)."""
    m = re.search(r"^\[\s*(\d+\.\d+)\] Run /kbtf/init as init process", console, re.MULTILINE)
    return float(m.group(1)) if m else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default=None)
    parser.add_argument("--launcher", default=None, choices=LAUNCHERS)
    parser.add_argument("--boots", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--accel", default="auto", choices=accel.ACCELS)
    args = parser.parse_args()
    cache = kbuild.default_cache_dir()
    point = resolve_points([args.arch] if args.arch else None, None, [], [], cache, None,
                           args.launcher)[0]
    build = kbuild.ensure_kernel(point.kernel, cache, print)
    with tempfile.TemporaryDirectory() as tmp:
        host_qemu = point.kernel.arch.qemu if point.kernel.arch.is_host() else None
        kvm, why = accel.run_verdict(args.accel, host_qemu, Path(tmp), cache)
        spec = boot_spec(build, point.launcher, cache,
                         (vm.Share("run", Path(tmp)), vm.Share("repo", Path(tmp)),
                          vm.Share("out", Path(tmp) / "out", writable=True)), kvm,
                         cmdline=("printk.time=1",))
        print(f"point {point.id}, launcher {point.launcher}, kvm: {spec.kvm} ({why})")
        boots, walls, inits = [], [], []
        for n in range(1, args.boots + 1):
            start = time.monotonic()
            guest = GuestSession(spec, Path(tmp), "bench", n)
            guest.start()
            boots.append(guest.boot_seconds)
            inits.append(init_seconds(guest.console_log.read_text(errors="replace")))
            if n < args.boots:
                guest.close()
                walls.append(time.monotonic() - start)
        print(f"boot to first command: median {statistics.median(boots):.1f} s over "
              f"{len(boots)} boots ({', '.join(f'{b:.1f}' for b in boots)}); boot + kernel "
              f"check + poweroff: median {statistics.median(walls or [0]):.1f} s")
        known = [i for i in inits if i is not None]
        if known:
            print(f"the kernel runs init at {statistics.median(known):.2f} s of guest time "
                  f"(median; {', '.join(f'{i:.2f}' for i in known)}); QEMU, firmware, kbtf's "
                  f"init and the handshake take the other "
                  f"{statistics.median(boots) - statistics.median(known):.2f} s")
        try:
            for name, cmd in (("builtin (true)", "true"), ("one exec (/bin/true)", "/bin/true")):
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    guest.run(cmd)
                    times.append((time.perf_counter() - t0) * 1000)
                print(f"round trip {name}: median {statistics.median(times):.0f} ms, "
                      f"p90 {sorted(times)[int(len(times) * 0.9)]:.0f} ms over {args.runs}")
        finally:
            guest.close()


if __name__ == "__main__":
    main()
