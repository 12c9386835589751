"""Cache entries shared between machines through an OCI registry (--cache-remote, or
$KBTF_CACHE_REMOTE = oci://HOST[:PORT]/REPO): kernels, guest roots, unpacked kernel
sources and kept module builds -- what a fresh runner would otherwise build, mmdebstrap or
download. An entry is
pushed as one zstd-compressed tar (a kernel's without its object files: a slim entry),
tagged with its entry name (which holds its content key); before making an entry, it is
pulled by that tag instead, its digest verified, and unpacked into the temp dir the entry
would have been made in, so a partial or corrupt pull never enters the cache.

The registry client is oras (PyPI); credentials come from the standard docker config
(~/.docker/config.json: oras reads that file), and are never logged. A
registry that is down, refuses us or serves a wrong digest is one warning line and a local
build."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import cacheentry, proc, signing
from harness.errors import ConfigError

log = logging.getLogger("kbtf")

ENV = "KBTF_CACHE_REMOTE"
Progress = Callable[[str], None]
TAR_TIMEOUT = 1800
# Left out of a pushed entry: what only a rebuild in the entry itself reads (objects,
# archives, kbuild's .cmd files and dependency lists, link temporaries, the compressed
# image's intermediate files). A pulled entry is marked slim and never seeds a build.
SLIM_EXCLUDES = ("*.o", "*.a", ".*.cmd", "*.o.d", ".tmp_vmlinux*", "vmlinux.a",
                 "*/boot/compressed/*", "*.mod.c")
MEDIA_TYPE = "application/vnd.kbtf.cache-entry.tar+zstd"
# In a pushed tar: where the entry and its kernel tree were on the machine that built it.
ORIGIN = "kbtf-origin.json"


@dataclass(frozen=True)
class Remote:
    """An OCI repository kernels are shared through."""

    host: str  # HOST[:PORT]
    repo: str

    @classmethod
    def parse(cls, url: str) -> Remote:
        """``oci://HOST[:PORT]/REPO``. Raises ConfigError naming the form."""
        m = re.fullmatch(r"oci://(?P<host>[A-Za-z0-9.-]+(?::\d+)?)/(?P<repo>[a-z0-9._/-]+)",
                         url.strip())
        if m is None:
            raise ConfigError(f"--cache-remote {url!r}: use oci://HOST[:PORT]/REPO, e.g. "
                              "oci://registry.example.org:5000/kbtf/kernels")
        return cls(m["host"], m["repo"])

    @property
    def insecure(self) -> bool:
        """Plain HTTP: only for a registry on this machine (as docker allows)."""
        return self.host.split(":")[0] in ("localhost", "127.0.0.1")

    def ref(self, tag: str) -> str:
        return f"{self.host}/{self.repo}:{tag}"


def configured() -> Remote | None:
    """The remote of this run ($KBTF_CACHE_REMOTE, which --cache-remote sets), if any.
    Raises ConfigError for a malformed one."""
    url = os.environ.get(ENV, "")
    return Remote.parse(url) if url else None


PING_TIMEOUT = 10  # seconds the registry has to answer /v2/ before kbtf builds locally
REQUEST_TIMEOUT = 300  # seconds without a byte from the registry during one request


