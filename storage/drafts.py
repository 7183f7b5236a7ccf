"""Half-finished flows, kept in the database and sealed, so they survive restarts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import Keyring
from storage.models import Draft
from storage.types import utcnow


@dataclass
class DraftState:
    """A draft as the flow machinery sees it."""

    flow: str
    step: str | None
    mode: str = "ask"
    token: int = 1
    data: dict[str, Any] = field(default_factory=dict)
    shown: int = 0  # token of the last prompt Telegram accepted

    @property
    def unseen(self) -> bool:
        """The current question never reached the user (its send failed)."""
        return self.shown != self.token


def _context(staff_id: int) -> str:
    return f"draft:{staff_id}"


async def load(
    session: AsyncSession, keyring: Keyring, staff_id: int, *, for_update: bool = False
) -> DraftState | None:
    query = select(Draft).where(Draft.staff_id == staff_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.exec(query)).first()
    if row is None:
        return None
    data = keyring.open_json(row.sealed, context=_context(staff_id)) if row.sealed else {}
    shown = row.token if row.shown_token is None else row.shown_token
    return DraftState(
        flow=row.flow, step=row.step, mode=row.mode, token=row.token, data=data, shown=shown
    )


async def save(session: AsyncSession, keyring: Keyring, staff_id: int, state: DraftState) -> None:
    row = (await session.exec(select(Draft).where(Draft.staff_id == staff_id))).first()
    if row is None:
        row = Draft(staff_id=staff_id, flow=state.flow)
    row.flow, row.step, row.mode, row.token = state.flow, state.step, state.mode, state.token
    row.shown_token = state.shown
    row.sealed = keyring.seal_json(state.data, context=_context(staff_id))
    row.updated_at = utcnow()
    session.add(row)
    await session.flush()


async def mark_shown(session: AsyncSession, staff_id: int, token: int) -> bool:
    """Record that the prompt with `token` reached the user, unless the draft moved on."""
    result = await session.exec(
        update(Draft)
        .where(col(Draft.staff_id) == staff_id, col(Draft.token) == token)
        .values(shown_token=token)
    )
    return bool(result.rowcount)


async def discard(session: AsyncSession, staff_id: int) -> bool:
    row = (await session.exec(select(Draft).where(Draft.staff_id == staff_id))).first()
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True


async def reseal_all(session: AsyncSession, keyring: Keyring) -> int:
    """Re-seal every draft under the newest master key (part of key rotation)."""
    count = 0
    for row in (await session.exec(select(Draft))).all():
        if row.sealed and keyring.sealed_kid(row.sealed) != keyring.current.kid:
            data = keyring.open_json(row.sealed, context=_context(row.staff_id))
            row.sealed = keyring.seal_json(data, context=_context(row.staff_id))
            session.add(row)
            count += 1
    return count
