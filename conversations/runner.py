"""Runs any `Flow`: asks, checks, moves Back and Skip, shows the summary card, submits.

The draft in the database is the only state: every answer is saved before the next question is
sent, so a restart loses nothing and the user's next message continues where they stopped.
Buttons carry the draft's prompt token; a press with an older token is a stale button. The
options a choice question offered are kept in the draft too, so a button names an index into a
list the server made, never a record id the client could forge.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)

from bot.context import BotContext, chat_id_of
from bot.i18n import Translator
from bot.side_calls import meanwhile
from conversations import callback_data as buttons
from conversations import fit
from conversations.callback_data import parse_id
from conversations.fit import Slot
from conversations.keyboards import pager, with_pager
from conversations.messages import close_buttons, press_taken
from conversations.steps import Flow, FlowEnv, Kind, Option, Step, place_text
from storage import audit, drafts, outbox, validation
from storage.db import unit_of_work
from storage.drafts import DraftMode, DraftState
from storage.errors import Refused
from storage.validation import Invalid

log = logging.getLogger(__name__)
PREFIX = buttons.FLOW.prefixes[0]
SUMMARY_VALUE_LIMIT = 80
MAX_ATTACHMENTS = 20
FLOWS: dict[str, Flow] = {}
_CHOICE_KINDS = (Kind.CHOICE, Kind.YES_NO)
# How long an answer to a prompt not yet marked shown waits for the mark: with several
# instances, the one that sent the prompt may still be writing it when the answer reaches
# another (a prompt whose send failed costs this wait before it is shown again)
UNSEEN_GRACE_SECONDS = 1.5
MOVED_RETRIES = 3  # updates of one member at the same moment, taken again in turn
T = TypeVar("T")
_UNSEEN_POLL_SECONDS = 0.05


def register(flow: Flow) -> Flow:
    FLOWS[flow.name] = flow
    return flow


def _env(context: BotContext) -> FlowEnv:
    staff = context.member
    return FlowEnv(
        services=context.services,
        staff=staff,
        _=context._,
        today=context.services.today(staff.timezone),
    )


def _data(token: int, action: str, arg: object = "") -> str:
    return buttons.FLOW.data(PREFIX, token, action, arg)


# ---------------------------------------------------------------------------------------------
# options of choice questions


def option_label(_: Translator, option: Option) -> str:
    return _(option.label) if option.translate else option.label


def static_options(step: Step) -> list[Option]:
    if step.kind == Kind.YES_NO:
        return [Option("yes", "common.yes"), Option("no", "common.no")]
    return [Option(v, f"choice.{step.field}.{v}") for v in step.choices]


def _offered(state: DraftState, step: Step) -> list[Option] | None:
    offered = state.data.get("_offered")
    if not offered or offered.get("field") != step.field:
        return None
    return [Option(v, label, bool(t)) for v, label, t in offered["options"]]


def _offer(state: DraftState, step: Step, options: list[Option], query: str | None = None) -> None:
    state.data["_offered"] = {
        "field": step.field,
        "options": [[o.value, o.label, o.translate] for o in options],
        "page": 0,
        "query": query,
    }


async def _prepare(env: FlowEnv, flow: Flow, state: DraftState) -> None:
    """Work out the options of the current choice question, once, and keep them in the draft."""
    step = flow.step(state.step)
    if state.mode == DraftMode.summary or step is None:
        state.data.pop("_offered", None)
        return
    if step.kind not in _CHOICE_KINDS and step.options is None:  # a text step may suggest
        state.data.pop("_offered", None)
        return
    if _offered(state, step) is not None:
        return
    if step.options is None:
        _offer(state, step, static_options(step))
        return
    async with unit_of_work(env.services.sessions) as session:
        _offer(state, step, await step.options(env, session, state.data))


# ---------------------------------------------------------------------------------------------
# rendering


def display_value(
    _: Translator, step: Step, data: dict[str, Any], limit: int | None = SUMMARY_VALUE_LIMIT
) -> str:
    """An answer as the summary shows it (cut at `limit`; None: whole, for the edit question)."""
    value = data.get(step.field)
    if value in (None, "", []):
        return _("common.empty")
    if step.kind == Kind.YES_NO:
        return _("common.yes" if value == "yes" else "common.no")
    if step.kind == Kind.CHOICE:
        label = data.get("_labels", {}).get(step.field)
        return label if label is not None else _(f"choice.{step.field}.{value}")
    if step.kind == Kind.LOCATION and isinstance(value, dict):
        return f"{value['latitude']:.5f}, {value['longitude']:.5f}"
    if step.kind == Kind.MEDIA and isinstance(value, list):
        return _("flow.attachments_count", count=len(value))
    if step.display is not None:
        value = step.display(value, _)
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    text = str(value)
    return text if limit is None else fit.clip(text, limit)


def _has_back(flow: Flow, step: Step, state: DraftState) -> bool:
    """Back leads somewhere: to the summary, or to an earlier question (none on the first)."""
    return state.mode == DraftMode.edit or flow.previous_step(step.field, state.data) is not None


def _clearable(flow: Flow, step: Step, state: DraftState) -> bool:
    """Clear is offered only where it means something: an optional field holding a value (the
    record's, in an edit flow; the answer's, when changing one from the summary)."""
    if step.required or step.kind in (Kind.MEDIA, Kind.LOCATION):
        return False
    if flow.skip_keeps:
        return flow.has_value is not None and flow.has_value(state.data, step.field)
    return state.mode == DraftMode.edit and state.data.get(step.field) not in (None, "", [])


def _keeps_answer(flow: Flow, step: Step, state: DraftState) -> bool:
    """Changing an answer from the summary: "Back to summary" keeps it, so Skip is not offered
    (one button per meaning) and never erases it; Clear does (a key person's edit too)."""
    return not flow.skip_keeps and state.mode == DraftMode.edit and step.field in state.data


def _nav_buttons(
    _: Translator, flow: Flow, step: Step, state: DraftState
) -> list[list[InlineKeyboardButton]]:
    token = state.token
    rows: list[list[InlineKeyboardButton]] = []
    if step.kind == Kind.MEDIA:
        rows.append([InlineKeyboardButton(_("button.done"), callback_data=_data(token, "m"))])
    back = "button.back_to_summary" if state.mode == DraftMode.edit else "button.back"
    row = []
    if _has_back(flow, step, state):
        row.append(InlineKeyboardButton(_(back), callback_data=_data(token, "b")))
    if not step.required and step.skip_button and not _keeps_answer(flow, step, state):
        skip = "entry.button.keep" if flow.skip_keeps else "button.skip"
        row.append(InlineKeyboardButton(_(skip), callback_data=_data(token, "s")))
    if _clearable(flow, step, state):
        row.append(InlineKeyboardButton(_("entry.button.clear"), callback_data=_data(token, "k")))
    row.append(InlineKeyboardButton(_("button.cancel"), callback_data=_data(token, "x")))
    rows.append(row)
    if state.mode == DraftMode.ask and not step.required and step.kind != Kind.MEDIA:
        rows.append([InlineKeyboardButton(_("button.skip_rest"), callback_data=_data(token, "z"))])
    return rows


def _choice_buttons(
    _: Translator, step: Step, state: DraftState, options: list[Option]
) -> list[list[InlineKeyboardButton]]:
    page = int(state.data.get("_offered", {}).get("page", 0))
    first = page * step.page_size
    shown = options[first : first + step.page_size]
    rows: list[list[InlineKeyboardButton]] = []
    row: list[InlineKeyboardButton] = []
    for index, option in enumerate(shown, start=first):
        row.append(
            InlineKeyboardButton(
                fit.label(option_label(_, option)), callback_data=_data(state.token, "c", index)
            )
        )
        if len(row) == step.columns:
            rows.append(row)
            row = []
    if row:
        rows.append(row)
    pages = -(-len(options) // step.page_size)
    return with_pager(rows, pager(page, pages, lambda p: _data(state.token, "p", p)))


def _location_keyboard(
    _: Translator, flow: Flow, step: Step, state: DraftState
) -> ReplyKeyboardMarkup:
    nav = [KeyboardButton(_("button.back"))] if _has_back(flow, step, state) else []
    if not step.required:
        nav.append(KeyboardButton(_("button.skip")))
    nav.append(KeyboardButton(_("button.cancel")))
    return ReplyKeyboardMarkup(
        [[KeyboardButton(_("button.send_location"), request_location=True)], nav],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


async def _ask(
    context: BotContext, chat_id: int, flow: Flow, state: DraftState, *, notice: str | None = None
) -> None:
    """Send the current question with its buttons."""
    env = _env(context)
    _ = env._
    step = flow.step(state.step)
    assert step is not None
    lines: list[fit.Line] = [Slot(notice), ""] if notice else []
    lines.append(_progress(_, flow, step, state))
    values = step.prompt_values(env, state.data) if step.prompt_values else {}
    lines.append(_(f"{flow.name}.ask.{step.field}", **values))
    if not step.required and step.skip_button and not _keeps_answer(flow, step, state):
        lines.append(_("flow.optional"))
    if step.search is not None:
        query = state.data.get("_offered", {}).get("query")
        lines.append(_("flow.search_results", query=query) if query else _("flow.search_hint"))
    if state.mode == DraftMode.edit and state.data.get(step.field) not in (None, "", []):
        current = display_value(_, step, state.data, limit=None)
        lines.append(Slot(current, lambda value: _("flow.current_value", value=value)))
    if step.kind == Kind.MEDIA and state.data.get(step.field):
        lines.append(_("flow.attachments_count", count=len(state.data[step.field])))
    markup: InlineKeyboardMarkup | ReplyKeyboardMarkup
    if step.contact is not None:
        lines.append(_("entry.contact_hint"))
    if step.place:
        lines.append(_("entry.location_hint"))
    if step.kind == Kind.LOCATION:
        markup = _location_keyboard(_, flow, step, state)
    else:
        keyboard = []
        if step.kind in _CHOICE_KINDS or step.options is not None:
            keyboard += _choice_buttons(_, step, state, _offered(state, step) or [])
        keyboard += _nav_buttons(_, flow, step, state)
        markup = InlineKeyboardMarkup(keyboard)
    await context.bot.send_message(chat_id, fit.compose(lines), reply_markup=markup)


def _progress(_: Translator, flow: Flow, step: Step, state: DraftState) -> str:
    """The counter line: "<title> · <section> · n of m", m counting the section's questions
    that apply (which later answers never change); a question about the flow itself, none."""
    title = _(f"{flow.name}.title")
    counted = flow.counter(step, state.data)
    if counted is None:
        return _("entry.progress_title", title=title)
    n, total = counted
    if step.section is None:
        return _("flow.progress", title=title, n=n, total=total)
    section = _(f"{flow.name}.section.{step.section}")
    return _("entry.progress_section", title=title, section=section, n=n, total=total)


async def _summary(
    context: BotContext, chat_id: int, flow: Flow, state: DraftState, *, notice: str | None = None
) -> None:
    """Send the summary card: every answer, an Edit button per field, Submit and Cancel."""
    env = _env(context)
    _ = env._
    lines: list[fit.Line] = [Slot(notice), ""] if notice else []
    lines.append(_("flow.summary_title", title=_(f"{flow.name}.title")))
    steps = [s for s in flow.applicable(state.data) if s.finishes is None]  # no "save now?"
    for step in steps:
        shown = display_value(_, step, state.data)
        if step.default is not None and state.data.get(step.field) in (None, ""):
            if flow.skip_keeps and step.field not in state.data.get("cleared", []):
                shown = _("entry.kept_value", value=step.default(env, state.data))
            else:
                shown = _("flow.default_value", value=step.default(env, state.data))
        lines.append((f"• {_(f'field.{step.field}')}: ", Slot(shown)))
    warnings = await _all_warnings(env, flow, state.data)
    if warnings:
        lines += ["", *(Slot(warning) for warning in warnings)]
    lines += ["", _("flow.summary_hint")]
    keyboard: list[list[InlineKeyboardButton]] = []
    row: list[InlineKeyboardButton] = []
    for step in steps:
        if not step.editable:
            continue
        row.append(
            InlineKeyboardButton(
                "✏️ " + _(f"field.{step.field}"),
                callback_data=_data(state.token, "e", flow.index(step.field)),
            )
        )
        if len(row) == 3:
            keyboard.append(row)
            row = []
    if row:
        keyboard.append(row)
    keyboard.append(
        [
            InlineKeyboardButton(_("button.submit"), callback_data=_data(state.token, "ok")),
            InlineKeyboardButton(_("button.cancel"), callback_data=_data(state.token, "x")),
        ]
    )
    await context.bot.send_message(
        chat_id, fit.compose(lines), reply_markup=InlineKeyboardMarkup(keyboard)
    )


async def _all_warnings(env: FlowEnv, flow: Flow, data: dict[str, Any]) -> list[str]:
    """The warnings given with the answers, again: kept from when each answer was checked, so
    showing the summary repeats no look-up (duplicate checks are counted per person and day).
    Only an answer without kept warnings (a draft from before they were kept) is checked."""
    warnings: list[str] = []
    checks = [s for s in flow.applicable(data) if s.check and data.get(s.field) not in (None, "")]
    kept = data.get("_warnings", {})
    unchecked = [s for s in checks if s.field not in kept]
    if unchecked:
        async with unit_of_work(env.services.sessions) as session:
            for step in unchecked:
                assert step.check is not None
                kept[step.field] = await step.check(env, session, data[step.field], data)
    for step in checks:
        for warning in kept.get(step.field, []):
            if warning not in warnings:
                warnings.append(warning)
    return warnings


async def _save_under_new_token(context: BotContext, state: DraftState) -> None:
    """Save the draft with a new prompt token: buttons of every earlier prompt are now stale."""
    state.token += 1
    services = context.services
    await drafts.save_alone(
        services.sessions, services.keyring, context.member.id or 0, state, now=services.clock()
    )


async def _show(
    context: BotContext, chat_id: int, flow: Flow, state: DraftState, notice: str | None = None
) -> None:
    """Save the draft under a new token, then send the question or the summary it is at."""
    await _prepare(_env(context), flow, state)
    await _save_under_new_token(context, state)
    if state.mode == DraftMode.summary:
        await _summary(context, chat_id, flow, state, notice=notice)
    else:
        await _ask(context, chat_id, flow, state, notice=notice)
    await _mark_shown(context, state)


async def _mark_shown(context: BotContext, state: DraftState) -> None:
    """Telegram accepted the prompt: from now on an answer may be taken for it."""
    await drafts.mark_shown_alone(context.services.sessions, context.member.id or 0, state.token)
    state.shown = state.token


async def _shown_again(context: BotContext, chat_id: int, flow: Flow, state: DraftState) -> bool:
    """If the current question never reached the user (a failed send), show it now instead of
    taking what they sent: it was meant for a question they saw earlier. True if it did."""
    if not state.unseen or await _marked_meanwhile(context, state):
        return False
    await _show(context, chat_id, flow, state, notice=context._("flow.shown_again"))
    return True


async def _marked_meanwhile(context: BotContext, state: DraftState) -> bool:
    """Whether the current prompt is marked shown within UNSEEN_GRACE_SECONDS (by the
    instance that sent it, finishing its step); if so `state` says so too."""
    services, staff_id = context.services, context.member.id or 0
    deadline = time.monotonic() + UNSEEN_GRACE_SECONDS
    while time.monotonic() < deadline:
        await asyncio.sleep(_UNSEEN_POLL_SECONDS)
        now, _expired = await drafts.peek_alone(
            services.sessions, services.keyring, staff_id, not_before=services.draft_cutoff()
        )
        if now is None or now.token != state.token:
            return False  # the draft moved on meanwhile: the prompt is not the current one
        if not now.unseen:
            state.shown = now.shown
            return True
    return False


async def on_edited(update: Update, context: BotContext) -> bool:
    """An edited message is no answer: say so if a flow is open; False when none is."""
    if await _load(context) is None:
        return False
    await context.bot.send_message(chat_id_of(update), context._("flow.edit_not_taken"))
    return True


async def _afresh(handle: Callable[[], Awaitable[T]]) -> T:
    """Run `handle`; while another update of the member saved the draft after `handle` read it
    (another instance, at the same moment), run it again on the draft as it is now."""
    for _attempt in range(MOVED_RETRIES):
        try:
            return await handle()
        except drafts.DraftMoved:
            log.info("the draft moved under an update; taking the update again")
    return await handle()


async def on_text(update: Update, context: BotContext) -> bool:
    """Take a typed answer for the current question; False when the user has no draft."""
    return await _afresh(lambda: _on_text(update, context))


async def on_other(update: Update, context: BotContext) -> bool:
    """Take a location, contact, photo or other non-text message; False without a draft."""
    return await _afresh(lambda: _on_other(update, context))


async def on_callback(update: Update, context: BotContext) -> None:
    """Handle a flow button; a press that lost to another update of the member at the same
    moment stops (its query is answered; the other update's prompt is the current one)."""
    try:
        await _on_callback(update, context)
    except drafts.DraftMoved:
        log.info("the draft moved under a button press; the other update stands")


async def start(
    update: Update,
    context: BotContext,
    flow: Flow,
    initial: dict[str, Any] | None = None,
    *,
    nest: bool = False,
) -> None:
    """Begin `flow`, or offer to continue a draft the user has (see `_start`)."""
    await _afresh(lambda: _start(update, context, flow, initial, nest=nest))


# ---------------------------------------------------------------------------------------------
# state changes


def _advance(flow: Flow, state: DraftState) -> None:
    """Move to the next unanswered question, or to the summary when all are answered."""
    if state.mode == DraftMode.ask:
        start = flow.index(state.step) + 1
        following = next(
            (s for s in flow.steps[start:] if s.applies(state.data) and s.field not in state.data),
            None,
        )
        if following is not None:
            state.step = following.field
            return
    missing = flow.first_missing(state.data)
    if missing is not None:
        state.step, state.mode = (
            missing.field,
            DraftMode.edit if state.mode != DraftMode.ask else DraftMode.ask,
        )
    else:
        state.step, state.mode = None, DraftMode.summary


async def _load(context: BotContext) -> tuple[Flow, DraftState] | None:
    """The member's draft and its flow; an expired one is deleted and the member told once."""
    services, staff_id = context.services, context.member.id or 0
    cutoff = services.draft_cutoff()
    state, expired = await drafts.peek_alone(
        services.sessions, services.keyring, staff_id, not_before=cutoff
    )
    if expired:
        await _forget_expired(context, cutoff)
    if state is None:
        return None
    flow = FLOWS.get(state.flow)
    if flow is None:
        log.warning("draft of unknown flow %s discarded", state.flow)
        async with unit_of_work(context.services.sessions) as session:
            await drafts.discard(session, context.member.id or 0)
        return None
    return flow, state


async def _forget_expired(context: BotContext, cutoff: datetime) -> None:
    async with unit_of_work(context.services.sessions) as session:
        name = await drafts.forget_expired(session, context.member.id or 0, not_before=cutoff)
    flow = FLOWS.get(name or "")
    if flow is None or flow.disposable:
        return
    _ = context._
    await context.bot.send_message(
        context.member.telegram_id,
        _(
            "flow.expired",
            title=_(f"{flow.name}.title"),
            days=context.services.settings.DRAFT_EXPIRY_DAYS,
        ),
    )


async def _discard(context: BotContext) -> bool:
    return await drafts.discard_alone(context.services.sessions, context.member.id or 0)


OUTER = "_outer"  # a nested flow's data: the draft it was started over, back when it ends


def _held(state: DraftState | None) -> tuple[Flow, dict[str, Any]] | None:
    """The draft a nested one was started over, and its flow, if any."""
    kept = state.data.get(OUTER) if state is not None else None
    flow = FLOWS.get(kept.get("flow", "")) if isinstance(kept, dict) else None
    return None if flow is None or not isinstance(kept, dict) else (flow, kept)


async def _end_alone(
    context: BotContext, state: DraftState | None
) -> tuple[Flow, DraftState] | None:
    """`_end` as a unit of its own (a cancel): a plain discard on SQLite's quick lane."""
    if _held(state) is None:
        await drafts.discard_alone(context.services.sessions, context.member.id or 0)
        return None
    async with unit_of_work(context.services.sessions) as session:
        return await _end(context, session, state)


async def _end(
    context: BotContext, session: Any, state: DraftState | None
) -> tuple[Flow, DraftState] | None:
    """Drop a finished (or cancelled) draft; a nested one gives back the draft it held."""
    staff_id = context.member.id or 0
    held = _held(state)
    if held is None:
        await drafts.discard(session, staff_id)
        return None
    flow, kept = held
    outer = DraftState(
        flow=flow.name,
        step=kept.get("step"),
        mode=DraftMode(kept.get("mode") or DraftMode.ask),
        token=(state.token if state is not None else 1) + 1,
        data=dict(kept.get("data") or {}),
    )
    await drafts.save(
        session, context.services.keyring, staff_id, outer, now=context.services.clock()
    )
    return flow, outer


async def _back_to(
    context: BotContext, chat_id: int, outer: tuple[Flow, DraftState] | None
) -> None:
    """After a nested flow, the draft it held asks its question again."""
    if outer is not None:
        await _show(context, chat_id, outer[0], outer[1], notice=context._("flow.resumed"))


async def _start(
    update: Update,
    context: BotContext,
    flow: Flow,
    initial: dict[str, Any] | None = None,
    *,
    nest: bool = False,
) -> None:
    """Begin `flow` (optionally with answers given, e.g. the customer of a card), or offer to
    continue or discard a draft the user already has. With `nest` (a short flow such as a
    rejection's reason) a draft of another flow is kept inside the new one and comes back,
    its question shown again, when the new one is submitted or cancelled."""
    existing = await _load(context)
    chat_id = chat_id_of(update)
    if existing is not None and existing[0].disposable:
        await _discard(context)
        existing = None
    if existing is not None and nest and existing[0].name != flow.name:
        outer = existing[1]
        kept = {"flow": outer.flow, "step": outer.step, "mode": outer.mode, "data": outer.data}
        await _begin(context, chat_id, flow, {**(initial or {}), OUTER: kept})
        return
    if existing is None:
        await _begin(context, chat_id, flow, initial)
        return
    _ = context._
    old_flow, state = existing
    state.data["_then"] = {"flow": flow.name, "initial": initial or {}}
    await _prepare(_env(context), old_flow, state)
    question_seen = not state.unseen  # the offer below leaves the question as the user saw it
    await _save_under_new_token(context, state)
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(_("button.resume"), callback_data=_data(state.token, "r")),
                InlineKeyboardButton(
                    _("entry.button.discard", new=_(f"{flow.name}.title")),
                    callback_data=_data(state.token, "d"),
                ),
            ]
        ]
    )
    text = _("entry.unfinished", old=_(f"{old_flow.name}.title"), new=_(f"{flow.name}.title"))
    await context.bot.send_message(chat_id, text, reply_markup=keyboard)
    if question_seen:
        await _mark_shown(context, state)


