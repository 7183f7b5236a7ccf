"""How a reminder reads in chat: its text, its buttons, and one person's due reminders grouped
into as few messages as Telegram allows.

On the floor of shared handler tools: bot/sender.py renders with it, and the `rm:` button
handlers (conversations/reminders.py) redraw a reminder's buttons with it. It imports no flow.
Button data: `rm:<action>:<reminder id>[:<arg>]` (the actions are conversations/reminders.py's).

Every reminder carries the button of its most likely action (`primary`); a grouped message
carries each item's, one button per item, its full name on it where it fits and the number of
its numbered line in the text where not. The other features' buttons (`cu:` a card, `ck:` key
persons, `cx:` a complaint, `rv:` a review, `cv:` a visit, `pl:` the pool) check everything again
at the press; inside a grouped message the actions that would otherwise close the whole
message's buttons go through `rm:` (`K` done, `A` confirm, `c` a complaint's take / resolve),
which settles only that item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator, has_message
from conversations import fit
from conversations.callback_data import (
    CARD,
    COMPLAINT,
    EDIT,
    KEY_PERSONS,
    POOL,
    REMINDERS,
    REVIEW,
    TODAY,
    VISIT,
)
from conversations.keyboards import pager
from storage import reminders as store
from storage.reminders import Kind, Notice

PREFIX = REMINDERS.prefixes[0]
LIST_PAGE = 8  # items a page of "show all"
# kinds sent in a message of their own: a button per line of their own, or a button that edits
# the message it is on (the pool's claim)
ALONE = (Kind.review_digest, Kind.overdue, Kind.retention, Kind.pool_released, Kind.catch_up)
# the archive flow's destroy request (its `ar` codec: `ar:d:<customer id>`)
RETENTION_REQUEST = "ar:d:"
MAX_TEXT = 3500  # UTF-16 units of items per message (Telegram allows 4,096 in all)
# names are shown whole: up to their fields' longest (storage/models.py), so "Baotou Rare Earth
# Trading Co." is never cut to "Baotou Rare Earth Tra…"
NAME_LIMIT = 200  # customers.name, staff.display_name
PERSON_LIMIT = 100  # key_persons.name, teams.name
REASON_LIMIT = 300
MAX_OPEN_BUTTONS = 10
FOLD_AFTER = 10  # reminders of one kind listed in full; more are counted
LABEL_LIMIT = 24
# an item's button in a grouped message, a row of its own: its action and the full name, when
# they fit in this many units (as the pool's claim buttons); else its number
ITEM_LABEL = 64
# a weekly summary of a manager of many teams: a line per team, each name at most TEAM_LIMIT,
# so the summary stays well within one message (about 120 units a line)
WEEKLY_TEAMS = 20
TEAM_LIMIT = 30
# most urgent first
KIND_ORDER = {
    kind: index
    for index, kind in enumerate(
        (
            Kind.catch_up,
            Kind.complaint_overdue,
            Kind.complaint_soon,
            Kind.review,
            Kind.review_digest,
            Kind.pool_warning,
            Kind.overdue,
            Kind.followup,
            Kind.pool_released,
            Kind.pool_assigned,
            Kind.rejected,
            Kind.birthday,
            Kind.stale,
            Kind.complete,
            Kind.survey,
            Kind.weekly,
            Kind.audit_head,
            Kind.backup,
            Kind.retention,
        )
    )
}


@dataclass(frozen=True)
class Outgoing:
    """One message to send, and the reminders it carries."""

    text: str
    markup: InlineKeyboardMarkup | None
    reminder_ids: tuple[int, ...]
    photo: bytes | None = None  # sent as a photo, `text` its caption (a report's chart)


def button_data(action: str, reminder_id: int, arg: object = None) -> str:
    """`rm:<action>:<reminder id>[:<arg>]`, the data of a reminder's own buttons."""
    return REMINDERS.data(PREFIX, action, reminder_id, *(() if arg is None else (arg,)))


