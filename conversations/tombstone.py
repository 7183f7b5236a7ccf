"""A destroyed customer's card (墓碑): what is left after destruction (销毁), to whoever may see
the customer and opens an old button to it. Number, kind, class, dates, and the record of the
destruction (who asked, who approved, why); no button, for there is nothing left to act on.

Opened by conversations/card.py when the customer it was asked for turns out destroyed; the
record is storage.destruction's `tombstone`.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.i18n import Translator
from conversations import fit
from conversations.fit import Slot
from storage.destruction import Tombstone

REASON_LIMIT = 600  # the request's reason is at most 500 characters (storage.life_cycle)


def _day(_: Translator, moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).date().isoformat() if moment else _("common.empty")


def tombstone_text(_: Translator, stone: Tombstone, zone: ZoneInfo) -> str:
    """The tombstone's text, within Telegram's limit (the reason shortened if need be)."""
    from conversations.card import label, shown_value

    rows: list[tuple[str, str]] = [
        (_("card.label.number"), stone.customer_no),
        (label(_, "kind"), shown_value(_, "kind", stone.kind)),
        (label(_, "customer_class"), shown_value(_, "customer_class", stone.customer_class)),
        (_("card.label.status"), _("card.status.destroyed")),
        (_("destroy.tombstone.created"), _day(_, stone.created_at, zone)),
        (_("destroy.tombstone.approved"), _day(_, stone.approved_at, zone)),
        (_("destroy.tombstone.archived"), _day(_, stone.archived_at, zone)),
        (_("destroy.tombstone.destroyed"), _day(_, stone.destroyed_at, zone)),
        (_("destroy.tombstone.requested_by"), stone.requested_by or _("common.empty")),
        (_("destroy.tombstone.approved_by"), stone.approved_by or _("common.empty")),
    ]
    lines: list[fit.Line] = [_("destroy.tombstone.title", number=stone.customer_no)]
    lines += [(f"{name}: ", Slot(value)) for name, value in rows]
    reason = fit.clip(stone.reason, REASON_LIMIT) if stone.reason else _("common.empty")
    lines += [(f"{_('destroy.tombstone.reason')}: ", Slot(reason))]
    lines += ["", _("destroy.tombstone.note")]
    return fit.compose(lines)
