"""A pulled cache entry is trusted no more than the machine (issue 32 items 14-17): it must
pass the completeness check a local entry passes, be signed by a trusted key when keys are
configured (an unsigned entry, an overwritten tag and a signature copied from another
entry are refused), hold no link out of itself, and come within PULL_TIMEOUT as a whole.
Each refusal is one warning line and a local build; nothing half-pulled enters the cache.
A real docker-registry on 127.0.0.1 (harness/registry.py)."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import cacheentry, signing
from harness import registry as oci_registry
from harness.builds import cacheremote, kbuild
from harness.builds.kbuild import default_cache_dir


@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[cacheremote.Remote]:
    with oci_registry.serve(default_cache_dir(), tmp_path / "registry") as address:
        found = cacheremote.Remote(address, "kbtf/kernels")
        monkeypatch.setenv(cacheremote.ENV, f"oci://{found.host}/{found.repo}")
        yield found


def _kernel_entry(root: Path, name: str, meta: bool = True) -> Path:
    """A stand-in kernel entry (complete when it has kbtf-build.json)."""
    entry = root / "kernels" / name
    entry.mkdir(parents=True)
    (entry / "vmlinux").write_bytes(b"\x7fELF vmlinux" + name.encode())
    if meta:
        (entry / "kbtf-build.json").write_text(json.dumps({"source_path": str(root / "src")}))
    return entry


def _populate(final: Path, made: list[Path]) -> bool:
    def fill(tmp: Path) -> None:
        made.append(tmp)
        (tmp / "kbtf-build.json").write_text("{}\n")
        (tmp / "vmlinux").write_bytes(b"made here")

    return cacheremote.populate(final, kbuild.is_complete, fill, "kbtf-build.log",
                                lambda _m: None, adopt=lambda tmp, origin: None)


def test_a_pulled_entry_must_pass_the_local_completeness_check(
        remote: cacheremote.Remote, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    half = _kernel_entry(tmp_path / "runner1", "x86_64-6.12.118-half", meta=False)
    assert cacheremote.push(remote, half.name, half) is not None
    final = tmp_path / "runner2" / "kernels" / half.name
    made: list[Path] = []
    with caplog.at_level(logging.WARNING, logger="kbtf"):
        assert _populate(final, made)  # made here, no FileNotFoundError
    assert len(made) == 1 and (final / "vmlinux").read_bytes() == b"made here"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "incomplete" in warnings[0].getMessage()


def test_an_entry_with_a_link_out_of_it_is_refused(
        remote: cacheremote.Remote, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    victim = tmp_path / "outside.json"
    victim.write_text('{"precious": true}\n')
    entry = _kernel_entry(tmp_path / "runner1", "x86_64-6.12.118-link")
    (entry / "kbtf-build.json").unlink()
    (entry / "kbtf-build.json").symlink_to(victim)
    assert cacheremote.push(remote, entry.name, entry) is not None
    final = tmp_path / "runner2" / "kernels" / entry.name
    with caplog.at_level(logging.WARNING, logger="kbtf"):
        assert _populate(final, [])
    assert "kbtf-build.json is a link out of the entry" in caplog.text
    assert victim.read_text() == '{"precious": true}\n'
    assert not (final / "kbtf-build.json").is_symlink()


def test_links_of_a_guest_root_read_inside_its_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "tree/usr/share/zoneinfo").mkdir(parents=True)
    (root / "tree/etc").mkdir()
    (root / "tree/etc/localtime").symlink_to("/usr/share/zoneinfo/UTC")
    (root / "tree/lib").symlink_to("usr/lib")
    assert cacheentry.escaping_link(root) is None
    (root / "tree/etc/evil").symlink_to("../../../../etc/passwd")
    assert cacheentry.escaping_link(root) == root / "tree/etc/evil"
    (root / "tree/etc/evil").unlink()
    (root / "x").symlink_to("/etc/passwd")  # outside the root file system: the host's
    assert cacheentry.escaping_link(root) == root / "x"


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Runner 1's signing key; runner 2 trusts its public key."""
    private, public = signing.keygen(tmp_path / "keys")
    assert private.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv(signing.TRUSTED_KEYS_ENV, str(public))
    return private, public


