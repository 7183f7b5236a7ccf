"""Button data has one codec per feature: it builds the data, routes it and reads it back.

The wire format is the one buttons already in users' chats carry, so a press on an old message
still reaches its feature; data Telegram would refuse (over 64 bytes) is never built.
"""

from __future__ import annotations

import pytest
from telegram.ext import CallbackQueryHandler

from conversations import callback_data as buttons
from conversations.callback_data import CODECS, Press
from tests.auxil.world import World
from tests.bot.test_forged_buttons import FORMS


def _codecs_claiming(data: str) -> list[str]:
    return [codec.feature for codec in CODECS if codec.pattern.match(data)]


@pytest.mark.parametrize("form", FORMS)
def test_every_button_form_belongs_to_exactly_one_feature(form: str) -> None:
    data = form.replace("{cid}", "7").replace("{token}", "9").replace("{sid}", "5")
    assert len(_codecs_claiming(data.replace("X", "1"))) == 1, data


def test_the_routing_table_takes_every_button_pattern_from_a_codec(world: World) -> None:
    patterns = [
        handler.pattern
        for group in world.app.handlers.values()
        for handler in group
        if isinstance(handler, CallbackQueryHandler)
    ]
    routed = [p for p in patterns if p is not None]
    assert routed == [codec.pattern for codec in CODECS]
    assert patterns[-1] is None  # the catch-all for stale buttons comes last


def test_buttons_already_sent_read_back_as_they_were_built() -> None:
    """The wire format: the prefix and the fields joined by colons, as before the codecs."""
    assert buttons.VISIT.data("cvl", 12, "p3") == "cvl:12:p3"
    assert buttons.KEY_PERSONS.data("kp", "rm", 7, 3, 2) == "kp:rm:7:3:2"
    assert buttons.REMINDERS.data("rm", "s", 4, 7) == "rm:s:4:7"
    assert buttons.FLOW.data("w", 5, "s", "") == "w:5:s:"
    assert buttons.VISIT.parse("cvl:12:p3") == Press("cvl", ("12", "p3"))
    press = buttons.COMPLAINT.parse("cx:4:to17")
    assert press is not None and press.id(0) == 4 and press.id(1, tag="to") == 17
    assert press.id(1, tag="p") is None and press.id(2) is None and press.text(2) is None


def test_a_flow_button_keeps_colons_in_its_argument_and_needs_all_three_fields() -> None:
    assert buttons.FLOW.parse("w:5:c:1:9") == Press("w", ("5", "c", "1:9"))
    assert buttons.FLOW.parse("w:5:c") is None
    assert buttons.FLOW.parse("w") is None


def test_data_of_another_feature_or_no_data_is_not_parsed() -> None:
    assert buttons.CARD.parse("cv:1") is None
    assert buttons.CARD.parse("cu") is None
    assert buttons.CARD.parse(None) is None
    assert buttons.FIND.parse("fz:1") is None


def test_forged_ids_inside_fields_are_refused_like_parse_id_refuses_them() -> None:
    for bad in ("²", "-1", " 1", "1e3", "12345678901234567890", ""):
        press = buttons.VISIT.parse(f"cvl:{bad}:p{bad}")
        assert press is not None and press.id(0) is None and press.id(1, tag="p") is None
    press = buttons.KEY_PERSONS.parse("kp:rm:1:²:2")
    assert press is not None and press.ids(1) is None


def test_data_telegram_would_refuse_is_never_built() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        buttons.FIND.data("fv", 1, "industry", "机" * 20)  # 60 bytes of CJK alone
    assert len(buttons.FIND.data("fv", 2**31 - 1, "z", "a" * 48).encode()) == 64
    with pytest.raises(ValueError, match="not a prefix"):
        buttons.CARD.data("cv", 1)  # a visit button built by the card's codec
