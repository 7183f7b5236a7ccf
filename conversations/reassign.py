"""Reassigning customers in post (在职继承), from a customer's card or a selection from /my.

The card's "Reassign" (`ra:o:<customer>`) and /my's "Select to reassign" (`ra:m:<page>`) lead
here. A selection is ticked customer by customer (`ra:t:<customer>:<page>`, ✅ marks), turns
pages (`ra:m:<page>`) and is kept in the database (storage.reassign's picks), so it survives
page turns and restarts. Then the same steps for one customer (target `c<id>`) or the
selection (target `s`): a team (`ra:T:<target>:<page>`, when the actor may give customers to
more than one team, as an admin may), a person (`ra:p:<target>:<team>:<page>`), a confirmation
naming the customer(s), their owner(s) and the new owner (`ra:k:<target>:<person>`), and the
move (`ra:y:<target>:<person>:<stamp>`). `ra:q` cancels, `ra:x` clears the selection.

The stamp is what the actor saw: one customer's owner, or the selection's digest. One customer
that changed hands meanwhile is refused whole (nothing else was asked). A selection moves
every customer that still may go and names the ones skipped, with why: a bulk move should not
fail for one customer someone else moved, and the actor learns exactly which did not go. A
selection changed in another message since its confirmation was shown is not confirmed unseen.

Every press re-checks the actor, the customer(s) and the new owner in storage.reassign; a
refused press that button data could forge (another team's customer or person) is audited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.context import BotContext
from bot.i18n import Translator, has_message, pick_language
from conversations import fit
from conversations.callback_data import CARD, FIND, REASSIGN, Press, parse_id
from conversations.find import PAGE_MAX, PAGE_SIZE, my_label, my_markup, my_text
from conversations.keyboards import Row, button, pager, with_pager
from conversations.messages import close_buttons, edit_quietly
from storage import cards, outbox
from storage import reassign as store
from storage.errors import Refused
from storage.models import Staff, Team
from storage.permissions import view_scope
from storage.reassign import Brief, Reassigned, Skip, Skipped

CHOICE_PAGE_SIZE = 8
FIRST_FEW = 5  # customers a batch's texts name; the rest are counted
SKIPPED_SHOWN = 20
NAME_LIMIT = 60  # a customer's or person's name inside a sentence
# refusals a forged button can cause: audited, as a refused look at a card is
AUDITED = frozenset({Skip.gone, Skip.not_allowed, "successor"})
SELECTION = "s"


class _Expired(Exception):
    """Button data that is not one of ours (forged, or from an older version)."""


@dataclass(frozen=True)
class Target:
    """What is being reassigned: one customer, or the actor's selection."""

    customer_id: int | None

    @property
    def code(self) -> str:
        return SELECTION if self.customer_id is None else f"c{self.customer_id}"

    @classmethod
    def parse(cls, text: str | None) -> Target:
        if text == SELECTION:
            return cls(None)
        customer_id = parse_id(text[1:]) if text and text.startswith("c") else None
        if customer_id is None:
            raise _Expired
        return cls(customer_id)


def _name(text: str) -> str:
    return fit.clip(text, NAME_LIMIT)


def _customer_line(brief: Brief) -> str:
    return f"• {_name(brief.name)} ({brief.customer_no})"


def _listed(_: Translator, briefs: Sequence[Brief]) -> list[str]:
    """The first few customers, one a line, and how many more."""
    lines = [_customer_line(b) for b in briefs[:FIRST_FEW]]
    if len(briefs) > FIRST_FEW:
        lines.append(_("reassign.more", count=len(briefs) - FIRST_FEW))
    return lines


def _person(_: Translator, staff: Staff | None) -> str:
    return _name(staff.display_name) if staff is not None else _("card.history.someone")


def _role(_: Translator, role: str) -> str:
    return _(f"reassign.role.{role}")


def refusal_text(_: Translator, refusal: Refused) -> str:
    key = f"reassign.refused.{refusal.code}"
    if not has_message(key):
        return _("refused.not_found")
    values: dict[str, object] = {
        "limit": store.SELECTION_MAX,
        "owner": _("card.history.someone"),
        **{k: _name(str(v)) for k, v in refusal.details.items()},
    }
    return _(key, **values)