async def _begin(
    context: BotContext, chat_id: int, flow: Flow, initial: dict[str, Any] | None
) -> None:
    env = _env(context)
    data = flow.start_data(env)
    if flow.prepare is not None:
        async with unit_of_work(env.services.sessions) as session:
            prepared = await flow.prepare(env, session, dict(initial or {}))
        if prepared is None:
            await context.bot.send_message(chat_id, env._("refused.not_found"))
            return
        data.update(prepared)
    if initial and OUTER in initial:  # the draft it was started over (`start(nest=True)`)
        data[OUTER] = initial[OUTER]
    first = next((s for s in flow.steps if s.applies(data) and s.field not in data), None)
    # a random first token: buttons of an earlier, cancelled draft can never match this one
    state = DraftState(
        flow=flow.name,
        step=first.field if first else None,
        data=data,
        token=secrets.randbelow(1 << 30) + 2,
    )
    if first is None:
        state.mode = DraftMode.summary
    await _show(context, chat_id, flow, state)


async def resume(update: Update, context: BotContext) -> bool:
    """Show the current question again (after /start or a restart); False if no draft."""
    loaded = await _load(context)
    if loaded is None:
        return False
    flow, state = loaded
    await _show(context, chat_id_of(update), flow, state, notice=context._("flow.resumed"))
    return True


