"""Kernels shared through a real OCI registry: Debian's docker-registry (unpacked into the
cache, never installed: harness/registry.py) started on 127.0.0.1 with temporary storage. A
small stand-in for a kernel cache entry (its build metadata, a Makefile naming its paths, a
`source` link, an object file) is pushed from one cache dir and pulled into another."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ctypes.util
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import registry as oci_registry
from harness.builds import cacheremote
from harness.builds.kbuild import default_cache_dir
from harness.errors import ConfigError


def _bcrypt(password: str) -> str:
    """A bcrypt hash of ``password`` (the registry's htpasswd takes no other), by the C
    library's crypt (libxcrypt)."""
    libcrypt = ctypes.CDLL(ctypes.util.find_library("crypt"))
    libcrypt.crypt_gensalt.restype = libcrypt.crypt.restype = ctypes.c_char_p
    salt = libcrypt.crypt_gensalt(b"$2b$", 10, None, 0)
    return str(libcrypt.crypt(password.encode(), salt).decode())


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[cacheremote.Remote, Path]]:
    """A registry on 127.0.0.1 (its storage dir with it); stopped afterwards."""
    with _serve(tmp_path, auth=False) as served:
        yield served


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[tuple[cacheremote.Remote, Path]]:
    """The same, wanting user kbtf with password 'right' (htpasswd)."""
    with _serve(tmp_path, auth=True) as served:
        yield served


@contextlib.contextmanager
def _serve(tmp_path: Path, auth: bool) -> Iterator[tuple[cacheremote.Remote, Path]]:
    htpasswd = None
    if auth:
        htpasswd = tmp_path / "htpasswd"
        htpasswd.write_text(f"kbtf:{_bcrypt('right')}\n")
    storage = tmp_path / "registry"
    with oci_registry.serve(default_cache_dir(), storage, htpasswd) as address:
        yield cacheremote.Remote(address, "kbtf/kernels"), storage


def _complete(entry: Path) -> bool:  # a fetched source's completeness check
    return (entry / ".complete").exists()


def _entry(cache: Path, name: str) -> Path:
    """A stand-in kernel entry of ``cache`` with its tree at <cache>/src/linux."""
    source = cache / "src" / "linux"
    source.mkdir(parents=True)
    entry = cache / "kernels" / name
    (entry / "arch/x86/boot").mkdir(parents=True)
    (entry / "arch/x86/boot/bzImage").write_bytes(b"image" * 100)
    (entry / "vmlinux").write_bytes(b"\x7fELF vmlinux")
    (entry / "kernel").mkdir()
    (entry / "kernel/fork.o").write_bytes(b"object" * 1000)
    (entry / "Makefile").write_text(f"include {source}/Makefile\n# output {entry}\n")
    (entry / "source").symlink_to(source)
    (entry / "kbtf-build.json").write_text(json.dumps({"source_path": str(source)}))
    return entry


def test_push_then_pull_into_an_empty_cache(registry: tuple[cacheremote.Remote, Path],
                                            tmp_path: Path) -> None:
    remote, _ = registry
    entry = _entry(tmp_path / "runner1", "x86_64-6.12.117-abc")
    size = cacheremote.push(remote, entry.name, entry, cacheremote.SLIM_EXCLUDES)
    assert size is not None and size > 0
    cache2 = tmp_path / "runner2"
    final = cache2 / "kernels" / entry.name
    tmp = cache2 / "kernels" / ".pulling"
    tmp.mkdir(parents=True)
    origin = cacheremote.pull(remote, entry.name, tmp)
    assert origin is not None
    source2 = cache2 / "src" / "linux"
    cacheremote.relocate(tmp, final, source2, origin)
    assert (tmp / "arch/x86/boot/bzImage").read_bytes() == b"image" * 100
    assert not (tmp / "kernel/fork.o").exists()  # slim: no objects
    assert (tmp / "Makefile").read_text() == f"include {source2}/Makefile\n# output {final}\n"
    assert Path(str((tmp / "source").readlink())) == source2
    meta = json.loads((tmp / "kbtf-build.json").read_text())
    assert meta["slim"] is True and meta["source_path"] == str(source2)
    assert not (tmp / cacheremote.ORIGIN).exists()


