"""Messages that must follow a change, kept in the outbox (the `reminders` table) with it.

A follow-up sent only after the commit is lost when the process dies in between: the managers'
notice of a new submission, the submitter's confirmation, the deletion of a value shown in
clear. So each is written as an outbox row in the change's own transaction; right after the
commit the handler asks for its delivery (`bot.sender.Sender.deliver_messages`), and if the
process died first, the scheduler's next poll finds the row due. Delivery is the outbox's
(storage.reminders.delivery): a conditional claim with a lease, so at least once and, outside
a crash in the instant between Telegram's answer and our commit, exactly once.

Rows hold ids, never personal data in clear: a review card is rendered at delivery from the
review; a confirmation's text (it names the customer) is sealed under a master-derived key,
bound to its row's key, and dropped once sent; a deletion holds a chat and a message id.

A review card for a team's group chat has no recipient (`recipient_id` is NULL): it is for a
chat, `chat_id`. Once a card is sent, its message is recorded (`ReviewNotice`) in the same
transaction as the row is marked sent, so the decision can edit every copy in place.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import reviews
from storage.crypto import DecryptionError, Keyring
from storage.models import Reminder, ReminderStatus, Staff

log = logging.getLogger(__name__)
_QUEUED = "outbox.queued"  # session.info key: the rows this unit of work queued


class Kind(StrEnum):
    review_card = "review_card"  # a new submission → a decider, or the team's group chat
    confirmation = "confirmation"  # what the submitter is told once the record is saved
    delete = "delete"  # delete a message that showed a value in clear, when its time is up
    report_chart = "report_chart"  # the weekly report's chart (a photo) → a manager or admin
    review_edit = "review_edit"  # a decided review's card someone else got, edited to say so


KINDS = frozenset(Kind)


def queued_in(session: AsyncSession) -> list[int]:
    """The outbox rows queued in this unit of work: deliver them once it has committed."""
    return list(session.info.get(_QUEUED, ()))


async def _add(session: AsyncSession, row: dict[str, Any]) -> int | None:
    """Insert one row unless its key exists; its id is remembered for delivery after commit."""
    dialect = session.get_bind().dialect.name
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    table = Reminder.__table__  # type: ignore[attr-defined]
    statement = (
        insert(table)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(table.c.id)
    )
    row_id = (await session.exec(statement)).scalar_one_or_none()  # type: ignore[call-overload]
    if row_id is not None:
        session.info.setdefault(_QUEUED, []).append(row_id)
    return row_id


def _row(
    kind: Kind,
    key: str,
    *,
    recipient_id: int | None,
    subject_type: str,
    subject_id: int | None,
    due_at: datetime,
    now: datetime,
    chat_id: int | None = None,
    payload: str | None = None,
) -> dict[str, Any]:
    return {
        "dedup_key": f"{kind}:{key}",
        "kind": kind,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "recipient_id": recipient_id,
        "chat_id": chat_id,
        "due_at": due_at,
        "next_attempt_at": due_at,
        "status": ReminderStatus.pending,
        "attempts": 0,
        "payload": payload,
        "created_at": now,
        "updated_at": now,
    }


async def queue_review_cards(
    session: AsyncSession, *, review_id: int, now: datetime, use_group: bool = True
) -> list[int]:
    """The notice of a new submission: one card for the team's group chat, else one for each
    person who may decide it (storage.reviews.route). Queuing twice adds nothing."""
    where = await reviews.route(session, review_id=review_id, use_group=use_group)
    rows = []
    if where.group_chat_id is not None:
        key = f"review:{review_id}:chat{where.group_chat_id}"
        rows.append(
            _row(
                Kind.review_card,
                key,
                recipient_id=None,
                subject_type="review",
                subject_id=review_id,
                chat_id=where.group_chat_id,
                due_at=now,
                now=now,
            )
        )
    for person in where.people:
        key = f"review:{review_id}:{person.staff_id}"
        rows.append(
            _row(
                Kind.review_card,
                key,
                recipient_id=person.staff_id,
                subject_type="review",
                subject_id=review_id,
                chat_id=person.telegram_id,
                due_at=now,
                now=now,
            )
        )
    if not rows:
        log.warning("review %s: nobody may decide it, so nobody is sent its notice", review_id)
    ids = [await _add(session, row) for row in rows]
    return [i for i in ids if i is not None]


async def queue_review_edits(
    session: AsyncSession,
    *,
    review_id: int,
    now: datetime,
    pressed: tuple[int, int] | None = None,
) -> list[int]:
    """A decision's edits of every card of the review that was sent (short notices, group
    cards, full cards a decider opened) but the one pressed, which its handler edits itself:
    written with the decision, so a crash right after it still brings every card up to date."""
    ids = []
    for copy in await reviews.notice_copies(session, review_id=review_id):
        if (copy.chat_id, copy.message_id) == pressed:
            continue
        row = _row(
            Kind.review_edit,
            f"review:{review_id}:chat{copy.chat_id}:message{copy.message_id}",
            recipient_id=copy.staff_id,
            subject_type="review",
            subject_id=review_id,
            chat_id=copy.chat_id,
            due_at=now,
            now=now,
            payload=json.dumps({"full": copy.full, "private": copy.private}),
        )
        row_id = await _add(session, {**row, "message_id": copy.message_id})
        if row_id is not None:
            ids.append(row_id)
    return ids


def _context(dedup_key: str) -> str:
    return f"outbox:{dedup_key}"


async def queue_confirmation(
    session: AsyncSession,
    *,
    keyring: Keyring,
    recipient: Staff,
    text: str,
    markup: dict[str, Any] | None,
    now: datetime,
) -> int | None:
    """What the submitter is told once their record is saved; sealed, since it names it."""
    assert recipient.id is not None
    key = f"staff:{recipient.id}:{secrets.token_hex(8)}"
    sealed = keyring.seal_json(
        {"text": text, "markup": markup}, context=_context(f"{Kind.confirmation}:{key}")
    )
    return await _add(
        session,
        _row(
            Kind.confirmation,
            key,
            recipient_id=recipient.id,
            subject_type="staff",
            subject_id=recipient.id,
            chat_id=recipient.telegram_id,
            due_at=now,
            now=now,
            payload=json.dumps({"sealed": base64.b64encode(sealed).decode("ascii")}),
        ),
    )


async def queue_deletion(
    session: AsyncSession, *, recipient: Staff, chat_id: int, due_at: datetime, now: datetime
) -> int | None:
    """A message to delete at `due_at`, queued before it is sent (its id follows, `deletion_of`):
    written with the change it belongs to, e.g. the audit entry of a reveal."""
    assert recipient.id is not None
    key = f"chat{chat_id}:{secrets.token_hex(8)}"
    return await _add(
        session,
        _row(
            Kind.delete,
            key,
            recipient_id=recipient.id,
            subject_type="message",
            subject_id=None,
            chat_id=chat_id,
            due_at=due_at,
            now=now,
        ),
    )


async def queue_message_deletion(
    session: AsyncSession,
    *,
    chat_id: int,
    message_id: int,
    recipient_id: int | None,
    now: datetime,
) -> int | None:
    """Delete a message already sent (its id known), as soon as the change commits: e.g. the
    review cards naming a customer who has just been destroyed (storage.destruction)."""
    row = _row(
        Kind.delete,
        f"chat{chat_id}:message{message_id}",
        recipient_id=recipient_id,
        subject_type="message",
        subject_id=None,
        chat_id=chat_id,
        due_at=now,
        now=now,
    )
    return await _add(session, {**row, "message_id": message_id})


async def deletion_of(
    session: AsyncSession, *, row_id: int, message_id: int, due_at: datetime, now: datetime
) -> None:
    """The message a queued deletion is about, once Telegram has given its id."""
    await session.exec(
        update(Reminder)
        .where(col(Reminder.id) == row_id, col(Reminder.kind) == Kind.delete)
        .values(message_id=message_id, due_at=due_at, next_attempt_at=due_at, updated_at=now)
    )


async def drop(session: AsyncSession, *, ids: Sequence[int], now: datetime) -> None:
    """Rows whose message was never sent (its send failed): nothing to follow up."""
    if ids:
        await session.exec(
            update(Reminder)
            .where(col(Reminder.id).in_(list(ids)), col(Reminder.status) == ReminderStatus.pending)
            .values(
                status=ReminderStatus.cancelled,
                last_error="not sent",
                next_attempt_at=None,
                payload=None,
                updated_at=now,
            )
        )


# ---------------------------------------------------------------------------------------------
# delivery


@dataclass(frozen=True)
class Message:
    """A claimed outbox message, as the sender needs it."""

    id: int
    kind: str
    chat_id: int | None
    message_id: int | None
    review_id: int | None
    recipient: Staff | None
    content: dict[str, Any] | None = None  # an opened confirmation: text and markup; a
    # report chart's team and period (storage.reminders.weekly)

    @property
    def for_group(self) -> bool:
        return self.kind == Kind.review_card and self.recipient is None


def _open(keyring: Keyring, row: Reminder) -> dict[str, Any] | None:
    try:
        sealed = base64.b64decode(json.loads(row.payload or "{}")["sealed"])
        opened = keyring.open_json(sealed, context=_context(row.dedup_key))
    except (KeyError, ValueError, DecryptionError):
        log.error("outbox row %s: its message could not be opened", row.id)
        return None
    return opened if isinstance(opened, dict) else None


def _content(keyring: Keyring, row: Reminder) -> dict[str, Any] | None:
    if row.kind == Kind.confirmation:
        return _open(keyring, row)
    if row.kind in (Kind.report_chart, Kind.review_edit):
        try:
            content = json.loads(row.payload or "{}")
        except ValueError:
            return None
        return content if isinstance(content, dict) else None
    return None


async def claimed(session: AsyncSession, *, keyring: Keyring, ids: Sequence[int]) -> list[Message]:
    """The claimed rows of `ids` that are outbox messages, with their recipients."""
    if not ids:
        return []
    rows = (
        await session.exec(
            select(Reminder)
            .where(
                col(Reminder.id).in_(list(ids)),
                col(Reminder.kind).in_(list(KINDS)),
                col(Reminder.status) == ReminderStatus.sending,
            )
            .order_by(col(Reminder.id))
        )
    ).all()
    people = {r.recipient_id for r in rows if r.recipient_id is not None}
    staff = {
        s.id: s for s in (await session.exec(select(Staff).where(col(Staff.id).in_(people)))).all()
    }
    messages = []
    for row in rows:
        assert row.id is not None
        messages.append(
            Message(
                id=row.id,
                kind=row.kind,
                chat_id=row.chat_id,
                message_id=row.message_id,
                review_id=(
                    row.subject_id if row.kind in (Kind.review_card, Kind.review_edit) else None
                ),
                recipient=staff.get(row.recipient_id) if row.recipient_id is not None else None,
                content=_content(keyring, row),
            )
        )
    return messages


async def sent(
    session: AsyncSession,
    *,
    message: Message,
    chat_id: int,
    message_id: int | None,
    now: datetime,
) -> None:
    """Sent (or deleted): the row is done and its sealed text dropped; a review card's message
    is recorded so the decision edits it in place."""
    values: dict[str, Any] = {
        "status": ReminderStatus.sent,
        "sent_at": now,
        "next_attempt_at": None,
        "last_error": None,
        "payload": None,
        "updated_at": now,
    }
    if message.kind not in (Kind.delete, Kind.review_edit):
        values.update(chat_id=chat_id, message_id=message_id)
    await session.exec(
        update(Reminder)
        .where(col(Reminder.id) == message.id, col(Reminder.status) == ReminderStatus.sending)
        .values(**values)
    )
    if message.kind == Kind.review_card and message.review_id and message_id is not None:
        await reviews.record_notice(
            session, review_id=message.review_id, chat_id=chat_id, message_id=message_id
        )