def _skip_reason(_: Translator, skipped: Skipped) -> str:
    return _(f"reassign.skip.{skipped.reason}")


def _skipped_lines(_: Translator, skipped: Sequence[Skipped]) -> list[str]:
    if not skipped:
        return []
    lines = ["", _("reassign.skipped", count=len(skipped))]
    for item in skipped[:SKIPPED_SHOWN]:
        what = (
            f"{_name(item.customer.name)} ({item.customer.customer_no})"
            if item.customer is not None
            else _("reassign.skip.unseen")
        )
        lines.append(f"• {what}: {_skip_reason(_, item)}")
    if len(skipped) > SKIPPED_SHOWN:
        lines.append(_("reassign.more", count=len(skipped) - SKIPPED_SHOWN))
    return lines


def _cancel_button(_: Translator) -> InlineKeyboardButton:
    return button(_("reassign.button.cancel"), REASSIGN.data("ra", "q"))


# ---------------------------------------------------------------------------------------------
# choosing the new owner


async def _subject(
    session: AsyncSession, context: BotContext, target: Target
) -> tuple[str, int | None]:
    """The first line of each step (what is being reassigned), and whom to leave out of the
    candidates (one customer's present owner)."""
    _ = context._
    actor = context.member
    if target.customer_id is not None:
        customer = await store.reassignable(session, actor=actor, customer_id=target.customer_id)
        owner = await session.get(Staff, customer.owner_id)
        line = _(
            "reassign.subject_one",
            name=_name(customer.name),
            number=customer.customer_no,
            owner=_person(_, owner),
        )
        return line, customer.owner_id
    selection = await store.picks(session, actor=actor)
    if not selection:
        raise Refused("selection_empty")
    return _("reassign.subject_many", count=len(selection)), None


