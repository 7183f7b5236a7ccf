"""访问日志: an append-only audit log, chained by a keyed MAC.

Each entry's MAC (HMAC-SHA256) covers its own fields and the previous entry's MAC, so altering,
deleting, reordering or renumbering any entry breaks the chain at that entry; and since the MAC
key is secret, someone who can only write to the database cannot recompute a chain that
verifies. What a chain alone cannot show is that its newest entries were cut off (or the table
emptied): for that, the head (newest id and MAC) is anchored outside the table, printed by
`verify-audit`, sent to admins daily and written into backup manifests, and
`verify-audit --expect ID:MAC` fails when the log no longer reaches that head.

The MAC key is random, stored in `audit_keys` wrapped by a master key and re-wrapped by
rotate-keys, so entries keep verifying after an old master key is dropped. Processes reach it
through their session factory: `use_keyring` (called when the services are built) puts the
keyring into every session's `info`, so `record(session, ...)` needs no extra argument; the key
is opened once per factory and kept.

Entries written before the keyed MAC keep their plain SHA-256 links and still verify: the MAC
key row records the last of them (`legacy_upto`, bound into the wrapping so it cannot be moved)
and the first keyed entry chains on its hash. No plain entry may follow a keyed one.

`prev_hash` is unique, so two writers racing to append after the same entry cannot fork the
chain: one fails and its transaction (and the action it recorded) is retried or refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, NamedTuple

from sqlalchemy import insert, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import DecryptionError, Keyring
from storage.db import SessionFactory
from storage.models import AuditEntry, AuditKey
from storage.types import utcnow

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x41554449  # "AUDI": serialises appenders on PostgreSQL
_INFO = "audit.keys"  # the session.info entry that carries the keyring and the opened key
_KEY_ROW = 1
_TAIL = "audit.tail"  # session info: (transaction, entry, key) of the last entry it appended


class AuditKeyError(RuntimeError):
    """The audit MAC key cannot be had: no keyring given, the key row is missing while keyed
    entries exist, or it does not open with the configured master keys."""


class AuditHead(NamedTuple):
    """The newest entry's id and MAC: what is anchored outside the table."""

    id: int
    mac: str

    def __str__(self) -> str:
        return f"{self.id}:{self.mac}"

    @classmethod
    def parse(cls, value: str) -> AuditHead:
        """`ID:MAC` as verify-audit prints it; ValueError with a reason otherwise."""
        number, colon, mac = value.strip().partition(":")
        mac = mac.strip().lower()
        if not colon or not number.isascii() or not number.isdigit() or int(number) < 1:
            raise ValueError("expected ID:MAC, e.g. 1234:9f86d081… (as verify-audit prints it)")
        if len(mac) != 64 or any(c not in "0123456789abcdef" for c in mac):
            raise ValueError("the MAC must be 64 hexadecimal characters")
        return cls(int(number), mac)


@dataclass(repr=False)
class _Keys:
    """Per session factory: the keyring, and the MAC key once opened (by its wrapped form, so
    a row that a rollback removed or rotate-keys re-wrapped is read again, never trusted)."""

    keyring: Keyring
    opened: dict[tuple[str, bytes, int], bytes] = field(default_factory=dict)

    def __repr__(self) -> str:
        return "<audit MAC key holder>"  # the session factory's repr must not show the key


def use_keyring(factory: SessionFactory, keyring: Keyring) -> None:
    """Let every session of `factory` write and verify keyed entries (once per process)."""
    info = dict(factory.kw.get("info") or {})
    info[_INFO] = _Keys(keyring)
    factory.configure(info=info)


def _keys(session: AsyncSession, keyring: Keyring | None = None) -> _Keys:
    if keyring is not None:
        return _Keys(keyring)
    found = session.info.get(_INFO)
    if not isinstance(found, _Keys):
        raise AuditKeyError("the audit log needs the keyring: call audit.use_keyring at start-up")
    return found


def _context(legacy_upto: int) -> bytes:
    return b"audit-mac:%d" % legacy_upto


