"""Two runners sharing a cache through an OCI registry (issue 23), on one machine: runner 1's
cache (the default, warm; its latest run the main job) pushes the kernels, guest roots,
kernel sources and kept module builds that run used to a local registry (Debian's
docker-registry on 127.0.0.1, temporary storage), then runner 2 -- an empty cache -- runs
the main job with --cache-remote. Runner 2 sees its empty cache at runner 1's path (a bind
mount in a private mount namespace), as CI runners of one image share their cache path: a
kernel's key holds the provisioned pahole's content, which holds that path. Prints the
pushed sizes, runner 2's time to its first test result and its total, and how many kernels
it built and pulled.

    python -m bench.remote_cache [--keep DIR] [pytest args...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from harness import REPO, cacheentry, registry
from harness.builds import cacheremote, kbuild


def runner1_entries(cache: Path) -> list[tuple[Path, tuple[str, ...]]]:
    """What runner 1 pushed as it made it: (entry, excludes) of every kernel, guest root,
    kernel source and kept module build the latest run (results/latest: run the main job
    on runner 1 first) used; the rest of a long-lived cache (other jobs' kernels, older
    keys) is not the main job's."""
    started = (REPO / "results" / "latest").resolve().name[:15]  # its run dir: YYYYmmdd-HHMMSS
    since = datetime.strptime(started, "%Y%m%d-%H%M%S").timestamp() - 60
    complete: dict[str, Callable[[Path], bool]] = {
        "kernels": kbuild.is_complete, "roots": lambda e: (e / "tree").is_dir(),
        "src": lambda e: (e / ".complete").exists(),
        "modules": lambda e: (e / "built-in").is_file()}
    return [(e, cacheremote.SLIM_EXCLUDES if kind == "kernels" else ())
            for kind, done in complete.items() for e in sorted((cache / kind).glob("[!.]*/"))
            if done(e) and cacheentry.used_stamp(e).is_file()
            and cacheentry.used_stamp(e).stat().st_mtime >= since]


def push_all(remote: cacheremote.Remote, cache: Path) -> list[dict[str, object]]:
    """Push runner 1's entries; their sizes and push times."""
    pushed = []
    for entry, excludes in runner1_entries(cache):
        start = time.monotonic()
        size = cacheremote.push(remote, cacheremote.tag_of(entry.name), entry, excludes)
        pushed.append({"entry": entry.name, "mb": round((size or 0) / 1e6, 1),
                       "push_s": round(time.monotonic() - start, 1)})
    return pushed


def run_runner2(remote: cacheremote.Remote, cache2: Path, args: list[str]) -> dict[str, object]:
    """The main job on an empty cache with the registry: time to first result, total."""
    default = kbuild.default_cache_dir()
    kbtf = shlex.join([str(REPO / "kbtf"), "pytest", "suites/", "-n", "auto",
                       "--cache-remote", f"oci://{remote.host}/{remote.repo}", *args])
    cache2.mkdir(parents=True, exist_ok=True)
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f"mount --bind {shlex.quote(str(cache2))} {shlex.quote(str(default))} && {kbtf}"]
    start = time.monotonic()
    ready = first = None
    text = ""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # else pytest's marks come at its end
    with subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env) as child:
        assert child.stdout is not None
        while chunk := os.read(child.stdout.fileno(), 65536):  # xdist's marks end no line
            text += chunk.decode(errors="replace")
            if ready is None and "bringing up nodes" in text:
                ready = time.monotonic() - start  # pulls and fetches done, kernels there
            if ready is not None and first is None and re.search(
                    r"bringing up nodes\.*\s+[.FEsx]", text):
                first = time.monotonic() - start
    total = time.monotonic() - start
    lines = text.strip().splitlines()
    return {"workers_start_s": round(ready or total), "first_result_s": round(first or total),
            "total_s": round(total), "rc": child.wait(),
            "built_kernels": text.count("kbtf: building kernel"),
            "pulled": text.count("kbtf: pulled "), "made_roots": text.count("kbtf: making the "),
            "fetched": text.count("kbtf: fetching "),
            "last_line": lines[-1].strip() if lines else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="keep runner 2's cache here")
    known, rest = parser.parse_known_args()
    work = Path(tempfile.mkdtemp(prefix="kbtf-remote-bench-"))
    try:
        with registry.serve(kbuild.default_cache_dir(), work / "registry") as address:
            remote = cacheremote.Remote(address, "kbtf/kernels")
            pushed = push_all(remote, kbuild.default_cache_dir())
            runner2 = run_runner2(remote, known.keep or work / "runner2", rest)
            print(json.dumps({"pushed": pushed, "runner2": runner2}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
