"""How a reminder reads in chat: its text, its buttons, and one person's due reminders grouped
into as few messages as Telegram allows.

On the floor of shared handler tools: bot/sender.py renders with it, and the `rm:` button
handlers (conversations/reminders.py) redraw a reminder's buttons with it. It imports no flow.
Button data: `rm:<action>:<reminder id>[:<arg>]` (the actions are conversations/reminders.py's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator, has_message
from conversations import fit
from conversations.callback_data import EDIT, REMINDERS, REVIEW, VISIT
from storage import reminders as store
from storage.reminders import Kind, Notice

PREFIX = REMINDERS.prefixes[0]
# the archive flow's destroy request (its `ar` codec: `ar:d:<customer id>`)
RETENTION_REQUEST = "ar:d:"
MAX_TEXT = 3500  # UTF-16 units of items per message (Telegram allows 4,096 in all)
NAME_LIMIT = 60  # a name or reason inside a reminder; the card shows it whole
REASON_LIMIT = 300
MAX_OPEN_BUTTONS = 10
FOLD_AFTER = 10  # reminders of one kind listed in full; more are counted
LABEL_LIMIT = 24
# a weekly summary of a manager of many teams: a line per team, each name at most TEAM_LIMIT,
# so the summary stays well within one message (about 120 units a line)
WEEKLY_TEAMS = 20
TEAM_LIMIT = 30
# most urgent first
KIND_ORDER = {
    kind: index
    for index, kind in enumerate(
        (
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
    "person": NAME_LIMIT,
    "owner": NAME_LIMIT,
    "submitter": NAME_LIMIT,
    "manager": NAME_LIMIT,
    "team": NAME_LIMIT,
    "subject": NAME_LIMIT + 20,
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
    if kind == Kind.review_digest:
        lines = [_("reminders.item.review_digest", count=values["count"])]
        for line in notice.lines:
            line = {**_sample_values(_), **line} if notice.sample else _fitted(line)
            lines.append(_("reminders.digest.line", **_review_line(_, line)))
        if values.get("more"):
            lines.append(_("reminders.digest.more", count=values["more"]))
        return "\n".join(lines)
    if kind == Kind.retention:
        return _retention_text(notice, _)
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


def _retention_text(notice: Notice, _: Translator) -> str:
    """Archived customers past RETENTION_YEARS, the longest archived first; the rest counted,
    with where to find them (/find, archived)."""
    values = notice.values
    lines = [_("reminders.item.retention", count=values["count"], years=values["years"])]
    for line in notice.lines:
        lines.append(
            _(
                "reminders.retention.line",
                number=line["number"],
                customer=fit.clip(str(line["customer"]), NAME_LIMIT),
                archived=line["archived"],
            )
        )
    if values.get("more"):
        lines.append(_("reminders.retention.more", count=values["more"]))
    lines.append(_("reminders.retention.hint"))
    return "\n".join(lines)


def retention_markup(notice: Notice, _: Translator) -> InlineKeyboardMarkup | None:
    """A button per listed customer that files its destroy request: `ar:d:<customer id>`, the
    archive flow's (conversations/archive.py), which re-checks everything at the press."""
    buttons = [
        InlineKeyboardButton(
            fit.label(_("reminders.button.destroy", number=line["number"])),
            callback_data=f"{RETENTION_REQUEST}{int(line['customer_id'])}",
        )
        for line in notice.lines
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


def actions_markup(notice: Notice, _: Translator) -> InlineKeyboardMarkup | None:
    """The buttons of one reminder: the main action(s) first, then snooze and reschedule."""
    rid = notice.reminder_id
    if notice.kind == Kind.retention:
        return retention_markup(notice, _)
    main: list[InlineKeyboardButton] = []
    later: list[InlineKeyboardButton] = []
    acts = notice.actions
    if "visit" in acts and notice.customer_id:
        main.append(
            InlineKeyboardButton(
                _("reminders.button.visit"), callback_data=VISIT.data("cv", notice.customer_id)
            )
        )
    if "approve" in acts and notice.review_id:
        main += [
            InlineKeyboardButton(
                _("reminders.button.approve"),
                callback_data=REVIEW.data("rv", "a", notice.review_id),
            ),
            InlineKeyboardButton(
                _("reminders.button.reject"), callback_data=REVIEW.data("rv", "r", notice.review_id)
            ),
        ]
        later.append(
            InlineKeyboardButton(
                _("reminders.button.open_review"),
                callback_data=REVIEW.data("rv", "o", notice.review_id),
            )
        )
    if "resubmit" in acts and notice.customer_id:
        main.append(
            InlineKeyboardButton(
                _("reminders.button.resubmit"),
                callback_data=REVIEW.data("rv", "rs", notice.customer_id),
            )
        )
    if "complete" in acts and notice.customer_id:  # conversations.edit re-checks the press
        main.append(
            InlineKeyboardButton(
                _("entry.button.complete"), callback_data=EDIT.data("cm", notice.customer_id)
            )
        )
    if "confirm" in acts:
        main.append(
            InlineKeyboardButton(_("reminders.button.confirm"), callback_data=button_data("a", rid))
        )
    if "done" in acts:
        main.append(
            InlineKeyboardButton(_("reminders.button.done"), callback_data=button_data("k", rid))
        )
    if "snooze" in acts:
        later += [
            InlineKeyboardButton(
                _(f"reminders.button.snooze{days}"), callback_data=button_data("s", rid, days)
            )
            for days in store.SNOOZE_DAYS
        ]
    if "reschedule" in acts:
        later.append(
            InlineKeyboardButton(
                _("reminders.button.reschedule"), callback_data=button_data("r", rid)
            )
        )
    rows = [row for row in (main, later) if row]
    return InlineKeyboardMarkup(rows) if rows else None


def _short(label: str) -> str:
    return fit.clip(label, LABEL_LIMIT)


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
        if notice.actions:
            label = fit.label(
                _("reminders.button.open", n=index, label=_short(item_label(notice, _)))
            )
            buttons.append(
                [InlineKeyboardButton(label, callback_data=button_data("o", notice.reminder_id))]
            )
    markup = InlineKeyboardMarkup(buttons) if buttons else None
    return Outgoing(fit.message("\n".join(lines)), markup, ids)


def item_label(notice: Notice, _: Translator) -> str:
    """The kind's emoji and the subject's name, for the button that opens one reminder."""
    emoji = item_text(notice, _).split(" ", 1)[0]
    name = _("reminders.sample.customer") if notice.sample else notice.label
    return f"{emoji} {name}"


def render(notices: list[Notice], _: Translator) -> list[Outgoing]:
    """One person's due reminders as messages, the most urgent first: one message, unless it
    would be too long or carry too many buttons. Beyond FOLD_AFTER of one kind (a backlog after
    a long absence, say) the rest are counted in a line rather than listed; they are delivered
    all the same, as part of that message."""
    ordered = sorted(notices, key=lambda n: (KIND_ORDER.get(n.kind, 99), n.reminder_id))
    shown: list[Notice] = []
    folded: dict[str, list[Notice]] = {}
    for notice in ordered:
        same = sum(1 for n in shown if n.kind == notice.kind)
        if same >= FOLD_AFTER and not notice.sample:
            folded.setdefault(notice.kind, []).append(notice)
        else:
            shown.append(notice)
    chunks: list[list[Notice]] = []
    current: list[Notice] = []
    size = buttons = 0
    for notice in shown:
        length = fit.units(item_text(notice, _)) + 6
        wants = 1 if notice.actions else 0
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
        for kind, rest in folded.items():
            key = f"reminders.more.{kind}"
            lines.append(_(key if has_message(key) else "reminders.more.other", count=len(rest)))
        last = messages[-1]
        ids = tuple(n.reminder_id for rest in folded.values() for n in rest)
        text = fit.compose([fit.Slot(last.text), *lines], sep="\n\n")
        messages[-1] = Outgoing(text, last.markup, last.reminder_ids + ids)
    return messages
