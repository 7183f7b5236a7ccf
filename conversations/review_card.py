"""How a review card reads: its text for deciders and for a group chat, and its buttons.

On the shared floor (no flow imported), so the sender renders queued notices with it too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator
from conversations import duplicates, fit
from conversations.callback_data import CARD, REVIEW
from storage import fields as catalogue
from storage.models import ReviewKind, ReviewStatus
from storage.reviews import Line, ReviewView

PREFIX = REVIEW.prefixes[0]
VALUE_LIMIT = 80
# fields whose stored value is a choice with a label `choice.<field>.<value>` (messages.po)
CHOICE_FIELDS = catalogue.choice_fields()
COMPLAINT_CHOICES = frozenset({"type", "severity"})
# reviews whose lines are a complaint's parts (labels `review.field.<column>`)
COMPLAINT_KINDS = frozenset({ReviewKind.complaint_resolution, ReviewKind.complaint_removal})


def review_data(action: str, arg: object) -> str:
    return REVIEW.data(PREFIX, action, arg)


def when_text(moment: datetime | None, timezone: str) -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def subject(_: Translator, view: ReviewView) -> str:
    """What the review is about, in a few words: `KH-2026-000001 · 杭州明远机械`."""
    number = view.complaint_no or view.customer_no
    parts = [p for p in (number, view.customer_name) if p]
    return " · ".join(parts) if parts else _("review.subject_gone")


def _value(_: Translator, view: ReviewView, field: str, value: Any) -> str:
    if value is None:
        return _("common.empty")
    if isinstance(value, bool):
        return _("common.yes" if value else "common.no")
    if view.kind in COMPLAINT_KINDS and field in COMPLAINT_CHOICES:
        text = _(f"review.complaint.{field}.{value}")
    elif field in CHOICE_FIELDS:
        text = _(f"choice.{field}.{value}")
    elif isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    return fit.clip(text, VALUE_LIMIT)


def _label(_: Translator, view: ReviewView, field: str) -> str:
    if view.kind in COMPLAINT_KINDS:
        return _(f"review.field.{field}")
    return _(f"field.{field}")


def _line(_: Translator, view: ReviewView, line: Line) -> fit.Line:
    label = _label(_, view, line.field)
    if view.kind == ReviewKind.customer_change:
        before = _value(_, view, line.field, line.before)
        after = _value(_, view, line.field, line.after)
        return (f"• {label}: ", fit.Slot(before), " → ", fit.Slot(after))
    return (f"• {label}: ", fit.Slot(_value(_, view, line.field, line.after)))


def state_line(_: Translator, view: ReviewView, timezone: str) -> str:
    when = when_text(view.decided_at, timezone)
    if view.status == ReviewStatus.approved:
        return _("review.state.approved", name=view.decider_name or "", when=when)
    if view.status == ReviewStatus.rejected:
        return _(
            "review.state.rejected", name=view.decider_name or "", when=when, reason=view.reason
        )
    if view.status == ReviewStatus.withdrawn:
        return _("review.state.withdrawn")
    return _("review.state.pending")


def card_text(_: Translator, view: ReviewView, timezone: str) -> str:
    """The card: what, who submitted, the fields (masked), the before/after, the decision."""
    lines: list[fit.Line] = [
        _(f"review.title.{view.kind}"),
        subject(_, view),
        _(
            "review.submitted",
            name=view.submitter_name,
            when=when_text(view.submitted_at, timezone),
            team=view.team_name or _("common.empty"),
        ),
    ]
    if view.request_reason:  # why an archive, reactivation or destruction is asked
        lines.append(fit.Slot(_("review.request_reason", reason=view.request_reason)))
    if view.lines:
        lines.append("")
        if view.kind == ReviewKind.customer_change:
            lines.append(_("review.changes_heading"))
        lines += [_line(_, view, line) for line in view.lines]
    if view.consent_missing:  # PIPL: the customer's consent to collection is not recorded
        lines += ["", _("pipl.review.no_consent")]
    if view.duplicates:
        warned = duplicates.warnings(_, view.duplicates)
        lines += ["", _("review.duplicates_heading"), *(fit.Slot(w) for w in warned)]
    lines += ["", fit.Slot(state_line(_, view, timezone))]
    if view.pending and view.viewer_is_submitter:
        lines.append(_("review.own_note"))
    return fit.compose(lines)


def group_card_text(_: Translator, view: ReviewView, timezone: str) -> str:
    """The card in a managers' group chat, where salespeople may read along: only the kind,
    the record's number and the submitter; the details go to a manager privately (Open)."""
    lines = [
        _(f"review.title.{view.kind}"),
        view.complaint_no or view.customer_no or _("review.subject_gone"),
        _(
            "review.submitted",
            name=view.submitter_name,
            when=when_text(view.submitted_at, timezone),
            team=view.team_name or _("common.empty"),
        ),
        "",
    ]
    if view.status == ReviewStatus.rejected:  # the reason may name the customer's details
        when = when_text(view.decided_at, timezone)
        lines.append(_("review.state.rejected_short", name=view.decider_name or "", when=when))
    else:
        lines.append(state_line(_, view, timezone))
    if view.pending:
        lines.append(_("review.group_details"))
    return "\n".join(lines)


def card_markup(
    _: Translator, view: ReviewView, *, for_deciders: bool, full: bool
) -> InlineKeyboardMarkup | None:
    """Approve / Reject while pending; a notice adds Open, the full card the customer's card."""
    rows = []
    if view.pending and for_deciders:
        rows.append(
            [
                InlineKeyboardButton(
                    _("review.button.approve"), callback_data=review_data("a", view.id)
                ),
                InlineKeyboardButton(
                    _("review.button.reject"), callback_data=review_data("r", view.id)
                ),
            ]
        )
        if not full:
            rows.append(
                [
                    InlineKeyboardButton(
                        _("review.button.open"), callback_data=review_data("o", view.id)
                    )
                ]
            )
    if full and view.customer_name is not None:  # the card module shows it, with its history
        rows.append(
            [
                InlineKeyboardButton(
                    _("review.button.customer"), callback_data=CARD.data("cu", view.customer_id)
                )
            ]
        )
    return InlineKeyboardMarkup(rows) if rows else None


def notice_card(
    _: Translator, view: ReviewView, timezone: str, *, group: bool = False
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The notice of a submission as the deciders get it (bot.sender delivers it); a group
    chat's copy names only the record and the submitter."""
    text = group_card_text(_, view, timezone) if group else card_text(_, view, timezone)
    return text, card_markup(_, view, for_deciders=True, full=False)


def copy_card(
    _: Translator, view: ReviewView, timezone: str, *, private: bool, full: bool
) -> tuple[str, InlineKeyboardMarkup | None]:
    """A sent copy of the card as it reads now (storage.outbox `review_edit`): a group's, a
    short notice with its Open, or the full card a decider opened with the customer's card."""
    if full:
        return card_text(_, view, timezone), card_markup(_, view, for_deciders=False, full=True)
    return notice_card(_, view, timezone, group=not private)
