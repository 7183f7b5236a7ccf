"""拜访记录 (/visit): log a visit with location, notes, next step and attachments.

Started by /visit (the customer is asked) or by the customer card's `cv:<customer_id>` button;
`cvl:<customer_id>` lists the customer's visits, newest first, a page at a time, and each visit's
location and attachments can be sent again by their Telegram file ids.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest

from bot.context import BotContext
from bot.i18n import LANGUAGES, Translator, translate
from conversations import checkin as checkin_view
from conversations import fit, pick_customer, runner
from conversations import steps as s
from conversations.callback_data import VISIT
from conversations.keyboards import button
from conversations.life_cycle import read_only
from conversations.lists import ListPage, show_records_page
from conversations.steps import Flow, FlowEnv, Kind, Option, Step, Submitted
from storage import fields as catalogue
from storage import visits
from storage.errors import NotFound, Refused
from storage.models import Attachment, RecordStatus, Staff, Stage, Visit, VisitKind

log = logging.getLogger(__name__)
NO_CHANGE = "none"
PAGE_SIZE = 5
NOTE_LIMIT = 300  # UTF-16 units of each note shown in the list; "full text" shows the rest
NOTE_FIELDS = catalogue.fields_at(catalogue.Record.visit, catalogue.Place.notes)


# ---------------------------------------------------------------------------------------------
# time: the user's zone, typed moments, how they are shown


def zone(staff: Staff, env_timezone: str) -> ZoneInfo:
    return ZoneInfo(staff.timezone or env_timezone)


def env_zone(env: FlowEnv) -> ZoneInfo:
    return zone(env.staff, env.services.settings.TIMEZONE)


def local_text(moment: datetime, tz: ZoneInfo) -> str:
    """How a moment is shown to people: their local date and time to the minute."""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


@cache
def _now_words() -> frozenset[str]:
    """Words meaning "now" in any language: a Chinese speaker may type `now` too."""
    words: set[str] = set()
    for language in LANGUAGES:
        words |= {w.strip().casefold() for w in translate(language, "visit.now_words").split(",")}
    return frozenset(words - {""})


def moment(value: str, env: FlowEnv) -> str | None:
    """Parse a typed time (None for "now"), kept as local ISO text so the draft can hold it."""
    if value.strip().casefold() in _now_words():
        return None
    now = env.services.clock().astimezone(env_zone(env))
    return visits.parse_moment(value, now=now).isoformat(timespec="minutes")


def show_moment(value: Any, _: Translator) -> Any:
    return str(value)[:16].replace("T", " ")


def now_default(env: FlowEnv, data: dict[str, Any]) -> str:
    return env._("visit.now")


# ---------------------------------------------------------------------------------------------
# the customer's class and stage, kept in the draft for the defaults


async def remember_customer(
    env: FlowEnv, session: AsyncSession, value: Any, data: dict[str, Any]
) -> list[str]:
    """Keep the chosen customer's class and stage beside the answers; warn if archived."""
    found = await visits.visit_customer(session, actor=env.staff, customer_id=int(value))
    if found is None:
        data.pop("_customer", None)
        return []
    data["_customer"] = {"class": found.customer_class, "stage": found.stage}
    if found.status == RecordStatus.archived:
        return [env._("visit.customer_archived")]
    return []


async def prepare(
    env: FlowEnv, session: AsyncSession, initial: dict[str, Any]
) -> dict[str, Any] | None:
    """Check a customer given by a card button, as the picker would."""
    prepared = await pick_customer.prepare_customer(env, session, initial)
    if prepared and "customer_id" in prepared:
        await remember_customer(env, session, prepared["customer_id"], prepared)
    return prepared


def _followup_default(env: FlowEnv, data: dict[str, Any]) -> str:
    customer_class = (data.get("_customer") or {}).get("class")
    cycles = env.services.settings.followup_cycles
    return visits.followup_default(customer_class, env.today, cycles).isoformat()