def _sample_values(_: Translator) -> dict[str, Any]:
    return {
        "customer": _("reminders.sample.customer"),
        "person": _("reminders.sample.person"),
        "owner": _("reminders.sample.owner"),
        "submitter": _("reminders.sample.owner"),
        "manager": _("reminders.sample.owner"),
        "team": _("reminders.sample.team"),
        "reason": _("reminders.sample.reason"),
        "subject": _("reminders.sample.customer"),
    }


def _review_line(_: Translator, values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "what": _(f"reminders.review_kind.{values['review_kind']}")}


_LONG_VALUES = {
    "customer": NAME_LIMIT,
    "person": PERSON_LIMIT,
    "owner": NAME_LIMIT,
    "submitter": NAME_LIMIT,
    "manager": NAME_LIMIT,
    "team": PERSON_LIMIT,
    "subject": NAME_LIMIT + 60,
    "reason": REASON_LIMIT,
}


def _fitted(values: dict[str, Any]) -> dict[str, Any]:
    """Names and reasons cut to a length a reminder can carry (the card shows them whole)."""
    return {
        k: fit.clip(v, _LONG_VALUES[k]) if k in _LONG_VALUES and isinstance(v, str) else v
        for k, v in values.items()
    }


def item_text(notice: Notice, _: Translator) -> str:
    """The text of one reminder (several lines for digests), within Telegram's limit."""
    return fit.message(_item_text(notice, _))


def _item_text(notice: Notice, _: Translator) -> str:
    values = _fitted(dict(notice.values))
    if notice.sample:
        values = {**_sample_values(_), **values}
    kind = notice.kind
    if kind == Kind.followup:
        key = "reminders.item.followup_late" if values.get("late") else "reminders.item.followup"
        return _(key, **values)
    if kind == Kind.birthday:
        key = "reminders.item.birthday_today" if values.get("today") else "reminders.item.birthday"
        return _(key, **values)
    if kind in (Kind.complaint_soon, Kind.complaint_overdue):
        severity = _(f"reminders.severity.{values['severity']}")
        return _(f"reminders.item.{kind}", **{**values, "severity": severity})
    if kind in (Kind.review, Kind.rejected):
        return _(f"reminders.item.{kind}", **_review_line(_, values))
    if kind in DIGESTS:
        style = DIGESTS[kind]
        lines = [_(style.header, **values)]
        shown, dropped = _digest_lines(notice, _)
        lines += shown
        more = int(values.get("more") or 0) + dropped
        if more:
            lines.append(_(style.more, count=more))
        return "\n".join(lines)
    if kind == Kind.retention:
        return _retention_text(notice, _)
    if kind == Kind.catch_up:  # what fell due while reminders were not running
        lines = [_("reminders.item.catch_up", **values)]
        if values.get("own"):
            lines.append(_("catch_up.own", count=values["own"]))
        if values.get("team"):
            lines.append(_("catch_up.team", count=values["team"]))
        lines.append(_("catch_up.hint"))
        return "\n".join(lines)
    if kind == Kind.backup and values.get("failed"):
        return _("reminders.item.backup_failed", **values)
    if kind == Kind.weekly:
        team = values.get("team") or _("reminders.weekly.all_teams")
        if values.get("teams"):  # a manager of several teams: their sum, then each team
            team = _("teams.weekly.several", count=values["teams"])
        return "\n".join(
            [
                _("reminders.item.weekly", team=team),
                _("reminders.weekly.customers", **values),
                _("reminders.weekly.new", count=values["new"]),
                _("reminders.weekly.visits", count=values["visits"]),
                _("reminders.weekly.overdue", count=values["overdue"]),
                _("reminders.weekly.complaints", **values),
                _("reminders.weekly.reviews", count=values["reviews"]),
                *_weekly_team_lines(notice, _),
            ]
        )
    return _(f"reminders.item.{kind}", **values)


@dataclass(frozen=True)
class Digest:
    """How a digest kind reads: its header, a line per entry, the counted rest (with where to
    see them all), and each line's button (its action's name and data)."""

    header: str
    line: Callable[[Translator, dict[str, Any]], str]
    more: str
    act: str
    data: Callable[[dict[str, Any]], str | None]


