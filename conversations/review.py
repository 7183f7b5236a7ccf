"""审核: notices to managers, Approve / Reject in chat, the reason for a rejection, and /review.

Buttons (`rv:<action>:<id>`) are claims: `storage.reviews` re-checks who pressed and the
review's state for every press, and takes each decision exactly once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import (
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import BadRequest, TelegramError

from bot.context import BotContext
from bot.i18n import Translator, has_message, pick_language
from conversations import fit, runner
from conversations import steps as s
from conversations import teams as teams_led
from conversations.callback_data import EDIT, REVIEW
from conversations.keyboards import pager, with_pager
from conversations.messages import is_harmless_edit_error
from conversations.review_card import (
    card_markup,
    card_text,
    copy_card,
    review_data,
    subject,
    when_text,
)
from conversations.steps import Flow, FlowEnv, Kind, Option, Step, Submitted
from storage import drafts, outbox, permissions
from storage import reviews as review_store
from storage import staff as staff_store
from storage.db import unit_of_work
from storage.errors import Refused
from storage.models import ReviewKind, ReviewStatus
from storage.reviews import AlreadyDecided, Decision, QueuePage, ReviewView

log = logging.getLogger(__name__)


def _zone(timezone: str | None, context: BotContext) -> str:
    return timezone or context.services.settings.TIMEZONE


def _translator(context: BotContext, language: str | None) -> Translator:
    return Translator(pick_language(language, None, context.services.settings.DEFAULT_LANGUAGE))


async def _edit(
    context: BotContext,
    chat_id: int,
    message_id: int,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Edit a card in place; a card already showing this, deleted or too old is left alone.

    Cards are edited after the decision was committed: a chat that cannot be edited (the bot
    was blocked or removed, Telegram is unreachable) must not make the decision look failed.
    """
    try:
        await context.bot.edit_message_text(
            text, chat_id=chat_id, message_id=message_id, reply_markup=markup
        )
    except BadRequest as error:
        if not is_harmless_edit_error(error):
            log.warning("could not edit card in chat %s: %s", chat_id, error)
    except TelegramError as error:
        log.warning("could not edit card in chat %s: %s", chat_id, type(error).__name__)


# ---------------------------------------------------------------------------------------------
# notices


async def _send(
    context: BotContext, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    """Send, or log why not (blocked the bot, left the group); a notice must not fail a flow."""
    try:
        return await context.bot.send_message(chat_id, fit.message(text), reply_markup=markup)
    except TelegramError as error:
        log.warning("could not send to chat %s: %s", chat_id, type(error).__name__)
        return None


async def announce(context: BotContext, review_id: int) -> None:
    """Send the notice of a review that no flow's transaction queued (storage.outbox) now."""
    async with context.unit_of_work() as session:
        await outbox.queue_review_cards(session, review_id=review_id, now=context.services.clock())
        queued = outbox.queued_in(session)
    await context.send_queued(queued)


def _outcome_text(_: Translator, view: ReviewView, approved: bool) -> str:
    key = f"review.told.{view.kind}.{'approved' if approved else 'rejected'}"
    if not has_message(key):
        key = f"review.told.other.{'approved' if approved else 'rejected'}"
    return _(key, subject=subject(_, view), name=view.decider_name or "", reason=view.reason or "")


def _outcome_markup(_: Translator, view: ReviewView, approved: bool) -> InlineKeyboardMarkup | None:
    """After a rejection: correct the record (the edit flow), and send a new customer back."""
    if approved or view.customer_id is None:
        return None
    if view.kind == ReviewKind.customer_new:
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        _("review.button.correct"), callback_data=EDIT.data("ce", view.customer_id)
                    ),
                    InlineKeyboardButton(
                        _("review.button.resubmit"),
                        callback_data=review_data("rs", view.customer_id),
                    ),
                ]
            ]
        )
    if view.kind == ReviewKind.customer_change:
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        _("review.button.edit_again"),
                        callback_data=EDIT.data("ce", view.customer_id),
                    )
                ]
            ]
        )
    return None


