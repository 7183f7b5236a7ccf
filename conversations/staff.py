"""/staff: the company's people by team, and the admins' changes to them (role, team, leave).

Admins see everyone and change anyone; managers read the staff of the teams they lead. Every
view is one message edited in place; every button carries ids and the version of the person it
was built for, never a permission: each press re-loads the person and re-checks, and a change is
asked (`sf:q:…`, naming the person and the change) before it is made (`sf:ok:…`), where storage
re-checks everything again, the version included, so a confirmation gone stale is refused.
Nothing is kept between presses, so a restart between the question and the answer changes
nothing. Team names are typed, so creating and renaming a team are small flows (`team_new`,
`team_rename`) on the runner, with its summary as their confirmation.

Button data (`sf:` …): `l:<page>:<all>` the list, `p:<id>:<page>:<all>` a person, `r:<id>:<v>`
roles to choose, `m:<id>:<v>:<page>` teams to move to, `rt:<id>:<v>:<role>:<page>` a team for a
role that needs one, `at:<id>:<v>:<page>` a team to reactivate into, `q:<id>:<v>:<change>…` the
confirmation, `ok:<id>:<v>:<change>…` the change, `t:<page>` teams, `tv:<team>` a team, `tn` a
new team, `tr:<team>` rename it. A change is `r:<role>[:<team>]`, `m:<team>`, `d` or
`a[:<team>]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import CallbackQuery, InlineKeyboardMarkup, Update

from bot.context import BotContext, Services
from bot.i18n import Translator, pick_language
from conversations import fit, runner
from conversations.callback_data import HANDOVER, STAFF, TEAMS_LED, Press
from conversations.keyboards import Row, button, pager, with_pager
from conversations.messages import replace_page
from conversations.steps import Flow, FlowEnv, Step, Submitted
from storage import audit, outbox, permissions, validation
from storage import handover as handover_store
from storage import staff as staff_store
from storage.errors import Refused
from storage.handover import Holdings
from storage.models import Role, Staff, Team
from storage.staff import StaffChange, StaffChangeKind

PAGE_SIZE = 10  # people per list page
TEAM_PAGE_SIZE = 8  # teams per page of a team choice
PAGE_MAX = 99_999
NAME_LIMIT = 60  # a name in a list line (the person view shows it whole)
TEAM_LIMIT = 40  # a team in a header or a line

# ---------------------------------------------------------------------------------------------
# words: roles, languages, last activity, refusals


def role_name(_: Translator, role: str) -> str:
    return _(f"choice.role.{role}")


def language_name(_: Translator, language: str | None) -> str:
    return _(f"lang.{language}") if language in ("zh", "en") else _("staff.language_auto")


def seen_text(_: Translator, then: datetime | None, now: datetime) -> str:
    """When someone last used the bot, as people say it: "3 days ago"."""
    if then is None:
        return _("staff.seen.never")
    elapsed = now - then
    hours = int(elapsed.total_seconds() // 3600)
    if hours < 1:
        return _("staff.seen.recent")
    if hours < 24:
        return _("staff.seen.hours", n=hours)
    days = elapsed.days
    if days == 1:
        return _("staff.seen.yesterday")
    if days < 60:
        return _("staff.seen.days", n=days)
    return _("staff.seen.date", date=then.date().isoformat())


def status_text(_: Translator, staff: Staff) -> str:
    return _("staff.status.active") if staff.active else _("staff.status.inactive")


REFUSALS = (
    "not_allowed",
    "not_found",
    "stale",
    "self",
    "last_admin",
    "team_required",
    "team_not_found",
    "unchanged",
    "inactive",
    "already_active",
    "already_inactive",
    "invalid_role",
    "team_exists",
    "team_name",
)


def refusal_text(_: Translator, refusal: Refused) -> str:
    code = refusal.code if refusal.code in REFUSALS else "not_allowed"
    return _(f"staff.refused.{code}")


def may_open(member: Staff) -> bool:
    """Who /staff is for: admins, and managers (read-only) for their teams."""
    return permissions.can_manage_staff(member) or permissions.can_view_staff(
        member, member.team_id
    )


# ---------------------------------------------------------------------------------------------
# the list


def _data(*fields: object) -> str:
    return STAFF.data("sf", *fields)


def list_text(_: Translator, listed: staff_store.StaffPage, now: datetime, shows_all: bool) -> str:
    lines: list[fit.Line] = [_("staff.title", count=listed.total)]
    if listed.pages > 1:
        lines.append(_("staff.page", page=listed.page + 1, pages=listed.pages))
    if not listed.entries:
        lines.append(_("staff.empty"))
    header: object = object()
    for person in listed.entries:
        if person.team_id != header:
            header = person.team_id
            team = listed.teams.get(person.team_id) if person.team_id is not None else None
            lines += ["", _team_header(team.name if team else _("staff.no_team"))]
        lines.append(
            (
                "• ",
                fit.Slot(fit.clip(person.display_name, NAME_LIMIT)),
                " · ",
                role_name(_, person.role),
                " · ",
                language_name(_, person.language),
                " · ",
                seen_text(_, person.last_seen_at, now),
                "" if person.active else " · " + status_text(_, person),
            )
        )
    lines += ["", _("staff.list_hint_all" if shows_all else "staff.list_hint")]
    return fit.compose(lines)


def _team_header(name: str) -> fit.Slot:
    return fit.Slot(fit.clip(name, TEAM_LIMIT), lambda value: f"【{value}】")


def list_markup(
    _: Translator, listed: staff_store.StaffPage, shows_all: bool, admin: bool
) -> InlineKeyboardMarkup:
    flag = int(shows_all)
    rows: list[Row] = []
    for person in listed.entries:
        mark = "" if person.active else "⛔ "
        rows.append(
            [
                button(
                    fit.label(mark + person.display_name), _data("p", person.id, listed.page, flag)
                )
            ]
        )
    rows = with_pager(
        rows, pager(listed.page, listed.pages, lambda p: _data("l", p, flag), counter=True)
    )
    toggle = "staff.button.hide_inactive" if shows_all else "staff.button.show_inactive"
    last = [button(_(toggle), _data("l", 0, int(not shows_all)))]
    if admin:
        last.append(button(_("staff.button.teams"), _data("t", 0)))
    rows.append(last)
    return InlineKeyboardMarkup(rows)


async def _list_view(
    context: BotContext, page: int, shows_all: bool
) -> tuple[str, InlineKeyboardMarkup]:
    async with context.reading() as session:
        listed = await staff_store.staff_page(
            session,
            actor=context.member,
            include_inactive=shows_all,
            page=page,
            page_size=PAGE_SIZE,
        )
    admin = permissions.can_manage_staff(context.member)
    now = context.services.clock()
    return list_text(context._, listed, now, shows_all), list_markup(
        context._, listed, shows_all, admin
    )


async def staff_command(update: Update, context: BotContext) -> None:
    """List the staff by team (admins: everyone; managers: their teams)."""
    if not may_open(context.member):
        await context.bot.send_message(context.chat_id, context._("refused.not_allowed"))
        return
    text, markup = await _list_view(context, 0, False)
    await context.bot.send_message(context.chat_id, text, reply_markup=markup)


# ---------------------------------------------------------------------------------------------
# one person


@dataclass(frozen=True)
class PersonView:
    staff: Staff
    team: Team | None
    holdings: Holdings
    handover_id: int | None


async def _person(session: AsyncSession, actor: Staff, staff_id: int) -> PersonView:
    staff = await staff_store.person_for(session, actor=actor, staff_id=staff_id)
    team = await session.get(Team, staff.team_id) if staff.team_id is not None else None
    waiting = await handover_store.open_handover(session, staff_id)
    held = await handover_store.holdings(session, staff_id)
    return PersonView(staff, team, held, waiting.id if waiting else None)


def holdings_lines(_: Translator, held: Holdings) -> list[str]:
    return [
        _(
            "staff.holdings",
            customers=held.customers,
            complaints=held.complaints,
            reviews=held.reviews,
            followups=held.followups,
        )
    ]


def person_text(_: Translator, view: PersonView, now: datetime) -> str:
    staff = view.staff
    lines: list[fit.Line] = [
        (_("staff.person.name"), fit.Slot(staff.display_name)),
        _("staff.person.telegram", id=staff.id, telegram_id=staff.telegram_id),
        _("staff.person.role", role=role_name(_, staff.role)),
        (
            _("staff.person.team"),
            fit.Slot(view.team.name if view.team else _("staff.no_team")),
        ),
        _("staff.person.language", language=language_name(_, staff.language)),
        _("staff.person.seen", seen=seen_text(_, staff.last_seen_at, now)),
        _("staff.person.status", status=status_text(_, staff)),
    ]
    if not view.holdings.empty:
        lines += holdings_lines(_, view.holdings)
    if view.handover_id is not None:
        lines.append(_("staff.person.handover_open"))
    return fit.compose(lines)


def person_markup(
    _: Translator, actor: Staff, view: PersonView, page: int, flag: int
) -> InlineKeyboardMarkup:
    staff, version = view.staff, view.staff.version
    rows: list[Row] = []
    if permissions.can_manage_staff(actor):
        if staff.active:
            rows.append(
                [
                    button(_("staff.button.role"), _data("r", staff.id, version)),
                    button(_("staff.button.move"), _data("m", staff.id, version, 0)),
                ]
            )
            if staff.id != actor.id:
                rows.append(
                    [button(_("staff.button.deactivate"), _data("q", staff.id, version, "d"))]
                )
        else:
            rows.append([button(_("staff.button.reactivate"), _data("q", staff.id, version, "a"))])
        if staff.role == Role.manager:
            rows.append([button(_("staff.button.teams_led"), TEAMS_LED.data("tl", staff.id))])
        if view.handover_id is not None:
            rows.append(
                [button(_("staff.button.handover"), HANDOVER.data("ho", "o", view.handover_id))]
            )
    rows.append([button(_("staff.button.back"), _data("l", page, flag))])
    return InlineKeyboardMarkup(rows)


# ---------------------------------------------------------------------------------------------
# changes: what is asked, what is confirmed


@dataclass(frozen=True)
class Change:
    """A change as buttons carry it: `r` role (+ team), `m` move, `d` deactivate, `a` back."""

    code: str
    role: str | None = None
    team_id: int | None = None

    def fields(self) -> tuple[object, ...]:
        if self.code == "r":
            return ("r", self.role, *(() if self.team_id is None else (self.team_id,)))
        if self.code in ("m", "a") and self.team_id is not None:
            return (self.code, self.team_id)
        return (self.code,)

    @classmethod
    def read(cls, press: Press, start: int) -> Change | None:
        code = press.text(start)
        rest = len(press) - start - 1
        if code == "d" and rest == 0:
            return cls("d")
        if code == "a" and rest in (0, 1):
            team = press.id(start + 1) if rest else None
            return None if rest and team is None else cls("a", team_id=team)
        if code == "m" and rest == 1:
            team = press.id(start + 1)
            return None if team is None else cls("m", team_id=team)
        if code == "r" and rest in (1, 2):
            role = press.text(start + 1)
            team = press.id(start + 2) if rest == 2 else None
            if role not in permissions.ALL_ROLES or (rest == 2 and team is None):
                return None
            return cls("r", role=role, team_id=team)
        return None


def change_text(
    _: Translator, change: Change, staff: Staff, team: Team | None, *, done: bool = False
) -> str:
    """The change in words, naming the person: as the confirmation asks it, or (`done`) as the
    result says it."""
    name = fit.clip(staff.display_name, 200)
    team_name = fit.clip(team.name, TEAM_LIMIT) if team else ""
    role = role_name(_, change.role or "")
    if change.code == "d":
        if done:
            return _("staff.result.deactivate", name=name)
        return _("staff.change.deactivate", name=name)
    if change.code == "a" and team is not None:
        if done:
            return _("staff.result.reactivate_team", name=name, team=team_name)
        return _("staff.change.reactivate_team", name=name, team=team_name)
    if change.code == "a":
        return (
            _("staff.result.reactivate", name=name)
            if done
            else _("staff.change.reactivate", name=name)
        )
    if change.code == "m":
        if done:
            return _("staff.result.move", name=name, team=team_name)
        return _("staff.change.move", name=name, team=team_name)
    if team is not None:
        if done:
            return _("staff.result.role_team", name=name, role=role, team=team_name)
        return _("staff.change.role_team", name=name, role=role, team=team_name)
    if done:
        return _("staff.result.role", name=name, role=role)
    return _("staff.change.role", name=name, role=role)


async def apply_change(
    session: AsyncSession,
    *,
    actor: Staff | None,
    staff_id: int,
    version: int | None,
    change: Change,
) -> StaffChange:
    """The storage call for a change (the bot's and the command line's)."""
    if change.code == "d":
        return await staff_store.deactivate(
            session, actor=actor, staff_id=staff_id, version=version
        )
    if change.code == "a":
        return await staff_store.reactivate(
            session, actor=actor, staff_id=staff_id, version=version, team_id=change.team_id
        )
    if change.code == "m":
        assert change.team_id is not None
        return await staff_store.move_to_team(
            session, actor=actor, staff_id=staff_id, team_id=change.team_id, version=version
        )
    assert change.role is not None
    return await staff_store.change_role(
        session,
        actor=actor,
        staff_id=staff_id,
        role=change.role,
        version=version,
        team_id=change.team_id,
    )


async def queue_notice(session: AsyncSession, services: Services, done: StaffChange) -> None:
    """Tell the person changed, in their language, through the outbox (with the change)."""
    staff = done.staff
    if not staff.active:
        return  # a deactivated person receives nothing more
    _ = Translator(pick_language(staff.language, None, services.settings.DEFAULT_LANGUAGE))
    team = await session.get(Team, staff.team_id) if staff.team_id is not None else None
    team_name = team.name if team else _("staff.no_team")
    if done.kind == StaffChangeKind.reactivate:
        text = _("staff.notice.reactivated", team=team_name)
    elif done.role_changed and done.team_changed:
        text = _("staff.notice.role_team", role=role_name(_, staff.role), team=team_name)
    elif done.role_changed:
        text = _("staff.notice.role", role=role_name(_, staff.role))
    elif done.team_changed:
        text = _("staff.notice.team", team=team_name)
    else:
        return
    await outbox.queue_confirmation(
        session,
        keyring=services.keyring,
        recipient=staff,
        text=fit.message(text),
        markup=None,
        now=services.clock(),
    )


# ---------------------------------------------------------------------------------------------
# buttons


async def _show(
    query: CallbackQuery, context: BotContext, text: str, markup: InlineKeyboardMarkup
) -> None:
    await query.answer()
    if not await replace_page(query.message, text, markup):
        await context.bot.send_message(context.chat_id, text, reply_markup=markup)


async def _refuse(query: CallbackQuery, context: BotContext, refusal: Refused) -> None:
    await query.answer(fit.answer(refusal_text(context._, refusal)), show_alert=True)


async def _expired(query: CallbackQuery, context: BotContext) -> None:
    await query.answer(context._("button.expired"), show_alert=True)


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `sf:` buttons: who may is asked again on every press."""
    query = update.callback_query
    assert query is not None and query.data is not None
    press = STAFF.parse(query.data)
    action = press.text(0) if press is not None else None
    handler = _ACTIONS.get(action or "")
    if press is None or handler is None:
        await _expired(query, context)
        return
    if not may_open(context.member):
        await _refuse(query, context, Refused("not_allowed"))
        return
    if action not in _READS and not permissions.can_manage_staff(context.member):
        await _refuse(query, context, Refused("not_allowed"))
        return
    try:
        await handler(query, context, press)
    except Refused as refusal:
        await _refuse(query, context, refusal)


