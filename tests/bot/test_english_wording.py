"""English texts read as English: no Chinese wording in them, counts with the right plural."""

from __future__ import annotations

import re

import pytest

from bot.i18n import Translator, catalog, duration, plurals, translate, translate_plural

CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
# CJK that is data, not wording: the language's own name on the language button
ALLOWED = {"lang.zh"}


def test_no_english_message_has_chinese_in_it() -> None:
    offenders = {
        key: text for key, text in catalog("en").items() if CJK.search(text) and key not in ALLOWED
    }
    offenders |= {
        key: " / ".join(forms)
        for key, forms in plurals("en").forms.items()
        if any(CJK.search(form) for form in forms)
    }
    assert offenders == {}


def test_the_allow_list_is_still_needed() -> None:
    """An entry that no longer holds Chinese leaves the list, so it stays short and true."""
    assert all(CJK.search(catalog("en")[key]) for key in ALLOWED)


@pytest.mark.parametrize(
    ("key", "n", "english", "chinese"),
    [
        ("unit.day", 1, "1 day", "1 天"),
        ("unit.day", 3, "3 days", "3 天"),
        ("unit.day", 0, "0 days", "0 天"),
        ("unit.hour", 1, "1 hour", "1 小时"),
        ("unit.customer", 1, "1 customer", "1 个客户"),
        ("unit.customer", 21, "21 customers", "21 个客户"),
        ("unit.person", 2, "2 people", "2 人"),
    ],
)
def test_counts_take_the_plural_form_of_their_language(
    key: str, n: int, english: str, chinese: str
) -> None:
    assert translate_plural("en", key, n) == english
    assert translate_plural("zh", key, n) == chinese
    assert Translator("en").plural(key, n) == english


@pytest.mark.parametrize(
    ("key", "values", "expected"),
    [
        ("reminders.button.days", {"days": 1}, "+1 day"),
        ("reminders.button.days", {"days": 7}, "+7 days"),
        ("staff.seen.days", {"n": 1}, "1 day ago"),
        (
            "reminders.item.survey",
            {"years": 1, "customer": "Stamm AG", "number": "KH-1"},
            "⭐ 1 year",
        ),
        ("flow.attachments_count", {"count": 1}, "1 attachment"),
        ("flow.attachments_count", {"count": 2}, "2 attachments"),
        ("invalid.too_long", {"limit": 1}, "Too long: at most 1 character."),
        (
            "export.done",
            {"what": "Visits", "rows": "1,234"},
            "✅ Export of Visits sent: 1,234 rows.",
        ),
    ],
)
def test_messages_with_a_count_read_right_in_english(
    key: str, values: dict[str, object], expected: str
) -> None:
    assert translate("en", key, **values).startswith(expected)


def test_chinese_messages_are_unchanged_by_plurals() -> None:
    assert translate("zh", "staff.seen.days", n=1) == "1 天前"


@pytest.mark.parametrize(
    ("hours", "english", "chinese"),
    [
        (24, "1 day", "1 天"),
        (168, "7 days", "7 天"),
        (36, "36 hours", "36 小时"),
        (1, "1 hour", "1 小时"),
    ],
)
def test_durations_are_said_in_days_when_whole(hours: int, english: str, chinese: str) -> None:
    assert duration("en", hours) == english
    assert duration("zh", hours) == chinese
