"""Runs any `Flow`: asks, checks, moves Back and Skip, shows the summary card, submits.

The draft in the database is the only state: every answer is saved before the next question is
sent, so a restart loses nothing and the user's next message continues where they stopped.
Buttons carry the draft's prompt token; a press with an older token is a stale button.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import BadRequest

from bot.context import BotContext
from bot.i18n import Translator
from conversations.steps import Flow, FlowEnv, Kind, Option, Step
from storage import drafts
from storage.db import unit_of_work
from storage.drafts import DraftState
from storage.errors import Refused
from storage.validation import Invalid

log = logging.getLogger(__name__)
PREFIX = "w"
SUMMARY_VALUE_LIMIT = 80
FLOWS: dict[str, Flow] = {}
_HARMLESS_EDIT_ERRORS = ("not modified", "can't be edited", "not found")


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
    return f"{PREFIX}:{token}:{action}:{arg}"


# ---------------------------------------------------------------------------------------------
# rendering


def option_label(_: Translator, step: Step, option: Option) -> str:
    return _(option.label) if option.translate else option.label


def static_options(step: Step) -> list[Option]:
    if step.kind == Kind.YES_NO:
        return [Option("yes", "common.yes"), Option("no", "common.no")]
    return [Option(v, f"choice.{step.field}.{v}") for v in step.choices]


async def options_for(env: FlowEnv, step: Step, data: dict[str, Any]) -> list[Option]:
    if step.options is None:
        return static_options(step)
    async with unit_of_work(env.services.sessions) as session:
        return await step.options(env, session, data)


def display_value(_: Translator, step: Step, data: dict[str, Any]) -> str:
    value = data.get(step.field)
    if value in (None, "", []):
        return _("common.empty")
    if step.kind == Kind.YES_NO:
        return _("common.yes" if value == "yes" else "common.no")
    if step.kind == Kind.CHOICE:
        label = data.get("_labels", {}).get(step.field)
        return label if label is not None else _(f"choice.{step.field}.{value}")
    if step.display is not None:
        value = step.display(value)
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    text = str(value)
    return text if len(text) <= SUMMARY_VALUE_LIMIT else text[: SUMMARY_VALUE_LIMIT - 1] + "…"


def _nav_row(_: Translator, step: Step, token: int, *, editing: bool) -> list[InlineKeyboardButton]:
    back = "button.back_to_summary" if editing else "button.back"
    row = [InlineKeyboardButton(_(back), callback_data=_data(token, "b"))]
    if not step.required:
        row.append(InlineKeyboardButton(_("button.skip"), callback_data=_data(token, "s")))
    row.append(InlineKeyboardButton(_("button.cancel"), callback_data=_data(token, "x")))
    return row


def _skip_rest_row(_: Translator, token: int) -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(_("button.skip_rest"), callback_data=_data(token, "z"))]


async def _ask(
    context: BotContext, chat_id: int, flow: Flow, state: DraftState, *, notice: str | None = None
) -> None:
    """Send the current question with its buttons."""
    env = _env(context)
    _ = env._
    step = flow.step(state.step)
    assert step is not None
    applicable = flow.applicable(state.data)
    position = next((i for i, s in enumerate(applicable) if s.field == step.field), 0) + 1
    lines = []
    if notice:
        lines += [notice, ""]
    lines.append(
        _("flow.progress", title=_(f"{flow.name}.title"), n=position, total=len(applicable))
    )
    values = step.prompt_values(env, state.data) if step.prompt_values else {}
    lines.append(_(f"{flow.name}.ask.{step.field}", **values))
    if not step.required:
        lines.append(_("flow.optional"))
    if state.mode == "edit" and state.data.get(step.field) not in (None, "", []):
        lines.append(_("flow.current_value", value=display_value(_, step, state.data)))
    keyboard: list[list[InlineKeyboardButton]] = []
    if step.kind in (Kind.CHOICE, Kind.YES_NO):
        options = await options_for(env, step, state.data)
        row: list[InlineKeyboardButton] = []
        for index, option in enumerate(options):
            row.append(
                InlineKeyboardButton(
                    option_label(_, step, option), callback_data=_data(state.token, "c", index)
                )
            )
            if len(row) == step.columns:
                keyboard.append(row)
                row = []
        if row:
            keyboard.append(row)
    keyboard.append(_nav_row(_, step, state.token, editing=state.mode == "edit"))
    if state.mode == "ask" and not step.required:
        keyboard.append(_skip_rest_row(_, state.token))
    await context.bot.send_message(
        chat_id, "\n".join(lines), reply_markup=InlineKeyboardMarkup(keyboard)
    )


async def _summary(
    context: BotContext, chat_id: int, flow: Flow, state: DraftState, *, notice: str | None = None
) -> None:
    """Send the summary card: every answer, an Edit button per field, Submit and Cancel."""
    env = _env(context)
    _ = env._
    lines = [notice, ""] if notice else []
    lines.append(_("flow.summary_title", title=_(f"{flow.name}.title")))
    steps = flow.applicable(state.data)
    for step in steps:
        shown = display_value(_, step, state.data)
        if step.default is not None and state.data.get(step.field) in (None, ""):
            shown = _("flow.default_value", value=step.default(env, state.data))
        lines.append(f"• {_(f'field.{step.field}')}: {shown}")
    warnings = await _all_warnings(env, flow, state.data)
    if warnings:
        lines += ["", *warnings]
    lines += ["", _("flow.summary_hint")]
    keyboard: list[list[InlineKeyboardButton]] = []
    row: list[InlineKeyboardButton] = []
    for step in steps:
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
        chat_id, "\n".join(lines), reply_markup=InlineKeyboardMarkup(keyboard)
    )


async def _all_warnings(env: FlowEnv, flow: Flow, data: dict[str, Any]) -> list[str]:
    warnings: list[str] = []
    checks = [s for s in flow.applicable(data) if s.check and data.get(s.field) not in (None, "")]
    if not checks:
        return warnings
    async with unit_of_work(env.services.sessions) as session:
        for step in checks:
            assert step.check is not None
            for warning in await step.check(env, session, data[step.field], data):
                if warning not in warnings:
                    warnings.append(warning)
    return warnings


async def _present(
    context: BotContext, chat_id: int, flow: Flow, state: DraftState, notice: str | None = None
) -> None:
    if state.mode == "summary":
        await _summary(context, chat_id, flow, state, notice=notice)
    else:
        await _ask(context, chat_id, flow, state, notice=notice)


# ---------------------------------------------------------------------------------------------
# state changes (each one saved before the next prompt is sent)


def _advance(flow: Flow, state: DraftState) -> None:
    """Move to the next unanswered question, or to the summary when all are answered."""
    if state.mode == "ask":
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
        state.step, state.mode = missing.field, "edit" if state.mode != "ask" else "ask"
    else:
        state.step, state.mode = None, "summary"


async def _save(context: BotContext, state: DraftState) -> None:
    state.token += 1
    async with unit_of_work(context.services.sessions) as session:
        await drafts.save(session, context.services.keyring, context.member.id or 0, state)


async def _load(context: BotContext) -> tuple[Flow, DraftState] | None:
    async with unit_of_work(context.services.sessions) as session:
        state = await drafts.load(session, context.services.keyring, context.member.id or 0)
    if state is None:
        return None
    flow = FLOWS.get(state.flow)
    if flow is None:
        log.warning("draft of unknown flow %s discarded", state.flow)
        async with unit_of_work(context.services.sessions) as session:
            await drafts.discard(session, context.member.id or 0)
        return None
    return flow, state


def _chat_id(update: Update) -> int:
    assert update.effective_chat is not None
    return update.effective_chat.id


async def start(update: Update, context: BotContext, flow: Flow) -> None:
    """Begin `flow`, or offer to continue/discard a draft the user already has."""
    existing = await _load(context)
    _ = context._
    chat_id = _chat_id(update)
    if existing is not None:
        old_flow, state = existing
        await _save(context, state)
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(_("button.resume"), callback_data=_data(state.token, "r")),
                    InlineKeyboardButton(
                        _("button.discard"), callback_data=_data(state.token, "d", flow.name)
                    ),
                ]
            ]
        )
        await context.bot.send_message(
            chat_id,
            _("flow.unfinished", title=_(f"{old_flow.name}.title")),
            reply_markup=keyboard,
        )
        return
    await _begin(context, chat_id, flow)


async def _begin(context: BotContext, chat_id: int, flow: Flow) -> None:
    env = _env(context)
    data = flow.start_data(env)
    first = flow.next_step(None, data)
    assert first is not None
    state = DraftState(flow=flow.name, step=first.field, data=data)
    await _save(context, state)
    await _ask(context, chat_id, flow, state)


async def resume(update: Update, context: BotContext) -> bool:
    """Show the current question again (after /start or a restart); False if no draft."""
    loaded = await _load(context)
    if loaded is None:
        return False
    flow, state = loaded
    await _save(context, state)
    await _present(context, _chat_id(update), flow, state, notice=context._("flow.resumed"))
    return True


async def cancel(update: Update, context: BotContext) -> None:
    """Drop the draft, leaving nothing behind."""
    async with unit_of_work(context.services.sessions) as session:
        had = await drafts.discard(session, context.member.id or 0)
    key = "flow.cancelled" if had else "flow.nothing_to_cancel"
    await context.bot.send_message(_chat_id(update), context._(key))


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
    # answers of questions that no longer apply are dropped, so they are never saved
    for other in flow.steps:
        if not other.applies(state.data):
            state.data.pop(other.field, None)
    warnings: list[str] = []
    if step.check is not None and value not in (None, ""):
        async with unit_of_work(env.services.sessions) as session:
            warnings = await step.check(env, session, value, state.data)
    _advance(flow, state)
    await _save(context, state)
    if state.mode == "summary" and not flow.confirm:
        await _submit(context, chat_id, flow, state)
        return
    await _present(context, chat_id, flow, state, notice="\n".join(warnings) or None)


def _invalid_text(_: Translator, step: Step, error: Invalid) -> str:
    reason = _(f"invalid.{error.code}", limit=error.limit or 0)
    example_key = step.example or f"example.{step.field}"
    return _("flow.invalid", reason=reason, example=_(example_key))


async def on_text(update: Update, context: BotContext) -> bool:
    """Take a typed answer for the current question; False when the user has no draft."""
    message = update.effective_message
    if message is None or message.text is None:
        return False
    loaded = await _load(context)
    if loaded is None:
        return False
    flow, state = loaded
    _ = context._
    chat_id = _chat_id(update)
    step = flow.step(state.step)
    if state.mode == "summary" or step is None:
        await _save(context, state)
        await _present(context, chat_id, flow, state, notice=_("flow.use_summary_buttons"))
        return True
    env = _env(context)
    if step.kind in (Kind.CHOICE, Kind.YES_NO):
        typed = message.text.strip().casefold()
        for option in await options_for(env, step, state.data):
            label = option_label(_, step, option)
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
                return True
        await _save(context, state)
        await _ask(context, chat_id, flow, state, notice=_("flow.use_buttons"))
        return True
    parse = step.parse
    try:
        value = parse(message.text, env) if parse else message.text.strip()
    except Invalid as error:
        await _save(context, state)
        await _ask(context, chat_id, flow, state, notice=_invalid_text(_, step, error))
        return True
    await _accept(context, chat_id, flow, state, step, value)
    return True


async def on_other(update: Update, context: BotContext) -> bool:
    """A photo, sticker, location or file where an answer was expected: say what is needed."""
    loaded = await _load(context)
    if loaded is None:
        return False
    flow, state = loaded
    _ = context._
    step = flow.step(state.step)
    if state.mode == "summary" or step is None:
        notice = _("flow.use_summary_buttons")
    elif step.kind in (Kind.CHOICE, Kind.YES_NO):
        notice = _("flow.use_buttons")
    else:
        notice = _("flow.expected_text")
    await _save(context, state)
    await _present(context, _chat_id(update), flow, state, notice=notice)
    return True


async def _close_buttons(query: CallbackQuery, suffix: str | None = None) -> None:
    """Take the buttons off a message the user has answered, noting the answer."""
    message = query.message
    if not isinstance(message, Message):
        return
    try:
        if suffix and message.text:
            await message.edit_text(f"{message.text}\n\n→ {suffix}")
        else:
            await message.edit_reply_markup(None)
    except BadRequest as error:  # already edited, too old, or gone: closing is cosmetic
        if not any(known in str(error).lower() for known in _HARMLESS_EDIT_ERRORS):
            raise


async def on_callback(update: Update, context: BotContext) -> None:
    """Handle a press on any flow button, refusing stale ones."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _ = context._
    parts = query.data.split(":", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        await query.answer(_("button.expired"), show_alert=True)
        return
    token, action, arg = int(parts[1]), parts[2], parts[3]
    loaded = await _load(context)
    if loaded is None or loaded[1].token != token:
        await query.answer(_("button.expired"), show_alert=True)
        await _close_buttons(query)
        return
    flow, state = loaded
    chat_id = _chat_id(update)
    step = flow.step(state.step)
    if action == "x":
        await query.answer()
        await _close_buttons(query, _("flow.cancelled"))
        async with unit_of_work(context.services.sessions) as session:
            await drafts.discard(session, context.member.id or 0)
        await context.bot.send_message(chat_id, _("flow.cancelled"))
        return
    if action == "r":
        await query.answer()
        await _close_buttons(query)
        await _save(context, state)
        await _present(context, chat_id, flow, state)
        return
    if action == "d":
        await query.answer()
        await _close_buttons(query, _("flow.discarded"))
        async with unit_of_work(context.services.sessions) as session:
            await drafts.discard(session, context.member.id or 0)
        next_flow = FLOWS.get(arg)
        if next_flow is not None:
            await _begin(context, chat_id, next_flow)
        return
    if action == "e" and state.mode == "summary" and arg.isdigit() and int(arg) < len(flow.steps):
        await query.answer()
        await _close_buttons(query)
        state.mode, state.step = "edit", flow.steps[int(arg)].field
        await _save(context, state)
        await _ask(context, chat_id, flow, state)
        return
    if action == "ok" and state.mode == "summary":
        await query.answer()
        await _submit(context, chat_id, flow, state, query)
        return
    if step is None or state.mode == "summary":
        await query.answer(_("button.expired"), show_alert=True)
        return
    if action == "b":
        await query.answer()
        await _back(query, context, chat_id, flow, state, step)
        return
    if action == "s":
        if step.required:
            await query.answer(_("flow.required"), show_alert=True)
            return
        await query.answer()
        await _close_buttons(query, _("flow.skipped"))
        await _accept(context, chat_id, flow, state, step, None)
        return
    if action == "z" and not step.required:
        await query.answer()
        await _close_buttons(query, _("flow.skipped_rest"))
        for later in flow.steps[flow.index(step.field) + 1 :]:
            if not later.required and later.applies(state.data) and later.field not in state.data:
                state.data[later.field] = None
        await _accept(context, chat_id, flow, state, step, None)
        return
    if action == "c" and arg.isdigit():
        options = await options_for(_env(context), step, state.data)
        if int(arg) >= len(options):
            await query.answer(_("button.expired"), show_alert=True)
            return
        option = options[int(arg)]
        label = option_label(_, step, option)
        await query.answer()
        await _close_buttons(query, label)
        await _accept(
            context, chat_id, flow, state, step, option.value, None if option.translate else label
        )
        return
    await query.answer(_("button.expired"), show_alert=True)


async def _back(
    query: CallbackQuery,
    context: BotContext,
    chat_id: int,
    flow: Flow,
    state: DraftState,
    step: Step,
) -> None:
    _ = context._
    if state.mode == "edit":
        await _close_buttons(query)
        missing = flow.first_missing(state.data)
        if missing is not None and missing.field != step.field:
            state.step = missing.field
        elif missing is None:
            state.mode, state.step = "summary", None
        await _save(context, state)
        await _present(context, chat_id, flow, state)
        return
    previous = flow.previous_step(step.field, state.data)
    if previous is None:
        await _save(context, state)
        await _ask(context, chat_id, flow, state, notice=_("flow.first_question"))
        return
    await _close_buttons(query)
    state.step = previous.field
    await _save(context, state)
    await _ask(context, chat_id, flow, state)


async def _submit(
    context: BotContext,
    chat_id: int,
    flow: Flow,
    state: DraftState,
    query: CallbackQuery | None = None,
) -> None:
    """Save the record and drop the draft in one transaction; on failure keep the draft."""
    env = _env(context)
    _ = env._
    missing = flow.first_missing(state.data)
    if missing is not None:
        state.mode, state.step = "edit", missing.field
        await _save(context, state)
        await _ask(context, chat_id, flow, state, notice=_("flow.required"))
        return
    try:
        async with unit_of_work(context.services.sessions) as session:
            current = await drafts.load(
                session, context.services.keyring, context.member.id or 0, for_update=True
            )
            if current is None or current.token != state.token:
                raise _Stale
            done = await flow.submit(env, session, state.data)
            await drafts.discard(session, context.member.id or 0)
    except _Stale:
        await context.bot.send_message(chat_id, _("button.expired"))
        return
    except Refused as refusal:
        await context.bot.send_message(chat_id, _(f"refused.{refusal.code}"))
        return
    except SQLAlchemyError:
        log.exception("submit of %s failed", flow.name)
        await context.bot.send_message(chat_id, _("error.try_again"))
        return
    if query is not None:
        await _close_buttons(query, _("flow.submitted"))
    await context.bot.send_message(chat_id, done.text)


class _Stale(Exception):
    """The draft changed under a submit (double tap)."""


def today_of(context: BotContext) -> date:
    return _env(context).today
