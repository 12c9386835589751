"""Benchmark and check: a kernel for a second pahole built as an increment of the cached
kernel of the first, against a clean build of the same request.

Usage: ./kbtf python -m bench.increment [--arch x86_64] [--kernel debian:6.12]
           [--base debian:1.30] [--pahole debian:1.32] [--no-clean] [--kconfig-add ITEM]

With --kconfig-add CONFIG_IKHEADERS=n nothing else forces the final link: on 7.x the
increment must still re-encode the vmlinux BTF (kbuild.FINAL_LINK).

1. kernel A with --base's pahole, in the default cache (built first if missing);
2. kernel A with --pahole's, in the default cache: kbuild seeds it with a copy of (1) and
   make rebuilds what the pahole change touches (timed; skipped when already cached);
3. the same request clean, in a temp cache (timed), unless --no-clean;
4. the two must have the same .config and byte-identical vmlinux .BTF (sha256 printed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from harness.arches import get_arch
from harness.btf.elfbtf import section_data
from harness.builds import fetch, kbuild
from harness.plan import ksource
from harness.plan.kernelreq import KernelRequest
from harness.plan.matrix import resolve_pahole


def btf_sha(vmlinux: Path) -> str:
    """sha256 of vmlinux's .BTF section."""
    return hashlib.sha256(section_data(vmlinux, ".BTF") or b"").hexdigest()


def timed_build(req: KernelRequest, cache: Path) -> tuple[kbuild.KernelBuild, float]:
    """ensure_kernel(req) into ``cache`` and the seconds it took."""
    start = time.monotonic()
    build = kbuild.ensure_kernel(req, cache, print)
    return build, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--kernel", default=ksource.DEFAULT_KERNEL)
    parser.add_argument("--base", default="debian:1.30", help="pahole of the cached kernel")
    parser.add_argument("--pahole", default="debian:1.32", help="pahole of the new kernel")
    parser.add_argument("--no-clean", action="store_true", help="skip the clean build")
    parser.add_argument("--kconfig-add", action="append", default=[], metavar="ITEM",
                        help="as the pytest option: a fragment file or CONFIG_X=v")
    args = parser.parse_args()
    cache = kbuild.default_cache_dir()
    source = ksource.resolve(args.kernel, cache)
    fetch.fetch_source(source, cache, print)
    arch = get_arch(args.arch)
    extra = tuple(args.kconfig_add)
    base = KernelRequest(arch, source, fetch.fetch_pahole(resolve_pahole(args.base, cache),
                                                          cache, print), extra)
    new = KernelRequest(arch, source, fetch.fetch_pahole(resolve_pahole(args.pahole, cache),
                                                         cache, print), extra)
    kbuild.ensure_kernel(base, cache, print)
    incremental, inc_s = timed_build(new, cache)
    meta = json.loads((incremental.dir / "kbtf-build.json").read_text())
    result = {"arch": arch.name, "kernel": source.label, "base": base.pahole.label,
              "pahole": new.pahole.label, "seeded_from": meta.get("seeded_from"),
              "incremental_s": round(inc_s), "incremental_btf": btf_sha(incremental.vmlinux)}
    if not args.no_clean:
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            clean, clean_s = timed_build(new, Path(tmp))
            result.update(clean_s=round(clean_s), clean_btf=btf_sha(clean.vmlinux),
                          same_config=(clean.dir / ".config").read_text()
                          == (incremental.dir / ".config").read_text())
            result["identical"] = (result["same_config"]
                                   and result["clean_btf"] == result["incremental_btf"])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
