"""A pulling runner refuses what it must not trust (issue 32 items 14-17), with a real kernel
entry of this machine's cache: it is pushed to a private registry on 127.0.0.1 (Debian's
docker-registry, unpacked: harness/registry.py) signed by a pusher's key, and runner 2 (an
empty cache dir) trusts that key. Scenarios: the signed entry (pulled and used), an unsigned
entry, the tag overwritten with another entry signed by another key, a truncated blob, and
no trusted key configured (pulled, the run says it trusts every pusher). For each: the
warning lines, whether the local build ran (a stand-in fill that records that it was asked:
a real build takes 8 min and is what the suites time), and what the cache holds after.

    python -m bench.cache_trust [ENTRY_NAME]   (default: the newest x86_64 kernel entry)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from harness import registry, signing
from harness.builds import cacheremote, kbuild


def newest_kernel(cache: Path) -> Path:
    """The most recently used complete x86_64 kernel entry of ``cache``."""
    entries = [e for e in (cache / "kernels").glob("x86_64-*/") if kbuild.is_complete(e)]
    return max(entries, key=lambda e: cacheentry_used(e))


def cacheentry_used(entry: Path) -> float:
    used = entry.with_name(entry.name + ".used")
    return used.stat().st_mtime if used.exists() else entry.stat().st_mtime


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def scenario(name: str, remote: cacheremote.Remote, tag: str, runner2: Path,
             warnings: Warnings) -> dict[str, object]:
    """Runner 2 asks for the entry ``tag``; what happened."""
    final = runner2 / "kernels" / tag
    built: list[str] = []

    def fill(tmp: Path) -> None:  # stands in for the local kernel build
        built.append(str(tmp))
        (tmp / "kbtf-build.json").write_text(json.dumps({"made_here": True}))

    warnings.lines.clear()
    start = time.monotonic()
    made = cacheremote.populate(final, kbuild.is_complete, fill, "kbtf-build.log",
                                lambda _m: None, excludes=cacheremote.SLIM_EXCLUDES,
                                adopt=lambda tmp, origin: cacheremote.relocate(
                                    tmp, final, runner2 / "src", origin))
    leftovers = [p.name for p in final.parent.iterdir() if p.name.startswith(".")
                 and not p.name.endswith(".lock")]
    return {"scenario": name, "pulled": not made, "built_locally": bool(built),
            "warnings": list(warnings.lines), "seconds": round(time.monotonic() - start, 1),
            "half_pulled_left": leftovers}


def main(argv: list[str]) -> int:
    cache = kbuild.default_cache_dir()
    entry = cache / "kernels" / argv[0] if argv else newest_kernel(cache)
    warnings = Warnings()
    logging.getLogger("kbtf").addHandler(warnings)
    results = []
    with tempfile.TemporaryDirectory(prefix="kbtf-trust-") as work_dir:
        work = Path(work_dir)
        pusher, _ = signing.keygen(work / "pusher")
        stranger, _ = signing.keygen(work / "stranger")
        trusted = work / "pusher" / "kbtf-cache.pub"
        with registry.serve(cache, work / "registry") as address:
            remote = cacheremote.Remote(address, "kbtf/kernels")
            os.environ[cacheremote.ENV] = f"oci://{address}/kbtf/kernels"
            tag = cacheremote.tag_of(entry.name)
            start = time.monotonic()
            os.environ[signing.SIGNING_KEY_ENV] = str(pusher)
            size = cacheremote.push(remote, tag, entry, cacheremote.SLIM_EXCLUDES)
            print(f"pushed {entry.name}: {(size or 0) / 1e6:.0f} MB in "
                  f"{time.monotonic() - start:.0f} s", flush=True)
            os.environ[signing.TRUSTED_KEYS_ENV] = str(trusted)
            results.append(scenario("signed by the trusted key", remote, tag,
                                    work / "r2-signed", warnings))
            del os.environ[signing.SIGNING_KEY_ENV]
            cacheremote.push(remote, "unsigned-" + tag[:100], entry, cacheremote.SLIM_EXCLUDES)
            results.append(scenario("unsigned", remote, "unsigned-" + tag[:100],
                                    work / "r2-unsigned", warnings))
            os.environ[signing.SIGNING_KEY_ENV] = str(stranger)
            cacheremote.push(remote, tag, entry, cacheremote.SLIM_EXCLUDES)  # overwritten
            results.append(scenario("tag overwritten, another key", remote, tag,
                                    work / "r2-overwritten", warnings))
            os.environ[signing.SIGNING_KEY_ENV] = str(pusher)
            cacheremote.push(remote, tag, entry, cacheremote.SLIM_EXCLUDES)  # signed again
            blobs = sorted((work / "registry").rglob("blobs/sha256/*/*/data"),
                           key=lambda p: p.stat().st_size)
            with blobs[-1].open("r+b") as fh:  # the entry's layer: the largest blob
                fh.truncate(blobs[-1].stat().st_size // 2)
            results.append(scenario("truncated blob", remote, tag, work / "r2-truncated",
                                    warnings))
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