async def cancel(update: Update, context: BotContext) -> None:
    """Drop the draft, leaving nothing behind (a nested one gives back the draft it held)."""
    services, staff_id, outer = context.services, context.member.id or 0, None
    async with unit_of_work(services.sessions) as session:
        current = await drafts.load(
            session, services.keyring, staff_id, not_before=services.draft_cutoff()
        )
        if current is not None and OUTER in current.data:
            had, outer = True, await _end(context, session, current)
        else:
            had = await drafts.discard(session, staff_id)
    key = "flow.cancelled" if had else "flow.nothing_to_cancel"
    chat_id = chat_id_of(update)
    await context.bot.send_message(chat_id, context._(key), reply_markup=_no_keyboard())
    await _back_to(context, chat_id, outer)


def _no_keyboard() -> ReplyKeyboardRemove:
    return ReplyKeyboardRemove()


async def _accept(
    context: BotContext,
    chat_id: int,
    flow: Flow,
    state: DraftState,
    step: Step,
    value: Any,
    label: str | None = None,
) -> None:
    """Store a valid answer, run its checks, and go on."""
    env = _env(context)
    state.data[step.field] = value
    labels = state.data.setdefault("_labels", {})
    if label is not None:
        labels[step.field] = label
    else:
        labels.pop(step.field, None)
    state.data.pop("_offered", None)
    # answers of questions that no longer apply are dropped, so they are never saved
    for other in flow.steps:
        if not other.applies(state.data):
            state.data.pop(other.field, None)
    warnings: list[str] = []
    if step.check is not None and value not in (None, ""):
        async with unit_of_work(env.services.sessions) as session:
            warnings = await step.check(env, session, value, state.data)
    state.data.setdefault("_warnings", {})[step.field] = warnings  # the summary shows them again
    if step.finishes is not None and value == step.finishes:
        await _submit(context, chat_id, flow, state, early=True)
        return
    _advance(flow, state)
    if state.mode == DraftMode.summary and not flow.confirm:
        await _submit(context, chat_id, flow, state)
        return
    await _show(context, chat_id, flow, state, notice="\n".join(warnings) or None)


