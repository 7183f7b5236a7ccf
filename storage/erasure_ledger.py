"""The erasure ledger: every destruction and removal of personal data, kept beside the keys.

A backup taken before a customer was destroyed still holds its name, its key persons and its
wrapped data key; the keys that open it are the installation's own. So the record that it was
destroyed must outlive any database: it is this file (ERASURE_LEDGER, by default
`erasures.log` in DATA_DIR, next to the key file), appended after each erasure commits and
re-applied to whatever database the bot opens or restores (storage.erasure.reapply).

One JSON line per erasure, chained: each line carries the MAC of the one before it and its own
MAC under a key derived from a master key, so a line cannot be forged without the keys, and a
line taken out breaks the chain. Lines hold ids and record numbers only, never personal data.
A line cut short by a crash while it was written is ignored (its erasure is in the database,
and `storage.erasure.record_missing` writes it again at the next start).
"""

from __future__ import annotations

import fcntl
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

from storage.crypto import Keyring
from storage.db import SessionFactory

log = logging.getLogger(__name__)

PURPOSE = "erasure-ledger"
VERSION = 1
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

    def read(self) -> tuple[list[Entry], Head]:
        """Every entry, checked: each MAC valid under a configured key, the chain unbroken.

        Raises LedgerError on a forged, altered, removed or reordered line, or one sealed under
        a master key that is not configured.
        """
        entries: list[Entry] = []
        prev = ""
        for number, fields in self._lines():
            try:
                entry = Entry(
                    kind=str(fields["kind"]),
                    record_id=int(fields["record_id"]),
                    customer_id=int(fields["customer_id"]),
                    number=fields.get("number"),
                    at=str(fields["at"]),
                )
                kid, mac, line_prev = str(fields["kid"]), str(fields["mac"]), fields["prev"]
            except (KeyError, TypeError, ValueError):
                raise LedgerError(f"{self.path}, line {number}: not a ledger line") from None
            if line_prev != prev:
                raise LedgerError(
                    f"{self.path}, line {number}: the chain is broken (a line before it was "
                    "removed, altered or reordered)"
                )
            if not self.keyring.verify_mac(PURPOSE, _body(entry, prev), kid=kid, mac=mac):
                raise LedgerError(
                    f"{self.path}, line {number}: its MAC does not match under the configured "
                    "keys (forged or altered, or written under a master key not configured)"
                )
            entries.append(entry)
            prev = mac
        return entries, Head(len(entries), prev)

    def head(self) -> Head:
        return self.read()[1]

    def reaches(self, head: Head) -> bool:
        """Whether this ledger holds `head`'s entry at its place (it is not older than the
        backup whose manifest recorded `head`). Call after `read` has checked the chain."""
        if head.count <= 0:
            return True
        for seen, (_, fields) in enumerate(self._lines(), start=1):
            if seen == head.count:
                return str(fields.get("mac")) == head.mac
        return False

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
            _, head = self.read()
            prev, lines = head.mac, []
            for entry in entries:
                kid, mac = self.keyring.mac(PURPOSE, _body(entry, prev))
                fields = {"v": VERSION, **_fields(entry), "prev": prev, "kid": kid, "mac": mac}
                lines.append(json.dumps(fields, ensure_ascii=False, separators=(",", ":")))
                prev = mac
            os.write(fd, ("\n".join(lines) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


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