async def _choice(
    context: BotContext, target: Target, team_id: int | None, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    """The team list (if there is a choice of teams) or a team's people, one page."""
    _ = context._
    actor = context.member
    async with context.reading() as session:
        subject, exclude = await _subject(session, context, target)
        teams = await store.teams_for(
            session,
            actor=actor,
            exclude_staff_id=exclude,
            page=page if team_id is None else 0,
            page_size=CHOICE_PAGE_SIZE,
        )
        if teams.total == 0:
            return fit.message(f"{subject}\n\n{_('reassign.nobody')}"), InlineKeyboardMarkup(
                [[_cancel_button(_)]]
            )
        if team_id is None and teams.total > 1:
            return _teams_view(_, target, subject, teams)
        if team_id is None:
            team_id, page = teams.teams[0].team.id or 0, page
        people = await store.candidates(
            session,
            actor=actor,
            team_id=team_id,
            exclude_staff_id=exclude,
            page=page,
            page_size=CHOICE_PAGE_SIZE,
        )
    lines = [
        subject,
        "",
        _("reassign.choose_person", team=_name(people.team.name)),
    ]
    if not people.people:
        lines.append(_("reassign.nobody_in_team"))
    if people.pages > 1:
        lines.append(_("find.page", page=people.page + 1, pages=people.pages))
    rows: list[Row] = [
        [
            button(
                fit.label(f"{p.name} · {_role(_, p.role)}"),
                REASSIGN.data("ra", "k", target.code, p.id),
            )
        ]
        for p in people.people
    ]
    rows = with_pager(
        rows,
        pager(
            people.page,
            people.pages,
            lambda n: REASSIGN.data("ra", "p", target.code, team_id, n),
            counter=True,
        ),
    )
    last = [_cancel_button(_)]
    if teams.total > 1:
        last.insert(0, button(_("reassign.button.teams"), REASSIGN.data("ra", "T", target.code, 0)))
    rows.append(last)
    return fit.message("\n".join(lines)), InlineKeyboardMarkup(rows)


def _teams_view(
    _: Translator, target: Target, subject: str, teams: store.TeamPage
) -> tuple[str, InlineKeyboardMarkup]:
    lines = [subject, "", _("reassign.choose_team")]
    if teams.pages > 1:
        lines.append(_("find.page", page=teams.page + 1, pages=teams.pages))
    rows: list[Row] = [
        [
            button(
                fit.label(f"{choice.team.name} ({choice.people})"),
                REASSIGN.data("ra", "p", target.code, choice.team.id, 0),
            )
        ]
        for choice in teams.teams
    ]
    rows = with_pager(
        rows,
        pager(
            teams.page,
            teams.pages,
            lambda n: REASSIGN.data("ra", "T", target.code, n),
            counter=True,
        ),
    )
    rows.append([_cancel_button(_)])
    return fit.message("\n".join(lines)), InlineKeyboardMarkup(rows)


# ---------------------------------------------------------------------------------------------
# the confirmation


async def _team_name(session: AsyncSession, team_id: int | None) -> str:
    team = await session.get(Team, team_id) if team_id is not None else None
    return _name(team.name) if team is not None else ""


async def _confirmation(
    context: BotContext, target: Target, staff_id: int
) -> tuple[str, InlineKeyboardMarkup]:
    _ = context._
    actor = context.member
    async with context.reading() as session:
        if target.customer_id is not None:
            customer = await store.reassignable(
                session, actor=actor, customer_id=target.customer_id
            )
            seen = {target.customer_id: customer.owner_id}
        else:
            seen = await store.picks(session, actor=actor)
            if not seen:
                raise Refused("selection_empty")
        plan = await store.preview(session, actor=actor, to_staff_id=staff_id, seen=seen)
        team = await _team_name(session, plan.to_staff.team_id)
    new = _person(_, plan.to_staff)
    back = button(
        _("reassign.button.back"),
        REASSIGN.data("ra", "p", target.code, plan.to_staff.team_id or 0, 0),
    )
    if target.customer_id is not None:
        if plan.skipped:
            raise Refused(plan.skipped[0].reason)
        brief = plan.eligible[0]
        text = _(
            "reassign.confirm_one",
            name=_name(brief.name),
            number=brief.customer_no,
            old=_person(_, plan.owners.get(brief.owner_id)),
            new=new,
            team=team,
        )
        stamp: object = brief.owner_id
    else:
        lines = [_("reassign.confirm_many", count=len(plan.eligible), new=new, team=team)]
        lines += _listed(_, plan.eligible)
        owners = sorted(
            {b.owner_id for b in plan.eligible},
            key=lambda o: -sum(b.owner_id == o for b in plan.eligible),
        )
        if owners:
            counts = ", ".join(
                f"{_person(_, plan.owners.get(o))} ({sum(b.owner_id == o for b in plan.eligible)})"
                for o in owners[:FIRST_FEW]
            )
            if len(owners) > FIRST_FEW:
                counts += " …"
            lines.append(_("reassign.from_owners", owners=counts))
        lines += _skipped_lines(_, plan.skipped)
        if not plan.eligible:
            lines = [_("reassign.none_can_go"), *_skipped_lines(_, plan.skipped)]
            return fit.message("\n".join(lines)), InlineKeyboardMarkup([[back, _cancel_button(_)]])
        stamp = store.digest(seen)
    text = fit.message(text if target.customer_id is not None else "\n".join(lines))
    confirm = button(
        _("reassign.button.confirm"),
        REASSIGN.data("ra", "y", target.code, plan.to_staff.id, stamp),
    )
    return text, InlineKeyboardMarkup([[confirm], [back, _cancel_button(_)]])


# ---------------------------------------------------------------------------------------------
# the move, and who is told


def _translator_for(context: BotContext, staff: Staff) -> Translator:
    default = context.services.settings.DEFAULT_LANGUAGE
    return Translator(pick_language(staff.language, None, default))


def _notice_new(_: Translator, actor: str, result: Reassigned) -> tuple[str, dict | None]:
    moved = result.moved
    if len(moved) == 1:
        brief = moved[0]
        text = _(
            "reassign.told.new_one",
            actor=actor,
            name=_name(brief.name),
            number=brief.customer_no,
            old=_person(_, result.owners.get(brief.owner_id)),
        )
        markup = InlineKeyboardMarkup(
            [[button(_("reassign.button.open"), CARD.data("cu", brief.id))]]
        )
        return fit.message(text), markup.to_dict()
    lines = [_("reassign.told.new_many", actor=actor, count=len(moved)), *_listed(_, moved)]
    return fit.message("\n".join(lines)), None


def _notice_old(_: Translator, actor: str, new: str, briefs: list[Brief]) -> str:
    if len(briefs) == 1:
        brief = briefs[0]
        return fit.message(
            _(
                "reassign.told.old_one",
                actor=actor,
                name=_name(brief.name),
                number=brief.customer_no,
                new=new,
            )
        )
    lines = [_("reassign.told.old_many", actor=actor, count=len(briefs), new=new)]
    return fit.message("\n".join([*lines, *_listed(_, briefs)]))


async def _queue_notices(session: AsyncSession, context: BotContext, result: Reassigned) -> None:
    """Tell the new owner and each old one, each in their language, in the move's transaction
    (the outbox: a crash after the commit loses neither). The actor reads the result."""
    actor = context.member
    services = context.services
    now = services.clock()
    new = result.to_staff
    if new.id != actor.id and new.active:
        _ = _translator_for(context, new)
        text, markup = _notice_new(_, _person(_, actor), result)
        await outbox.queue_confirmation(
            session, keyring=services.keyring, recipient=new, text=text, markup=markup, now=now
        )
    for owner_id, owner in result.owners.items():
        if owner_id in (actor.id, new.id) or not owner.active:
            continue  # the actor sees the result; someone who left reads nothing
        _ = _translator_for(context, owner)
        text = _notice_old(_, _person(_, actor), _person(_, new), result.moved_from(owner_id))
        await outbox.queue_confirmation(
            session, keyring=services.keyring, recipient=owner, text=text, markup=None, now=now
        )


def _result_text(_: Translator, result: Reassigned) -> str:
    new = _person(_, result.to_staff)
    if len(result.moved) == 1 and not result.skipped:
        brief = result.moved[0]
        lines = [
            _(
                "reassign.done_one",
                name=_name(brief.name),
                number=brief.customer_no,
                old=_person(_, result.owners.get(brief.owner_id)),
                new=new,
            )
        ]
    elif result.moved:
        lines = [_("reassign.done_many", count=len(result.moved), new=new)]
        lines += _listed(_, result.moved)
    else:
        lines = [_("reassign.done_none")]
    if result.complaints:
        lines.append(_("reassign.done_complaints", count=result.complaints))
    if result.moved:
        lines.append(_("reassign.done_told"))
    lines += _skipped_lines(_, result.skipped)
    return fit.message("\n".join(lines))


async def _changed_hands(context: BotContext, customer_id: int) -> Refused:
    """A refusal naming the customer's present owner, if the actor may still see it."""
    async with context.reading() as session:
        try:
            customer = await store.reassignable(
                session, actor=context.member, customer_id=customer_id
            )
        except Refused as refusal:
            return refusal
        owner = await session.get(Staff, customer.owner_id)
    return Refused(Skip.changed_hands, owner=_person(context._, owner))


async def _do(
    query: CallbackQuery, context: BotContext, target: Target, staff_id: int, stamp: str
) -> None:
    services = context.services
    actor = context.member
    async with context.unit_of_work() as session:
        if target.customer_id is not None:
            owner_id = parse_id(stamp)
            if owner_id is None:
                raise _Expired
            seen = {target.customer_id: owner_id}
        else:
            seen = await store.picks(session, actor=actor)
            if not seen:
                raise Refused("selection_empty")
            if store.digest(seen) != stamp:
                raise Refused("selection_changed")
        result = await store.reassign(
            session,
            services.keyring,
            actor=actor,
            to_staff_id=staff_id,
            seen=seen,
            selection=target.customer_id is None,
        )
        if target.customer_id is not None and not result.moved:
            reason = result.skipped[0].reason if result.skipped else Skip.gone
            raise Refused(reason)
        if result.moved:
            await _queue_notices(session, context, result)
        queued = outbox.queued_in(session)
    await query.answer()
    await edit_quietly(query.message, _result_text(context._, result))
    await context.send_queued(queued)


# ---------------------------------------------------------------------------------------------
# the selection from /my


async def _selection_view(context: BotContext, page: int) -> tuple[str, InlineKeyboardMarkup]:
    _ = context._
    async with context.reading() as session:
        listed = await cards.my_customers(
            session, actor=context.member, today=context.today, page=page, page_size=PAGE_SIZE
        )
        selection = await store.picks(session, actor=context.member)
    ticked = store.ticked(selection, [e.id for e in listed.entries])
    lines = [_("reassign.select_title"), _("reassign.select_count", count=len(selection))]
    if listed.pages > 1:
        lines.append(_("find.page", page=listed.page + 1, pages=listed.pages))
    if not listed.total:
        lines.append(_("my.empty"))
    rows: list[Row] = [
        [
            button(
                fit.label(f"{'✅' if e.id in ticked else '▫️'} {my_label(_, e)}", 64),
                REASSIGN.data("ra", "t", e.id, listed.page),
            )
        ]
        for e in listed.entries
    ]
    rows = with_pager(
        rows,
        pager(listed.page, listed.pages, lambda n: REASSIGN.data("ra", "m", n), counter=True),
    )
    if selection:
        rows.append(
            [button(_("reassign.button.selected", count=len(selection)), REASSIGN.data("ra", "n"))]
        )
    rows.append(
        [
            button(_("reassign.button.list"), FIND.data("fm", listed.page)),
            button(_("reassign.button.clear"), REASSIGN.data("ra", "x")),
        ]
    )
    return fit.message("\n".join(lines)), InlineKeyboardMarkup(rows)


def _page(args: Sequence[str], index: int) -> int:
    page = parse_id(args[index], maximum=PAGE_MAX) if len(args) > index else None
    if page is None:
        raise _Expired
    return page


def _count(args: Sequence[str], expected: int) -> None:
    if len(args) != expected:
        raise _Expired


def _may_select(context: BotContext) -> None:
    if not store.may_reassign_any(context.member):
        raise Refused(Skip.not_allowed)


# ---------------------------------------------------------------------------------------------
# the buttons


Action = Callable[[CallbackQuery, BotContext, Sequence[str]], Awaitable[None]]


async def _on_open(query: CallbackQuery, context: BotContext, args: Sequence[str]) -> None:
    """From the card: choose the new owner, in a message of its own (the card stays)."""
    _count(args, 1)
    customer_id = parse_id(args[0])
    if customer_id is None:
        raise _Expired
    text, markup = await _choice(context, Target(customer_id), None, 0)
    await context.bot.send_message(query.from_user.id, text, reply_markup=markup)
    await query.answer()


async def _on_teams(query: CallbackQuery, context: BotContext, args: Sequence[str]) -> None:
    _count(args, 2)
    target, page = Target.parse(args[0]), _page(args, 1)
    text, markup = await _choice(context, target, None, page)
    await query.answer()
    await edit_quietly(query.message, text, markup)


async def _on_people(query: CallbackQuery, context: BotContext, args: Sequence[str]) -> None:
    _count(args, 3)
    target, page = Target.parse(args[0]), _page(args, 2)
    team_id = parse_id(args[1])
    if team_id is None:
        raise _Expired
    text, markup = await _choice(context, target, team_id, page)
    await query.answer()
    await edit_quietly(query.message, text, markup)


async def _on_confirmation(query: CallbackQuery, context: BotContext, args: Sequence[str]) -> None:
    _count(args, 2)
    target, staff_id = Target.parse(args[0]), parse_id(args[1])
    if staff_id is None:
        raise _Expired
    text, markup = await _confirmation(context, target, staff_id)
    await query.answer()
    await edit_quietly(query.message, text, markup)


async def _on_confirmed(query: CallbackQuery, context: BotContext, args: Sequence[str]) -> None:
    _count(args, 3)
    target, staff_id = Target.parse(args[0]), parse_id(args[1])
    if staff_id is None or not args[2]:
        raise _Expired
    try:
        await _do(query, context, target, staff_id, args[2])
    except Refused as refusal:
        if refusal.code == Skip.changed_hands and target.customer_id is not None:
            raise await _changed_hands(context, target.customer_id) from None
        raise


async def _on_cancel(query: CallbackQuery, context: BotContext, args: Sequence[str]) -> None:
    _count(args, 0)
    await query.answer()
    await close_buttons(query.message, context._("reassign.cancelled"))


async def _on_select(query: CallbackQuery, context: BotContext, args: Sequence[str]) -> None:
    """/my's list as a selection (a page of it), keeping what was ticked before."""
    _count(args, 1)
    _may_select(context)
    text, markup = await _selection_view(context, _page(args, 0))
    await query.answer()
    await edit_quietly(query.message, text, markup)


async def _on_toggle(query: CallbackQuery, context: BotContext, args: Sequence[str]) -> None:
    _count(args, 2)
    _may_select(context)
    customer_id, page = parse_id(args[0]), _page(args, 1)
    if customer_id is None:
        raise _Expired
    async with context.unit_of_work() as session:
        now_ticked = await store.toggle(
            session, actor=context.member, customer_id=customer_id, now=context.services.clock()
        )
    text, markup = await _selection_view(context, page)
    await query.answer(context._("reassign.ticked" if now_ticked else "reassign.unticked"))
    await edit_quietly(query.message, text, markup)


async def _on_selected(query: CallbackQuery, context: BotContext, args: Sequence[str]) -> None:
    """Reassign the selection: choose the new owner, in a message of its own."""
    _count(args, 0)
    _may_select(context)
    text, markup = await _choice(context, Target(None), None, 0)
    await context.bot.send_message(query.from_user.id, text, reply_markup=markup)
    await query.answer()


async def _on_clear(query: CallbackQuery, context: BotContext, args: Sequence[str]) -> None:
    """Forget the selection and show /my as it was."""
    _count(args, 0)
    async with context.unit_of_work() as session:
        await store.clear(session, actor=context.member)
    async with context.reading() as session:
        listed = await cards.my_customers(
            session, actor=context.member, today=context.today, page=0, page_size=PAGE_SIZE
        )
    _ = context._
    select = store.may_reassign_any(context.member)
    await query.answer(_("reassign.cleared"))
    await edit_quietly(
        query.message,
        my_text(_, view_scope(context.member), listed),
        my_markup(_, listed, select=select),
    )


_ACTIONS: dict[str, Action] = {
    "o": _on_open,
    "T": _on_teams,
    "p": _on_people,
    "k": _on_confirmation,
    "y": _on_confirmed,
    "q": _on_cancel,
    "m": _on_select,
    "t": _on_toggle,
    "n": _on_selected,
    "x": _on_clear,
}


def _parse(data: str | None) -> tuple[Action, Sequence[str]] | None:
    press: Press | None = REASSIGN.parse(data)
    if press is None or not press.fields:
        return None
    action = _ACTIONS.get(press.fields[0])
    return (action, press.fields[1:]) if action is not None else None


def _refused_ids(press_args: Sequence[str], action: Action) -> tuple[int | None, int | None]:
    """The customer and person a refused press named, for its audit entry."""
    customer_id = staff_id = None
    if action in (_on_open, _on_toggle) and press_args:
        customer_id = parse_id(press_args[0])
    elif press_args and press_args[0].startswith("c"):
        customer_id = parse_id(press_args[0][1:])
    if action in (_on_confirmation, _on_confirmed) and len(press_args) > 1:
        staff_id = parse_id(press_args[1])
    return customer_id, staff_id


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `ra:` buttons: every press re-checks who may reassign what to whom."""
    query = update.callback_query
    assert query is not None
    parsed = _parse(query.data)
    if parsed is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    action, args = parsed
    try:
        await action(query, context, args)
    except _Expired:
        await query.answer(context._("button.expired"), show_alert=True)
    except Refused as refusal:
        if refusal.code in AUDITED:
            customer_id, staff_id = _refused_ids(args, action)
            async with context.unit_of_work() as session:
                await store.record_refusal(
                    session,
                    actor=context.member,
                    code=refusal.code,
                    customer_id=customer_id,
                    staff_id=staff_id,
                )
        await query.answer(fit.answer(refusal_text(context._, refusal)), show_alert=True)
