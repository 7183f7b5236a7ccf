"""The erasure ledger: every destruction and removal of personal data, kept beside the keys.

A backup taken before a customer was destroyed still holds its name, its key persons and its
wrapped data key; the keys that open it are the installation's own. So the record that it was
destroyed must outlive any database: it is this file (ERASURE_LEDGER, by default
`erasures.log` in DATA_DIR, next to the key file), appended after each erasure commits and
re-applied to whatever database the bot opens or restores (storage.erasure.reapply).

One JSON line per erasure, chained: each line carries the MAC of the one before it and its own
MAC under the ledger's MAC key, so a line cannot be forged without the keys, and a line taken
out breaks the chain. The MAC key is random, kept in the file's first line wrapped by a master
key; rotate-keys wraps it again under the newest one (`rewrap`), so the lines and every head a
backup recorded stay as they are when old master keys are dropped. Lines hold ids and record
numbers only, never personal data.
A line cut short by a crash while it was written is ignored (its erasure is in the database,
and `storage.erasure.record_missing` writes it again at the next start).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import DecryptionError, Keyring
from storage.db import SessionFactory

log = logging.getLogger(__name__)

VERSION = 1
_KEY_CONTEXT = b"erasure-ledger-mac"
_INFO = "erasure_ledger"
_PENDING = "erasure_ledger_pending"


class Erased(StrEnum):
    """What was erased: a whole customer (destroyed), or one key person or complaint."""

    customer = "customer"
    key_person = "key_person"
    complaint = "complaint"


class LedgerError(Exception):
    """The ledger is missing where it is needed, or has been tampered with."""


@dataclass(frozen=True)
class Entry:
    """One erasure. `number` is the customer's or complaint's number (never reused), so an
    entry is applied only to the very record it names, even in another installation's copy."""

    kind: str  # Erased
    record_id: int
    customer_id: int
    number: str | None
    at: str  # ISO time of the erasure

    @classmethod
    def of(
        cls, kind: Erased, record_id: int, customer_id: int, number: str | None, at: datetime
    ) -> Entry:
        return cls(str(kind), record_id, customer_id, number, at.isoformat())

    @property
    def key(self) -> tuple[str, int]:
        return (self.kind, self.record_id)


@dataclass(frozen=True)
class Head:
    """How far a ledger reached: its number of entries and the last one's MAC (a backup's
    manifest keeps it, so a restore can tell the ledger here is not older than the backup)."""

    count: int
    mac: str


def _fields(entry: Entry) -> dict[str, Any]:
    """The entry's fields (as dataclasses.asdict, without its deep copies: a ledger has many)."""
    return {
        "kind": entry.kind,
        "record_id": entry.record_id,
        "customer_id": entry.customer_id,
        "number": entry.number,
        "at": entry.at,
    }


def _body(entry: Entry, prev: str) -> bytes:
    fields = {"v": VERSION, **_fields(entry), "prev": prev}
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