def _followup_hint(env: FlowEnv, data: dict[str, Any]) -> dict[str, object]:
    return {"default": _followup_default(env, data)}


async def stage_options(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> list[Option]:
    """ "No change" (naming the current stage) first, then every other stage."""
    current = (data.get("_customer") or {}).get("stage")
    if current:
        keep = env._("visit.stage_keep", stage=env._(f"choice.stage.{current}"))
    else:
        keep = env._("choice.stage_change.none")
    options = [Option(NO_CHANGE, keep, translate=False)]
    options += [
        Option(stage, f"choice.stage_change.{stage}") for stage in Stage if stage != current
    ]
    return options


def _no_change(env: FlowEnv, data: dict[str, Any]) -> str:
    return env._("choice.stage_change.none")


STEPS = (
    dataclasses.replace(pick_customer.customer_step(), check=remember_customer),
    Step("visit_kind", Kind.CHOICE, required=True, choices=tuple(VisitKind)),
    Step(
        "visited_at",
        parse=moment,
        example="example.visited_at",
        display=show_moment,
        default=now_default,
    ),
    Step("location", Kind.LOCATION, check=checkin_view.visit_location_checked),
    Step("purpose", parse=s.text(visits.TEXT_LIMITS["purpose"])),
    Step("discussion", parse=s.text(visits.TEXT_LIMITS["discussion"])),
    Step("needs_feedback", parse=s.text(visits.TEXT_LIMITS["needs_feedback"])),
    Step("outcome", parse=s.text(visits.TEXT_LIMITS["outcome"])),
    Step(
        "stage_change",
        Kind.CHOICE,
        options=stage_options,
        columns=1,
        default=_no_change,
        skip_button=False,  # "No change" is its skip
    ),
    Step(
        "next_followup_on",
        parse=s.future_date,
        example="example.date",
        prompt_values=_followup_hint,
        default=_followup_default,
    ),
    Step("attachments", Kind.MEDIA),
)


async def submit(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    """Save the visit; the customer's dates (and stage) follow in the same transaction."""
    customer_id = int(data["customer_id"])
    stage = data.get("stage_change")
    values = {
        "kind": data.get("visit_kind"),
        "visited_at": data.get("visited_at"),
        "location": data.get("location"),
        "purpose": data.get("purpose"),
        "discussion": data.get("discussion"),
        "needs_feedback": data.get("needs_feedback"),
        "outcome": data.get("outcome"),
        "stage_change": None if stage in (None, NO_CHANGE) else stage,
        "next_followup_on": data.get("next_followup_on"),
        "attachments": data.get("attachments") or [],
        "checked_in_at": checkin_view.checked_in_at(data),
    }
    radius = env.services.settings.CHECKIN_RADIUS_M
    try:
        logged = await visits.record_visit(
            session,
            keyring=env.services.keyring,
            actor=env.staff,
            customer_id=customer_id,
            values=values,
            now=env.services.clock(),
            timezone=env_zone(env).key,
            followup_cycles=env.services.settings.followup_cycles,
            checkin_radius_m=radius,
        )
    except NotFound:  # no longer the user's customer (handed over meanwhile): audited
        return Submitted(env._("refused.not_found"))
    except Refused as refusal:
        if refusal.code == "archived":
            return Submitted(env._("visit.customer_archived"))
        raise
    _ = env._
    visit, customer = logged.visit, logged.customer
    lines = [
        _(
            "visit.saved",
            customer=f"{customer.name} · {customer.customer_no}",
            when=local_text(visit.visited_at, env_zone(env)),
        )
    ]
    if visit.stage_change:
        lines.append(_("visit.saved_stage", stage=_(f"choice.stage.{visit.stage_change}")))
    if visit.next_followup_on:
        lines.append(_("visit.saved_followup", date=visit.next_followup_on.isoformat()))
    if logged.placed_customer:
        lines.append(_("checkin.customer_placed"))
    lines += checkin_view.visit_lines(_, visit, radius, env_zone(env))
    rows = [
        [InlineKeyboardButton(_("visit.button.list"), callback_data=VISIT.data("cvl", customer_id))]
    ]
    if visit.checked_in_at is not None and visit.id is not None:
        rows.insert(0, [checkin_view.check_out_button(_, visit.id)])
    markup = InlineKeyboardMarkup(rows)
    return Submitted("\n".join(lines), markup=markup)


FLOW = runner.register(Flow(name="visit", steps=STEPS, submit=submit, prepare=prepare))


# ---------------------------------------------------------------------------------------------
# handlers


async def start_command(update: Update, context: BotContext) -> None:
    """Start logging a visit; the first question is which customer."""
    await runner.start(update, context, FLOW)


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `cv:` (log a visit for a customer) and `cvl:` (list its visits)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    press = VISIT.parse(query.data)
    customer_id = press.id(0) if press is not None else None
    if press is None or customer_id is None or len(press) > 2:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    if press.prefix == "cv":
        if len(press) != 1:
            await query.answer(context._("button.expired"), show_alert=True)
            return
        if await read_only(context, customer_id):  # its card from before it was archived
            await query.answer(context._("visit.customer_archived"), show_alert=True)
            return
        await query.answer()
        await runner.start(update, context, FLOW, initial={"customer_id": customer_id})
        return
    arg = press.text(1) or "p0"
    tag = arg[:1]
    number = press.id(1, tag=tag) if len(press) == 2 else 0
    if tag not in ("p", "a", "t") or number is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    if tag == "a":
        await _resend(update, context, number)
    elif tag == "t":
        await _full_text(update, context, number)
    else:
        await _list(update, context, customer_id, number, edit=len(press) == 2)


def _visit_lines(
    _: Translator, n: int, visit: Visit, name: str, files: int, tz: ZoneInfo, radius: int
) -> list[fit.Line]:
    """A visit as the list shows it: its notes are slots, cut to fit the page."""
    lines: list[fit.Line] = [
        _(
            "visit.list.entry",
            n=n,
            when=local_text(visit.visited_at, tz),
            kind=_(f"choice.visit_kind.{visit.kind}"),
            by=name,
        )
    ]
    for field in NOTE_FIELDS:
        text = getattr(visit, field)
        if text:
            lines.append((f"   {_(f'field.{field}')}: ", fit.Slot(text)))
    if visit.stage_change:
        lines.append(f"   {_('field.stage_change')}: {_(f'choice.stage.{visit.stage_change}')}")
    if visit.next_followup_on:
        lines.append(f"   {_('field.next_followup_on')}: {visit.next_followup_on.isoformat()}")
    extras = []
    if visit.latitude is not None and visit.longitude is not None:
        extras.append(f"📍 {visit.latitude:.5f}, {visit.longitude:.5f}")
    if files:
        extras.append(_("visit.list.files", count=files))
    if extras:
        lines.append("   " + "  ".join(extras))
    lines += [f"   {line}" for line in checkin_view.visit_lines(_, visit, radius, tz)]
    return lines


def _cut(visit: Visit, cap: int | None) -> bool:
    """Whether the list showed only the start of one of the visit's notes."""
    return cap is not None and any(fit.units(getattr(visit, f) or "") > cap for f in NOTE_FIELDS)


async def _list(
    update: Update, context: BotContext, customer_id: int, page: int, *, edit: bool
) -> None:
    """Show one page of a customer's visits, with a button per visit that has files."""
    query = update.callback_query
    assert query is not None
    await show_records_page(
        query,
        context,
        visits.visits_of,
        _page,
        customer_id=customer_id,
        page=page,
        page_size=PAGE_SIZE,
        edit=edit,
    )


def _page(context: BotContext, found: visits.VisitPage) -> ListPage:
    """The visits of one page, notes cut to fit, and buttons for the whole notes and files."""
    _, tz, customer_id = context._, context.zone, found.customer.id
    customer = found.customer
    lines: list[fit.Line] = [
        _("visit.list.title", customer=customer.name, number=customer.customer_no)
    ]
    if not found.entries:
        lines.append(_("visit.list.empty"))
    first = found.page * found.page_size
    for n, entry in enumerate(found.entries, start=first + 1):
        lines += [
            "",
            *_visit_lines(
                _,
                n,
                entry.visit,
                entry.salesperson_name,
                entry.attachments,
                tz,
                context.services.settings.CHECKIN_RADIUS_M,
            ),
        ]
    pages = -(-found.total // PAGE_SIZE)
    if found.total:
        lines.append("")
        lines.append(_("visit.list.page", page=found.page + 1, pages=pages))
    text, cap = fit.fitted(lines, ceiling=NOTE_LIMIT)
    entries: list[InlineKeyboardButton] = []
    for n, entry in enumerate(found.entries, start=first + 1):
        visit = entry.visit
        if _cut(visit, cap):
            entries.append(
                button(_("visit.button.full", n=n), VISIT.data("cvl", customer_id, f"t{visit.id}"))
            )
        if entry.attachments or visit.latitude is not None:
            entries.append(
                button(_("visit.button.files", n=n), VISIT.data("cvl", customer_id, f"a{visit.id}"))
            )
    return ListPage(
        text,
        found.page,
        pages,
        lambda p: VISIT.data("cvl", customer_id, f"p{p}"),
        entries,
        width=3,
        last_row=[button(_("visit.button.log"), VISIT.data("cv", customer_id))],
    )


async def _pressed_visit(
    update: Update, context: BotContext, visit_id: int
) -> tuple[Visit, list[Attachment]] | None:
    """The pressed visit and its attachments, the press answered; None (refused) if not visible."""
    query = update.callback_query
    assert query is not None
    async with context.unit_of_work() as session:
        found = await visits.visit_attachments(session, actor=context.member, visit_id=visit_id)
    if found is None:
        await query.answer(context._("refused.not_found"), show_alert=True)
        return None
    await query.answer()
    return found


async def _full_text(update: Update, context: BotContext, visit_id: int) -> None:
    """Send a visit with every note whole, in as many messages as it takes."""
    found = await _pressed_visit(update, context, visit_id)
    if found is None:
        return
    _, visit = context._, found[0]
    tz = context.zone
    lines = [_("visit.full.title", when=local_text(visit.visited_at, tz))]
    for field in NOTE_FIELDS:
        text = getattr(visit, field)
        if text:
            lines += ["", f"{_(f'field.{field}')}:", text]
    for piece in fit.split("\n".join(lines)):
        await context.bot.send_message(context.chat_id, piece)


async def _resend(update: Update, context: BotContext, visit_id: int) -> None:
    """Send a visit's location and attachments again, by Telegram file id."""
    found = await _pressed_visit(update, context, visit_id)
    if found is None:
        return
    _, (visit, attachments) = context._, found
    chat_id = context.chat_id
    tz = context.zone
    when = local_text(visit.visited_at, tz)
    if visit.latitude is not None and visit.longitude is not None:
        await context.bot.send_location(
            chat_id,
            latitude=visit.latitude,
            longitude=visit.longitude,
            horizontal_accuracy=visit.accuracy_m,
        )
    failed = 0
    senders = {
        "photo": context.bot.send_photo,
        "document": context.bot.send_document,
        "voice": context.bot.send_voice,
    }
    for n, attachment in enumerate(attachments, start=1):
        caption = fit.caption(_("visit.attachment_caption", when=when, n=n, total=len(attachments)))
        send = senders.get(attachment.kind)
        try:
            if send is None:
                raise BadRequest(f"unknown attachment kind {attachment.kind}")
            await send(chat_id, attachment.file_id, caption=caption)
        except BadRequest:  # a file Telegram no longer has (or a kind we cannot send)
            log.warning("attachment %s of visit %s could not be resent", attachment.id, visit.id)
            failed += 1
    if failed:
        await context.bot.send_message(chat_id, _("visit.attachments_failed", count=failed))