def test_a_signed_registry_refuses_unsigned_overwritten_and_copied_entries(
        remote: cacheremote.Remote, keys: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    private, _ = keys
    good = _kernel_entry(tmp_path / "runner1", "x86_64-6.12.118-good")
    other = _kernel_entry(tmp_path / "runner1", "x86_64-6.12.118-other")
    monkeypatch.setenv(signing.SIGNING_KEY_ENV, str(private))
    assert cacheremote.push(remote, good.name, good) is not None
    assert cacheremote.push(remote, other.name, other) is not None

    def pulled(tag: str) -> bool:
        dest = tmp_path / "pulls" / f"{tag}-{time.monotonic_ns()}"
        dest.mkdir(parents=True)
        return cacheremote.pull(remote, tag, dest) is not None

    assert pulled(good.name)  # signed by the trusted key
    # an unsigned entry (no signing key when pushed)
    monkeypatch.delenv(signing.SIGNING_KEY_ENV)
    unsigned = _kernel_entry(tmp_path / "runner1", "x86_64-6.12.118-unsigned")
    assert cacheremote.push(remote, unsigned.name, unsigned) is not None
    # an overwritten tag: another content pushed under good's tag with another key
    stranger, _ = signing.keygen(tmp_path / "stranger")
    monkeypatch.setenv(signing.SIGNING_KEY_ENV, str(stranger))
    assert cacheremote.push(remote, good.name, other) is not None
    with caplog.at_level(logging.WARNING, logger="kbtf"):
        assert not pulled(unsigned.name)
        assert not pulled(good.name)
    assert "the entry is not signed" in caplog.text
    assert "no trusted key verifies" in caplog.text
    # a trusted signature copied from another entry's manifest onto this tag
    client = cacheremote._registry(remote)
    manifest = client.get_manifest(client.get_container(remote.ref(other.name)))
    copied = manifest["annotations"][signing.ANNOTATION]
    assert signing.refused(good.name, manifest["layers"][0]["digest"], copied)
    assert not signing.refused(other.name, manifest["layers"][0]["digest"], copied)


def test_without_trusted_keys_the_run_says_it_trusts_every_pusher(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(signing.TRUSTED_KEYS_ENV, raising=False)
    assert "every entry anyone with push rights" in signing.check_configuration()
    assert signing.refused("t", "sha256:x", None) == ""


class _Trickle(http.server.BaseHTTPRequestHandler):
    """A registry that answers /v2/ and then sends its manifest one byte a second."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        if self.path.rstrip("/") == "/v2":
            self.wfile.write(b"{}" + b" " * 99998)
            return
        try:
            for _ in range(600):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(1)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


def test_a_registry_that_trickles_is_cut_off_for_the_whole_pull(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(cacheremote, "PULL_TIMEOUT", 4)
        remote = cacheremote.Remote(f"127.0.0.1:{server.server_address[1]}", "kbtf/kernels")
        start = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="kbtf"):
            assert cacheremote.pull(remote, "x86_64-slow", tmp_path) is None
        assert time.monotonic() - start < 30
        assert "CommandTimeout" in caplog.text
        assert list(tmp_path.iterdir()) == []
    finally:
        server.shutdown()


def test_links_that_leave_the_entry_on_the_way_are_found(tmp_path: Path) -> None:
    """The review's escapes (issue 32 item 16): a link through a link that points up, and
    a guest root's tree that is itself a link."""
    entry = tmp_path / "entry"
    (entry / "sub").mkdir(parents=True)
    (entry / "sub/up").symlink_to("..")
    (entry / "kbtf-build.json").symlink_to("sub/up/../../victim.json")
    assert cacheentry.escaping_link(entry) == entry / "kbtf-build.json"
    (entry / "kbtf-build.json").unlink()
    (entry / "ok.json").write_text("{}")
    (entry / "kbtf-build.json").symlink_to("sub/up/ok.json")  # stays inside: fine
    assert cacheentry.escaping_link(entry) is None
    root = tmp_path / "root"
    root.mkdir()
    (root / "tree").symlink_to("/")
    assert cacheentry.escaping_link(root) == root / "tree"
    (root / "tree").unlink()
    (root / "tree/etc").mkdir(parents=True)
    (root / "tree/etc/loop").symlink_to("loop")  # a loop: never resolves
    assert cacheentry.escaping_link(root) == root / "tree/etc/loop"


def test_a_pulled_entry_that_cannot_be_adopted_is_made_here(
        remote: cacheremote.Remote, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    entry = _kernel_entry(tmp_path / "runner1", "x86_64-6.12.118-odd")
    assert cacheremote.push(remote, entry.name, entry) is not None
    final = tmp_path / "runner2" / "kernels" / entry.name
    made: list[Path] = []

    def fill(tmp: Path) -> None:
        made.append(tmp)
        (tmp / "kbtf-build.json").write_text("{}\n")

    def adopt(tmp: Path, origin: dict[str, str]) -> None:
        raise KeyError("entry_path")  # an ORIGIN record without it

    with caplog.at_level(logging.WARNING, logger="kbtf"):
        assert cacheremote.populate(final, kbuild.is_complete, fill, "kbtf-build.log",
                                    lambda _m: None, adopt=adopt)
    assert len(made) == 1 and "cannot be made this machine's" in caplog.text
