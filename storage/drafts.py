"""Half-finished flows, kept in the database and sealed, so they survive restarts.

Drafts hold personal data, so they expire: one not saved since the cut-off (DRAFT_EXPIRY_DAYS)
is never loaded again. The scheduler's poll empties expired drafts in bulk (`expire_old`),
keeping a tombstone without answers so the member can be told once what expired
(`forget_expired`); a tombstone nobody came back for goes after another such period.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, delete, or_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import quick_lane
from storage.crypto import Keyring
from storage.db import SessionFactory, alone, on_postgresql
from storage.models import Draft
from storage.types import utcnow


class DraftMode(StrEnum):
    """Where a draft's member stands in its flow (stored as text in `Draft.mode`)."""

    ask = "ask"  # answering the questions in order
    edit = "edit"  # changing one answer from the summary, then back to it
    summary = "summary"  # every answer given: the summary with its Edit buttons
    expired = "expired"  # a tombstone: an expired draft whose answers are gone


EXPIRED = DraftMode.expired


@dataclass
class DraftState:
    """A draft as the flow machinery sees it."""

    flow: str
    step: str | None
    mode: DraftMode = DraftMode.ask
    token: int = 1
    data: dict[str, Any] = field(default_factory=dict)
    shown: int = 0  # token of the last prompt Telegram accepted
    stored: int | None = None  # the token the row held when read (None: not read from it)

    @property
    def unseen(self) -> bool:
        """The current question never reached the user (its send failed)."""
        return self.shown != self.token


_TABLE = Draft.__table__  # type: ignore[attr-defined]  # the quick lane reads rows, not objects


def _context(staff_id: int) -> str:
    return f"draft:{staff_id}"


def _expired(not_before: datetime) -> Any:
    """Rows of drafts that expired: tombstones, and drafts not saved since `not_before`."""
    return or_(col(Draft.mode) == EXPIRED, col(Draft.updated_at) < not_before)


async def load(
    session: AsyncSession,
    keyring: Keyring,
    staff_id: int,
    *,
    not_before: datetime | None,
    for_update: bool = False,
) -> DraftState | None:
    """The member's draft, unless it expired (last saved before `not_before`; None: never)."""
    query = select(Draft).where(Draft.staff_id == staff_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.exec(query)).first()
    if row is None or _is_expired(row, not_before):
        return None
    return _state(keyring, staff_id, row)


async def peek(
    session: AsyncSession, keyring: Keyring, staff_id: int, *, not_before: datetime
) -> tuple[DraftState | None, bool]:
    """The member's draft and whether an expired one (or its tombstone) waits to be told of,
    in one statement: a member has at most one draft row (`load` and `has_expired` at once)."""
    row = (await session.exec(select(Draft).where(Draft.staff_id == staff_id))).first()
    return _peeked(keyring, staff_id, row, not_before)


async def peek_alone(
    sessions: SessionFactory, keyring: Keyring, staff_id: int, *, not_before: datetime
) -> tuple[DraftState | None, bool]:
    """`peek` as a unit of its own: on SQLite's quick lane when it can, else a reading unit."""
    lane = quick_lane.of(sessions)
    if lane is not None:
        try:
            row = lane.first(_PEEK, {"staff_id": staff_id})
        except quick_lane.Busy:
            pass
        else:
            return _peeked(keyring, staff_id, row, not_before)
    found = await alone(sessions, _PEEK, {"staff_id": staff_id}, reads=True)
    return _peeked(keyring, staff_id, found.first(), not_before)


_PEEK = select(_TABLE).where(_TABLE.c.staff_id == bindparam("staff_id"))


def _peeked(
    keyring: Keyring, staff_id: int, row: Any, not_before: datetime
) -> tuple[DraftState | None, bool]:
    if row is None:
        return None, False
    if _is_expired(row, not_before):
        return None, True
    return _state(keyring, staff_id, row), False


def _is_expired(row: Any, not_before: datetime | None) -> bool:
    """`row`: a Draft, or a row of its table (the quick lane's)."""
    return row.mode == EXPIRED or (not_before is not None and row.updated_at < not_before)


def _state(keyring: Keyring, staff_id: int, row: Any) -> DraftState:
    data = keyring.open_json(row.sealed, context=_context(staff_id)) if row.sealed else {}
    shown = row.token if row.shown_token is None else row.shown_token
    return DraftState(
        flow=row.flow,
        step=row.step,
        mode=DraftMode(row.mode),
        token=row.token,
        data=data,
        shown=shown,
        stored=row.token,
    )


async def has_expired(session: AsyncSession, staff_id: int, *, not_before: datetime) -> bool:
    """Whether the member has an expired draft (or its tombstone) they were not told of."""
    query = select(Draft.id).where(Draft.staff_id == staff_id, _expired(not_before))
    return (await session.exec(query)).first() is not None


async def forget_expired(
    session: AsyncSession, staff_id: int, *, not_before: datetime
) -> str | None:
    """Delete the member's expired draft; its flow's name if there was one (to tell them once)."""
    row = (
        await session.exec(select(Draft).where(Draft.staff_id == staff_id, _expired(not_before)))
    ).first()
    if row is None:
        return None
    await session.delete(row)
    await session.flush()
    return row.flow