def _flag(press: Press, index: int) -> int | None:
    """The list's "deactivated shown too" flag: 0 or 1."""
    return press.id(index, maximum=1)


async def _on_list(query: CallbackQuery, context: BotContext, press: Press) -> None:
    page, flag = press.id(1, maximum=PAGE_MAX), _flag(press, 2)
    if page is None or flag is None or len(press) != 3:
        await _expired(query, context)
        return
    await _show(query, context, *await _list_view(context, page, bool(flag)))


async def _on_person(query: CallbackQuery, context: BotContext, press: Press) -> None:
    staff_id, page, flag = press.id(1), press.id(2, maximum=PAGE_MAX), _flag(press, 3)
    if staff_id is None or page is None or flag is None or len(press) != 4:
        await _expired(query, context)
        return
    await _show_person(query, context, staff_id, page, flag)


async def _show_person(
    query: CallbackQuery, context: BotContext, staff_id: int, page: int = 0, flag: int = 0
) -> None:
    async with context.reading() as session:
        view = await _person(session, context.member, staff_id)
    now = context.services.clock()
    await _show(
        query,
        context,
        person_text(context._, view, now),
        person_markup(context._, context.member, view, page, flag),
    )


async def _target(context: BotContext, press: Press) -> tuple[Staff, int] | None:
    """The person and version a change button names, re-read (NotFound if not visible)."""
    staff_id, version = press.id(1), press.id(2)
    if staff_id is None or version is None:
        return None
    async with context.reading() as session:
        staff = await staff_store.person_for(session, actor=context.member, staff_id=staff_id)
    if staff.version != version:
        raise Refused("stale")
    return staff, version