def _body(entry: AuditEntry) -> bytes:
    return json.dumps(
        [
            entry.id,
            entry.at.isoformat(),
            entry.actor_telegram_id,
            entry.actor_staff_id,
            entry.action,
            entry.entity,
            entry.entity_id,
            entry.detail,
            entry.prev_hash,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def _entry_hash(entry: AuditEntry) -> str:
    """The plain SHA-256 link of entries written before the keyed MAC."""
    return hashlib.sha256(_body(entry)).hexdigest()


def _entry_mac(key: bytes, entry: AuditEntry) -> str:
    return hmac.new(key, _body(entry), hashlib.sha256).hexdigest()


async def _open_key(session: AsyncSession, keys: _Keys) -> tuple[bytes, int] | None:
    """The MAC key and `legacy_upto` from the key row, or None when there is no row yet."""
    row = await session.get(AuditKey, _KEY_ROW)
    if row is None:
        return None
    known = keys.opened.get((row.kek_id, row.wrapped, row.legacy_upto))
    if known is not None:
        return known, row.legacy_upto
    try:
        secret = keys.keyring.unwrap_key(row.kek_id, row.wrapped, context=_context(row.legacy_upto))
    except DecryptionError as error:
        raise AuditKeyError(
            "the audit MAC key does not open with the configured master keys "
            "(ENCRYPTION_KEYS lacks its key, or the key row was altered)"
        ) from error
    keys.opened[(row.kek_id, row.wrapped, row.legacy_upto)] = secret
    return secret, row.legacy_upto


async def _create_key(session: AsyncSession, keys: _Keys, last: AuditEntry | None) -> bytes:
    """The first keyed entry makes the key; every entry so far must be a plain one."""
    if last is not None and last.hash != _entry_hash(last):
        raise AuditKeyError(
            "the audit MAC key is missing but the log has keyed entries: "
            "restore the audit_keys table from a backup"
        )
    legacy_upto = (last.id or 0) if last is not None else 0
    secret = os.urandom(32)
    kid, wrapped = keys.keyring.wrap_key(secret, context=_context(legacy_upto))
    session.add(AuditKey(id=_KEY_ROW, kek_id=kid, wrapped=wrapped, legacy_upto=legacy_upto))
    await session.flush()
    return secret


async def record(
    session: AsyncSession,
    *,
    action: str,
    actor_telegram_id: int | None = None,
    actor_staff_id: int | None = None,
    entity: str | None = None,
    entity_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction. `detail` must hold no personal data."""
    keys = _keys(session)
    tail = _tail_of_this_transaction(session)
    if tail is not None:  # this transaction appended already: it holds the log's end
        last, key = tail
    else:
        if session.get_bind().dialect.name == "postgresql":
            await session.exec(
                text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_PG_AUDIT_LOCK)
            )
        last = (
            await session.exec(select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(1))
        ).first()
        opened = await _open_key(session, keys)
        key = opened[0] if opened is not None else await _create_key(session, keys, last)
    entry = AuditEntry(
        id=(last.id + 1) if last and last.id else 1,
        at=utcnow(),
        actor_telegram_id=actor_telegram_id,
        actor_staff_id=actor_staff_id,
        action=action,
        entity=entity,
        entity_id=entity_id,
        detail=json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None,
        prev_hash=last.hash if last else GENESIS,
        hash="",
    )
    entry.hash = _entry_mac(key, entry)
    session.add(entry)
    await session.flush()
    session.info[_TAIL] = (session.sync_session.get_transaction(), entry, key)
    return entry


def _tail_of_this_transaction(session: AsyncSession) -> tuple[AuditEntry, bytes] | None:
    """The entry this transaction appended last, and the key it was signed with: the log's end
    for as long as the transaction lasts, since appenders queue (SQLite's writer lock, the
    advisory lock on PostgreSQL). An action that audits three times reads the end once.
    None once the transaction is another, or the entry left the session (a savepoint that
    added it rolled back)."""
    held = session.info.get(_TAIL)
    if held is None:
        return None
    transaction, entry, key = held
    if transaction is not session.sync_session.get_transaction() or entry not in session:
        session.info.pop(_TAIL, None)
        return None
    return entry, key


async def record_many(
    session: AsyncSession, entries: list[dict[str, Any]], *, chunk: int = 1000
) -> int:
    """Append many entries in the caller's transaction, chained in order: what `record` does
    once per entry, with the chain's head read once and the rows written in bulk (an import of
    10,000 customers audits each of them). Each dict holds `record`'s keyword arguments."""
    if not entries:
        return 0
    keys = _keys(session)
    if session.get_bind().dialect.name == "postgresql":
        await session.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_PG_AUDIT_LOCK))
    await session.flush()
    last = (
        await session.exec(select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(1))
    ).first()
    opened = await _open_key(session, keys)
    key = opened[0] if opened is not None else await _create_key(session, keys, last)
    next_id = (last.id + 1) if last and last.id else 1
    prev = last.hash if last else GENESIS
    now = utcnow()
    rows = []
    for offset, given in enumerate(entries):
        detail = given.get("detail")
        row = {
            "id": next_id + offset,
            "at": now,
            "actor_telegram_id": given.get("actor_telegram_id"),
            "actor_staff_id": given.get("actor_staff_id"),
            "action": given["action"],
            "entity": given.get("entity"),
            "entity_id": given.get("entity_id"),
            "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None,
            "prev_hash": prev,
            "hash": "",
        }
        # the MAC of exactly what `record` would write (a plain object: thousands of SQLModel
        # instances cost seconds)
        row["hash"] = prev = _entry_mac(key, SimpleNamespace(**row))  # type: ignore[arg-type]
        rows.append(row)
    session.info.pop(_TAIL, None)  # the end is now one of these rows
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    for start in range(0, len(rows), chunk):
        await session.exec(insert(table), params=rows[start : start + chunk])  # type: ignore[call-overload]
    return len(rows)


