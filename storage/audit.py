"""访问日志: an append-only, hash-chained audit log.

Each entry's hash covers its own fields and the previous entry's hash, so altering or deleting
any entry breaks every link after it; `verify_chain` finds the first broken one. `prev_hash` is
unique, so two writers racing to append after the same entry cannot fork the chain: one fails
and its transaction (and the action it recorded) is retried or refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import AuditEntry
from storage.types import utcnow

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x41554449  # "AUDI": serialises appenders on PostgreSQL


def _entry_hash(entry: AuditEntry) -> str:
    body = json.dumps(
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
    )
    return hashlib.sha256(body.encode()).hexdigest()


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
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        await session.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_PG_AUDIT_LOCK))
    last = (
        await session.exec(select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(1))
    ).first()
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
    entry.hash = _entry_hash(entry)
    session.add(entry)
    await session.flush()
    return entry


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None


async def verify_chain(session: AsyncSession, *, batch: int = 5000) -> ChainReport:
    """Walk the whole log in order and report the first entry whose link does not hold."""
    expected_prev, expected_id, checked = GENESIS, 1, 0
    last_id = 0
    while True:
        rows = (
            await session.exec(
                select(AuditEntry)
                .where(col(AuditEntry.id) > last_id)
                .order_by(col(AuditEntry.id))
                .limit(batch)
            )
        ).all()
        if not rows:
            return ChainReport(ok=True, checked=checked)
        for entry in rows:
            if entry.id != expected_id:
                return ChainReport(False, checked, expected_id, "entry missing (deleted)")
            if entry.prev_hash != expected_prev:
                return ChainReport(False, checked, entry.id, "link to previous entry broken")
            if entry.hash != _entry_hash(entry):
                return ChainReport(False, checked, entry.id, "entry altered")
            expected_prev, expected_id = entry.hash, expected_id + 1
            checked += 1
            last_id = entry.id or last_id