def _invalid_text(_: Translator, step: Step, error: Invalid) -> str:
    reason = _(
        f"invalid.{error.code}",
        limit=error.limit or 0,
        earliest=error.earliest or "",
        latest=error.latest or "",
    )
    example_key = step.example or f"example.{step.field}"
    return _("flow.invalid", reason=reason, example=_(example_key))


async def _on_text(update: Update, context: BotContext) -> bool:
    """Take a typed answer for the current question; False when the user has no draft."""
    message = update.effective_message
    if message is None or message.text is None:
        return False
    loaded = await _load(context)
    if loaded is None:
        return False
    flow, state = loaded
    _ = context._
    chat_id = chat_id_of(update)
    if await _shown_again(context, chat_id, flow, state):
        return True
    step = flow.step(state.step)
    if state.mode == DraftMode.summary or step is None:
        await _show(context, chat_id, flow, state, notice=_("flow.use_summary_buttons"))
        return True
    env = _env(context)
    typed = validation.printable(message.text)
    text = typed.strip()
    if step.kind == Kind.LOCATION or text in _reply_labels(_):
        await _location_text(context, chat_id, flow, state, step, text)
        return True
    if step.kind == Kind.MEDIA:
        await _show(context, chat_id, flow, state, notice=_("flow.expected_media"))
        return True
    if step.kind in _CHOICE_KINDS:
        await _choice_text(context, env, chat_id, flow, state, step, text)
        return True
    try:
        value = step.parse(typed, env) if step.parse else text
    except Invalid as error:
        await _show(context, chat_id, flow, state, notice=_invalid_text(_, step, error))
        return True
    await _accept(context, chat_id, flow, state, step, value)
    return True


