"""Verified check-in in chat: setting a customer's location, checking out, how both are shown.

Buttons (`ci`): `ci:l:<customer id>` on the card asks for a shared location and sets it (a
one-question flow, so it survives a restart and offers Back / Cancel like every question);
`ci:o:<visit id>` on a saved visit's confirmation checks out. Every press re-loads the records
and storage re-checks who may (storage.checkin).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.context import BotContext
from bot.i18n import Translator
from conversations import fit, runner
from conversations.callback_data import CARD, CHECKIN
from conversations.keyboards import button
from conversations.life_cycle import read_only
from conversations.messages import close_buttons
from conversations.steps import Flow, FlowEnv, Kind, Step, Submitted
from storage import checkin, customers, permissions
from storage.errors import NotFound, Refused
from storage.models import Visit, VisitKind

# ---------------------------------------------------------------------------------------------
# how distances and durations read


def distance_text(_: Translator, metres: float) -> str:
    """`350 m` up to a kilometre, then `1.2 km`."""
    if metres < 1000:
        return _("checkin.metres", metres=round(metres))
    return _("checkin.kilometres", km=f"{metres / 1000:.1f}")


def duration_text(_: Translator, minutes: int) -> str:
    """`45 min` under an hour, then `1 h 05 min`."""
    if minutes < 60:
        return _("checkin.minutes", minutes=minutes)
    return _("checkin.hours", hours=minutes // 60, minutes=f"{minutes % 60:02d}")


def visit_lines(_: Translator, visit: Visit, radius_m: int, tz: ZoneInfo) -> list[str]:
    """The check-in lines of a visit as lists and cards show it to managers and salespeople."""
    lines: list[str] = []
    if visit.checkin_flagged and visit.checkin_distance_m is not None:
        lines.append(
            _(
                "checkin.flagged",
                distance=distance_text(_, visit.checkin_distance_m),
                radius=distance_text(_, radius_m),
            )
        )
    elif visit.kind == VisitKind.on_site and visit.checkin_distance_m is not None:
        lines.append(_("checkin.verified", distance=distance_text(_, visit.checkin_distance_m)))
    if visit.checked_in_at is not None:
        start = visit.checked_in_at.astimezone(tz).strftime("%H:%M")
        spent = checkin.minutes(visit.checked_in_at, visit.checked_out_at)
        if visit.checked_out_at is not None and spent is not None:
            end = visit.checked_out_at.astimezone(tz).strftime("%H:%M")
            lines.append(_("checkin.span", start=start, end=end, duration=duration_text(_, spent)))
        else:
            lines.append(_("checkin.span_open", start=start))
    return lines


def check_out_button(_: Translator, visit_id: int) -> InlineKeyboardButton:
    return button(_("checkin.button.check_out"), CHECKIN.data("ci", "o", visit_id))


def set_location_button(_: Translator, customer_id: int) -> InlineKeyboardButton:
    return button(_("checkin.button.set_location"), CHECKIN.data("ci", "l", customer_id))


# ---------------------------------------------------------------------------------------------
# the location step of a visit: it stamps the check-in and warns before the visit is saved


async def visit_location_checked(
    env: FlowEnv, session: AsyncSession, value: Any, data: dict[str, Any]
) -> list[str]:
    """Stamp the check-in of a visit logged as it happens; warn if the place is too far."""
    if data.get("visited_at") is None:  # "now": the shared location is the arrival
        data["checked_in_at"] = env.services.clock().isoformat()
    else:
        data.pop("checked_in_at", None)
    if data.get("visit_kind") != VisitKind.on_site or "customer_id" not in data:
        return []
    distance = await checkin.distance_from_customer(
        session,
        keyring=env.services.keyring,
        actor=env.staff,
        customer_id=int(data["customer_id"]),
        location=value,
    )
    radius = env.services.settings.CHECKIN_RADIUS_M
    if not checkin.flag_away(distance, radius) or distance is None:
        return []
    return [
        env._(
            "checkin.far_warning",
            distance=distance_text(env._, distance),
            radius=distance_text(env._, radius),
        )
    ]


def checked_in_at(data: dict[str, Any]) -> str | None:
    """The check-in a visit's answers carry, if it was logged "now" with a location."""
    if data.get("visited_at") is not None or not data.get("location"):
        return None
    return data.get("checked_in_at")