async def show_decision(
    context: BotContext,
    review_id: int,
    pressed: tuple[int, int] | None = None,
    *,
    every_copy: bool = True,
) -> ReviewView | None:
    """Edit the cards of a review to show its state: the pressed card (a short notice, a group
    card or a full card), or with `every_copy` every card sent, each in its reader's language.
    After a decision the others' cards are the outbox's (`queue_review_edits`)."""
    services = context.services
    async with unit_of_work(services.sessions) as session:
        keyring = services.keyring
        view = await review_store.notice_view(session, keyring=keyring, review_id=review_id)
        copies = await review_store.notice_copies(session, review_id=review_id)
        full = await review_store.notice_view(
            session, keyring=keyring, review_id=review_id, full=True
        )
    if view is None or full is None:
        return None
    sent = {(copy.chat_id, copy.message_id): copy for copy in copies}
    for key, copy in sent.items():
        if every_copy or key == pressed:
            _ = _translator(context, copy.language)
            text, markup = copy_card(
                _,
                full if copy.full else view,
                _zone(copy.timezone, context),
                private=copy.private,
                full=copy.full,
            )
            await _edit(context, copy.chat_id, copy.message_id, text, markup)
    if pressed is not None and pressed not in sent:
        member = context.member
        markup = card_markup(context._, full, for_deciders=False, full=True)
        text = card_text(context._, full, _zone(member.timezone, context))
        await _edit(context, pressed[0], pressed[1], text, markup)
    return view


async def after_decision(
    context: BotContext, decision: Decision, card: tuple[int, int] | None = None
) -> None:
    """Show the decision on the pressed card, and tell the submitter (and handler); the
    decision queued the edits of everyone else's cards with it (outbox `review_edit`)."""
    view = await show_decision(context, decision.review_id, card, every_copy=False)
    if view is None:
        return
    for person in decision.tell:
        _ = _translator(context, person.language)
        await _send(
            context,
            person.telegram_id,
            _outcome_text(_, view, decision.approved),
            _outcome_markup(_, view, decision.approved),
        )


# ---------------------------------------------------------------------------------------------
# refusals


def refusal_text(_: Translator, refusal: Refused, timezone: str) -> str:
    """A refusal in the user's words; for a decided review, who decided and when."""
    if isinstance(refusal, AlreadyDecided):
        key = (
            "review.already_approved"
            if refusal.status == ReviewStatus.approved
            else "review.already_rejected"
            if refusal.status == ReviewStatus.rejected
            else "review.already_closed"
        )
        return _(key, name=refusal.decider_name, when=when_text(refusal.decided_at, timezone))
    for key in (f"review.refused.{refusal.code}", f"refused.{refusal.code}"):
        if has_message(key):
            return _(key, limit=review_store.REASON_MAX)
    return _("review.refused.other")


async def _audit_refusal(
    context: BotContext, refusal: Refused, review_id: int | None, purpose: str
) -> None:
    """A refused press is audited in its own transaction (the refused one rolled back)."""
    if refusal.code not in review_store.AUDITED_REFUSALS:
        return
    async with context.unit_of_work() as session:
        await review_store.record_refusal(
            session, actor=context.member, code=refusal.code, purpose=purpose, entity_id=review_id
        )


async def _refuse(
    query: CallbackQuery, context: BotContext, refusal: Refused, review_id: int, purpose: str
) -> None:
    """Tell the presser why not; a card that is out of date is brought up to date."""
    await _audit_refusal(context, refusal, review_id, purpose)
    member = context.member
    await query.answer(
        fit.answer(refusal_text(context._, refusal, _zone(member.timezone, context))),
        show_alert=True,
    )
    if isinstance(refusal, AlreadyDecided):
        await show_decision(context, review_id, _card_of(query), every_copy=False)


# ---------------------------------------------------------------------------------------------
# buttons


def _card_of(query: CallbackQuery) -> tuple[int, int] | None:
    message = query.message
    return (message.chat_id, message.message_id) if isinstance(message, Message) else None


