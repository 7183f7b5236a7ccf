"""投诉登记 (/complaint): log a complaint; the handler moves it on and records the resolution.

Buttons: `cc:<customer_id>` logs a complaint for a customer (from its card), `ccl:<customer_id>`
lists its complaints, `cx:<complaint_id>:<action>` acts on one: `v` shows it, `take` starts
handling it, `resolve` asks for the resolution and the feedback given to the customer (which
then awaits a manager's approval), `assign` offers the team to hand it to, `to<staff_id>` hands
it over, `rm` asks for its removal (conversations/complaint_removal). Every press is checked
again in `storage.complaints`; the button only names a wish.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden

from bot.context import BotContext, Services
from bot.i18n import Translator, pick_language
from conversations import complaint_removal, fit, pick_customer, runner
from conversations import steps as s
from conversations.callback_data import COMPLAINT, parse_id
from conversations.keyboards import button
from conversations.life_cycle import read_only
from conversations.lists import ListPage, show_records_page
from conversations.messages import close_buttons
from conversations.steps import Flow, FlowEnv, Kind, Option, Step, Submitted
from conversations.visit import env_zone, local_text, moment, now_default, show_moment, zone
from storage import complaints, outbox, permissions
from storage.complaints import ComplaintView
from storage.errors import NotFound, Refused
from storage.models import ComplaintType, Severity, Staff

log = logging.getLogger(__name__)
PAGE_SIZE = 6
_ACTION_BUTTONS = {
    "take": "complaint.button.take",
    "resolve": "complaint.button.resolve",
    "assign": "complaint.button.assign",
}

# a handler's change to a complaint, made in the unit of work that reads it back
Change = Callable[[AsyncSession], Awaitable[object]]


def refusal_text(_: Translator, refusal: Refused) -> str:
    """A refusal from storage in the user's words."""
    if isinstance(refusal, NotFound):
        return _("refused.not_found")
    if refusal.code == "complaint_state":
        status = str(refusal.details.get("status", ""))
        return _("complaint.state_changed", status=_(f"complaint.status.{status}"))
    if refusal.code == "archived":
        return _("complaint.customer_archived")
    if refusal.code == "archived_work":
        return _("complaint.customer_archived_work")
    if refusal.code in ("not_allowed", "complaint_handler"):
        return _(f"refused.{refusal.code}")
    return _("refused.incomplete")


# ---------------------------------------------------------------------------------------------
# how a complaint is shown


def card_text(
    _: Translator, view: ComplaintView, tz: Any, now: datetime, limit: int = fit.MESSAGE_LIMIT
) -> str:
    """The complaint as its handler and managers read it."""
    return card_fitted(_, view, tz, now, limit)[0]


def card_fitted(
    _: Translator, view: ComplaintView, tz: Any, now: datetime, limit: int = fit.MESSAGE_LIMIT
) -> tuple[str, bool]:
    """The card, and whether its texts had to be cut to fit (then "full text" shows them)."""
    complaint, customer = view.complaint, view.customer
    channel = _(f"choice.channel.{complaint.channel}") if complaint.channel else _("common.empty")
    lines: list[fit.Line] = [
        _("complaint.card.title", number=complaint.complaint_no),
        _("complaint.card.customer", customer=f"{customer.name} · {customer.customer_no}"),
        _("complaint.card.status", status=_(f"complaint.status.{complaint.status}")),
        _(
            "complaint.card.kind",
            type=_(f"choice.complaint_type.{complaint.type}"),
            severity=_(f"choice.severity.{complaint.severity}"),
            channel=channel,
        ),
        _(
            "complaint.card.received",
            when=local_text(complaint.received_at, tz),
            by=view.received_by.display_name if view.received_by else _("common.empty"),
        ),
        _(
            "complaint.card.handler",
            handler=view.handler.display_name if view.handler else _("common.empty"),
        ),
        _("complaint.card.due", due=local_text(complaint.due_at, tz)),
    ]
    if complaint.status in complaints.WORKABLE and complaint.due_at < now:
        lines.append(_("complaint.card.overdue"))
    lines.append(
        fit.Slot(complaint.description or "", lambda t: _("complaint.card.description", text=t))
    )
    if complaint.resolution:
        lines.append(
            fit.Slot(complaint.resolution, lambda t: _("complaint.card.resolution", text=t))
        )
    if complaint.feedback:
        when = local_text(complaint.feedback_at, tz) if complaint.feedback_at else ""
        lines.append(
            fit.Slot(complaint.feedback, lambda t: _("complaint.card.feedback", text=t, when=when))
        )
    text, cap = fit.fitted(lines, limit)
    return text, cap is not None


