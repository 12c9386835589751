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


def free_port(address: str = "127.0.0.1") -> int:
    """A port nothing listens on at ``address`` now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(cache_dir: Path, storage: Path, htpasswd: Path | None = None,
          tls: tuple[Path, Path] | None = None, address: str = "127.0.0.1") -> Iterator[str]:
    """A registry on a free port of loopback ``address`` storing under ``storage`` (wanting
    the users of ``htpasswd``, serving HTTPS with ``tls``'s certificate and key, when
    given), for the with-block; yields its host:port. Raises HarnessError if it does not
    listen within START_SECONDS."""
    port = free_port(address)
    config = storage.with_name(storage.name + ".yml")
    auth = (f"auth:\n  htpasswd:\n    realm: kbtf\n    path: {htpasswd}\n" if htpasswd else "")
    https = (f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n" if tls else "")
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n"
                      f"http:\n  addr: {address}:{port}\n{https}log:\n  level: error\n{auth}")
    server = subprocess.Popen([str(program(cache_dir)), "serve", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            with socket.socket() as s:
                if s.connect_ex((address, port)) == 0:
                    break
            if time.monotonic() > deadline or server.poll() is not None:
                raise HarnessError(f"docker-registry did not listen on {address}:{port} "
                                   f"within {START_SECONDS:.0f}s")
            time.sleep(0.1)
        yield f"{address}:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