async def _approve(update: Update, context: BotContext, query: CallbackQuery, arg: int) -> None:
    """Approve the review, once; the others who press learn who decided."""
    try:
        async with context.unit_of_work() as session:
            decision = await review_store.decide(
                session,
                keyring=context.services.keyring,
                actor=context.member,
                review_id=arg,
                approve=True,
            )
            await outbox.queue_review_edits(
                session, review_id=arg, now=context.services.clock(), pressed=_card_of(query)
            )
            queued = outbox.queued_in(session)  # e.g. a destruction's take-back of old cards
    except Refused as refusal:
        await _refuse(query, context, refusal, arg, "approve")
        return
    try:
        await query.answer(context._("review.approved_toast"))
    except BadRequest as error:  # the press waited too long for an answer: the decision stands
        log.warning("could not answer an approval: %s", error)
    await after_decision(context, decision, _card_of(query))
    await context.send_queued(queued)


def _private_update(update: Update, user_id: int) -> Update:
    """The same press seen from the presser's private chat: guided flows are one-to-one."""
    chat = Chat(id=user_id, type=Chat.PRIVATE)
    return Update(update.update_id, message=Message(0, datetime.now(UTC), chat))


async def _reject(update: Update, context: BotContext, query: CallbackQuery, arg: int) -> None:
    """Ask for the reason (required) in the presser's private chat; the rejection follows it."""
    member = context.member
    services = context.services
    try:
        async with unit_of_work(services.sessions) as session:
            await review_store.check_decidable(session, actor=member, review_id=arg)
            current = await drafts.load(
                session, services.keyring, member.id or 0, not_before=services.draft_cutoff()
            )
    except Refused as refusal:
        await _refuse(query, context, refusal, arg, "reject")
        return
    if (
        current is not None
        and current.flow == REJECT_FLOW.name
        and current.data.get("review_id") == str(arg)
    ):  # a second tap while the question is open
        await query.answer(context._("review.reason_pending"), show_alert=True)
        return
    in_group = update.effective_chat is not None and update.effective_chat.type != Chat.PRIVATE
    await query.answer(context._("review.reason_asked_privately") if in_group else None)
    card = _card_of(query)
    initial = {"review_id": str(arg), "card": f"{card[0]}:{card[1]}" if card else ""}
    where = _private_update(update, member.telegram_id) if in_group else update
    # a manager halfway through /new keeps that draft: it asks again once the reason is given
    await runner.start(where, context, REJECT_FLOW, initial=initial, nest=True)


async def _open(update: Update, context: BotContext, query: CallbackQuery, arg: int) -> None:
    """Send the full card (every field, sensitive ones masked) to the presser privately."""
    member = context.member
    async with context.unit_of_work() as session:
        view = await review_store.view(
            session, keyring=context.services.keyring, actor=member, review_id=arg
        )
    if view is None:
        await query.answer(context._("review.refused.not_found"), show_alert=True)
        return
    in_group = update.effective_chat is not None and update.effective_chat.type != Chat.PRIVATE
    await query.answer(context._("review.sent_privately") if in_group else None)
    _ = context._
    text = card_text(_, view, _zone(member.timezone, context))
    markup = card_markup(_, view, for_deciders=view.viewer_may_decide, full=True)
    sent = await _send(context, member.telegram_id, text, markup)
    if sent is not None and view.pending:  # a decision edits it too, whoever takes it
        async with context.unit_of_work() as session:
            await review_store.record_notice(
                session,
                review_id=view.id,
                chat_id=sent.chat_id,
                message_id=sent.message_id,
                full=True,
            )


async def _resubmit(update: Update, context: BotContext, query: CallbackQuery, arg: int) -> None:
    """Send a rejected (and corrected) new customer back for review."""
    member = context.member
    services = context.services
    try:
        async with unit_of_work(services.sessions) as session:
            review = await review_store.resubmit(
                session, keyring=services.keyring, actor=member, customer_id=arg
            )
            view = (
                await review_store.notice_view(
                    session, keyring=services.keyring, review_id=review.id
                )
                if review is not None and review.id is not None
                else None
            )
            if view is not None:  # the confirmation and the notice survive a crash from here
                now = services.clock()
                await outbox.queue_confirmation(
                    session,
                    keyring=services.keyring,
                    recipient=member,
                    text=context._("review.resubmitted", subject=subject(context._, view)),
                    markup=None,
                    now=now,
                )
                await outbox.queue_review_cards(session, review_id=view.id, now=now)
            queued = outbox.queued_in(session)
    except Refused as refusal:
        await query.answer(
            fit.answer(refusal_text(context._, refusal, services.settings.TIMEZONE)),
            show_alert=True,
        )
        return
    if view is None:  # not a customer the presser may see (audited)
        await query.answer(context._("refused.not_found"), show_alert=True)
        return
    await query.answer()
    await context.send_queued(queued)
    message = query.message
    if isinstance(message, Message) and message.text:  # its buttons are spent
        mark = f"→ {context._('review.resubmitted_mark')}"
        done = fit.compose([fit.Slot(message.text), "", mark])
        await _edit(context, message.chat_id, message.message_id, done)


