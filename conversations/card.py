"""The customer card: the record with sensitive values masked, and buttons for what to do.

`cu:<id>` opens a card, `cr:<id>` offers the sensitive fields that are set and `cr:<id>:<field>`
sends one in clear (protected from forwarding, deleted after REVEAL_SECONDS, audited),
`ch:<id>` shows the history and `ch:<id>:<page>` turns its pages. Every press re-checks that the
presser may see the customer (storage.cards, through customers.visible_customer). Cards, clear
values and histories always go to the presser's private chat, never to a group.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import Forbidden, TelegramError

from bot.context import BotContext
from bot.i18n import Translator, has_message
from conversations import fit
from conversations.callback_data import (
    CARD,
    COMPLAINT,
    EDIT,
    KEY_PERSONS,
    PIPL,
    REASSIGN,
    REVIEW,
    VISIT,
    parse_id,
)
from conversations.checkin import set_location_button
from conversations.fit import Slot
from conversations.keyboards import button, pager, rows_of
from conversations.life_cycle import request_buttons
from conversations.messages import edit_quietly
from storage import cards, outbox
from storage.cards import CustomerCard, FieldChange, HistoryEntry, HistoryPage, Revealed
from storage.db import unit_of_work
from storage.errors import NotFound
from storage.models import RecordStatus
from storage.permissions import can_answer_pipl_request
from storage.reassign import offers_reassign
from storage.validation import format_phone

log = logging.getLogger(__name__)
REVEAL_SECONDS = 60
HISTORY_PAGE_SIZE = 5
HISTORY_PAGE_MAX = 999_999  # a page number in button data
VALUE_LIMIT = 60
CHANGES_SHOWN = 12  # fields listed per history entry (a creation lists every field)
STATUS_MARKS = {
    RecordStatus.draft: "📝",
    RecordStatus.pending: "⏳",
    RecordStatus.approved: "✅",
    RecordStatus.rejected: "↩️",
    RecordStatus.archived: "🗄",
}


# ---------------------------------------------------------------------------------------------
# how things are shown


def label(_: Translator, field: str) -> str:
    """A field's name: the shared `field.<field>` message, else the field's own name."""
    key = f"field.{field}"
    return _(key) if has_message(key) else field


def shown_value(_: Translator, field: str, value: Any) -> str:
    """A clear (non-sensitive) value as people read it: choices translated, long text cut."""
    if value in (None, "", []):
        return _("common.empty")
    if isinstance(value, bool):
        return _("common.yes" if value else "common.no")
    if isinstance(value, list):
        return ", ".join(shown_value(_, field, v) for v in value)
    key = f"choice.{field}.{value}"
    if has_message(key):
        return _(key)
    return fit.clip(str(value), VALUE_LIMIT)


def _due(_: Translator, day: date | None, today: date) -> str:
    if day is None:
        return _("common.empty")
    if day < today:
        return f"{day.isoformat()} {_('card.due.overdue', days=(today - day).days)}"
    if day == today:
        return f"{day.isoformat()} {_('card.due.today')}"
    return day.isoformat()


# how and when consent was given: on the card under the consent line, masked (storage.fields)
CONSENT_DETAILS = ("consent_method", "consent_on", "consent_note")


def _joined(masked: str | list[str]) -> str:
    return ", ".join(masked) if isinstance(masked, list) else masked


def _consent_rows(_: Translator, card: CustomerCard) -> list[tuple[str, str]]:
    """Whether the customer agreed to the collection of their data (PIPL, SPEC section 2), how
    and when (masked like every sealed value); a clear warning when nothing is recorded."""
    if not card.consent_given:
        return [(label(_, "consent_given"), _("pipl.card.no_consent"))]
    rows = [(label(_, "consent_given"), shown_value(_, "consent_given", True))]
    for field in CONSENT_DETAILS:
        masked = card.masked.get(field)
        if masked is not None:
            rows.append((label(_, field), _joined(masked)))
    return rows


def card_text(_: Translator, card: CustomerCard, today: date, *, shared: bool = False) -> str:
    """The card: main fields in clear, sensitive ones masked; `shared` (inserted in another
    chat, conversations/inline.py) leaves out the hint about a Reveal button it does not have."""
    title = card.name if not card.short_name else f"{card.name}({card.short_name})"
    lines: list[fit.Line] = [f"{STATUS_MARKS.get(card.status, '')} {title}".strip()]
    status = _(f"card.status.{card.status}")
    if card.pending_change:
        status = f"{status} · {_('card.pending_change')}"
    if card.life_cycle.pending:  # an archive, reactivation or destruction awaits a decision
        status = f"{status} · {_(f'life_cycle.card.pending.{card.life_cycle.pending}')}"
    if card.pooled_at is not None:  # only its team's managers and admins see such a card
        status = f"{status} · {_('card.in_pool', since=card.pooled_at.date().isoformat())}"
    rows: list[tuple[str, str]] = [
        (_("card.label.number"), card.customer_no),
        (label(_, "kind"), shown_value(_, "kind", card.kind)),
        (_("card.label.status"), status),
    ]
    if card.rejection_reason:
        rows.append((_("card.label.rejection_reason"), card.rejection_reason))
    rows += [
        (label(_, "customer_class"), shown_value(_, "customer_class", card.customer_class)),
        (label(_, "stage"), shown_value(_, "stage", card.stage)),
        (label(_, "deal_status"), shown_value(_, "deal_status", card.deal_status)),
        (_("card.label.owner"), card.owner_name),
        (label(_, "next_followup_on"), _due(_, card.next_followup_on, today)),
        (
            _("card.label.last_visit"),
            card.last_visit_on.isoformat() if card.last_visit_on else _("common.empty"),
        ),
        (label(_, "region"), shown_value(_, "region", card.region)),
        (label(_, "industry"), shown_value(_, "industry", card.industry)),
    ]
    for field, masked in card.masked.items():
        if field not in CONSENT_DETAILS:
            rows.append((label(_, field), _joined(masked)))
    rows += _consent_rows(_, card)
    lines += [(f"{name}: ", Slot(value)) for name, value in rows]
    if card.masked and not shared:
        lines += ["", _("card.masked_hint")]
    if card.read_only:
        lines += ["", _("card.read_only")]
    return fit.compose(lines)


def _button(_: Translator, key: str, data: str) -> InlineKeyboardButton:
    return button(_(key), data)


def card_markup(
    _: Translator, card: CustomerCard, *, reassign: bool = False, pipl: bool = False
) -> InlineKeyboardMarkup:
    """What can be done from the card; archived records are read-only, pending ones wait;
    `reassign` offers giving it to someone else (conversations.reassign checks the press)."""
    cid = card.id
    rows: list[list[InlineKeyboardButton]] = []
    if not card.read_only:
        rows.append(
            [
                _button(_, "card.button.visit", VISIT.data("cv", cid)),
                _button(_, "card.button.complaint", COMPLAINT.data("cc", cid)),
            ]
        )
    if card.resubmittable:  # conversations.review re-checks owner and status on the press
        rows.insert(0, [_button(_, "review_ux.button.resubmit", REVIEW.data("rv", "rs", cid))])
    people = [_button(_, "card.button.key_persons", KEY_PERSONS.data("ck", cid))]
    if card.status not in (RecordStatus.archived, RecordStatus.pending):
        people.append(_button(_, "card.button.edit", EDIT.data("ce", cid)))
    rows.append(people)
    if card.incomplete and card.status not in (RecordStatus.archived, RecordStatus.pending):
        rows.append([_button(_, "entry.button.complete", EDIT.data("cm", cid))])
    rows.append(
        [
            _button(_, "card.button.visits", VISIT.data("cvl", cid)),
            _button(_, "card.button.complaints", COMPLAINT.data("ccl", cid)),
        ]
    )
    if not card.read_only:  # whoever may see the card may edit it (storage.checkin re-checks)
        rows.append([set_location_button(_, cid)])
    last = [_button(_, "card.button.history", CARD.data("ch", cid))]
    if card.revealable:
        last.insert(0, _button(_, "card.button.reveal", CARD.data("cr", cid)))
    rows.append(last)
    if reassign:
        rows.append([_button(_, "reassign.button.card", REASSIGN.data("ra", "o", cid))])
    if pipl:  # an admin answers a PIPL request from here (conversations.pipl checks the press)
        rows.append([_button(_, "pipl.button.card", PIPL.data("pi", "m", cid))])
    if card.life_cycle.kinds:  # what the viewer may ask for (conversations.life_cycle checks)
        rows.append(request_buttons(_, cid, card.life_cycle.kinds))
    return InlineKeyboardMarkup(rows)


def clear_value(field: str, value: Any) -> str:
    """A revealed value as people read it (phones in their usual format)."""
    if isinstance(value, list):
        return ", ".join(clear_value(field, v) for v in value)
    if field in ("phones", "billing_phone"):
        return format_phone(str(value))
    return str(value)


def history_value(_: Translator, entity: str, field: str, value: Any) -> str:
    """A history value as people read it: a choice by its label in the reader's language
    (a customer's or complaint's status, a complaint's type), never its stored name."""
    if value not in (None, "", []) and not isinstance(value, bool | list):
        for key in (
            f"choice.{field}.{value}",
            f"card.{field}.{value}",  # card.status.<customer status>
            f"{entity}.{field}.{value}",  # complaint.status.<status>
            f"review.{entity}.{field}.{value}",  # review.complaint.type.<type>
        ):
            if has_message(key):
                return _(key)
    if isinstance(value, list):
        return ", ".join(history_value(_, entity, field, v) for v in value)
    return shown_value(_, field, value)


def _mask_text(value: Any) -> str | None:
    if value in (None, "", []):
        return None
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _change_line(_: Translator, entity: str, change: FieldChange) -> fit.Line:
    name = label(_, change.field)
    if change.sensitive:  # masked before → after; masks that look alike say what happened
        if change.old is not None and change.new is not None and change.old == change.new:
            return f"  • {name}: {_(f'card.history.sensitive.{change.how}')}"
        old = _mask_text(change.old)
        new = _mask_text(change.new)
        if old is None:
            return (f"  • {name}: ", Slot(new or _("common.empty")))
        return (f"  • {name}: ", Slot(old), " → ", Slot(new or _("common.empty")))
    if change.old in (None, "", []):
        return (f"  • {name}: ", Slot(history_value(_, entity, change.field, change.new)))
    old = history_value(_, entity, change.field, change.old)
    new = history_value(_, entity, change.field, change.new)
    return (f"  • {name}: ", Slot(old), " → ", Slot(new))


def _named(_: Translator, prefix: str, value: str) -> str:
    key = f"{prefix}.{value}"
    return _(key) if has_message(key) else value


def _entry_lines(_: Translator, entry: HistoryEntry, zone: ZoneInfo) -> list[fit.Line]:
    """One change, one entry: what, who proposed it and when, who decided it and when."""
    when = entry.at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    what = (
        f"{_named(_, 'card.history.entity', entry.entity)} · "
        f"{_named(_, 'card.history.action', entry.action)}"
    )
    who = entry.by or _("card.history.someone")
    lines: list[fit.Line] = [_("card.history.entry", when=when, who=who, what=what)]
    review_key = f"card.history.review.{entry.review_status}"
    if entry.review_status == "pending":
        lines.append("  " + _(review_key))
    elif entry.decided_by and has_message(review_key):
        decision = _(review_key, name=entry.decided_by)
        if entry.decided_at is not None:
            decided = entry.decided_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
            decision = _("review_ux.history.decided_at", decision=decision, when=decided)
        lines.append("  " + decision)
        if entry.review_status == "rejected" and entry.reason:
            lines.append(
                ("  ", Slot(entry.reason, lambda r: _("review_ux.history.reason", reason=r)))
            )
    if entry.values_erased:  # its record was removed since: the values went with it
        lines.append("  " + _("card.history.values_erased"))
    elif entry.action == "remove" and not entry.changes:
        lines.append("  " + _("card.history.removed_without_values"))
    lines += [_change_line(_, entry.entity, c) for c in entry.changes[:CHANGES_SHOWN]]
    if len(entry.changes) > CHANGES_SHOWN:
        lines.append("  " + _("card.history.more", count=len(entry.changes) - CHANGES_SHOWN))
    return lines


def history_text(_: Translator, page: HistoryPage, zone: ZoneInfo) -> str:
    """One page of the history; long values are cut to fit (the card shows the record)."""
    lines: list[fit.Line] = [
        _(
            "card.history.title",
            name=page.name,
            number=page.customer_no,
            page=page.page + 1,
            pages=page.pages,
        )
    ]
    if not page.entries:
        lines.append(_("card.history.empty"))
    for entry in page.entries:
        lines += ["", *_entry_lines(_, entry, zone)]
    return fit.compose(lines)


def history_markup(page: HistoryPage) -> InlineKeyboardMarkup | None:
    row = pager(page.page, page.pages, lambda p: CARD.data("ch", page.customer_id, p), counter=True)
    return InlineKeyboardMarkup([row]) if row else None


# ---------------------------------------------------------------------------------------------
# sending


async def _card(context: BotContext, customer_id: int) -> CustomerCard | None:
    async with context.reading() as session:
        return await cards.customer_card(
            session,
            keyring=context.services.keyring,
            actor=context.member,
            customer_id=customer_id,
        )


async def _send_view(context: BotContext, chat_id: int, card: CustomerCard) -> None:
    _ = context._
    today = context.today
    reassign = offers_reassign(
        context.member, team_id=card.team_id, status=card.status, pooled=card.pooled
    )
    pipl = can_answer_pipl_request(context.member)
    await context.bot.send_message(
        chat_id,
        card_text(_, card, today),
        reply_markup=card_markup(_, card, reassign=reassign, pipl=pipl),
    )


async def _send_tombstone(context: BotContext, chat_id: int, customer_id: int) -> bool:
    """A destroyed customer's tombstone (conversations/tombstone.py), to one who may see the
    customer; False when it is not one (the caller refuses as usual)."""
    from conversations.tombstone import tombstone_text
    from storage.destruction import tombstone

    async with context.reading() as session:
        stone = await tombstone(session, actor=context.member, customer_id=customer_id)
    if stone is None:
        return False
    await context.bot.send_message(chat_id, tombstone_text(context._, stone, context.zone))
    return True


async def send_card(context: BotContext, chat_id: int, customer_id: int) -> None:
    """Send the customer's card to `chat_id`, or a refusal if the member may not see it."""
    if await _send_tombstone(context, chat_id, customer_id):
        return
    card = await _card(context, customer_id)
    if card is None:
        await context.bot.send_message(chat_id, context._("refused.not_found"))
        return
    await _send_view(context, chat_id, card)


async def _delete_due(context: BotContext) -> None:
    """Deliver a revealed value's deletion when its time is up (a job of the job queue); the
    deletion is an outbox row, so after a restart the scheduler's poll does it instead."""
    job = context.job
    assert job is not None
    await context.send_queued(job.data)  # type: ignore[arg-type]


async def _send_revealed(
    context: BotContext, chat_id: int, shown: Revealed, deletion: int | None
) -> None:
    """Send the value in clear, then give its queued deletion the message's id."""
    _ = context._
    name = label(_, shown.field)
    services = context.services
    if shown.value is None:
        await context.bot.send_message(chat_id, _("card.reveal.empty", field=name))
        return
    try:
        message = await context.bot.send_message(
            chat_id,
            fit.message(
                _(
                    "card.reveal.shown",
                    field=name,
                    number=shown.customer_no,
                    value=clear_value(shown.field, shown.value),
                    seconds=REVEAL_SECONDS,
                )
            ),
            protect_content=True,
        )
    except TelegramError:
        if deletion is not None:  # nothing was shown, so there is nothing to delete
            async with unit_of_work(services.sessions) as session:
                await outbox.drop(session, ids=[deletion], now=services.clock())
        raise
    if deletion is None:
        return
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        await outbox.deletion_of(
            session,
            row_id=deletion,
            message_id=message.message_id,
            due_at=now + timedelta(seconds=REVEAL_SECONDS),
            now=now,
        )
    if context.job_queue is not None:  # on time; the scheduler's poll is the fallback
        context.job_queue.run_once(
            _delete_due,
            REVEAL_SECONDS + 1,
            data=[deletion],
            name=f"reveal-delete:{chat_id}:{message.message_id}",
        )


def _reveal_menu(_: Translator, card: CustomerCard) -> InlineKeyboardMarkup:
    fields = [button(label(_, f), CARD.data("cr", card.id, f)) for f in card.revealable]
    return InlineKeyboardMarkup(rows_of(fields, 2))


# ---------------------------------------------------------------------------------------------
# buttons


def _parse(data: str) -> tuple[str, int, str | None] | None:
    """`cu:12`, `cr:12:phones`, `ch:12:3` → (prefix, customer id, argument)."""
    press = CARD.parse(data)
    customer_id = press.id(0) if press is not None and len(press) in (1, 2) else None
    if press is None or customer_id is None:
        return None
    return press.prefix, customer_id, press.text(1)


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `cu:` (open), `cr:` (reveal) and `ch:` (history) buttons."""
    query = update.callback_query
    assert query is not None and query.data is not None
    parsed = _parse(query.data)
    if parsed is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    prefix, customer_id, argument = parsed
    handler = {"cu": _open, "cr": _reveal, "ch": _history}.get(prefix)
    if handler is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    try:
        await handler(query, context, customer_id, argument)
    except Forbidden:  # pressed in a group by someone who never opened a chat with the bot
        await query.answer(context._("card.open_private"), show_alert=True)


def _private(query: CallbackQuery) -> bool:
    message = query.message
    return isinstance(message, Message) and message.chat.type == "private"


async def _answer(query: CallbackQuery, context: BotContext) -> None:
    """Acknowledge a press; from a group, say that the answer went to the private chat."""
    await query.answer(None if _private(query) else context._("card.sent_privately"))


async def _refuse(query: CallbackQuery, context: BotContext) -> None:
    await query.answer(context._("refused.not_found"), show_alert=True)


async def _open(
    query: CallbackQuery, context: BotContext, customer_id: int, argument: str | None
) -> None:
    if await _send_tombstone(context, query.from_user.id, customer_id):
        await _answer(query, context)
        return
    card = await _card(context, customer_id)
    if card is None:
        await _refuse(query, context)
        return
    await _send_view(context, query.from_user.id, card)
    await _answer(query, context)


async def _reveal(
    query: CallbackQuery, context: BotContext, customer_id: int, field: str | None
) -> None:
    _ = context._
    chat_id = query.from_user.id
    if field is None:
        card = await _card(context, customer_id)
        if card is None:
            await _refuse(query, context)
            return
        if not card.revealable:
            await query.answer(_("card.reveal.nothing"), show_alert=True)
            return
        await context.bot.send_message(
            chat_id,
            fit.message(_("card.reveal.choose", name=card.name, seconds=REVEAL_SECONDS)),
            reply_markup=_reveal_menu(_, card),
        )
        await _answer(query, context)
        return
    services = context.services
    deletion = None
    try:
        async with unit_of_work(services.sessions) as session:
            shown = await cards.reveal(
                session,
                keyring=services.keyring,
                actor=context.member,
                customer_id=customer_id,
                field=field,
            )
            if shown is not None and shown.value is not None:  # with the audit entry
                now = services.clock()
                deletion = await outbox.queue_deletion(
                    session,
                    recipient=context.member,
                    chat_id=chat_id,
                    due_at=now + timedelta(seconds=REVEAL_SECONDS),
                    now=now,
                )
    except NotFound:
        await query.answer(_("button.expired"), show_alert=True)
        return
    if shown is None:
        await _refuse(query, context)
        return
    await _send_revealed(context, chat_id, shown, deletion)
    await _answer(query, context)


async def _history(
    query: CallbackQuery, context: BotContext, customer_id: int, argument: str | None
) -> None:
    page_number = 0 if argument is None else parse_id(argument, maximum=HISTORY_PAGE_MAX)
    if page_number is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    async with context.reading() as session:
        page = await cards.history(
            session,
            keyring=context.services.keyring,
            actor=context.member,
            customer_id=customer_id,
            page=page_number,
            page_size=HISTORY_PAGE_SIZE,
        )
    if page is None:
        await _refuse(query, context)
        return
    text = history_text(context._, page, context.zone)
    markup = history_markup(page)
    message = query.message
    if argument is not None and _private(query) and isinstance(message, Message):
        await edit_quietly(message, text, markup)  # the same page again: nothing to change
        await query.answer()
        return
    await context.bot.send_message(query.from_user.id, text, reply_markup=markup)
    await _answer(query, context)