def full_text(_: Translator, view: ComplaintView) -> list[str]:
    """The complaint's texts whole, in as many messages as they take."""
    complaint = view.complaint
    lines = [_("complaint.card.title", number=complaint.complaint_no)]
    lines += ["", _("complaint.card.description", text=complaint.description or "")]
    if complaint.resolution:
        lines += ["", _("complaint.card.resolution", text=complaint.resolution)]
    if complaint.feedback:
        lines += ["", _("complaint.card.feedback", text=complaint.feedback, when="")]
    return fit.split("\n".join(lines))


def action_markup(
    _: Translator, complaint_id: int, actions: list[str] | tuple[str, ...]
) -> InlineKeyboardMarkup | None:
    buttons = [
        InlineKeyboardButton(
            _(_ACTION_BUTTONS[a]), callback_data=COMPLAINT.data("cx", complaint_id, a)
        )
        for a in actions
        if a in _ACTION_BUTTONS
    ]
    return InlineKeyboardMarkup([buttons]) if buttons else None


# ---------------------------------------------------------------------------------------------
# telling a handler


@dataclass(frozen=True)
class HandlerNotice:
    """A message for a handler, written in their language while the records were at hand."""

    telegram_id: int
    name: str
    text: str
    markup: InlineKeyboardMarkup | None


def handler_notice(services: Services, view: ComplaintView, actor: Staff) -> HandlerNotice | None:
    """The notice for the complaint's handler, or None when the handler is the actor."""
    handler = view.handler
    if handler is None or handler.id == actor.id:
        return None
    settings = services.settings
    _ = Translator(pick_language(handler.language, None, settings.DEFAULT_LANGUAGE))
    tz = zone(handler, settings.TIMEZONE)
    complaint = view.complaint
    head = fit.clip(_("complaint.assigned", by=actor.display_name), 300)
    card = card_text(_, view, tz, services.clock(), fit.MESSAGE_LIMIT - fit.units(head) - 2)
    text = f"{head}\n\n{card}"
    actions = complaints.allowed_actions(handler, complaint, view.customer)
    return HandlerNotice(
        telegram_id=handler.telegram_id,
        name=handler.display_name,
        text=text,
        markup=action_markup(_, complaint.id or 0, actions),
    )


async def send_notice(context: BotContext, notice: HandlerNotice) -> bool:
    """Send a handler their notice; False when Telegram refuses (they never opened the bot)."""
    try:
        await context.bot.send_message(notice.telegram_id, notice.text, reply_markup=notice.markup)
    except (Forbidden, BadRequest) as error:
        log.warning("could not notify handler %s: %s", notice.telegram_id, type(error).__name__)
        return False
    return True


# ---------------------------------------------------------------------------------------------
# the flow: logging a complaint


def _start_data(env: FlowEnv) -> dict[str, Any]:
    # only what is offered: the customers they may log for are all in their teams (admins:
    # any); storage asks again for the customer chosen
    staff = env.staff
    may_assign = permissions.is_admin(staff) or any(
        permissions.can_reassign(staff, team) for team in permissions.teams_of(staff)
    )
    return {"_may_assign": may_assign}