def _review_data(line: dict[str, Any]) -> str | None:
    review_id = line.get("review_id")
    return REVIEW.data("rv", "o", review_id) if isinstance(review_id, int) else None


def _card_data(line: dict[str, Any]) -> str | None:
    customer_id = line.get("customer_id")
    return _card(customer_id) if isinstance(customer_id, int) else None


DIGESTS: dict[str, Digest] = {
    Kind.review_digest: Digest(
        "reminders.item.review_digest",
        lambda _, line: _("reminders.digest.line", **_review_line(_, line)),
        "reminders.digest.more",
        "open_review",
        _review_data,
    ),
    # the managers' morning list of follow-ups overdue since that day
    Kind.overdue: Digest(
        "overdue_digest.header",
        lambda _, line: _("overdue_digest.line", **line),
        "overdue_digest.more",
        "open",
        _card_data,
    ),
}


def _digest_lines(notice: Notice, _: Translator) -> tuple[list[str], int]:
    """The digest's numbered lines, names whole, as many as fit one message; and how many of
    the listed did not fit (counted with the rest, where the kind's `more` line points)."""
    style = DIGESTS[notice.kind]
    room = MAX_TEXT
    lines: list[str] = []
    for number, line in enumerate(notice.lines, start=1):
        line = {**_sample_values(_), **line} if notice.sample else _fitted(line)
        text = style.line(_, line).removeprefix("• ")
        room -= fit.units(text) + 5
        if room < 0:
            break
        lines.append(f"{number}. {text}")
    return lines, len(notice.lines) - len(lines)


def _retention_lines(notice: Notice, _: Translator) -> tuple[list[str], int]:
    """The listed customers' lines, names whole, as many as fit one message; and how many
    of the listed did not fit (counted with the rest)."""
    room = MAX_TEXT
    lines: list[str] = []
    for line in notice.lines:
        text = _(
            "reminders.retention.line",
            number=line["number"],
            customer=fit.clip(str(line["customer"]), NAME_LIMIT),
            archived=line["archived"],
        )
        room -= fit.units(text) + 1
        if room < 0:
            break
        lines.append(text)
    return lines, len(notice.lines) - len(lines)


def _retention_text(notice: Notice, _: Translator) -> str:
    """Archived customers past RETENTION_YEARS, the longest archived first; the rest counted,
    with where to find them (/find, archived)."""
    values = notice.values
    lines = [_("reminders.item.retention", count=values["count"], years=values["years"])]
    shown, dropped = _retention_lines(notice, _)
    lines += shown
    more = int(values.get("more") or 0) + dropped
    if more:
        lines.append(_("reminders.retention.more", count=more))
    lines.append(_("reminders.retention.hint"))
    return "\n".join(lines)