async def expire_old(session: AsyncSession, *, not_before: datetime, now: datetime) -> int:
    """Empty every draft not saved since `not_before` (its answers are gone, a tombstone says
    which flow it was) and delete tombstones older than that; the number of drafts emptied."""
    await session.exec(
        delete(Draft).where(col(Draft.mode) == EXPIRED, col(Draft.updated_at) < not_before)
    )
    emptied = await session.exec(
        update(Draft)
        .where(col(Draft.mode) != EXPIRED, col(Draft.updated_at) < not_before)
        .values(mode=EXPIRED, step=None, sealed=None, updated_at=now)
    )
    return emptied.rowcount or 0


async def save(
    session: AsyncSession,
    keyring: Keyring,
    staff_id: int,
    state: DraftState,
    *,
    now: datetime | None = None,
) -> None:
    """Keep the draft; `now` (the app's clock) starts its time to expiry afresh."""
    upsert = _upsert(session.bind.dialect.name)
    await session.exec(upsert, params=_values(keyring, staff_id, state, now))


class DraftMoved(Exception):
    """The draft was saved by another update since it was read (another instance took an
    answer of the same member at the same moment): this update must read it again."""


async def save_alone(
    sessions: SessionFactory,
    keyring: Keyring,
    staff_id: int,
    state: DraftState,
    *,
    now: datetime | None = None,
) -> None:
    """`save` as a unit of its own: on SQLite's quick lane when the write lock is free, else
    an ordinary unit of work (which waits for it off the event loop).

    A state read from the database is saved only over the row it was read from (its token
    unchanged), else DraftMoved: of two answers taken at once, the second is taken afresh.
    """
    values = _values(keyring, staff_id, state, now)
    checked = state.stored is not None
    if checked:
        values["stored"] = state.stored
    lane = quick_lane.of(sessions)
    saved: int | None = None
    if lane is not None:
        with contextlib.suppress(quick_lane.Busy):  # busy: the ordinary path below
            saved = lane.write(_upsert("sqlite", checked), values)
    if saved is None:
        dialect = "postgresql" if on_postgresql(sessions) else "sqlite"
        saved = (await alone(sessions, _upsert(dialect, checked), values, reads=False)).rowcount
    if checked and not saved:
        raise DraftMoved
    state.stored = state.token


_SAVED = ("flow", "step", "mode", "token", "shown_token", "sealed", "updated_at")


@functools.cache
def _upsert(dialect: str, checked: bool = False) -> Any:
    """One statement, no SELECT first: a member has at most one draft (unique staff_id). Built
    once, with its values as parameters (`_values`), so a step spends nothing on building it.
    `checked`: an existing row is only overwritten while its token is still `stored`."""
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    columns = ("staff_id", "created_at", *_SAVED)
    upsert = insert(_TABLE).values({name: bindparam(name) for name in columns})
    return upsert.on_conflict_do_update(
        index_elements=[_TABLE.c.staff_id],
        set_={name: upsert.excluded[name] for name in _SAVED},
        where=(_TABLE.c.token == bindparam("stored")) if checked else None,
    )


def _values(
    keyring: Keyring, staff_id: int, state: DraftState, now: datetime | None
) -> dict[str, Any]:
    saved_at = now or utcnow()
    return {
        "staff_id": staff_id,
        "created_at": saved_at,
        "flow": state.flow,
        "step": state.step,
        "mode": str(state.mode),
        "token": state.token,
        "shown_token": state.shown,
        "sealed": keyring.seal_json(state.data, context=_context(staff_id)),
        "updated_at": saved_at,
    }


async def mark_shown(session: AsyncSession, staff_id: int, token: int) -> bool:
    """Record that the prompt with `token` reached the user, unless the draft moved on."""
    result = await session.exec(_MARK, params={"staff": staff_id, "shown": token})
    return bool(result.rowcount)


async def mark_shown_alone(sessions: SessionFactory, staff_id: int, token: int) -> bool:
    """`mark_shown` as a unit of its own (on SQLite's quick lane when it can)."""
    lane = quick_lane.of(sessions)
    if lane is not None:
        try:
            return bool(lane.write(_MARK, {"staff": staff_id, "shown": token}))
        except quick_lane.Busy:
            pass
    marked = await alone(sessions, _MARK, {"staff": staff_id, "shown": token}, reads=False)
    return bool(marked.rowcount)


_MARK = (
    update(_TABLE)
    .where(_TABLE.c.staff_id == bindparam("staff"), _TABLE.c.token == bindparam("shown"))
    .values(shown_token=bindparam("shown"))
)


async def discard_alone(sessions: SessionFactory, staff_id: int) -> bool:
    """`discard` as a unit of its own (a cancelled flow): on SQLite's quick lane when it can."""
    lane = quick_lane.of(sessions)
    if lane is not None:
        try:
            return bool(lane.write(_DISCARD, {"staff": staff_id}))
        except quick_lane.Busy:
            pass
    return bool((await alone(sessions, _DISCARD, {"staff": staff_id}, reads=False)).rowcount)


_DISCARD = delete(_TABLE).where(_TABLE.c.staff_id == bindparam("staff"))


async def discard(session: AsyncSession, staff_id: int) -> bool:
    """Drop the person's draft, if any: one DELETE (a submit has just read it)."""
    done = await session.exec(_DISCARD, params={"staff": staff_id})  # type: ignore[call-overload]
    return bool(done.rowcount)


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
