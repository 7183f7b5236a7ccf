"""The summaries a finished hand-over sends: to each successor what they received, to the
teams' managers who received what. Shared by the chat (conversations.handover) and the command
line (`python -m bot staff handover`), each text in its recipient's language."""

from __future__ import annotations

from bot.i18n import Translator, pick_language
from conversations import fit
from storage.handover import Finished, Notifier, Received
from storage.models import Staff

NAME_LIMIT = 40  # a customer's or person's name in a summary line
SUCCESSORS_SHOWN = 30  # lines of the managers' summary; more are counted


def _counts(_: Translator, received: Received) -> str:
    parts = [_("handover.count.customers", count=received.customers)]
    for kind in ("complaints", "reviews", "reminders"):
        count = getattr(received, kind)
        if count:
            parts.append(_(f"handover.count.{kind}", count=count))
    return _("handover.count.join").join(parts)


def successor_text(_: Translator, finished: Finished, received: Received) -> str:
    """What one successor is told: from whom, how much, and the first customers by name."""
    lines = [
        _(
            "handover.summary.successor",
            name=fit.clip(finished.leaver.display_name, NAME_LIMIT),
            counts=_counts(_, received),
        )
    ]
    for number, name in received.first:
        lines.append(f"· {number} {fit.clip(name, NAME_LIMIT)}")
    more = received.customers - len(received.first)
    if more > 0:
        lines.append(_("handover.summary.more", count=more))
    lines.append(_("handover.summary.see_my"))
    return fit.message("\n".join(lines))


def managers_text(_: Translator, finished: Finished) -> str:
    """What the teams' managers are told: whose records went to whom."""
    lines = [
        _(
            "handover.summary.managers",
            name=fit.clip(finished.leaver.display_name, NAME_LIMIT),
            reason=_(f"handover.reason.{finished.handover.reason}"),
        )
    ]
    for received in finished.received[:SUCCESSORS_SHOWN]:
        lines.append(
            f"· {fit.clip(received.successor.display_name, NAME_LIMIT)}: {_counts(_, received)}"
        )
    more = len(finished.received) - SUCCESSORS_SHOWN
    if more > 0:
        lines.append(_("handover.summary.more_people", count=more))
    return fit.message("\n".join(lines))


def notifier(default_language: str) -> Notifier:
    """The storage.handover Notifier: each recipient's summary in their own language."""

    def render(recipient: Staff, finished: Finished, received: Received | None) -> str:
        _ = Translator(pick_language(recipient.language, None, default_language))
        if received is None:
            return managers_text(_, finished)
        return successor_text(_, finished, received)

    return render