def _may_assign(data: dict[str, Any]) -> bool:
    return bool(data.get("_may_assign"))


def _due_hint(env: FlowEnv, data: dict[str, Any]) -> dict[str, object]:
    """Each severity's time to resolve as people say it: "7 days", not "168 hours"."""
    hours = env.services.settings.complaint_due_hours
    return {str(severity): env._.duration(hours[severity]) for severity in Severity}


async def handler_options(
    env: FlowEnv, session: AsyncSession, data: dict[str, Any]
) -> list[Option]:
    """The customer's owner first (the default handler), then the team's other members."""
    customer_id = parse_id(str(data.get("customer_id", "")))
    if customer_id is None:
        return []
    try:
        candidates = await complaints.handler_candidates(
            session, actor=env.staff, customer_id=customer_id
        )
    except Refused:
        return []
    options = []
    for n, staff in enumerate(candidates):
        label = env._("complaint.handler_owner", name=staff.display_name) if n == 0 else None
        options.append(Option(str(staff.id), label or staff.display_name, translate=False))
    return options


STEPS = (
    pick_customer.customer_step(),
    Step("channel", Kind.CHOICE, choices=complaints.CHANNELS, columns=3),
    Step("complaint_type", Kind.CHOICE, required=True, choices=tuple(ComplaintType), columns=3),
    Step(
        "severity",
        Kind.CHOICE,
        required=True,
        choices=tuple(Severity),
        prompt_values=_due_hint,
    ),
    Step("description", required=True, parse=s.text(complaints.MAX_DESCRIPTION)),
    Step(
        "handler", Kind.CHOICE, required=True, options=handler_options, when=_may_assign, columns=1
    ),
)