async def _choice_text(
    context: BotContext,
    env: FlowEnv,
    chat_id: int,
    flow: Flow,
    state: DraftState,
    step: Step,
    text: str,
) -> None:
    """A typed answer to a choice: a button's label, or a search when the question has one."""
    _ = env._
    await _prepare(env, flow, state)
    typed = text.casefold()
    for option in _offered(state, step) or []:
        label = option_label(_, option)
        if typed in (label.casefold(), option.value.casefold()):
            await _accept(
                context,
                chat_id,
                flow,
                state,
                step,
                option.value,
                None if option.translate else label,
            )
            return
    if step.search is None:
        await _show(context, chat_id, flow, state, notice=_("flow.use_buttons"))
        return
    if len(text) > 100:
        await _show(context, chat_id, flow, state, notice=_("invalid.too_long", limit=100))
        return
    async with unit_of_work(env.services.sessions) as session:
        found = await step.search(env, session, text, state.data)
    if not found:
        await _show(context, chat_id, flow, state, notice=_("flow.search_none", query=text))
        return
    _offer(state, step, found, query=text)
    await _show(context, chat_id, flow, state)


async def _location_text(
    context: BotContext, chat_id: int, flow: Flow, state: DraftState, step: Step, text: str
) -> None:
    """On a location question the reply keyboard's Back, Skip and Cancel arrive as text."""
    _ = context._
    if text == _("button.cancel"):
        await _discard(context)
        await context.bot.send_message(chat_id, _("flow.cancelled"), reply_markup=_no_keyboard())
        return
    if text == _("button.back"):
        await context.bot.send_message(chat_id, _("entry.went_back"), reply_markup=_no_keyboard())
        await _go_back(context, chat_id, flow, state, step)
        return
    if text == _("button.skip") and not step.required:
        await context.bot.send_message(chat_id, _("flow.skipped"), reply_markup=_no_keyboard())
        await _accept(context, chat_id, flow, state, step, None)
        return
    if step.kind == Kind.LOCATION:
        await _show(context, chat_id, flow, state, notice=_("flow.expected_location"))
    else:
        await _show(context, chat_id, flow, state, notice=_("flow.required"))


