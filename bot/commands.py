"""Commands and plain messages outside the guided flows: start/join, help, language, cancel."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.context import BotContext
from bot.i18n import LANGUAGES
from conversations import fit, runner
from conversations import staff as staff_flow
from conversations import today as today_plan
from conversations.callback_data import LANGUAGE
from conversations.inline import open_linked_card
from conversations.invite import FLOW as INVITE_FLOW
from conversations.new_customer import FLOW as NEW_CUSTOMER_FLOW
from storage import permissions
from storage import staff as staff_store
from storage.errors import Refused
from storage.models import Staff
from storage.permissions import can_create_customer

_STAFF_COMMANDS = ("new", "visit", "complaint", "find", "my", "today")
_OWN_COMMANDS = ("cancel", "lang", "help")
MENU_COMMANDS = (
    "new",
    "visit",
    "complaint",
    "find",
    "my",
    "today",
    "pool",
    "export",
    "review",
    "report",
    "stats",
    "invite",
    "staff",
    "import",
    "cancel",
    "lang",
    "help",
)


def commands_for(member: Staff) -> tuple[str, ...]:
    """What /help offers the member: asked of the predicates storage refuses with."""
    offered = [
        *_STAFF_COMMANDS,
        *(["pool"] if permissions.sees_some_pool(member) else []),
        *(["export"] if permissions.can_export_any(member) else []),
        *(["review"] if permissions.is_decider(member) else []),
        *(["report"] if permissions.receives_reports(member) else []),
        *(["stats"] if permissions.can_see_own_stats(member) else []),
        *(["invite"] if permissions.roles_inviteable_by(member) else []),
        *(["staff"] if staff_flow.may_open(member) else []),
        *(["testreminder"] if permissions.can_send_samples(member) else []),
        *(["handover"] if permissions.can_manage_staff(member) else []),
        *(["import"] if permissions.imports_at_all(member) else []),
        *(["pipl"] if permissions.can_answer_pipl_request(member) else []),
    ]
    return (*offered, *_OWN_COMMANDS)


async def start(update: Update, context: BotContext) -> None:
    """Join with an invite token, or greet a member and bring back any unfinished flow."""
    if context.args and context.staff is None:
        await join(update, context, context.args[0])
        return
    if context.staff is None:  # the gate lets only joins through; be safe anyway
        return
    if context.args and await open_linked_card(context, context.args[0]):
        return  # a card inserted in another chat, opened here (checked again)
    if context.args:
        await context.bot.send_message(context.chat_id, context._("join.already_member"))
    await context.bot.send_message(
        context.chat_id, fit.message(context._("start.welcome", name=context.member.display_name))
    )
    if not await runner.resume(update, context):
        await help_command(update, context)


async def join(update: Update, context: BotContext, token: str) -> None:
    """Register the sender through a one-time invite link."""
    user = update.effective_user
    assert user is not None
    try:
        async with context.unit_of_work() as session:
            staff = await staff_store.redeem_invite(
                session,
                token=token,
                telegram_id=user.id,
                display_name=user.full_name,
                language=context.language,  # notices arrive unasked: keep their language
            )
    except Refused as refusal:
        async with context.unit_of_work() as session:
            await staff_store.record_invite_refusal(
                session, telegram_id=user.id, reason=refusal.code
            )
        await context.bot.send_message(context.chat_id, context._(f"join.{refusal.code}"))
        return
    context.staff = staff
    await context.refresh_menu(staff.telegram_id)  # the new member's own command menu
    await context.bot.send_message(
        context.chat_id,
        fit.message(
            context._(
                "join.welcome", name=staff.display_name, role=context._(f"choice.role.{staff.role}")
            )
        ),
    )
    await help_command(update, context)


async def help_command(update: Update, context: BotContext) -> None:
    """List what this member can do."""
    _ = context._
    lines = [_("help.title")]
    for command in commands_for(context.member):
        lines.append(f"/{command} — {_(f'command.{command}')}")
    for text in fit.split("\n".join(lines)):  # a role with many commands gets two messages
        await context.bot.send_message(context.chat_id, text)


async def new_customer(update: Update, context: BotContext) -> None:
    """Start entering a new customer."""
    if not can_create_customer(context.member):
        await context.bot.send_message(context.chat_id, context._("refused.team_required"))
        return
    await runner.start(update, context, NEW_CUSTOMER_FLOW)


async def invite(update: Update, context: BotContext) -> None:
    """Start making an invite link (managers and admins)."""
    if not staff_store.roles_inviteable_by(context.member):
        await context.bot.send_message(context.chat_id, context._("refused.not_allowed"))
        return
    await runner.start(update, context, INVITE_FLOW)


async def cancel(update: Update, context: BotContext) -> None:
    """Drop whatever flow is under way."""
    await runner.cancel(update, context)


async def language(update: Update, context: BotContext) -> None:
    """Offer the languages as buttons."""
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    context._(f"lang.{code}"), callback_data=LANGUAGE.data("lang", code)
                )
                for code in LANGUAGES
            ]
        ]
    )
    await context.bot.send_message(context.chat_id, context._("lang.choose"), reply_markup=keyboard)


async def language_chosen(update: Update, context: BotContext) -> None:
    """Store the chosen language and confirm in it."""
    query = update.callback_query
    assert query is not None and query.data is not None
    press = LANGUAGE.parse(query.data)
    code = press.text(0) if press is not None and len(press) == 1 else None
    if code is None or code not in LANGUAGES:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    async with context.unit_of_work() as session:
        await staff_store.set_language(session, staff_id=context.member.id or 0, language=code)
    context.use_language(code)
    await context.refresh_menu(context.member.telegram_id)  # the menu in the new language
    await query.answer()
    await context.bot.send_message(context.chat_id, context._("lang.set"))


async def text_message(update: Update, context: BotContext) -> None:
    """Plain text: an answer to the current question, or a pointer to /help."""
    if not await runner.on_text(update, context):
        await context.bot.send_message(context.chat_id, context._("fallback.text"))


async def other_message(update: Update, context: BotContext) -> None:
    """Photos, stickers, locations, files outside what the flow expects; a location outside
    any flow asks for the customers nearby (/today)."""
    if await runner.on_other(update, context):
        return
    if not await today_plan.on_location(update, context):
        await context.bot.send_message(context.chat_id, context._("fallback.text"))


async def edited_message(update: Update, context: BotContext) -> None:
    """An edit of an earlier message is neither an answer nor a command; say so in a flow."""
    await runner.on_edited(update, context)


async def unknown_command(update: Update, context: BotContext) -> None:
    await context.bot.send_message(context.chat_id, context._("fallback.command"))


async def stale_button(update: Update, context: BotContext) -> None:
    """Any button nobody else claimed: it belongs to an old message."""
    query = update.callback_query
    assert query is not None
    await query.answer(context._("button.expired"), show_alert=True)