# ---------------------------------------------------------------------------------------------
# setting a customer's location from its card


async def _prepare(
    env: FlowEnv, session: AsyncSession, initial: dict[str, Any]
) -> dict[str, Any] | None:
    """Only a customer the user may set the location of: another team's is refused (audited)."""
    try:
        customer_id = int(initial["customer_id"])
    except (KeyError, TypeError, ValueError):
        return None
    customer = await customers.visible_customer(
        session, actor=env.staff, customer_id=customer_id, purpose="checkin.location"
    )
    if customer is None or not permissions.can_set_customer_location(env.staff, customer):
        return None
    return {"customer_id": customer_id, "_customer_name": customer.name}


def _prompt_values(env: FlowEnv, data: dict[str, Any]) -> dict[str, object]:
    return {"customer": fit.clip(str(data.get("_customer_name") or ""), 200)}


async def _submit(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    """Save the shared location as the customer's."""
    customer_id = int(data["customer_id"])
    try:
        customer = await checkin.set_customer_location(
            session,
            keyring=env.services.keyring,
            actor=env.staff,
            customer_id=customer_id,
            location=data.get("location"),
            now=env.services.clock(),
        )
    except NotFound:
        return Submitted(env._("refused.not_found"))
    except Refused as refusal:
        return Submitted(env._(f"checkin.refused.{refusal.code}"))
    markup = InlineKeyboardMarkup(
        [[button(env._("checkin.button.card"), CARD.data("cu", customer_id))]]
    )
    text = env._("checkin.location_set", customer=f"{customer.name} · {customer.customer_no}")
    return Submitted(text, markup=markup)


LOCATION_FLOW = runner.register(
    Flow(
        name="checkin_location",
        steps=(Step("location", Kind.LOCATION, required=True, prompt_values=_prompt_values),),
        submit=_submit,
        confirm=False,
        prepare=_prepare,
    )
)


# ---------------------------------------------------------------------------------------------
# buttons


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `ci:l:<customer id>` (set location) and `ci:o:<visit id>` (check out)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    press = CHECKIN.parse(query.data)
    action = press.text(0) if press is not None else None
    record_id = press.id(1) if press is not None and len(press) == 2 else None
    if record_id is None or action not in ("l", "o"):
        await query.answer(context._("button.expired"), show_alert=True)
        return
    if action == "l":
        if await read_only(context, record_id):
            await query.answer(context._("checkin.refused.archived"), show_alert=True)
            return
        await query.answer()
        await runner.start(update, context, LOCATION_FLOW, initial={"customer_id": record_id})
        return
    await _check_out(update, context, record_id)


async def _check_out(update: Update, context: BotContext, visit_id: int) -> None:
    """Record the check-out and show the visit's duration in place of the button."""
    query = update.callback_query
    assert query is not None
    _ = context._
    now: datetime = context.services.clock()
    refused: NotFound | Refused | None = None
    async with context.unit_of_work() as session:
        try:  # caught inside: the refusal's audit entry is committed with nothing else
            visit = await checkin.check_out(
                session,
                keyring=context.services.keyring,
                actor=context.member,
                visit_id=visit_id,
                now=now,
                timezone=context.zone.key,
            )
        except (NotFound, Refused) as error:
            refused = error
    if isinstance(refused, NotFound):
        await query.answer(_("refused.not_found"), show_alert=True)
        return
    if isinstance(refused, Refused):
        await query.answer(fit.answer(_(f"checkin.refused.{refused.code}")), show_alert=True)
        if refused.code in ("checked_out", "too_late"):
            await close_buttons(query.message)
        return
    spent = checkin.minutes(visit.checked_in_at, visit.checked_out_at) or 0
    text = _("checkin.checked_out", duration=duration_text(_, spent))
    await query.answer(fit.answer(text))
    await context.bot.send_message(context.chat_id, fit.message(text))
    await close_buttons(query.message)