def retention_markup(notice: Notice, _: Translator) -> InlineKeyboardMarkup | None:
    """A button per listed customer that files its destroy request: `ar:d:<customer id>`, the
    archive flow's (conversations/archive.py), which re-checks everything at the press."""
    shown, _dropped = _retention_lines(notice, _)
    buttons = [
        InlineKeyboardButton(
            fit.label(_("reminders.button.destroy", number=line["number"])),
            callback_data=f"{RETENTION_REQUEST}{int(line['customer_id'])}",
        )
        for line in notice.lines[: len(shown)]
    ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    return InlineKeyboardMarkup(rows) if rows else None


def _weekly_team_lines(notice: Notice, _: Translator) -> list[str]:
    """A line per team of a manager of several teams, the first WEEKLY_TEAMS of them."""
    if not notice.lines:
        return []
    shown = [
        _("teams.weekly.team_line", **{**line, "team": fit.clip(str(line["team"]), TEAM_LIMIT)})
        for line in notice.lines[:WEEKLY_TEAMS]
    ]
    more = len(notice.lines) - WEEKLY_TEAMS
    return ["", *shown, *([_("teams.weekly.more", count=more)] if more > 0 else [])]


def _card(customer_id: int) -> str:
    return CARD.data("cu", customer_id)


def _button(_: Translator, key: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(fit.label(_(key)), callback_data=data)


def _open_card(notice: Notice, _: Translator) -> list[InlineKeyboardButton]:
    """The customer's card, for every kind about one customer."""
    if not notice.customer_id:
        return []
    return [_button(_, "reminders.act.open", _card(notice.customer_id))]


def actions_markup(notice: Notice, _: Translator) -> InlineKeyboardMarkup | None:
    """The buttons of one reminder: the main action(s) first, then snooze and reschedule, then
    the card (or key persons, or the complaint) it is about."""
    rid = notice.reminder_id
    if notice.kind == Kind.retention:
        return retention_markup(notice, _)
    if notice.kind in DIGESTS:
        return digest_markup(notice, _)
    if "today" in notice.actions:  # the /today plan lists what a catch-up counts
        return InlineKeyboardMarkup([[_button(_, "reminders.act.today", TODAY.data("td", "r"))]])
    main: list[InlineKeyboardButton] = []
    later: list[InlineKeyboardButton] = []
    last: list[InlineKeyboardButton] = []
    acts = notice.actions
    cid = notice.customer_id
    if "visit" in acts and cid:
        main.append(_button(_, "reminders.button.visit", VISIT.data("cv", cid)))
    if "approve" in acts and notice.review_id:
        main += [
            _button(_, "reminders.button.approve", REVIEW.data("rv", "a", notice.review_id)),
            _button(_, "reminders.button.reject", REVIEW.data("rv", "r", notice.review_id)),
        ]
        later.append(
            _button(_, "reminders.button.open_review", REVIEW.data("rv", "o", notice.review_id))
        )
    if "resubmit" in acts and cid:
        main.append(_button(_, "reminders.button.resubmit", REVIEW.data("rv", "rs", cid)))
    if "complete" in acts and cid:  # conversations.edit re-checks the press
        main.append(_button(_, "entry.button.complete", EDIT.data("cm", cid)))
    if "confirm" in acts:
        main.append(_button(_, "reminders.button.confirm", button_data("a", rid)))
    if "done" in acts:
        main.append(_button(_, "reminders.button.done", button_data("k", rid)))
    complaint_id = notice.complaint_id
    for act in ("take", "resolve"):
        if act in acts and complaint_id:
            main.append(_button(_, f"reminders.act.{act}", COMPLAINT.data("cx", complaint_id, act)))
    if "claim" in acts and cid:
        main.append(_button(_, "reminders.act.claim", POOL.data("pl", "C", cid)))
    if "snooze" in acts:
        later += [
            _button(_, f"reminders.button.snooze{days}", button_data("s", rid, days))
            for days in store.SNOOZE_DAYS
        ]
    if "reschedule" in acts:
        later.append(_button(_, "reminders.button.reschedule", button_data("r", rid)))
    if "open_complaint" in acts and complaint_id:
        last.append(
            _button(_, "reminders.act.open_complaint", COMPLAINT.data("cx", complaint_id, "v"))
        )
    if "key_persons" in acts and cid:
        last.append(_button(_, "reminders.act.key_persons", KEY_PERSONS.data("ck", cid)))
    if "claim" not in acts and notice.kind not in (Kind.review,):
        last += _open_card(notice, _)
    rows = [row for row in (main, later, last) if row]
    return InlineKeyboardMarkup(rows) if rows else None


def primary(notice: Notice) -> tuple[str, str] | None:
    """The most likely action of a reminder inside a grouped message: (its name under
    `reminders.act.`, its button data); None for a notice that asks nothing of anyone."""
    acts, rid, cid = notice.actions, notice.reminder_id, notice.customer_id
    kind = notice.kind
    if "today" in acts:
        return "today", TODAY.data("td", "r")
    if kind in (Kind.complaint_soon, Kind.complaint_overdue):
        for act in ("take", "resolve"):
            if act in acts:
                return act, button_data("c", rid)
        if notice.complaint_id:
            return "open_complaint", COMPLAINT.data("cx", notice.complaint_id, "v")
        return None
    if kind == Kind.review and notice.review_id:
        return "open_review", REVIEW.data("rv", "o", notice.review_id)
    if "confirm" in acts:
        return "confirm", button_data("A", rid)
    if "done" in acts and kind != Kind.rejected:
        return "done", button_data("K", rid)
    if "key_persons" in acts and cid:
        return "key_persons", KEY_PERSONS.data("ck", cid)
    if "visit" in acts and kind == Kind.pool_warning and cid:
        return "visit", VISIT.data("cv", cid)
    if cid and kind not in (Kind.weekly, Kind.audit_head, Kind.backup):
        return "open", _card(cid)
    return None


def item_name(notice: Notice, _: Translator) -> str:
    """Whom a reminder is about, as a button names it."""
    if notice.sample:
        return _("reminders.sample.customer")
    values = notice.values
    if notice.kind == Kind.birthday:
        return str(values.get("person") or notice.label)
    return str(values.get("customer") or notice.label)


def item_button(notice: Notice, number: int, _: Translator) -> InlineKeyboardButton | None:
    """The item's first action: "2. ✅ Done: <full name>", or "2. ✅ Done" when the full name
    does not fit on a button (the numbered line in the text carries it whole)."""
    found = primary(notice)
    if found is None:
        return None
    act, data = found
    verb = _(f"reminders.act.{act}")
    label = _("reminders.act.item", n=number, act=verb, name=item_name(notice, _))
    if fit.units(label) > ITEM_LABEL:
        label = _("reminders.act.numbered", n=number, act=verb)
    return InlineKeyboardButton(fit.label(label, ITEM_LABEL), callback_data=data)


def digest_markup(notice: Notice, _: Translator) -> InlineKeyboardMarkup | None:
    """A button per listed line (its number), opening what it is about: a review's card, or a
    customer's (each checks everything again at the press)."""
    style = DIGESTS[notice.kind]
    rows = []
    shown, _dropped = _digest_lines(notice, _)
    for number, line in enumerate(notice.lines[: len(shown)], start=1):
        data = style.data(line)
        if data is None:
            continue
        name = _("reminders.sample.customer") if notice.sample else str(line.get("customer", ""))
        verb = _(f"reminders.act.{style.act}")
        label = _("reminders.act.item", n=number, act=verb, name=name)
        if fit.units(label) > fit.LABEL_LIMIT:
            label = _("reminders.act.numbered", n=number, act=verb)
        rows.append([InlineKeyboardButton(fit.label(label), callback_data=data)])
    return InlineKeyboardMarkup(rows) if rows else None


def _message(chunk: list[Notice], _: Translator) -> Outgoing:
    ids = tuple(n.reminder_id for n in chunk)
    sample = any(n.sample for n in chunk)
    if len(chunk) == 1:
        text = item_text(chunk[0], _)
        if sample:
            text = f"{_('reminders.sample_header')}\n\n{text}"
        return Outgoing(text, actions_markup(chunk[0], _), ids)
    lines = [_("reminders.sample_header")] if sample else []
    lines.append(_("reminders.header", count=len(chunk)))
    buttons = []
    for index, notice in enumerate(chunk, start=1):
        lines.append(f"\n{index}. {item_text(notice, _)}")
        pressed = _sample_button(notice, index, _) if sample else item_button(notice, index, _)
        if pressed is not None:
            buttons.append([pressed])
    markup = InlineKeyboardMarkup(buttons) if buttons else None
    return Outgoing(fit.message("\n".join(lines)), markup, ids)


def _sample_button(notice: Notice, number: int, _: Translator) -> InlineKeyboardButton | None:
    """/testreminder's samples open one by one (`rm:o:`), to show each kind's own buttons."""
    if not notice.actions:
        return None
    label = fit.label(
        _("reminders.button.open", n=number, label=fit.clip(item_label(notice, _), 24))
    )
    return InlineKeyboardButton(label, callback_data=button_data("o", notice.reminder_id))


def item_label(notice: Notice, _: Translator) -> str:
    """The kind's emoji and the subject's name (the old "open one" button's label)."""
    emoji = item_text(notice, _).split(" ", 1)[0]
    return f"{emoji} {item_name(notice, _)}"


def list_page(
    notices: list[Notice], page: int, first_id: int, _: Translator
) -> tuple[str, InlineKeyboardMarkup | None]:
    """A page of "show all": the numbered items with their full names, a button per item's
    first action, and the pager (`rm:m:<first reminder id>:<page>`)."""
    pages = max(1, -(-len(notices) // LIST_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = notices[page * LIST_PAGE : (page + 1) * LIST_PAGE]
    lines = [_("reminders.all.header", count=len(notices))]
    rows: list[list[InlineKeyboardButton]] = []
    for number, notice in enumerate(shown, start=page * LIST_PAGE + 1):
        lines.append(f"\n{number}. {item_text(notice, _)}")
        pressed = item_button(notice, number, _)
        if pressed is not None:
            rows.append([pressed])
    if not shown:
        lines.append(_("reminders.all.none"))
    turn = pager(page, pages, lambda p: button_data("m", first_id, p), counter=True)
    rows += [turn] if turn else []
    return fit.message("\n".join(lines)), InlineKeyboardMarkup(rows) if rows else None


def render(notices: list[Notice], _: Translator) -> list[Outgoing]:
    """One person's due reminders as messages, the most urgent first: one message, unless it
    would be too long or carry too many buttons (each message then a page of at most
    MAX_OPEN_BUTTONS items). Beyond FOLD_AFTER of one kind (a backlog after a long absence,
    say) the rest are counted in a line rather than listed, with a button that lists them all;
    they are delivered all the same, as part of that message."""
    ordered = sorted(notices, key=lambda n: (KIND_ORDER.get(n.kind, 99), n.reminder_id))
    shown: list[Notice] = []
    alone: list[Notice] = []
    folded: dict[str, list[Notice]] = {}
    for notice in ordered:
        same = sum(1 for n in shown if n.kind == notice.kind)
        if notice.kind in ALONE and not notice.sample:
            alone.append(notice)
        elif same >= FOLD_AFTER and not notice.sample:
            folded.setdefault(notice.kind, []).append(notice)
        else:
            shown.append(notice)
    chunks: list[list[Notice]] = []
    current: list[Notice] = []
    size = buttons = 0
    for notice in shown:
        length = fit.units(item_text(notice, _)) + 6
        wants = 0 if primary(notice) is None else 1
        if current and (size + length > MAX_TEXT or buttons + wants > MAX_OPEN_BUTTONS):
            chunks.append(current)
            current, size, buttons = [], 0, 0
        current.append(notice)
        size += length
        buttons += wants
    if current:
        chunks.append(current)
    messages = [_message(chunk, _) for chunk in chunks]
    if folded and messages:
        lines = []
        more: list[list[InlineKeyboardButton]] = []
        for kind, rest in folded.items():
            key = f"reminders.more.{kind}"
            lines.append(_(key if has_message(key) else "reminders.more.other", count=len(rest)))
            total = len(rest) + sum(1 for n in shown if n.kind == kind)
            more.append(
                [
                    InlineKeyboardButton(
                        fit.label(_("reminders.button.show_all", count=total)),
                        callback_data=button_data("m", rest[0].reminder_id),
                    )
                ]
            )
        lines.append(_("reminders.more.see_all"))
        last = messages[-1]
        ids = tuple(n.reminder_id for rest in folded.values() for n in rest)
        text = fit.compose([fit.Slot(last.text), *lines], sep="\n\n")
        markup = InlineKeyboardMarkup(
            [*(last.markup.inline_keyboard if last.markup else ()), *more]
        )
        messages[-1] = Outgoing(text, markup, last.reminder_ids + ids)
    return messages + [_message([notice], _) for notice in alone]
