"""Signatures of shared cache entries (ed25519, by the ``cryptography`` library): a pusher
signs each entry's tag and blob digest with its private key ($KBTF_CACHE_SIGNING_KEY, a
PEM file); a puller uses an entry only when one of the public keys it was given
($KBTF_CACHE_TRUSTED_KEYS, PEM files separated by ':') verifies it. Without trusted keys a
puller trusts every pusher to the registry, and the run says so once.

The signed message binds the blob to its tag: a tag overwritten with another entry, or
another entry's signature copied over, does not verify."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from harness.errors import ConfigError

SIGNING_KEY_ENV = "KBTF_CACHE_SIGNING_KEY"
TRUSTED_KEYS_ENV = "KBTF_CACHE_TRUSTED_KEYS"
ANNOTATION = "org.kbtf.signature"  # the manifest annotation holding the signature (base64)


def message(tag: str, digest: str) -> bytes:
    """What is signed for the entry tagged ``tag`` whose blob has ``digest``."""
    return f"kbtf-cache-entry\n{tag}\n{digest}\n".encode()


def _signing_key() -> Ed25519PrivateKey | None:
    """The private key of $KBTF_CACHE_SIGNING_KEY, or None when it is not set.
    Raises ConfigError for a file that is no ed25519 private key in PEM."""
    path = os.environ.get(SIGNING_KEY_ENV, "")
    if not path:
        return None
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"${SIGNING_KEY_ENV}={path}: not an unencrypted PEM private key "
                          f"({exc}); make one with ./kbtf cache keygen DIR") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"${SIGNING_KEY_ENV}={path}: not an ed25519 key; make one with "
                          "./kbtf cache keygen DIR")
    return key


def trusted_keys() -> list[Ed25519PublicKey]:
    """The public keys of $KBTF_CACHE_TRUSTED_KEYS (empty: none configured).
    Raises ConfigError for a file that is no ed25519 public key in PEM."""
    keys = []
    for path in filter(None, os.environ.get(TRUSTED_KEYS_ENV, "").split(":")):
        try:
            key = serialization.load_pem_public_key(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"${TRUSTED_KEYS_ENV}: {path}: not a PEM public key ({exc})"
                              ) from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"${TRUSTED_KEYS_ENV}: {path}: not an ed25519 key")
        keys.append(key)
    return keys


def check_configuration() -> str:
    """Read both settings now (a bad key stops the run before any build); what a run with
    a remote says about trust. Raises ConfigError."""
    _signing_key()
    if trusted_keys():
        return "kbtf: cache remote: only entries signed by a key of $" + TRUSTED_KEYS_ENV + \
            " are used"
    return ("kbtf: cache remote: no $" + TRUSTED_KEYS_ENV + " given: every entry anyone "
            "with push rights to the registry put there is trusted (see README, 'Sharing the "
            "cache between runners')")


def sign(tag: str, digest: str) -> str | None:
    """The base64 signature of an entry by this machine's key, or None without a key."""
    key = _signing_key()
    return None if key is None else base64.b64encode(key.sign(message(tag, digest))).decode()


def refused(tag: str, digest: str, signature: str | None) -> str:
    """Why a pulled entry must not be used ("" when it may): with trusted keys configured,
    it is unsigned or no trusted key verifies its signature over ``tag`` and ``digest``."""
    keys = trusted_keys()
    if not keys:
        return ""
    if not signature:
        return "the entry is not signed"
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        return "the entry's signature is not base64"
    for key in keys:
        try:
            key.verify(raw, message(tag, digest))
            return ""
        except InvalidSignature:
            continue
    return "no trusted key verifies the entry's signature (for this tag and content)"


def keygen(directory: Path) -> tuple[Path, Path]:
    """A new key pair in ``directory``: kbtf-cache.key (private, mode 0600: pushers) and
    kbtf-cache.pub (public: every puller). Raises ConfigError if either exists."""
    private, public = directory / "kbtf-cache.key", directory / "kbtf-cache.pub"
    if private.exists() or public.exists():
        raise ConfigError(f"{directory} already holds a kbtf-cache key: not overwritten")
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public