async def _page(update: Update, context: BotContext, query: CallbackQuery, arg: int) -> None:
    """Turn a page of the /review queue, in place."""
    member = context.member
    try:
        async with context.reading() as session:
            page = await review_store.pending_queue(session, actor=member, page=arg)
    except Refused as refusal:
        await query.answer(
            fit.answer(refusal_text(context._, refusal, _zone(member.timezone, context))),
            show_alert=True,
        )
        return
    await query.answer()
    text, markup = queue_message(context._, page, _zone(member.timezone, context))
    if isinstance(query.message, Message):
        await _edit(context, query.message.chat_id, query.message.message_id, text, markup)


_BUTTONS = {"a": _approve, "r": _reject, "o": _open, "rs": _resubmit, "q": _page}


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `rv:` buttons: a (approve), r (reject), o (open), rs (resubmit), q (queue page)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    press = REVIEW.parse(query.data)
    handler = _BUTTONS.get(press.fields[0]) if press is not None and len(press) == 2 else None
    review_id = press.id(1) if press is not None and handler is not None else None
    if handler is None or review_id is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    await handler(update, context, query, review_id)


# ---------------------------------------------------------------------------------------------
# the reason for a rejection: a one-question flow


async def _prepare_rejection(
    env: FlowEnv, session: AsyncSession, initial: dict[str, Any]
) -> dict[str, Any] | None:
    """The review must exist and still be the user's to decide."""
    try:
        review_id = int(initial.get("review_id", ""))
        view = await review_store.check_decidable(session, actor=env.staff, review_id=review_id)
    except (ValueError, Refused):
        return None
    return {
        "review_id": str(review_id),
        "card": str(initial.get("card") or ""),
        "_subject": f"{env._(f'review.kind.{view.kind}')} {subject(env._, view)}",
        "_kind": view.kind,
    }


