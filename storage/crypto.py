"""Field encryption: master keys wrap per-customer data keys; AES-GCM seals the values.

Why this shape (envelope encryption):
- each customer has its own random data key, wrapped by the newest master key (under a key
  derived from it for wrapping only: the master key itself only feeds derivations); deleting
  that wrapped key makes every sealed value of the customer (record, key persons, history,
  pending changes) unreadable for good, which is how destruction erases personal data;
- rotating master keys only re-wraps the small data keys, so it is quick and runs beside the bot;
- AES-GCM (authenticated) with the record's identity as associated data, so a sealed blob moved
  to another record or field fails to open instead of showing the wrong data.

Blind indexes are HMAC-SHA256 under a key derived from a master key, so equal phones or tax
numbers can be found without storing them in clear.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_FORMAT = b"\x01"
# Wrapped keys sealed under a key derived for wrapping; `_FORMAT` ones were sealed with the master
# key itself (before wrapping keys were derived) and still open; rotate-keys re-wraps them.
_WRAPPED = b"\x02"


class DecryptionError(Exception):
    """A sealed value could not be opened (wrong key, tampering, or an erased data key)."""


def new_master_key() -> str:
    """A fresh master key, as it is written in ENCRYPTION_KEYS."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def _derive(master: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        master
    )


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(12)
    return _FORMAT + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, token: bytes, aad: bytes) -> bytes:
    if not token or token[:1] != _FORMAT:
        raise DecryptionError("unknown format")
    try:
        return AESGCM(key).decrypt(token[1:13], token[13:], aad)
    except InvalidTag as exc:
        raise DecryptionError("cannot open sealed value") from exc


@dataclass(frozen=True)
class MasterKey:
    kid: str
    secret: bytes

    @classmethod
    def from_bytes(cls, secret: bytes) -> MasterKey:
        return cls(kid=hashlib.sha256(b"kid:" + secret).hexdigest()[:12], secret=secret)


class Keyring:
    """The configured master keys, newest first; old ones still open what they sealed."""

    def __init__(self, master_keys: list[bytes]) -> None:
        if not master_keys:
            raise ValueError("at least one master key is required")
        self.keys = [MasterKey.from_bytes(k) for k in master_keys]
        self._by_kid = {k.kid: k for k in self.keys}
        self._index_keys = {k.kid: _derive(k.secret, "blind-index") for k in self.keys}
        self._draft_keys = {k.kid: _derive(k.secret, "drafts") for k in self.keys}
        self._wrap_keys = {k.kid: _derive(k.secret, "key-wrapping") for k in self.keys}

    @property
    def current(self) -> MasterKey:
        return self.keys[0]

    def _key(self, kid: str) -> MasterKey:
        try:
            return self._by_kid[kid]
        except KeyError as exc:
            raise DecryptionError(f"master key {kid} is not configured") from exc

    # data keys -----------------------------------------------------------------------------
    def new_data_key(self) -> bytes:
        return AESGCM.generate_key(bit_length=256)

    def wrap(self, data_key: bytes, *, customer_id: int) -> tuple[str, bytes]:
        """Wrap a customer's data key under the newest master key."""
        return self.wrap_key(data_key, context=b"dek:%d" % customer_id)

    def unwrap(self, kid: str, wrapped: bytes, *, customer_id: int) -> bytes:
        return self.unwrap_key(kid, wrapped, context=b"dek:%d" % customer_id)

    def wrap_key(self, secret: bytes, *, context: bytes) -> tuple[str, bytes]:
        """Wrap a secret key under a key derived from the newest master key, bound to
        `context`: the master key itself only ever feeds key derivation."""
        kid = self.current.kid
        nonce = os.urandom(12)
        return kid, _WRAPPED + nonce + AESGCM(self._wrap_keys[kid]).encrypt(nonce, secret, context)

    def unwrap_key(self, kid: str, wrapped: bytes, *, context: bytes) -> bytes:
        master = self._key(kid)
        if wrapped[:1] != _WRAPPED:
            return _open(master.secret, wrapped, context)  # wrapped before keys were derived
        try:
            return AESGCM(self._wrap_keys[kid]).decrypt(wrapped[1:13], wrapped[13:], context)
        except InvalidTag as exc:
            raise DecryptionError("cannot open wrapped key") from exc

    def needs_rewrap(self, kid: str, wrapped: bytes) -> bool:
        """Whether rotate-keys should wrap this key again: an older master key, or the old
        format sealed with the master key directly."""
        return kid != self.current.kid or wrapped[:1] != _WRAPPED

    # values sealed under master-derived keys (drafts, which have no customer yet) -----------
    def seal_json(self, value: Any, *, context: str) -> bytes:
        kid = self.current.kid
        body = _seal(self._draft_keys[kid], _dumps(value), context.encode())
        return kid.encode() + b":" + body

    def open_json(self, token: bytes, *, context: str) -> Any:
        kid, _, body = token.partition(b":")
        key = self._draft_keys.get(kid.decode(errors="replace"))
        if key is None:
            raise DecryptionError("master key of this value is not configured")
        return json.loads(_open(key, body, context.encode()))

    def sealed_kid(self, token: bytes) -> str:
        return token.partition(b":")[0].decode(errors="replace")

    # blind indexes -------------------------------------------------------------------------
    def blind_index(self, kind: str, normalized: str, *, kid: str | None = None) -> str:
        key = self._index_keys[kid or self.current.kid]
        return hmac.new(key, f"{kind}:{normalized}".encode(), hashlib.sha256).hexdigest()

    def blind_indexes(self, kind: str, normalized: str) -> list[str]:
        """The digest under every configured key, so look-ups work during a rotation."""
        return [self.blind_index(kind, normalized, kid=k.kid) for k in self.keys]


def seal_with(data_key: bytes, value: Any, *, context: str) -> bytes:
    """Seal a JSON-able value with a customer's data key, bound to `context`."""
    return _seal(data_key, _dumps(value), context.encode())


def open_with(data_key: bytes, token: bytes, *, context: str) -> Any:
    return json.loads(_open(data_key, token, context.encode()))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def load_or_create_keys(
    configured: str | None, key_file: os.PathLike[str] | str
) -> tuple[list[bytes], bool]:
    """Master keys from ENCRYPTION_KEYS, else from the key file, creating it once.

    Returns the keys and whether a new key file was just written (the caller warns).
    """
    if configured:
        return [decode_master_key(part) for part in configured.split(",") if part.strip()], False
    path = os.fspath(key_file)
    if os.path.exists(path):
        with open(path, encoding="ascii") as handle:
            lines = [line.strip() for line in handle if line.strip()]
        try:
            return [decode_master_key(line) for line in lines], False
        except ValueError as error:
            raise ValueError(f"key file {path}: {error}") from error
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)  # the data folder
    key = new_master_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return [decode_master_key(key)], True


def decode_master_key(text: str) -> bytes:
    """Decode one master key (url-safe base64 of 32 random bytes)."""
    text = text.strip()
    try:
        raw = base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("each key must be url-safe base64") from exc
    if len(raw) != 32:
        raise ValueError(
            "each key must be 32 bytes in url-safe base64 (make one with: python -m bot new-key)"
        )
    return raw


def random_token(nbytes: int = 18) -> str:
    return secrets.token_urlsafe(nbytes)