def test_an_entry_made_once_is_pulled_by_the_next_runner(
        registry: tuple[cacheremote.Remote, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """cacheremote.populate: runner 1 makes the entry and pushes it whole (a source tree or
    a guest root: no excludes); runner 2 pulls it, its fill never called, no ORIGIN left."""
    remote, _ = registry
    monkeypatch.setenv(cacheremote.ENV, f"oci://{remote.host}/{remote.repo}")
    made: list[Path] = []
    said: list[str] = []

    def fill(tmp: Path) -> None:
        made.append(tmp)
        (tmp / "tree" / "lib").mkdir(parents=True)
        (tmp / "tree" / "lib" / "libc.a").write_bytes(b"archive")
        (tmp / ".complete").write_text("done\n")

    name = "linux-source-6.12_6.12.117-1~deb12u1"
    assert cacheremote.tag_of(name) == "linux-source-6.12_6.12.117-1-deb12u1"
    first = tmp_path / "runner1" / "src" / name
    assert cacheremote.populate(first, _complete, fill, "x.log", said.append)
    assert len(made) == 1 and any("pushed" in line for line in said)
    second = tmp_path / "runner2" / "src" / name
    assert not cacheremote.populate(second, _complete, fill, "x.log", said.append)
    assert len(made) == 1 and said[-1].startswith(f"kbtf: pulled {name} from ")
    assert (second / "tree" / "lib" / "libc.a").read_bytes() == b"archive"
    assert sorted(p.name for p in second.iterdir()) == [".complete", "tree"]


def test_missing_tag_unreachable_registry_and_bad_url(registry: tuple[cacheremote.Remote, Path],
                                                     tmp_path: Path) -> None:
    remote, _ = registry
    assert not cacheremote.pull(remote, "no-such-entry", tmp_path)
    down = cacheremote.Remote(f"127.0.0.1:{oci_registry.free_port()}", "kbtf/kernels")
    assert not cacheremote.pull(down, "x", tmp_path)
    assert cacheremote.push(down, "x", _entry(tmp_path / "c", "x")) is None
    with pytest.raises(ConfigError, match="use oci://HOST"):
        cacheremote.Remote.parse("https://example.org/kbtf")


def test_a_corrupt_blob_is_not_used(registry: tuple[cacheremote.Remote, Path],
                                    tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    remote, storage = registry
    entry = _entry(tmp_path / "runner1", "x86_64-6.12.117-def")
    assert cacheremote.push(remote, entry.name, entry) is not None
    client = cacheremote._registry(remote)
    layer = client.get_manifest(client.get_container(remote.ref(entry.name)))["layers"][0]
    hexdigest = layer["digest"].removeprefix("sha256:")
    (blob,) = storage.rglob(f"blobs/sha256/{hexdigest[:2]}/{hexdigest}/data")
    blob.write_bytes(blob.read_bytes()[:-10] + b"corrupted!")  # same size, other content
    dest = tmp_path / "pull"
    dest.mkdir()
    with caplog.at_level(logging.WARNING, logger="kbtf"):
        assert not cacheremote.pull(remote, entry.name, dest)
    assert "blob digest sha256:" in caplog.text and "manifest says" in caplog.text
    assert not (dest / "kbtf-build.json").exists()


def _docker_config(home: Path, host: str, password: str) -> None:
    """~/.docker/config.json of ``home`` with kbtf's credentials for ``host``."""
    token = base64.b64encode(f"kbtf:{password}".encode()).decode()
    (home / ".docker").mkdir(parents=True)
    (home / ".docker/config.json").write_text(json.dumps({"auths": {host: {"auth": token}}}))


def test_wrong_credentials_are_a_warning_and_right_ones_work(
        auth_registry: tuple[cacheremote.Remote, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    remote, _ = auth_registry
    entry = _entry(tmp_path / "runner1", "x86_64-6.12.117-aaa")
    monkeypatch.setenv("HOME", str(tmp_path / "wrong"))
    _docker_config(tmp_path / "wrong", remote.host, "wrong-password-9f2c")
    dest = tmp_path / "pull"
    dest.mkdir()
    with caplog.at_level(logging.DEBUG):
        assert cacheremote.push(remote, entry.name, entry) is None
        assert not cacheremote.pull(remote, entry.name, dest)
    assert "push failed" in caplog.text and "~/.docker/config.json" in caplog.text
    assert "wrong-password-9f2c" not in caplog.text
    assert base64.b64encode(b"kbtf:wrong-password-9f2c").decode() not in caplog.text
    assert list(dest.iterdir()) == []  # nothing of a refused pull is left
    monkeypatch.setenv("HOME", str(tmp_path / "right"))
    _docker_config(tmp_path / "right", remote.host, "right")
    assert cacheremote.push(remote, entry.name, entry) is not None
    assert cacheremote.pull(remote, entry.name, dest)


def test_an_entry_not_pushed_yet_is_no_warning(registry: tuple[cacheremote.Remote, Path],
                                               tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """The first runner finds nothing for each entry it makes: that is logged, not warned."""
    remote, _ = registry
    with caplog.at_level(logging.INFO):
        assert cacheremote.pull(remote, "not-pushed-yet", tmp_path) is None
    assert "is not in the registry" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_readmes_team_registry_recipe_tls_and_a_password_works(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README's recipe for a registry other hosts use: HTTPS with the registry's own
    certificate (runners trust it through REQUESTS_CA_BUNDLE) and htpasswd; its host is no
    loopback name, so kbtf speaks HTTPS to it (127.0.0.2 stands in for the team's host)."""
    import subprocess

    cert, key = tmp_path / "registry.crt", tmp_path / "registry.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.2", "-addext", "subjectAltName=IP:127.0.0.2",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"kbtf:{_bcrypt('team-secret')}\n")
    with oci_registry.serve(default_cache_dir(), tmp_path / "registry", htpasswd,
                            (cert, key), address="127.0.0.2") as address:
        remote = cacheremote.Remote.parse(f"oci://{address}/kbtf/kernels")
        assert not remote.insecure
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        _docker_config(tmp_path / "home", address, "team-secret")
        entry = _entry(tmp_path / "runner1", "x86_64-6.12.118-tls")
        assert cacheremote.push(remote, entry.name, entry) is not None
        dest = tmp_path / "pull"
        dest.mkdir()
        assert cacheremote.pull(remote, entry.name, dest) is not None