def _reply_labels(_: Translator) -> tuple[str, ...]:
    """What the location question's reply keyboard sends: never an answer to another question
    (a keyboard still shown after the question moved on), always its button's meaning."""
    return (_("button.back"), _("button.skip"), _("button.cancel"))


async def _on_other(update: Update, context: BotContext) -> bool:
    """A photo, file, voice note, location or sticker: an answer if the question wants one."""
    message = update.effective_message
    loaded = await _load(context)
    if loaded is None or message is None:
        return False
    flow, state = loaded
    _ = context._
    chat_id = chat_id_of(update)
    if await _shown_again(context, chat_id, flow, state):
        return True
    step = flow.step(state.step)
    if state.mode == DraftMode.summary or step is None:
        notice = _("flow.use_summary_buttons")
    elif step.kind == Kind.LOCATION and message.location is not None:
        location = message.location
        value = {
            "latitude": location.latitude,
            "longitude": location.longitude,
            "accuracy": location.horizontal_accuracy,
        }
        await context.bot.send_message(
            chat_id, _("flow.location_received"), reply_markup=_no_keyboard()
        )
        await _accept(context, chat_id, flow, state, step, value)
        return True
    elif step.contact is not None and message.contact is not None:
        await _contact(context, chat_id, flow, state, step, message)
        return True
    elif step.place and message.location is not None:
        await _place(context, chat_id, flow, state, step, message)
        return True
    elif step.kind == Kind.MEDIA and (attachment := _attachment(message)) is not None:
        collected = list(state.data.get(step.field) or [])
        if len(collected) >= MAX_ATTACHMENTS:
            notice = _("invalid.too_many", limit=MAX_ATTACHMENTS)
        else:
            collected.append(attachment)
            state.data[step.field] = collected
            notice = _("flow.attachment_received", count=len(collected))
    elif step.kind == Kind.LOCATION:
        notice = _("flow.expected_location")
    elif step.kind == Kind.MEDIA:
        notice = _("flow.expected_media")
    elif step.kind in _CHOICE_KINDS:
        notice = _("flow.use_buttons")
    elif message.contact is not None:
        notice = _("entry.contact_not_here")
    elif message.location is not None:
        notice = _("entry.location_not_here")
    else:
        notice = _("flow.expected_text")
    await _show(context, chat_id, flow, state, notice=notice)
    return True


async def _contact(
    context: BotContext, chat_id: int, flow: Flow, state: DraftState, step: Step, message: Message
) -> None:
    """A shared contact (the attach menu's, mostly someone else's): its phone answers the phone
    question; on a name question its name answers and its phone fills the phone question."""
    _ = context._
    env = _env(context)
    contact = message.contact
    assert contact is not None and step.contact is not None
    phone_step = flow.step(step.contact)
    number = (contact.phone_number or "").strip()
    if not number or phone_step is None:
        await _show(context, chat_id, flow, state, notice=_("entry.contact_without_phone"))
        return
    try:
        phone = phone_step.parse(number, env) if phone_step.parse else number
    except Invalid as error:
        await _show(context, chat_id, flow, state, notice=_invalid_text(_, phone_step, error))
        return
    if phone_step is step:
        await _accept(context, chat_id, flow, state, step, phone)
        return
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p).strip()
    try:
        value = step.parse(name, env) if step.parse else name
    except Invalid as error:
        await _show(context, chat_id, flow, state, notice=_invalid_text(_, step, error))
        return
    state.data[phone_step.field] = phone
    await _accept(context, chat_id, flow, state, step, value)


async def _place(
    context: BotContext, chat_id: int, flow: Flow, state: DraftState, step: Step, message: Message
) -> None:
    """A shared location for an address: no reverse geocoding offline, so its coordinates
    become the text, and the location itself is kept beside the answers as
    `<field>_location`, which the flow's submit receives (new_customer.shared_location)."""
    location = message.location
    assert location is not None
    text = place_text(location.latitude, location.longitude)
    state.data[f"{step.field}_location"] = {
        "latitude": location.latitude,
        "longitude": location.longitude,
        "accuracy": location.horizontal_accuracy,
    }
    await _accept(context, chat_id, flow, state, step, text)


