"""Benchmark: cold harness build of the default config against plain make of the same config.

Usage: ./kbtf python -m bench.build_overhead [--plain-first]
Builds twice from scratch (about 15 minutes on 2 cores): once through kbuild.ensure_kernel into
an empty cache, once with plain make commands in a temp dir using the same merged fragment.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from harness import kconfig
from harness.arches import make_argv
from harness.builds import kbuild
from harness.plan.kernelreq import KernelRequest
from harness.plan.matrix import resolve_points


def harness_build(req: KernelRequest, tmp: Path) -> float:
    """Seconds for a cold kbuild.ensure_kernel of ``req`` into an empty cache under ``tmp``."""
    start = time.monotonic()
    kbuild.ensure_kernel(req, tmp / "cache", print)
    return time.monotonic() - start


def plain_build(req: KernelRequest, tmp: Path) -> float:
    """Seconds for the same config with plain make commands (output discarded)."""
    out = tmp / "plain"
    frag = tmp / "frag.config"
    frag.write_text(kconfig.render(req.requested()))
    src = str(req.source.path)
    make = make_argv(req.arch, source=Path(src), out=out, pahole=req.pahole.path)
    start = time.monotonic()
    for argv in (
        [*make, "tinyconfig"],
        [f"{src}/scripts/kconfig/merge_config.sh", "-m", "-O", str(out),
         str(out / ".config"), str(frag)],
        [*make, "olddefconfig"],
        [*make, f"-j{os.cpu_count()}"],
    ):
        subprocess.run(argv, check=True, cwd=src, stdout=subprocess.DEVNULL,
                       env={**os.environ, "ARCH": req.arch.kernel_arch})
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plain-first", action="store_true",
                        help="build with plain make first (to see the order effect)")
    args = parser.parse_args()
    point = resolve_points(None, None, [], [], kbuild.default_cache_dir())[0]
    req = point.kernel
    with tempfile.TemporaryDirectory(dir=kbuild.default_cache_dir()) as tmp:
        if args.plain_first:
            plain_s = plain_build(req, Path(tmp))
            harness_s = harness_build(req, Path(tmp))
        else:
            harness_s = harness_build(req, Path(tmp))
            plain_s = plain_build(req, Path(tmp))
    print(f"harness cold build: {harness_s:.0f} s; plain make: {plain_s:.0f} s; "
          f"overhead {100 * (harness_s - plain_s) / plain_s:+.1f}%"
          + (" (plain make ran first)" if args.plain_first else ""))


if __name__ == "__main__":
    main()