def _registry(remote: Remote):  # type: ignore[no-untyped-def]
    """oras' client for ``remote``, once the registry answered at all. Raises OSError when
    it does not answer."""
    import oras.provider  # imported here: most runs have no remote
    import requests

    # oras logs a tag not pushed yet as an ERROR of its own; kbtf says what it does about it.
    logging.getLogger("oras").setLevel(logging.CRITICAL)

    scheme = "http" if remote.insecure else "https"
    try:
        ping = requests.get(f"{scheme}://{remote.host}/v2/", timeout=PING_TIMEOUT)
    except requests.RequestException as exc:
        raise OSError(f"no answer from {remote.host}: {type(exc).__name__}") from None
    # The registry's challenge says how it wants credentials: Bearer (a token service:
    # Docker Hub, GHCR, Harbor) or Basic (htpasswd, the usual self-hosted CI registry).
    challenge = ping.headers.get("WWW-Authenticate", "")
    backend = "basic" if challenge.lower().startswith("basic") else "token"

    class Registry(oras.provider.Registry):  # type: ignore[misc]
        """oras' client without its retries (five, with waits up to 81 s): kbtf's answer to
        any registry trouble is a local build, not a wait."""

        def do_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return oras.provider.Registry.do_request.__wrapped__(self, *args, **kwargs)

    registry = Registry(remote.host, insecure=remote.insecure, auth_backend=backend)
    # oras passes requests no timeout: a registry that stalls mid-transfer would hang us.
    registry.session.request = functools.partial(registry.session.request,
                                                 timeout=REQUEST_TIMEOUT)
    return registry