async def _quick_reasons(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> list[Option]:
    """The usual reasons for this kind of review, one tap each; the words are the decider's
    (stored as the reason), and a typed reason is as good. The runner re-checks a press
    against these options, kept sealed in the draft."""
    codes = review_store.QUICK_REASONS.get(str(data.get("_kind") or ""), ())
    return [
        Option(text, text, translate=False)
        for text in (env._(f"review_ux.reason.{code}") for code in codes)
    ]


def _reason_prompt(env: FlowEnv, data: dict[str, Any]) -> dict[str, object]:
    return {"subject": data.get("_subject", "")}


def _card_ref(value: str) -> tuple[int, int] | None:
    chat, _, message = value.partition(":")
    try:
        return int(chat), int(message)
    except ValueError:
        return None


async def _submit_rejection(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    """Reject with the reason given; if someone decided meanwhile, say who."""
    review_id = int(data["review_id"])
    try:
        decision = await review_store.decide(
            session,
            keyring=env.services.keyring,
            actor=env.staff,
            review_id=review_id,
            approve=False,
            reason=data.get("reject_reason"),
        )
    except Refused as refusal:  # raised before any write: the audit entry below is kept
        if refusal.code in review_store.AUDITED_REFUSALS:
            await review_store.record_refusal(
                session, actor=env.staff, code=refusal.code, purpose="reject", entity_id=review_id
            )
        timezone = env.staff.timezone or env.services.settings.TIMEZONE
        return Submitted(refusal_text(env._, refusal, timezone))
    card = _card_ref(str(data.get("card") or ""))
    await outbox.queue_review_edits(
        session, review_id=review_id, now=env.services.clock(), pressed=card
    )

    async def after(context: Any, chat_id: int) -> None:
        await after_decision(context, decision, card)

    return Submitted(env._("review.rejected_done"), after=after)


REJECT_FLOW = runner.register(
    Flow(
        name="review_reject",
        steps=(
            Step(
                "reject_reason",
                Kind.TEXT,
                required=True,
                parse=s.text(review_store.REASON_MAX),
                prompt_values=_reason_prompt,
                editable=False,
                options=_quick_reasons,
                columns=1,
            ),
        ),
        submit=_submit_rejection,
        confirm=False,
        prepare=_prepare_rejection,
    )
)


# ---------------------------------------------------------------------------------------------
# /review and /setgroup


def queue_message(
    _: Translator, page: QueuePage, timezone: str
) -> tuple[str, InlineKeyboardMarkup | None]:
    """One page of the queue: a line per review, a button to open each, and the pager."""
    if page.total == 0:
        return _("review.queue_empty"), None
    lines: list[fit.Line] = [
        _("review.queue_title", total=page.total, page=page.page + 1, pages=page.pages)
    ]
    rows = []
    first = page.page * review_store.QUEUE_PAGE_SIZE
    for n, item in enumerate(page.items, start=first + 1):
        what = " · ".join(p for p in (item.subject_no, item.subject_name) if p)

        def line(subject: str, item: Any = item, n: int = n) -> str:
            text = _(
                "review.queue_line",
                n=n,
                kind=_(f"review.kind.{item.kind}"),
                subject=subject,
                name=item.submitter_name,
                when=when_text(item.submitted_at, timezone),
            )
            if page.several_teams and item.team_name:
                text = f"{text} {_('teams.queue_team', team=fit.clip(item.team_name, 30))}"
            return f"{text} {_('review.queue_own')}" if item.own else text

        lines.append(fit.Slot(what, line))
        subject_label = what or _(f"review.kind.{item.kind}")
        rows.append(
            [
                InlineKeyboardButton(
                    fit.label(_("review.queue_open", n=n, subject=subject_label)),
                    callback_data=review_data("o", item.review_id),
                )
            ]
        )
    rows = with_pager(rows, pager(page.page, page.pages, lambda p: review_data("q", p)))
    return fit.compose(lines), InlineKeyboardMarkup(rows)


async def queue_command(update: Update, context: BotContext) -> None:
    """/review: everything pending for the manager's team (admins: all), oldest first."""
    assert update.effective_chat is not None
    member = context.member
    chat_id = update.effective_chat.id
    if not permissions.is_decider(member):
        await context.bot.send_message(chat_id, context._("review.queue_not_allowed"))
        return
    try:
        async with context.unit_of_work() as session:
            page = await review_store.pending_queue(session, actor=member, page=0)
    except Refused as refusal:
        await context.bot.send_message(
            chat_id, refusal_text(context._, refusal, _zone(member.timezone, context))
        )
        return
    text, markup = queue_message(context._, page, _zone(member.timezone, context))
    await context.bot.send_message(chat_id, text, reply_markup=markup)


async def setgroup_command(update: Update, context: BotContext) -> None:
    """/setgroup in a group: its team's review cards go there (`/setgroup off` stops it)."""
    assert update.effective_chat is not None
    chat_id = update.effective_chat.id
    member = context.member
    enabled = not (context.args and context.args[0].lower() in ("off", "stop", "0"))
    try:
        async with context.unit_of_work() as session:
            team = await staff_store.set_manager_chat(
                session, actor=member, chat_id=chat_id, enabled=enabled
            )
    except Refused as refusal:
        if refusal.code == "choose_team":  # a manager of several teams: buttons, one a team
            await teams_led.send_group_choice(context, chat_id)
            return
        if refusal.code in review_store.AUDITED_REFUSALS:
            async with context.unit_of_work() as session:
                await review_store.record_refusal(
                    session,
                    actor=member,
                    code=refusal.code,
                    purpose="setgroup",
                    entity="team",
                    entity_id=member.team_id,
                )
        key = f"review.setgroup.{refusal.code}"
        if not has_message(key):
            key = "review.setgroup.not_allowed"
        await context.bot.send_message(chat_id, context._(key))
        return
    key = "review.group_set" if enabled else "review.group_unset"
    await context.bot.send_message(chat_id, context._(key, team=team.name))
