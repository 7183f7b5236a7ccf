"""The validation rules behind the flows: date ranges, times before 2000, control characters."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from storage import validation
from storage.validation import Invalid
from storage.visits import parse_moment

TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_a_day_outside_its_range_names_the_range() -> None:
    latest = validation.years_after(TODAY, validation.FOLLOWUP_YEARS)
    assert latest == date(2031, 11, 22)
    assert validation.day("2031-11-22", today=TODAY, earliest=TODAY, latest=latest) == latest
    with pytest.raises(Invalid) as refused:
        validation.day("9999-12-31", today=TODAY, earliest=TODAY, latest=latest)
    assert (refused.value.code, refused.value.earliest, refused.value.latest) == (
        "date_range",
        "2026-11-22",
        "2031-11-22",
    )
    with pytest.raises(Invalid, match="date_range"):
        validation.day("0001-01-01", today=TODAY, earliest=validation.EARLIEST_BIRTHDAY)
    assert validation.years_after(date(2028, 2, 29), 5) == date(2033, 2, 28)


@pytest.mark.parametrize("typed", ["0001-01-01 00:05", "1999-12-31 23:59", "0001-01-01"])
def test_a_moment_before_2000_is_refused(typed: str) -> None:
    with pytest.raises(Invalid) as refused:
        parse_moment(typed, now=NOW)
    assert (refused.value.code, refused.value.earliest) == ("moment_early", "2000-01-01")


def test_the_earliest_moment_can_be_kept_in_utc() -> None:
    moment = parse_moment("2000-01-01 00:00", now=NOW)
    assert moment.astimezone(ZoneInfo("UTC")).year == 1999


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("a\x00b", "ab"),
        ("line 1\r\nline 2\rline 3", "line 1\nline 2\nline 3"),
        ("tab\tkept\n", "tab\tkept\n"),
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),
        ("del\x7f c1\x85 done", "del c1 done"),
        ("中文 ✓", "中文 ✓"),
    ],
)
def test_printable_drops_control_characters_but_tab_and_newline(typed: str, kept: str) -> None:
    assert validation.printable(typed) == kept