async def head(session: AsyncSession) -> AuditHead | None:
    """The newest entry's id and MAC (None for an empty log), for anchoring outside the table:
    the admins' daily message, backup manifests, `verify-audit --expect`."""
    last = (
        await session.exec(
            select(AuditEntry.id, AuditEntry.hash).order_by(col(AuditEntry.id).desc()).limit(1)
        )
    ).first()
    if last is None or last[0] is None:
        return None
    return AuditHead(last[0], last[1])


async def rewrap_key(session: AsyncSession, keyring: Keyring) -> bool:
    """Wrap the MAC key under the newest master key (rotate-keys); True if it was re-wrapped.
    The key itself stays, so every MAC and every anchored head stays valid."""
    row = await session.get(AuditKey, _KEY_ROW, with_for_update=True)
    if row is None or not keyring.needs_rewrap(row.kek_id, row.wrapped):
        return False
    context = _context(row.legacy_upto)
    secret = keyring.unwrap_key(row.kek_id, row.wrapped, context=context)
    row.kek_id, row.wrapped = keyring.wrap_key(secret, context=context)
    session.add(row)
    return True


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None
    head: AuditHead | None = field(default=None, compare=False)  # the newest entry verified
    legacy: int = field(default=0, compare=False)  # entries on plain SHA-256 links


async def verify_chain(
    session: AsyncSession,
    *,
    batch: int = 5000,
    expect: AuditHead | None = None,
    keyring: Keyring | None = None,
) -> ChainReport:
    """Walk the whole log in order and report the first entry whose link does not hold; with
    `expect`, also fail when the log does not reach that head or its MAC there differs."""
    keys = _keys(session, keyring)
    opened = await _open_key(session, keys)
    key, legacy_upto = opened if opened is not None else (None, None)
    expected_prev, expected_id, checked = GENESIS, 1, 0
    last: AuditEntry | None = None
    while True:
        after = last.id or 0 if last is not None else 0
        rows = (
            await session.exec(
                select(AuditEntry)
                .where(col(AuditEntry.id) > after)
                .order_by(col(AuditEntry.id))
                .limit(batch)
            )
        ).all()
        for entry in rows:
            so_far = _report(checked, last, legacy_upto)
            if entry.id != expected_id:
                return _broken(so_far, expected_id, "entry missing (deleted or renumbered)")
            if entry.prev_hash != expected_prev:
                return _broken(so_far, entry.id, "link to previous entry broken")
            plain = legacy_upto is None or expected_id <= legacy_upto
            if plain:
                valid = entry.hash == _entry_hash(entry)
            else:
                assert key is not None
                valid = hmac.compare_digest(entry.hash, _entry_mac(key, entry))
            if not valid:
                return _broken(so_far, entry.id, "entry altered")
            if expect is not None and entry.id == expect.id and entry.hash != expect.mac:
                return _broken(
                    so_far, entry.id, "MAC differs from the expected head (log rewritten)"
                )
            expected_prev, expected_id = entry.hash, expected_id + 1
            checked += 1
            last = entry
        if len(rows) < batch:
            break
    report = _report(checked, last, legacy_upto)
    if legacy_upto is not None and checked < legacy_upto:
        return _broken(
            report, checked + 1, f"log ends before entry {legacy_upto} (newest entries deleted)"
        )
    if expect is not None and checked < expect.id:
        return _broken(
            report,
            checked + 1,
            f"log ends at entry {checked}, before the expected head {expect.id} "
            "(newest entries deleted)",
        )
    return report


def _report(checked: int, last: AuditEntry | None, legacy_upto: int | None) -> ChainReport:
    newest = AuditHead(last.id, last.hash) if last is not None and last.id else None
    legacy = checked if legacy_upto is None else min(checked, legacy_upto)
    return ChainReport(ok=True, checked=checked, head=newest, legacy=legacy)


def _broken(so_far: ChainReport, entry_id: int | None, reason: str) -> ChainReport:
    return ChainReport(
        False, so_far.checked, entry_id, reason, head=so_far.head, legacy=so_far.legacy
    )