async def _on_roles(query: CallbackQuery, context: BotContext, press: Press) -> None:
    target = await _target(context, press) if len(press) == 3 else None
    if target is None:
        await _expired(query, context)
        return
    staff, version = target
    _ = context._
    buttons: Row = []
    for role in permissions.ALL_ROLES:
        if role == staff.role:
            continue
        if permissions.role_needs_team(role) and staff.team_id is None:
            data = _data("rt", staff.id, version, role, 0)
        else:
            data = _data("q", staff.id, version, "r", role)
        buttons.append(button(role_name(_, role), data))
    rows = [buttons, [button(_("staff.button.back"), _data("p", staff.id, 0, 0))]]
    text = fit.compose(
        [_("staff.choose_role", role=role_name(_, staff.role)), fit.Slot(staff.display_name)]
    )
    await _show(query, context, text, InlineKeyboardMarkup(rows))


async def _team_choice(
    query: CallbackQuery,
    context: BotContext,
    staff: Staff,
    *,
    prompt: str,
    page: int,
    page_data: Any,
    choose: Any,
) -> None:
    """A page of teams to choose from (the person's own left out)."""
    async with context.reading() as session:
        every = [t for t in await staff_store.teams(session) if t.id != staff.team_id]
    pages = max(1, -(-len(every) // TEAM_PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    shown = every[page * TEAM_PAGE_SIZE : (page + 1) * TEAM_PAGE_SIZE]
    _ = context._
    rows: list[Row] = [[button(fit.label(t.name), choose(t.id))] for t in shown]
    rows = with_pager(rows, pager(page, pages, page_data, counter=True))
    rows.append([button(_("staff.button.back"), _data("p", staff.id, 0, 0))])
    lines: list[fit.Line] = [prompt, fit.Slot(staff.display_name)]
    if not every:
        lines.append(_("staff.no_other_team"))
    await _show(query, context, fit.compose(lines), InlineKeyboardMarkup(rows))


async def _on_move_teams(query: CallbackQuery, context: BotContext, press: Press) -> None:
    page = press.id(3, maximum=PAGE_MAX)
    target = await _target(context, press) if len(press) == 4 and page is not None else None
    if target is None or page is None:
        await _expired(query, context)
        return
    staff, version = target
    await _team_choice(
        query,
        context,
        staff,
        prompt=context._("staff.choose_team_move"),
        page=page,
        page_data=lambda p: _data("m", staff.id, version, p),
        choose=lambda team_id: _data("q", staff.id, version, "m", team_id),
    )


async def _on_role_teams(query: CallbackQuery, context: BotContext, press: Press) -> None:
    role, page = press.text(3), press.id(4, maximum=PAGE_MAX)
    ok = len(press) == 5 and role in permissions.ALL_ROLES and page is not None
    target = await _target(context, press) if ok else None
    if target is None or page is None or role is None:
        await _expired(query, context)
        return
    staff, version = target
    await _team_choice(
        query,
        context,
        staff,
        prompt=context._("staff.choose_team_role", role=role_name(context._, role)),
        page=page,
        page_data=lambda p: _data("rt", staff.id, version, role, p),
        choose=lambda team_id: _data("q", staff.id, version, "r", role, team_id),
    )


async def _on_reactivate_teams(query: CallbackQuery, context: BotContext, press: Press) -> None:
    page = press.id(3, maximum=PAGE_MAX)
    target = await _target(context, press) if len(press) == 4 and page is not None else None
    if target is None or page is None:
        await _expired(query, context)
        return
    await _reactivation_teams(query, context, *target, page)


async def _reactivation_teams(
    query: CallbackQuery, context: BotContext, staff: Staff, version: int, page: int
) -> None:
    await _team_choice(
        query,
        context,
        staff,
        prompt=context._("staff.choose_team_reactivate"),
        page=page,
        page_data=lambda p: _data("at", staff.id, version, p),
        choose=lambda team_id: _data("q", staff.id, version, "a", team_id),
    )


async def _on_question(query: CallbackQuery, context: BotContext, press: Press) -> None:
    """Ask before a change, naming the person and the change."""
    change = Change.read(press, 3)
    target = await _target(context, press) if change is not None else None
    if target is None or change is None:
        await _expired(query, context)
        return
    staff, version = target
    _ = context._
    team_id = change.team_id
    if change.code == "a" and team_id is None:
        usable = staff.team_id is not None or not permissions.role_needs_team(staff.role)
        if not usable:  # their team no longer makes sense: ask for one first
            await _reactivation_teams(query, context, staff, version, 0)
            return
        team_id = staff.team_id
    async with context.reading() as session:
        team = await session.get(Team, team_id) if team_id is not None else None
    if team_id is not None and team is None:
        raise Refused("team_not_found")
    shown_team = team if change.code != "r" or change.team_id is not None else None
    lines: list[fit.Line] = [
        fit.Slot(change_text(_, change, staff, shown_team)),
        "",
        _("staff.confirm_hint"),
    ]
    rows: list[Row] = [
        [
            button(_("staff.button.confirm"), _data("ok", staff.id, version, *change.fields())),
            button(_("staff.button.cancel"), _data("p", staff.id, 0, 0)),
        ]
    ]
    if change.code == "a":
        rows.append([button(_("staff.button.other_team"), _data("at", staff.id, version, 0))])
    await _show(query, context, fit.compose(lines), InlineKeyboardMarkup(rows))


async def _on_confirm(query: CallbackQuery, context: BotContext, press: Press) -> None:
    """Make the change; storage checks everything again (the version too)."""
    change = Change.read(press, 3)
    staff_id, version = press.id(1), press.id(2)
    if change is None or staff_id is None or version is None:
        await _expired(query, context)
        return
    _ = context._
    services = context.services
    try:
        async with context.unit_of_work() as session:
            done = await apply_change(
                session, actor=context.member, staff_id=staff_id, version=version, change=change
            )
            await queue_notice(session, services, done)
            held = await handover_store.holdings(session, staff_id) if done.handover else None
            team = await session.get(Team, done.staff.team_id) if done.staff.team_id else None
            queued = outbox.queued_in(session)
    except Refused as refusal:
        async with context.unit_of_work() as session:
            await audit.record(
                session,
                action="staff.refused",
                actor_staff_id=context.member.id,
                actor_telegram_id=context.member.telegram_id,
                entity="staff",
                entity_id=staff_id,
                detail={"change": change.code, "reason": refusal.code},
            )
        await _refuse(query, context, refusal)
        return
    await context.send_queued(queued)
    await context.refresh_menu(done.staff.telegram_id)  # their menu follows the new role
    shown_team = team if change.code != "d" else None
    lines: list[fit.Line] = [fit.Slot(change_text(_, change, done.staff, shown_team, done=True))]
    rows: list[Row] = []
    if done.handover is not None and held is not None:
        lines += ["", _("staff.handover_opened"), *holdings_lines(_, held)]
        rows.append(
            [button(_("staff.button.handover"), HANDOVER.data("ho", "o", done.handover.id))]
        )
    rows.append([button(_("staff.button.back_person"), _data("p", staff_id, 0, 0))])
    await _show(query, context, fit.compose(lines), InlineKeyboardMarkup(rows))


# teams


async def _on_teams(query: CallbackQuery, context: BotContext, press: Press) -> None:
    page = press.id(1, maximum=PAGE_MAX)
    if page is None or len(press) != 2:
        await _expired(query, context)
        return
    _ = context._
    async with context.reading() as session:
        every = await staff_store.teams(session)
    pages = max(1, -(-len(every) // TEAM_PAGE_SIZE))
    page = min(page, pages - 1)
    shown = every[page * TEAM_PAGE_SIZE : (page + 1) * TEAM_PAGE_SIZE]
    rows: list[Row] = [[button(fit.label(t.name), _data("tv", t.id))] for t in shown]
    rows = with_pager(rows, pager(page, pages, lambda p: _data("t", p), counter=True))
    rows.append(
        [
            button(_("staff.button.new_team"), _data("tn")),
            button(_("staff.button.back"), _data("l", 0, 0)),
        ]
    )
    text = _("staff.teams_title", count=len(every)) if every else _("staff.teams_none")
    await _show(query, context, text, InlineKeyboardMarkup(rows))


async def _on_team(query: CallbackQuery, context: BotContext, press: Press) -> None:
    team_id = press.id(1)
    if team_id is None or len(press) != 2:
        await _expired(query, context)
        return
    _ = context._
    async with context.reading() as session:
        team = await session.get(Team, team_id)
        if team is None:
            raise Refused("not_found")
        members = await staff_store.staff_page(
            session, actor=context.member, team_id=team_id, page_size=1
        )
    text = fit.compose(
        [(_("staff.team.name"), fit.Slot(team.name)), _("staff.team.members", count=members.total)]
    )
    rows = [
        [button(_("staff.button.rename"), _data("tr", team_id))],
        [button(_("staff.button.back"), _data("t", 0))],
    ]
    await _show(query, context, text, InlineKeyboardMarkup(rows))


async def _on_new_team(query: CallbackQuery, context: BotContext, press: Press) -> None:
    if len(press) != 1:
        await _expired(query, context)
        return
    await query.answer()
    await runner.start(_update_of(query), context, TEAM_NEW)


async def _on_rename_team(query: CallbackQuery, context: BotContext, press: Press) -> None:
    team_id = press.id(1)
    if team_id is None or len(press) != 2:
        await _expired(query, context)
        return
    await query.answer()
    await runner.start(_update_of(query), context, TEAM_RENAME, initial={"team_id": team_id})


def _update_of(query: CallbackQuery) -> Update:
    """The press as an update for the runner, which reads the chat from it."""
    return Update(update_id=0, callback_query=query)


_READS = frozenset({"l", "p"})
_ACTIONS = {
    "l": _on_list,
    "p": _on_person,
    "r": _on_roles,
    "m": _on_move_teams,
    "rt": _on_role_teams,
    "at": _on_reactivate_teams,
    "q": _on_question,
    "ok": _on_confirm,
    "t": _on_teams,
    "tv": _on_team,
    "tn": _on_new_team,
    "tr": _on_rename_team,
}


# ---------------------------------------------------------------------------------------------
# typed team names: two small flows, whose summary is the confirmation


def _team_name(value: str, env: FlowEnv) -> str:
    checked = validation.text(value, max_len=staff_store.MAX_NAME)
    return " ".join(checked.split())


async def _create_team(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    team = await staff_store.create_team(session, actor=env.staff, name=data["team_name"])
    return Submitted(env._("staff.team_created", team=fit.clip(team.name, staff_store.MAX_NAME)))


async def _prepare_rename(
    env: FlowEnv, session: AsyncSession, initial: dict[str, Any]
) -> dict[str, Any] | None:
    """Only an admin renames, only a team that exists; the name seen now is the one expected."""
    team_id = initial.get("team_id")
    if not permissions.can_manage_staff(env.staff) or not isinstance(team_id, int):
        return None
    team = await session.get(Team, team_id)
    if team is None:
        return None
    return {"team_id": team.id, "team_current": team.name}


def _rename_prompt(env: FlowEnv, data: dict[str, Any]) -> dict[str, object]:
    return {"team": fit.clip(str(data.get("team_current", "")), staff_store.MAX_NAME)}


async def _renaming(
    env: FlowEnv, session: AsyncSession, value: Any, data: dict[str, Any]
) -> list[str]:
    """The summary names the change: the old name and the new."""
    old = fit.clip(str(data.get("team_current", "")), TEAM_LIMIT)
    return [env._("staff.team_renaming", old=old, new=fit.clip(str(value), TEAM_LIMIT))]


async def _rename_team(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    team = await staff_store.rename_team(
        session,
        actor=env.staff,
        team_id=int(data["team_id"]),
        name=data["team_name"],
        expected_name=data.get("team_current"),
    )
    return Submitted(env._("staff.team_renamed", team=fit.clip(team.name, staff_store.MAX_NAME)))


async def _prepare_new(
    env: FlowEnv, session: AsyncSession, initial: dict[str, Any]
) -> dict[str, Any] | None:
    return {} if permissions.can_manage_staff(env.staff) else None


TEAM_NEW = runner.register(
    Flow(
        name="team_new",
        steps=(Step("team_name", required=True, parse=_team_name),),
        submit=_create_team,
        prepare=_prepare_new,
    )
)
TEAM_RENAME = runner.register(
    Flow(
        name="team_rename",
        steps=(
            Step(
                "team_name",
                required=True,
                parse=_team_name,
                prompt_values=_rename_prompt,
                check=_renaming,
            ),
        ),
        submit=_rename_team,
        prepare=_prepare_rename,
    )
)
