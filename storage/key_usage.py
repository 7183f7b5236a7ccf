"""Which master keys the stored data still needs, counted per key id.

Why: a master key dropped from ENCRYPTION_KEYS (or a key file left behind when ENCRYPTION_KEYS
was set later) makes every record sealed under it unreadable. Start-up refuses then, and
`rotate-keys` only says an old key may go once nothing here still names it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import AuditKey, BlindIndex, DataKey, Draft


@dataclass(frozen=True)
class KeyUsage:
    """Records per master key id, and per kind of record (for a message an operator reads)."""

    by_kid: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)

    def records(self, kids: set[str] | None = None) -> int:
        """How many records use any of `kids` (all when None)."""
        return sum(n for kid, n in self.by_kid.items() if kids is None or kid in kids)

    def kinds(self, kids: set[str]) -> str:
        """`3 data keys, 2 blind indexes` for the records under `kids`."""
        parts = []
        for kind, counter in self.by_kind.items():
            count = sum(n for kid, n in counter.items() if kid in kids)
            if count:
                parts.append(f"{count} {kind}")
        return ", ".join(parts)


KEY_TABLES = {str(m.__tablename__) for m in (DataKey, BlindIndex, AuditKey, Draft)}


def _draft_kid(sealed: bytes) -> str:
    """Drafts are sealed as `<kid>:<body>` (storage.crypto.Keyring.seal_json)."""
    return sealed.partition(b":")[0].decode(errors="replace")


async def master_keys_in_use(session: AsyncSession, *, tables: set[str] | None = None) -> KeyUsage:
    """Count the data keys, blind indexes, the audit log's key and drafts under each key id;
    `tables` limits it to those present (a database not yet migrated to the newest schema)."""
    usage = KeyUsage()
    wrapped = col(DataKey.wrapped).is_not(None)  # an erased customer's key needs no master key
    for kind, model, where in (
        ("data keys", DataKey, wrapped),
        ("blind indexes", BlindIndex, None),
        ("audit log key", AuditKey, None),
    ):
        if tables is not None and model.__tablename__ not in tables:
            continue
        query = select(model.kek_id, func.count()).group_by(model.kek_id)  # type: ignore[attr-defined]
        if where is not None:
            query = query.where(where)
        counter: Counter[str] = Counter()
        for kid, count in (await session.exec(query)).all():
            counter[kid] += count
        usage.by_kind[kind] = counter
    drafts: Counter[str] = Counter()
    if tables is None or Draft.__tablename__ in tables:
        query = select(Draft.sealed).where(col(Draft.sealed).is_not(None))
        for sealed in await session.exec(query):
            if sealed:
                drafts[_draft_kid(sealed)] += 1
    usage.by_kind["drafts"] = drafts
    for counter in usage.by_kind.values():
        usage.by_kid.update(counter)
    return usage
