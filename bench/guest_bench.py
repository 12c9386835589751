"""Benchmark: boot to first guest command, and command round trip in a live session.

Usage: ./kbtf python -m bench.guest_bench [--runs 50]
Boots the default point's cached kernel (run the main job once first to build it).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness import kbuild, vm
from harness.guest import GuestSession
from harness.matrix import resolve_points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    point = resolve_points(None, None, [], [], kbuild.default_cache_dir())[0]
    build = kbuild.ensure_kernel(point.kernel, kbuild.default_cache_dir(), print)
    kvm, why = vm.probe_kvm(build.arch.qemu)
    print(f"point {point.id}, kvm: {kvm} ({why})")
    with tempfile.TemporaryDirectory() as tmp:
        guest = GuestSession(vm.BootSpec(build.arch, build.image, kvm), Path(tmp), "bench")
        guest.start()
        try:
            print(f"boot to first command: {guest.boot_seconds:.1f} s")
            for name, cmd in (("builtin (true)", "true"), ("one exec (/bin/true)", "/bin/true")):
                times = []
                for _ in range(args.runs):
                    start = time.perf_counter()
                    guest.run(cmd)
                    times.append((time.perf_counter() - start) * 1000)
                print(f"round trip {name}: median {statistics.median(times):.0f} ms, "
                      f"p90 {sorted(times)[int(len(times) * 0.9)]:.0f} ms over {args.runs}")
        finally:
            guest.close()


if __name__ == "__main__":
    main()
