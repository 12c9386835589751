"""A private OCI registry on 127.0.0.1 for kbtf's own tests and benchmarks: Debian's
docker-registry, unpacked into the cache (never installed: Debian's package would start a
service listening on every interface) and run only while a test or benchmark needs it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from harness import provision
from harness.errors import HarnessError

SUITE = "bookworm"
START_SECONDS = 10.0


def program(cache_dir: Path) -> Path:
    """docker-registry from Debian's package, unpacked into ``cache_dir`` once.
    Raises CommandError (download or unpack failed)."""
    return provision.debian_tool(cache_dir, SUITE, "docker-registry", "usr/bin/docker-registry")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(cache_dir: Path, storage: Path, htpasswd: Path | None = None) -> Iterator[str]:
    """A registry on a free 127.0.0.1 port storing under ``storage`` (wanting the users of
    ``htpasswd``, when given), for the with-block; yields its host:port. Raises
    HarnessError if it does not listen within START_SECONDS."""
    port = free_port()
    config = storage.with_name(storage.name + ".yml")
    auth = (f"auth:\n  htpasswd:\n    realm: kbtf\n    path: {htpasswd}\n" if htpasswd else "")
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n{auth}")
    server = subprocess.Popen([str(program(cache_dir)), "serve", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline or server.poll() is not None:
                raise HarnessError(f"docker-registry did not listen on 127.0.0.1:{port} "
                                   f"within {START_SECONDS:.0f}s")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