class Ledger:
    """The ledger file of one installation."""

    def __init__(self, path: Path, keyring: Keyring) -> None:
        self.path = Path(path)
        self.keyring = keyring
        self._keys: dict[tuple[str, bytes], bytes] = {}  # unwrapped MAC keys, by header

    # reading -------------------------------------------------------------------------------
    def _lines(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            handle = open(self.path, encoding="utf-8")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            return
        with handle:
            lines = handle.read().split("\n")
        last = len(lines) - 1
        for number, text in enumerate(lines):
            if not text.strip():
                continue
            try:
                yield number + 1, json.loads(text)
            except json.JSONDecodeError:
                if number == last:  # cut short by a crash while writing: never committed to
                    log.warning("%s: ignoring a last line cut short", self.path)
                    return
                raise LedgerError(f"{self.path}, line {number + 1}: not a ledger line") from None

    def _key(self, header: dict[str, Any], number: int) -> bytes:
        """The MAC key, unwrapped from the header line (`number`)."""
        try:
            kid, wrapped = str(header["kid"]), base64.b64decode(str(header["key"]))
        except (KeyError, TypeError, ValueError):
            raise LedgerError(f"{self.path}, line {number}: not a ledger header") from None
        cached = self._keys.get((kid, wrapped))
        if cached is not None:
            return cached
        try:
            key = self.keyring.unwrap_key(kid, wrapped, context=_KEY_CONTEXT)
        except DecryptionError:
            raise LedgerError(
                f"{self.path}: its key is wrapped under master key {kid}, which is not "
                "configured (or the header was altered): configure the keys it was written under"
            ) from None
        self._keys[(kid, wrapped)] = key
        return key

    def _parse(self) -> tuple[dict[str, Any] | None, list[Entry], list[str], Head]:
        """The header, every entry and its MAC, checked: each MAC valid, the chain unbroken."""
        header: dict[str, Any] | None = None
        key = b""
        entries: list[Entry] = []
        macs: list[str] = []
        prev = ""
        for number, fields in self._lines():
            if header is None:
                if "ledger" not in fields:
                    raise LedgerError(f"{self.path}, line {number}: the header line is missing")
                header, key = fields, self._key(fields, number)
                continue
            try:
                entry = Entry(
                    kind=str(fields["kind"]),
                    record_id=int(fields["record_id"]),
                    customer_id=int(fields["customer_id"]),
                    number=fields.get("number"),
                    at=str(fields["at"]),
                )
                mac, line_prev = str(fields["mac"]), fields["prev"]
            except (KeyError, TypeError, ValueError):
                raise LedgerError(f"{self.path}, line {number}: not a ledger line") from None
            if line_prev != prev:
                raise LedgerError(
                    f"{self.path}, line {number}: the chain is broken (a line before it was "
                    "removed, altered or reordered)"
                )
            if not hmac.compare_digest(_mac(key, entry, prev), mac):
                raise LedgerError(
                    f"{self.path}, line {number}: its MAC does not match (forged or altered)"
                )
            entries.append(entry)
            macs.append(mac)
            prev = mac
        return header, entries, macs, Head(len(entries), prev)

    def read(self) -> tuple[list[Entry], Head]:
        """Every entry, checked: each MAC valid, the chain unbroken.

        Raises LedgerError on a forged, altered, removed or reordered line, or a ledger whose
        key is wrapped under a master key that is not configured.
        """
        _header, entries, _macs, head = self._parse()
        return entries, head

    def head(self) -> Head:
        return self.read()[1]

    def reaches(self, head: Head) -> bool:
        """Whether this ledger holds `head`'s entry at its place (it is not older than the
        backup whose manifest recorded `head`). Call after `read` has checked the chain."""
        if head.count <= 0:
            return True
        macs = self._parse()[2]
        return len(macs) >= head.count and macs[head.count - 1] == head.mac

    # writing -------------------------------------------------------------------------------
    def append(self, entries: Iterable[Entry]) -> None:
        """Append entries durably (fsync), under an exclusive lock: two processes writing at
        once chain one after the other."""
        entries = list(entries)
        if not entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(self.path, "rb") as handle:
                held = handle.read()
            if held and not held.endswith(b"\n"):  # a line cut short by a crash: drop it
                os.ftruncate(fd, held.rfind(b"\n") + 1)
            header, _entries, _macs, head = self._parse()
            lines = []
            if header is None:  # a new ledger: its MAC key first
                secret = os.urandom(32)
                lines.append(self._header(secret))
                key = secret
            else:
                key = self._key(header, 1)
            prev = head.mac
            for entry in entries:
                mac = _mac(key, entry, prev)
                fields = {"v": VERSION, **_fields(entry), "prev": prev, "mac": mac}
                lines.append(json.dumps(fields, ensure_ascii=False, separators=(",", ":")))
                prev = mac
            os.write(fd, ("\n".join(lines) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def _header(self, secret: bytes) -> str:
        kid, wrapped = self.keyring.wrap_key(secret, context=_KEY_CONTEXT)
        fields = {"ledger": VERSION, "kid": kid, "key": base64.b64encode(wrapped).decode()}
        return json.dumps(fields, separators=(",", ":"))

    def needs_rewrap(self) -> bool:
        """Whether the MAC key is wrapped under an older master key than the newest."""
        header = self._parse()[0]
        if header is None:
            return False
        wrapped = base64.b64decode(str(header["key"]))
        return self.keyring.needs_rewrap(str(header["kid"]), wrapped)

    def rewrap(self) -> bool:
        """Wrap the MAC key under the newest master key (rotate-keys): only the header line
        changes, atomically (a new file renamed over the old). False if there was nothing to
        do. Raises LedgerError if the ledger does not verify."""
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            header, _entries, _macs, _head = self._parse()
            if header is None or not self.needs_rewrap():
                return False
            secret = self._key(header, 1)
            with open(self.path, encoding="utf-8") as handle:
                body = handle.read().split("\n", 1)[1]
            fresh = self.path.with_name(self.path.name + ".rewrap")
            out = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(out, (self._header(secret) + "\n" + body).encode())
                os.fsync(out)
            finally:
                os.close(out)
            os.replace(fresh, self.path)
            return True
        finally:
            os.close(fd)


def _mac(key: bytes, entry: Entry, prev: str) -> str:
    return hmac.new(key, _body(entry, prev), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------------------
# the ledger of a session: configured once per process, written when the erasure commits


def use(factory: SessionFactory, ledger: Ledger) -> None:
    """Give every session of `factory` this ledger (bot.context.Services does, at start-up)."""
    info = dict(factory.kw.get("info") or {})
    info[_INFO] = ledger
    factory.configure(info=info)


def of(session: AsyncSession) -> Ledger:
    """The session's ledger; erasing without one is refused (it could be undone by a restore)."""
    found = session.info.get(_INFO)
    if not isinstance(found, Ledger):
        raise LedgerError("erasing needs the erasure ledger: call erasure_ledger.use at start-up")
    return found


def append_on_commit(session: AsyncSession, entries: Iterable[Entry]) -> None:
    """Append `entries` to the session's ledger once its transaction commits (never if it rolls
    back: the ledger only ever names erasures that happened).

    Savepoints count as what they are: releasing one (storage.reviews decides inside one) is
    not the commit, so nothing is written until the outermost transaction commits; rolling one
    back drops the entries appended inside it and keeps the others.

    If the process dies between the commit and the write, the database still shows the
    erasure, and `storage.erasure.record_missing` appends it at the next start.
    """
    ledger = of(session)
    sync = session.sync_session
    within = sync.get_nested_transaction() or sync.get_transaction()
    pending: list[tuple[Any, Entry]] | None = session.info.get(_PENDING)
    if pending is None:
        mine: list[tuple[Any, Entry]] = []
        pending = session.info[_PENDING] = mine

        def _write(done: Any) -> None:
            if done.in_nested_transaction() or session.info.get(_PENDING) is not mine:
                return  # a savepoint released (the transaction goes on), or not ours
            written = [entry for _tx, entry in session.info.pop(_PENDING)]
            try:
                ledger.append(written)
            except OSError:  # the erasure stands; the next start writes it (record_missing)
                log.exception("could not write %d entries to %s", len(written), ledger.path)

        def _rolled_back(_session: Any, previous: Any) -> None:
            if session.info.get(_PENDING) is not mine:
                return
            if previous.parent is None:  # the whole transaction: nothing happened
                session.info.pop(_PENDING)
                return
            mine[:] = [(tx, entry) for tx, entry in mine if not _inside(tx, previous)]

        event.listen(sync, "after_commit", _write)
        event.listen(sync, "after_soft_rollback", _rolled_back)
    pending.extend((within, entry) for entry in entries)


def _inside(transaction: Any, ancestor: Any) -> bool:
    """Whether `transaction` is `ancestor` or a savepoint within it."""
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False