def _attachment(message: Message) -> dict[str, str] | None:
    """A photo (largest size), document or voice note, kept by Telegram file id."""
    if message.photo:
        largest = message.photo[-1]
        return {"kind": "photo", "file_id": largest.file_id, "unique": largest.file_unique_id}
    if message.document is not None:
        document = message.document
        return {"kind": "document", "file_id": document.file_id, "unique": document.file_unique_id}
    if message.voice is not None:
        voice = message.voice
        return {"kind": "voice", "file_id": voice.file_id, "unique": voice.file_unique_id}
    return None


async def _on_callback(update: Update, context: BotContext) -> None:
    """Handle a press on any flow button, refusing stale ones."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _ = context._
    press = buttons.FLOW.parse(query.data)
    token = press.id(0) if press is not None else None
    if press is None or token is None:
        await query.answer(_("button.expired"), show_alert=True)
        return
    action, arg = press.fields[1], press.fields[2]
    loaded = await _load(context)
    if loaded is not None and loaded[1].token != token and loaded[1].unseen:
        await query.answer()  # a button of the question before one that never arrived
        await close_buttons(query.message)
        await _shown_again(context, chat_id_of(update), *loaded)
        return
    if loaded is None or loaded[1].token != token:
        await query.answer(_("button.expired"), show_alert=True)
        await close_buttons(query.message)
        return
    flow, state = loaded
    state.shown = token  # a press on it proves the prompt arrived
    chat_id = chat_id_of(update)
    handler = _ACTIONS.get(action)
    if handler is None:
        await query.answer(_("button.expired"), show_alert=True)
        return
    await handler(query, context, chat_id, flow, state, arg)


async def _on_cancel(
    query: CallbackQuery, context: BotContext, chat_id: int, flow: Flow, state: DraftState, arg: str
) -> None:
    await press_taken(query, context._("flow.cancelled"))
    outer = await _end_alone(context, state)
    await context.bot.send_message(chat_id, context._("flow.cancelled"))
    await _back_to(context, chat_id, outer)


async def _on_resume(
    query: CallbackQuery, context: BotContext, chat_id: int, flow: Flow, state: DraftState, arg: str
) -> None:
    await press_taken(query)
    state.data.pop("_then", None)
    await _show(context, chat_id, flow, state)


async def _on_discard(
    query: CallbackQuery, context: BotContext, chat_id: int, flow: Flow, state: DraftState, arg: str
) -> None:
    """Drop the unfinished draft and start what the user asked for instead."""
    then = state.data.get("_then") or {}
    next_flow = FLOWS.get(then.get("flow", ""))
    _ = context._
    if next_flow is not None:
        done = _("entry.discarded", old=_(f"{flow.name}.title"), new=_(f"{next_flow.name}.title"))
    else:
        done = _("flow.discarded")
    await press_taken(query, done)
    await _discard(context)
    initial = dict(then.get("initial") or {})
    if OUTER in state.data:  # a nested draft's held draft is not the user's to lose here
        initial[OUTER] = state.data[OUTER]
    if next_flow is not None:
        await _begin(context, chat_id, next_flow, initial)


async def _on_edit(
    query: CallbackQuery, context: BotContext, chat_id: int, flow: Flow, state: DraftState, arg: str
) -> None:
    index = parse_id(arg)
    if state.mode != DraftMode.summary or index is None or index >= len(flow.steps):
        await query.answer(context._("button.expired"), show_alert=True)
        return
    step = flow.steps[index]
    if not step.editable or not step.applies(state.data):
        await query.answer(context._("button.expired"), show_alert=True)
        return
    await press_taken(query)
    state.mode, state.step = DraftMode.edit, step.field
    await _show(context, chat_id, flow, state)


async def _on_submit(
    query: CallbackQuery, context: BotContext, chat_id: int, flow: Flow, state: DraftState, arg: str
) -> None:
    if state.mode != DraftMode.summary:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    await meanwhile(query.answer())
    await _submit(context, chat_id, flow, state, query)


def _current(flow: Flow, state: DraftState) -> Step | None:
    return None if state.mode == DraftMode.summary else flow.step(state.step)


async def _on_back(
    query: CallbackQuery, context: BotContext, chat_id: int, flow: Flow, state: DraftState, arg: str
) -> None:
    step = _current(flow, state)
    if step is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    await press_taken(query)
    await _go_back(context, chat_id, flow, state, step)


async def _go_back(
    context: BotContext, chat_id: int, flow: Flow, state: DraftState, step: Step
) -> None:
    if state.mode == DraftMode.edit:
        missing = flow.first_missing(state.data)
        if missing is not None and missing.field != step.field:
            state.step = missing.field
        elif missing is None:
            state.mode, state.step = DraftMode.summary, None
        await _show(context, chat_id, flow, state)
        return
    previous = flow.previous_step(step.field, state.data)
    if previous is None:
        await _show(context, chat_id, flow, state, notice=context._("flow.first_question"))
        return
    state.step = previous.field
    state.data.pop("_offered", None)
    await _show(context, chat_id, flow, state)


async def _on_skip(
    query: CallbackQuery, context: BotContext, chat_id: int, flow: Flow, state: DraftState, arg: str
) -> None:
    step = _current(flow, state)
    if step is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    if step.required:
        await query.answer(context._("flow.required"), show_alert=True)
        return
    if _keeps_answer(flow, step, state):  # a Skip the question did not offer: keep, go back
        await press_taken(query, context._("entry.kept"))
        await _go_back(context, chat_id, flow, state, step)
        return
    kept = flow.skip_keeps
    await press_taken(query, context._("entry.kept" if kept else "flow.skipped"))
    if kept:
        state.data["cleared"] = [f for f in state.data.get("cleared", []) if f != step.field]
    await _accept(context, chat_id, flow, state, step, None)


async def _on_clear(
    query: CallbackQuery, context: BotContext, chat_id: int, flow: Flow, state: DraftState, arg: str
) -> None:
    """Empty an optional field of the record being edited (Skip keeps it)."""
    step = _current(flow, state)
    if step is None or not _clearable(flow, step, state):
        await query.answer(context._("button.expired"), show_alert=True)
        return
    await press_taken(query, context._("entry.cleared"))
    if flow.skip_keeps:  # told to the flow's submit: an empty answer there means "keep"
        cleared = [f for f in state.data.get("cleared", []) if f != step.field]
        state.data["cleared"] = [*cleared, step.field]
    await _accept(context, chat_id, flow, state, step, None)


async def _on_skip_rest(
    query: CallbackQuery, context: BotContext, chat_id: int, flow: Flow, state: DraftState, arg: str
) -> None:
    step = _current(flow, state)
    if step is None or step.required:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    await press_taken(query, context._("flow.skipped_rest"))
    for later in flow.steps[flow.index(step.field) + 1 :]:
        if not later.required and later.applies(state.data) and later.field not in state.data:
            state.data[later.field] = None
    await _accept(context, chat_id, flow, state, step, None)


async def _on_choose(
    query: CallbackQuery, context: BotContext, chat_id: int, flow: Flow, state: DraftState, arg: str
) -> None:
    step = _current(flow, state)
    options = _offered(state, step) if step is not None else None
    index = parse_id(arg)
    if step is None or options is None or index is None or index >= len(options):
        await query.answer(context._("button.expired"), show_alert=True)
        return
    option = options[index]
    label = option_label(context._, option)
    await press_taken(query, label)
    await _accept(
        context, chat_id, flow, state, step, option.value, None if option.translate else label
    )


async def _on_page(
    query: CallbackQuery, context: BotContext, chat_id: int, flow: Flow, state: DraftState, arg: str
) -> None:
    step = _current(flow, state)
    options = _offered(state, step) if step is not None else None
    wanted = parse_id(arg)
    if step is None or options is None or wanted is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    page = min(wanted, max(0, (len(options) - 1) // step.page_size))
    await press_taken(query)
    state.data["_offered"]["page"] = page
    await _show(context, chat_id, flow, state)


async def _on_media_done(
    query: CallbackQuery, context: BotContext, chat_id: int, flow: Flow, state: DraftState, arg: str
) -> None:
    step = _current(flow, state)
    if step is None or step.kind != Kind.MEDIA:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    collected = state.data.get(step.field) or []
    if step.required and not collected:
        await query.answer(context._("flow.required"), show_alert=True)
        return
    await press_taken(query, context._("flow.attachments_count", count=len(collected)))
    await _accept(context, chat_id, flow, state, step, collected or None)


_ACTIONS = {
    "x": _on_cancel,
    "r": _on_resume,
    "d": _on_discard,
    "e": _on_edit,
    "ok": _on_submit,
    "b": _on_back,
    "s": _on_skip,
    "z": _on_skip_rest,
    "c": _on_choose,
    "p": _on_page,
    "m": _on_media_done,
    "k": _on_clear,
}


async def _submit(
    context: BotContext,
    chat_id: int,
    flow: Flow,
    state: DraftState,
    query: CallbackQuery | None = None,
    *,
    early: bool = False,
) -> None:
    """Save the record and drop the draft in one transaction; on failure keep the draft.
    `early`: saved now from the middle of the flow, only the required answers given."""
    env = _env(context)
    _ = env._
    missing = flow.first_missing(state.data, required_only=early)
    if missing is not None:
        state.mode, state.step = DraftMode.edit, missing.field
        await _show(context, chat_id, flow, state, notice=_("flow.required"))
        return
    try:
        async with unit_of_work(context.services.sessions) as session:
            current = await drafts.load(
                session,
                context.services.keyring,
                context.member.id or 0,
                not_before=context.services.draft_cutoff(),
                for_update=True,
            )
            if current is None or current.token != state.token:
                raise _Stale
            answers = {k: v for k, v in state.data.items() if not k.startswith("_")}
            done = await flow.submit(env, session, answers)
            outer = await _end(context, session, state)
            # the confirmation goes through the outbox with the record, so a crash keeps it
            await outbox.queue_confirmation(
                session,
                keyring=context.services.keyring,
                recipient=context.member,
                text=fit.message(done.text),
                markup=done.markup.to_dict() if done.markup is not None else None,
                now=context.services.clock(),
            )
            queued = outbox.queued_in(session)
    except _Stale:
        await context.bot.send_message(chat_id, _("button.expired"))
        return
    except Refused as refusal:
        # the refused transaction rolled back; its trace is kept in one of its own
        async with unit_of_work(context.services.sessions) as session:
            await audit.record(
                session,
                action="flow.refused",
                actor_staff_id=context.member.id,
                actor_telegram_id=context.member.telegram_id,
                detail={"flow": flow.name, "reason": refusal.code},
            )
        await context.bot.send_message(chat_id, _(f"refused.{refusal.code}"))
        return
    except SQLAlchemyError:
        log.exception("submit of %s failed", flow.name)
        await context.bot.send_message(chat_id, _("error.try_again"))
        return
    await context.send_queued(queued)  # the confirmation, and any notice the flow queued
    if query is not None:
        await meanwhile(close_buttons(query.message, _("flow.submitted")))
    if done.after is not None:
        await done.after(context, chat_id)
    await _back_to(context, chat_id, outer)


class _Stale(Exception):
    """The draft changed under a submit (double tap)."""