def tag_of(entry_name: str) -> str:
    """The registry tag of cache entry ``entry_name``: the name, with what a tag cannot hold
    (Debian's ``~``, ``+``, ``:``) as ``-``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", entry_name)[:128]


def populate(final: Path, complete: Callable[[Path], bool], fill: Callable[[Path], None],
             log_name: str | None, say: Progress, *, excludes: tuple[str, ...] = (),
             adopt: Callable[[Path, dict[str, str]], None] | None = None,
             relocate: bool = False) -> bool:
    """cacheentry.populate with this run's remote, if any: the entry is pulled instead of
    made when the registry has it, signed by a trusted key (``pull``), and it passes the
    same ``complete(dir)`` check a local entry passes (``adopt(tmp, origin)`` then makes it
    this machine's: ``origin`` says where it was made), and pushed (less ``excludes``,
    signed when this machine has a key) after it was made here. A pulled entry that fails
    any check is one warning line and a local build. True when this process made it.
    Raises what ``fill`` raises."""
    remote = configured()
    tag = tag_of(final.name)
    made: list[Path] = []

    def pulled_or_filled(tmp: Path) -> None:
        if remote is not None:
            origin = pull(remote, tag, tmp)
            if origin is not None and not complete(tmp):
                log.warning("kbtf: cache remote %s: the pulled entry is incomplete (it fails "
                            "the check a local entry passes): not used, made here",
                            remote.ref(tag))
                origin = None
            if origin is not None and adopt is not None:
                try:
                    adopt(tmp, origin)
                except (KeyError, OSError, ValueError, TypeError) as exc:  # not as pushed
                    log.warning("kbtf: cache remote %s: the pulled entry cannot be made this "
                                "machine's (%s: %s): not used, made here", remote.ref(tag),
                                type(exc).__name__, exc)
                    origin = None
            if origin is not None:
                say(f"kbtf: pulled {final.name} from {remote.ref(tag)}")
                return
            for leftover in tmp.iterdir():  # what a failed pull left
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
        fill(tmp)
        made.append(final)

    cacheentry.populate(final, lambda: complete(final), pulled_or_filled, log_name,
                        relocate=relocate)
    if remote is not None and made:
        size = push(remote, tag, final, excludes)
        if size is not None:
            say(f"kbtf: pushed {final.name} to {remote.ref(tag)} ({size / 1e6:.0f} MB, zstd)")
    return bool(made)


def kept_or_made(final: Path, dst: Path, make: Callable[[], object]) -> Path | None:
    """Dir ``dst`` made by ``make()`` once and kept as cache entry ``final`` (whose name
    holds the content key of everything ``make`` reads; shared through the run's remote
    like any entry); when ``final`` exists or is pulled, ``dst`` is copied from it instead.
    Returns the dir the kept copy was made in (its files may name that path, on this
    machine or another), or None when it was made here. Raises what ``make`` raises:
    nothing is kept then."""
    def fill(tmp: Path) -> None:
        make()
        shutil.copytree(dst, tmp / "build", symlinks=True)
        (tmp / "built-in").write_text(f"{dst}\n")

    if populate(final, lambda d: (d / "built-in").is_file(), fill, None, log.info):
        return None
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(final / "build", dst, symlinks=True)
    return Path((final / "built-in").read_text().strip())


PULL_TIMEOUT = 1800  # seconds for one entry's whole download (a trickling registry too)


def pull(remote: Remote, tag: str, dest: Path) -> dict[str, str] | None:
    """Unpack the entry tagged ``tag`` into the empty dir ``dest``: where the entry was made
    (its ORIGIN record, taken out of ``dest``); None, ``dest`` left for the caller to
    discard, when the registry lacks it (logged) or, with one warning line, cannot be
    reached, refuses us, takes longer than PULL_TIMEOUT for the whole download, serves a
    blob whose digest is not its manifest's, an entry not signed by a trusted key (when
    keys are configured: harness/signing.py), or one holding a link that leads out of it."""
    blob = dest.parent / f"{dest.name}.pull.tar.zst"
    try:
        # the download runs in a child process: a registry that trickles bytes is cut off
        # at PULL_TIMEOUT with its whole process group, not one socket read at a time
        done = proc.run([sys.executable, "-m", "harness.builds.cacheremote", "download",
                         remote.host, remote.repo, tag, str(blob)], timeout=PULL_TIMEOUT,
                        check=False)
        if done.returncode == NOT_FOUND:
            log.info("kbtf: %s is not in the registry: made here", remote.ref(tag))
            return None
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
            raise OSError(lines[-1])
        return _unpack_checked(remote, tag, json.loads(done.stdout), blob, dest)
    except Exception as exc:  # any registry trouble (oras raises many kinds): build locally
        log.warning("kbtf: cache remote %s: %s: %s%s", remote.ref(tag), type(exc).__name__,
                    str(exc).splitlines()[0][:200] if str(exc) else "", _hint(remote, exc))
        return None
    finally:
        blob.unlink(missing_ok=True)


def _unpack_checked(remote: Remote, tag: str, manifest: dict[str, Any], blob: Path,
                    dest: Path) -> dict[str, str] | None:
    """pull()'s checks of a downloaded ``blob`` (digest, signature), its unpacking into
    ``dest`` and the check of what it unpacked (no link out of it); its ORIGIN record, or
    None with one warning line. Raises CommandError (tar), OSError, ValueError."""
    layer = manifest["layers"][0]
    got = "sha256:" + cacheentry.file_sha256(blob)
    if got != layer["digest"]:
        log.warning("kbtf: %s: blob digest %s, manifest says %s: not used",
                    remote.ref(tag), got, layer["digest"])
        return None
    why = signing.refused(tag, layer["digest"],
                          manifest.get("annotations", {}).get(signing.ANNOTATION))
    if why:
        log.warning("kbtf: cache remote %s: %s: not used, made here", remote.ref(tag), why)
        return None
    proc.run(["tar", "--zstd", "-xf", blob, "-C", dest],
             timeout=TAR_TIMEOUT)
    made_there = dest / "source"  # a kernel's link to its tree there: adopt remakes it
    if made_there.is_symlink():
        made_there.unlink()
    escaping = cacheentry.escaping_link(dest)
    if escaping is not None:
        log.warning("kbtf: cache remote %s: %s is a link out of the entry: entry refused, "
                    "made here", remote.ref(tag), escaping.relative_to(dest))
        return None
    origin_file = dest / ORIGIN
    origin: dict[str, str] = json.loads(origin_file.read_text())
    origin_file.unlink()
    return origin


NOT_FOUND = 3  # the download child's exit code for a tag the registry does not have


def _download(host: str, repo: str, tag: str, blob: Path) -> int:
    """The download child: fetch ``tag``'s manifest (printed as JSON) and its first layer
    into ``blob``; NOT_FOUND when the registry lacks the tag."""
    remote = Remote(host, repo)
    try:
        registry = _registry(remote)
        container = registry.get_container(remote.ref(tag))
        manifest = registry.get_manifest(container)
    except ValueError as exc:
        if "Not Found" in str(exc):  # oras' word for a tag not pushed yet
            return NOT_FOUND
        raise
    registry.download_blob(container, manifest["layers"][0]["digest"], str(blob))
    print(json.dumps(manifest))
    return 0


def push(remote: Remote, tag: str, entry: Path, excludes: tuple[str, ...] = ()) -> int | None:
    """Push cache entry ``entry``, less the files matching ``excludes``, under ``tag``; its
    compressed size, or None (with a warning) if the registry would not take it."""
    blob = entry.parent / f".{entry.name}.push.tar.zst"
    origin = entry.parent / f".{entry.name}.push" / ORIGIN
    try:
        build_meta = entry / "kbtf-build.json"  # a kernel's: where its tree was
        meta = json.loads(build_meta.read_text()) if build_meta.is_file() else {}
        origin.parent.mkdir(exist_ok=True)
        origin.write_text(json.dumps({"entry_path": str(entry),
                                      "source_path": meta.get("source_path")}) + "\n")
        proc.run(["tar", "--zstd", "-cf", blob, *(f"--exclude={p}" for p in excludes),
                  "-C", entry, ".",
                  "-C", origin.parent, ORIGIN], timeout=TAR_TIMEOUT)
        annotations = {"org.kbtf.entry": entry.name}
        signature = signing.sign(tag, "sha256:" + cacheentry.file_sha256(blob))
        if signature:
            annotations[signing.ANNOTATION] = signature
        registry = _registry(remote)
        registry.push(remote.ref(tag), files=[f"{blob}:{MEDIA_TYPE}"],
                      disable_path_validation=True, quiet=True,
                      manifest_annotations=annotations)
        return blob.stat().st_size
    except Exception as exc:  # tar or the registry (oras raises many kinds): no failure
        log.warning("kbtf: cache remote %s: push failed: %s%s", remote.ref(tag),
                    str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
                    _hint(remote, exc))
        return None
    finally:
        blob.unlink(missing_ok=True)
        origin.unlink(missing_ok=True)
        if origin.parent.is_dir():
            origin.parent.rmdir()


def _hint(remote: Remote, exc: Exception) -> str:
    """What to do about a refusal: where kbtf's credentials for ``remote`` come from."""
    if "unauthorized" in str(exc).lower() or "denied" in str(exc).lower():
        return (f" (the registry refused the credentials: check {remote.host}'s entry in "
                "~/.docker/config.json, `docker login` writes it)")
    return ""


def relocate(tmp: Path, final: Path, source: Path, origin: dict[str, str]) -> None:
    """A pulled kernel entry made elsewhere, at ``tmp`` (to become ``final``; its kernel
    tree here is ``source``): the paths it recorded (its entry dir and kernel tree there:
    ``origin``) rewritten to this machine's, its ``source`` link remade, and it is marked
    slim (never seeds an incremental build)."""
    cacheentry.relocate_text(tmp, final, old=Path(origin["entry_path"]))
    if origin.get("source_path") and origin["source_path"] != str(source):
        cacheentry.relocate_text(tmp, source, old=Path(origin["source_path"]))
    link = tmp / "source"  # pull() took the one made there out
    link.unlink(missing_ok=True)
    link.symlink_to(source)
    meta_file = tmp / "kbtf-build.json"
    meta = json.loads(meta_file.read_text())
    meta.update(slim=True, source_path=str(source), pulled_from=origin["entry_path"])
    meta_file.write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":  # the download child of pull()
    if sys.argv[1:2] != ["download"] or len(sys.argv) != 6:
        sys.exit(2)
    sys.exit(_download(sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5])))