async def submit(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    """Register the complaint, say its number and due time, and tell its handler."""
    now = env.services.clock()
    values = {
        "channel": data.get("channel"),
        "complaint_type": data.get("complaint_type"),
        "severity": data.get("severity"),
        "description": data.get("description"),
        # answered only when the question applied (managers); otherwise the owner handles it
        "handler_id": data.get("handler"),
    }
    try:
        complaint = await complaints.log_complaint(
            session,
            keyring=env.services.keyring,
            actor=env.staff,
            customer_id=int(data["customer_id"]),
            values=values,
            now=now,
            due_hours=env.services.settings.complaint_due_hours,
        )
    except Refused as refusal:
        if isinstance(refusal, NotFound) or refusal.code == "archived":
            return Submitted(refusal_text(env._, refusal))  # final: the draft goes
        raise  # e.g. a handler no longer in the team: the draft stays, to be edited
    view = await complaints.visible_complaint(
        session, actor=env.staff, complaint_id=complaint.id or 0, purpose="complaint.created"
    )
    assert view is not None
    _ = env._
    text = _(
        "complaint.saved",
        number=complaint.complaint_no,
        severity=_(f"choice.severity.{complaint.severity}"),
        due=local_text(complaint.due_at, env_zone(env)),
        handler=view.handler.display_name if view.handler else _("common.empty"),
    )
    actions = complaints.allowed_actions(env.staff, complaint, view.customer)
    markup = action_markup(_, complaint.id or 0, actions)
    notice = handler_notice(env.services, view, env.staff)
    if notice is None:
        return Submitted(text, markup=markup)

    async def tell_handler(context: BotContext, chat_id: int) -> None:
        if not await send_notice(context, notice):
            await context.bot.send_message(
                chat_id, context._("complaint.notify_failed", name=notice.name)
            )

    return Submitted(text, markup=markup, after=tell_handler)


FLOW = runner.register(
    Flow(
        name="complaint",
        steps=STEPS,
        submit=submit,
        start_data=_start_data,
        prepare=pick_customer.prepare_customer,
    )
)


# ---------------------------------------------------------------------------------------------
# the flow: entering the resolution


async def prepare_resolution(
    env: FlowEnv, session: AsyncSession, initial: dict[str, Any]
) -> dict[str, Any] | None:
    """Only someone who may resolve this complaint now gets the questions (refusals audited)."""
    complaint_id = parse_id(str(initial.get("complaint_id", "")))
    if complaint_id is None:
        return None
    try:
        found = await complaints.complaint_for_action(
            session, actor=env.staff, complaint_id=complaint_id, action="resolve"
        )
    except Refused:
        return None
    return {"complaint_id": complaint_id, "_number": found.complaint.complaint_no}


def _complaint_number(env: FlowEnv, data: dict[str, Any]) -> dict[str, object]:
    return {"number": data.get("_number", "")}


RESOLUTION_STEPS = (
    Step(
        "resolution",
        required=True,
        parse=s.text(complaints.MAX_RESOLUTION),
        prompt_values=_complaint_number,
    ),
    Step("feedback", required=True, parse=s.text(complaints.MAX_FEEDBACK)),
    Step(
        "feedback_at",
        parse=moment,
        example="example.feedback_at",
        display=show_moment,
        default=now_default,
    ),
)


async def submit_resolution(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    """Record the resolution; the complaint now waits for a manager's approval."""
    now = env.services.clock()
    given = data.get("feedback_at")
    try:
        result = await complaints.resolve(
            session,
            keyring=env.services.keyring,
            actor=env.staff,
            complaint_id=int(data["complaint_id"]),
            resolution=data.get("resolution") or "",
            feedback=data.get("feedback") or "",
            feedback_at=datetime.fromisoformat(given) if given else now,
            now=now,
        )
    except Refused as refusal:  # someone else resolved it meanwhile, or rights changed
        return Submitted(refusal_text(env._, refusal))
    if result.review.id is not None:  # the managers' notice, with the resolution
        await outbox.queue_review_cards(
            session, review_id=result.review.id, now=env.services.clock()
        )
    return Submitted(env._("complaint.resolved", number=result.complaint.complaint_no))


RESOLUTION_FLOW = runner.register(
    Flow(
        name="complaint_resolve",
        steps=RESOLUTION_STEPS,
        submit=submit_resolution,
        prepare=prepare_resolution,
    )
)


# ---------------------------------------------------------------------------------------------
# handlers


async def start_command(update: Update, context: BotContext) -> None:
    """Start logging a complaint; the first question is which customer."""
    await runner.start(update, context, FLOW)


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `cc:` (log for a customer), `ccl:` (list) and `cx:` (complaint actions)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    press = COMPLAINT.parse(query.data)
    record_id = press.id(0) if press is not None else None
    if press is None or record_id is None or len(press) > 2:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    prefix, arg = press.prefix, press.text(1) or ""
    page = press.id(1, tag="p")
    if prefix == "cc" and not arg and await read_only(context, record_id):
        await query.answer(context._("complaint.customer_archived"), show_alert=True)
    elif prefix == "cc" and not arg:
        await query.answer()
        await runner.start(update, context, FLOW, initial={"customer_id": record_id})
    elif prefix == "ccl" and (not arg or page is not None):
        await _list(update, context, record_id, page or 0, edit=bool(arg))
    elif prefix == "cx" and arg == "v":
        await _show(update, context, record_id)
    elif prefix == "cx" and arg == "t":
        await _show(update, context, record_id, whole=True)
    elif prefix == "cx" and arg == "take":
        await _take(update, context, record_id)
    elif prefix == "cx" and arg == "resolve":
        await _resolve(update, context, record_id)
    elif prefix == "cx" and arg == "assign":
        await _offer_handlers(update, context, record_id)
    elif prefix == "cx" and arg == complaint_removal.ACTION:
        await complaint_removal.ask_reason(update, context, record_id)
    elif prefix == "cx" and (handler_id := press.id(1, tag="to")) is not None:
        await _assign(update, context, record_id, handler_id)
    else:
        await query.answer(context._("button.expired"), show_alert=True)


async def _send_card(
    update: Update, context: BotContext, view: ComplaintView, notice: str | None = None
) -> None:
    """Send the complaint's card with the buttons this member may use now."""
    _ = context._
    tz = context.zone
    head = fit.clip(notice, 300) if notice else ""
    room = fit.MESSAGE_LIMIT - (fit.units(head) + 2 if head else 0)
    text, cut = card_fitted(_, view, tz, context.services.clock(), room)
    if head:
        text = f"{head}\n\n{text}"
    complaint_id = view.complaint.id or 0
    actions = complaints.allowed_actions(context.member, view.complaint, view.customer)
    markup = action_markup(_, complaint_id, actions)
    if cut:  # the texts were cut to fit: one button shows them whole
        whole = InlineKeyboardButton(
            _("complaint.button.full"), callback_data=COMPLAINT.data("cx", complaint_id, "t")
        )
        markup = InlineKeyboardMarkup([*(markup.inline_keyboard if markup else ()), [whole]])
    removal = await complaint_removal.offer(context, view.customer, complaint_id)
    if removal:  # a manager of the team or an admin may ask for its removal
        markup = InlineKeyboardMarkup([*(markup.inline_keyboard if markup else ()), *removal])
    await context.bot.send_message(context.chat_id, text, reply_markup=markup)


async def send_card(update: Update, context: BotContext, view: ComplaintView) -> None:
    """The complaint's card with the presser's buttons (a reminder's take sends it too)."""
    await _send_card(update, context, view, notice=context._("complaint.taken"))


async def _show(
    update: Update, context: BotContext, complaint_id: int, *, whole: bool = False
) -> None:
    """Show a complaint to someone who may see it (`whole`: its texts uncut)."""
    query = update.callback_query
    assert query is not None
    async with context.unit_of_work() as session:
        view = await complaints.visible_complaint(
            session, actor=context.member, complaint_id=complaint_id, purpose="complaint.view"
        )
    if view is None:
        await query.answer(context._("refused.not_found"), show_alert=True)
        return
    await query.answer()
    if whole:
        for piece in full_text(context._, view):
            await context.bot.send_message(context.chat_id, piece)
        return
    await _send_card(update, context, view)


async def _changed(
    update: Update, context: BotContext, complaint_id: int, change: Change
) -> ComplaintView | None:
    """Make a handler's change to a complaint and read it back for the card; a refusal (audited
    in this transaction, which therefore commits) is answered, and None returned."""
    query = update.callback_query
    assert query is not None
    refusal: Refused | None = None
    view: ComplaintView | None = None
    async with context.unit_of_work() as session:
        try:
            await change(session)
            view = await complaints.visible_complaint(
                session, actor=context.member, complaint_id=complaint_id, purpose="complaint.view"
            )
        except Refused as error:
            refusal = error
    if refusal is not None or view is None:
        await query.answer(refusal_text(context._, refusal or NotFound()), show_alert=True)
        return None
    await query.answer()
    await close_buttons(query.message)
    return view


async def _take(update: Update, context: BotContext, complaint_id: int) -> None:
    """Start handling: open → in progress."""
    view = await _changed(
        update,
        context,
        complaint_id,
        lambda session: complaints.start_progress(
            session,
            keyring=context.services.keyring,
            actor=context.member,
            complaint_id=complaint_id,
            now=context.services.clock(),
        ),
    )
    if view is not None:
        await _send_card(update, context, view, notice=context._("complaint.taken"))


async def _resolve(update: Update, context: BotContext, complaint_id: int) -> None:
    """Check the press now, then ask for the resolution (the flow checks again at the end)."""
    query = update.callback_query
    assert query is not None
    refusal: Refused | None = None
    async with context.unit_of_work() as session:
        try:
            await complaints.complaint_for_action(
                session, actor=context.member, complaint_id=complaint_id, action="resolve"
            )
        except Refused as error:
            refusal = error
    if refusal is not None:
        await query.answer(refusal_text(context._, refusal), show_alert=True)
        return
    await query.answer()
    await runner.start(update, context, RESOLUTION_FLOW, initial={"complaint_id": complaint_id})


async def _offer_handlers(update: Update, context: BotContext, complaint_id: int) -> None:
    """A manager picks who handles the complaint from the team, as buttons."""
    query = update.callback_query
    assert query is not None
    refusal: Refused | None = None
    candidates: list[Staff] = []
    current: int | None = None
    async with context.unit_of_work() as session:
        try:
            found = await complaints.complaint_for_action(
                session, actor=context.member, complaint_id=complaint_id, action="assign"
            )
            current = found.complaint.handler_id
            candidates = await complaints.handler_candidates(
                session, actor=context.member, customer_id=found.customer.id or 0
            )
        except Refused as error:
            refusal = error
    if refusal is not None:
        await query.answer(refusal_text(context._, refusal), show_alert=True)
        return
    await query.answer()
    _ = context._
    rows = [
        [
            InlineKeyboardButton(
                fit.label(("✓ " if staff.id == current else "") + staff.display_name),
                callback_data=COMPLAINT.data("cx", complaint_id, f"to{staff.id}"),
            )
        ]
        for staff in candidates
    ]
    await context.bot.send_message(
        context.chat_id, _("complaint.choose_handler"), reply_markup=InlineKeyboardMarkup(rows)
    )


async def _assign(update: Update, context: BotContext, complaint_id: int, handler_id: int) -> None:
    """Hand the complaint to another member of the team and tell them."""
    view = await _changed(
        update,
        context,
        complaint_id,
        lambda session: complaints.reassign(
            session,
            keyring=context.services.keyring,
            actor=context.member,
            complaint_id=complaint_id,
            handler_id=handler_id,
            now=context.services.clock(),
        ),
    )
    if view is None:
        return
    name = view.handler.display_name if view.handler else ""
    await _send_card(update, context, view, notice=context._("complaint.assigned_to", name=name))
    notice = handler_notice(context.services, view, context.member)
    if notice is not None and not await send_notice(context, notice):
        await context.bot.send_message(
            context.chat_id, context._("complaint.notify_failed", name=notice.name)
        )


async def _list(
    update: Update, context: BotContext, customer_id: int, page: int, *, edit: bool
) -> None:
    """One page of a customer's complaints, a button for each."""
    query = update.callback_query
    assert query is not None
    await show_records_page(
        query,
        context,
        complaints.complaints_of,
        _page,
        customer_id=customer_id,
        page=page,
        page_size=PAGE_SIZE,
        edit=edit,
        writes=True,
    )


def _page(context: BotContext, found: complaints.ComplaintPage) -> ListPage:
    """The complaints of one page, each with its status and due time."""
    _, tz, now = context._, context.zone, context.services.clock()
    customer, customer_id = found.customer, found.customer.id
    lines = [_("complaint.list.title", customer=customer.name, number=customer.customer_no)]
    if not found.complaints:
        lines.append(_("complaint.list.empty"))
    for complaint in found.complaints:
        overdue = complaint.status in complaints.WORKABLE and complaint.due_at < now
        lines.append(
            _(
                "complaint.list.entry",
                number=complaint.complaint_no,
                status=_(f"complaint.status.{complaint.status}"),
                severity=_(f"choice.severity.{complaint.severity}"),
                due=local_text(complaint.due_at, tz),
            )
            + (" " + _("complaint.card.overdue") if overdue else "")
        )
    return ListPage(
        fit.compose(lines),
        found.page,
        -(-found.total // found.page_size),
        lambda p: COMPLAINT.data("ccl", customer_id, f"p{p}"),
        [button(c.complaint_no, COMPLAINT.data("cx", c.id, "v")) for c in found.complaints],
        width=2,
        last_row=[button(_("complaint.button.log"), COMPLAINT.data("cc", customer_id))],
    )
