"""The date grammar (storage.dates) as a table: what each typed form means on a given day."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from storage import validation
from storage.dates import NotADate, add_months, number, parse_day, parse_period, parse_when

WEDNESDAY = date(2026, 12, 2)
SUNDAY = date(2026, 11, 22)
FRIDAY = date(2026, 11, 27)


@pytest.mark.parametrize(
    ("typed", "today", "expected"),
    [
        # named days, both languages
        ("今天", WEDNESDAY, date(2026, 12, 2)),
        ("今日", WEDNESDAY, date(2026, 12, 2)),
        ("明天", WEDNESDAY, date(2026, 12, 3)),
        ("后天", WEDNESDAY, date(2026, 12, 4)),
        ("大后天", WEDNESDAY, date(2026, 12, 5)),
        ("昨天", WEDNESDAY, date(2026, 12, 1)),
        ("前天", WEDNESDAY, date(2026, 11, 30)),
        ("today", WEDNESDAY, date(2026, 12, 2)),
        ("Today", WEDNESDAY, date(2026, 12, 2)),
        ("TOMORROW", WEDNESDAY, date(2026, 12, 3)),
        ("yesterday", WEDNESDAY, date(2026, 12, 1)),
        ("the day after tomorrow", WEDNESDAY, date(2026, 12, 4)),
        ("day before yesterday", WEDNESDAY, date(2026, 11, 30)),
        # weeks: 下周一 and "next Monday" are the Monday of next week
        ("下周一", WEDNESDAY, date(2026, 12, 7)),
        ("下星期一", WEDNESDAY, date(2026, 12, 7)),
        ("下个星期一", WEDNESDAY, date(2026, 12, 7)),
        ("下礼拜五", WEDNESDAY, date(2026, 12, 11)),
        ("next Monday", WEDNESDAY, date(2026, 12, 7)),
        ("next friday", WEDNESDAY, date(2026, 12, 11)),
        ("下周日", SUNDAY, date(2026, 11, 29)),
        ("下周一", SUNDAY, date(2026, 11, 23)),
        ("next sunday", SUNDAY, date(2026, 11, 29)),
        ("本周五", WEDNESDAY, date(2026, 12, 4)),
        ("这周一", WEDNESDAY, date(2026, 11, 30)),
        ("this Friday", WEDNESDAY, date(2026, 12, 4)),
        ("上周五", WEDNESDAY, date(2026, 11, 27)),
        ("last Friday", WEDNESDAY, date(2026, 11, 27)),
        ("下下周三", WEDNESDAY, date(2026, 12, 16)),
        ("周1", WEDNESDAY, date(2026, 12, 7)),
        ("monday next week", WEDNESDAY, date(2026, 12, 7)),
        # a bare weekday is the next one, today included (no direction given)
        ("周五", WEDNESDAY, date(2026, 12, 4)),
        ("星期五", FRIDAY, date(2026, 11, 27)),
        ("Friday", FRIDAY, date(2026, 11, 27)),
        ("fri", WEDNESDAY, date(2026, 12, 4)),
        ("周三", WEDNESDAY, date(2026, 12, 2)),
        ("周二", WEDNESDAY, date(2026, 12, 8)),
        ("周日", SUNDAY, date(2026, 11, 22)),
        # offsets, with Chinese numerals and 两
        ("3天后", WEDNESDAY, date(2026, 12, 5)),
        ("三天后", WEDNESDAY, date(2026, 12, 5)),
        ("3 天后", WEDNESDAY, date(2026, 12, 5)),
        ("3天以后", WEDNESDAY, date(2026, 12, 5)),
        ("十天后", WEDNESDAY, date(2026, 12, 12)),
        ("十五天后", WEDNESDAY, date(2026, 12, 17)),
        ("二十天后", WEDNESDAY, date(2026, 12, 22)),
        ("两周后", WEDNESDAY, date(2026, 12, 16)),
        ("两个星期后", WEDNESDAY, date(2026, 12, 16)),
        ("3天前", WEDNESDAY, date(2026, 11, 29)),
        ("三天之前", WEDNESDAY, date(2026, 11, 29)),
        ("一个月后", WEDNESDAY, date(2027, 1, 2)),
        ("半个月后", WEDNESDAY, date(2026, 12, 17)),
        ("下个月", WEDNESDAY, date(2027, 1, 2)),
        ("下月", WEDNESDAY, date(2027, 1, 2)),
        ("上个月", WEDNESDAY, date(2026, 11, 2)),
        ("下周", WEDNESDAY, date(2026, 12, 9)),
        ("明年", WEDNESDAY, date(2027, 12, 2)),
        ("in 3 days", WEDNESDAY, date(2026, 12, 5)),
        ("in three days", WEDNESDAY, date(2026, 12, 5)),
        ("in 1 day", WEDNESDAY, date(2026, 12, 3)),
        ("in 0 days", WEDNESDAY, date(2026, 12, 2)),
        ("0天后", WEDNESDAY, date(2026, 12, 2)),
        ("in 2 weeks", WEDNESDAY, date(2026, 12, 16)),
        ("in a week", WEDNESDAY, date(2026, 12, 9)),
        ("in a month", WEDNESDAY, date(2027, 1, 2)),
        ("3 days ago", WEDNESDAY, date(2026, 11, 29)),
        ("a week ago", WEDNESDAY, date(2026, 11, 25)),
        ("2 weeks from now", WEDNESDAY, date(2026, 12, 16)),
        ("next week", WEDNESDAY, date(2026, 12, 9)),
        ("next month", WEDNESDAY, date(2027, 1, 2)),
        ("last month", WEDNESDAY, date(2026, 11, 2)),
        ("+7", WEDNESDAY, date(2026, 12, 9)),
        ("+ 7", WEDNESDAY, date(2026, 12, 9)),
        ("＋７", WEDNESDAY, date(2026, 12, 9)),
        ("+0", WEDNESDAY, date(2026, 12, 2)),
        # month ends: the same day a month on, else the month's last day
        ("下个月", date(2027, 1, 31), date(2027, 2, 28)),
        ("下个月", date(2028, 1, 31), date(2028, 2, 29)),
        ("一个月后", date(2026, 3, 31), date(2026, 4, 30)),
        ("上个月", date(2026, 3, 31), date(2026, 2, 28)),
        ("明年", date(2028, 2, 29), date(2029, 2, 28)),
        # year end
        ("明天", date(2026, 12, 31), date(2027, 1, 1)),
        ("yesterday", date(2027, 1, 1), date(2026, 12, 31)),
        ("下周一", date(2026, 12, 31), date(2027, 1, 4)),
        ("in 2 weeks", date(2026, 12, 25), date(2027, 1, 8)),
        ("+1", date(2028, 2, 28), date(2028, 2, 29)),
        # absolute forms
        ("2026-12-01", WEDNESDAY, date(2026, 12, 1)),
        ("2026/12/1", WEDNESDAY, date(2026, 12, 1)),
        ("2026／12／1", WEDNESDAY, date(2026, 12, 1)),
        ("2026.12.01", WEDNESDAY, date(2026, 12, 1)),
        ("2026年12月1日", WEDNESDAY, date(2026, 12, 1)),
        ("2026 年 12 月 1 日", WEDNESDAY, date(2026, 12, 1)),
        ("２０２６－１２－０１", WEDNESDAY, date(2026, 12, 1)),
        ("12/1", WEDNESDAY, date(2026, 12, 1)),
        ("12-01", WEDNESDAY, date(2026, 12, 1)),
        ("12月1日", WEDNESDAY, date(2026, 12, 1)),
        ("12月1号", WEDNESDAY, date(2026, 12, 1)),
        ("十二月一日", WEDNESDAY, date(2026, 12, 1)),
        ("2028-02-29", WEDNESDAY, date(2028, 2, 29)),
        ("Dec 25", WEDNESDAY, date(2026, 12, 25)),
        ("25 December 2027", WEDNESDAY, date(2027, 12, 25)),
        ("December 1st, 2026", WEDNESDAY, date(2026, 12, 1)),
        ("5号", WEDNESDAY, date(2026, 12, 5)),
        # spaces anywhere
        ("  明天  ", WEDNESDAY, date(2026, 12, 3)),
        ("下 周 一", WEDNESDAY, date(2026, 12, 7)),
        ("next   Monday", WEDNESDAY, date(2026, 12, 7)),
        ("in\t3 days", WEDNESDAY, date(2026, 12, 5)),
    ],
)
def test_a_typed_day(typed: str, today: date, expected: date) -> None:
    assert parse_day(typed, today=today) == expected


@pytest.mark.parametrize(
    ("typed", "today", "prefer", "expected"),
    [
        # a bare weekday goes the question's way, today included
        ("周五", WEDNESDAY, "past", date(2026, 11, 27)),
        ("周五", WEDNESDAY, "future", date(2026, 12, 4)),
        ("Friday", WEDNESDAY, "past", date(2026, 11, 27)),
        ("周五", FRIDAY, "past", date(2026, 11, 27)),
        ("周五", FRIDAY, "future", date(2026, 11, 27)),
        ("friday", FRIDAY, "future", date(2026, 11, 27)),
        ("周日", SUNDAY, "past", date(2026, 11, 22)),
        # 下周一 is next week's whatever the direction
        ("下周一", WEDNESDAY, "past", date(2026, 12, 7)),
        # a month and day near the year's turn goes the question's way
        ("12-28", date(2027, 1, 5), "past", date(2026, 12, 28)),
        ("12-28", date(2027, 1, 5), None, date(2027, 12, 28)),
        ("1/5", date(2026, 12, 20), "future", date(2027, 1, 5)),
        ("1/5", date(2026, 12, 20), "past", date(2026, 1, 5)),
        # but not a whole year away: 12-01 in November is this year's
        ("12-01", date(2026, 11, 22), "past", date(2026, 12, 1)),
    ],
)
def test_a_day_read_in_the_questions_direction(
    typed: str, today: date, prefer: str | None, expected: date
) -> None:
    assert parse_day(typed, today=today, prefer=prefer) == expected  # type: ignore[arg-type]


def test_29_february_without_a_year() -> None:
    assert parse_day("2月29日", today=date(2028, 1, 10)) == date(2028, 2, 29)
    assert parse_day("2月29日", today=date(2028, 3, 10), prefer="past") == date(2028, 2, 29)
    with pytest.raises(NotADate):
        parse_day("2月29日", today=date(2027, 1, 10))  # no such day this year
    with pytest.raises(NotADate):
        parse_day("2027-02-29", today=WEDNESDAY)


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "改天",
        "soon",
        "someday",
        "下周八",
        "2026-13-01",
        "2026-02-30",
        "12/32",
        "0/1",
        "32号",
        "in days",
        "next",
        "3天",
        "+",
        "+-3",
        "-3",
        "in 99999999999 days",
        "99999999999天后",
        "一万万年后",
        "明天" * 40,
        "tomorrow 25:00",
    ],
)
def test_words_that_are_no_day(typed: str) -> None:
    with pytest.raises(NotADate):
        parse_day(typed, today=WEDNESDAY)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("下午3点", (WEDNESDAY, time(15, 0))),
        ("下午三点", (WEDNESDAY, time(15, 0))),
        ("下午3点半", (WEDNESDAY, time(15, 30))),
        ("上午10点一刻", (WEDNESDAY, time(10, 15))),
        ("晚上8点", (WEDNESDAY, time(20, 0))),
        ("今晚8点", (WEDNESDAY, time(20, 0))),
        ("中午12点", (WEDNESDAY, time(12, 0))),
        ("中午1点", (WEDNESDAY, time(13, 0))),
        ("凌晨12点", (WEDNESDAY, time(0, 0))),
        ("9点05分", (WEDNESDAY, time(9, 5))),
        ("15点", (WEDNESDAY, time(15, 0))),
        ("15:30", (WEDNESDAY, time(15, 30))),
        ("15：30", (WEDNESDAY, time(15, 30))),
        ("下午3:30", (WEDNESDAY, time(15, 30))),
        ("3pm", (WEDNESDAY, time(15, 0))),
        ("3 PM", (WEDNESDAY, time(15, 0))),
        ("3:30 p.m.", (WEDNESDAY, time(15, 30))),
        ("12am", (WEDNESDAY, time(0, 0))),
        ("12pm", (WEDNESDAY, time(12, 0))),
        ("noon", (WEDNESDAY, time(12, 0))),
        ("yesterday 15:30", (date(2026, 12, 1), time(15, 30))),
        ("yesterday at 3:30pm", (date(2026, 12, 1), time(15, 30))),
        ("tomorrow at 3pm", (date(2026, 12, 3), time(15, 0))),
        ("3pm tomorrow", (date(2026, 12, 3), time(15, 0))),
        ("明天上午10点半", (date(2026, 12, 3), time(10, 30))),
        ("明天 上午 10点半", (date(2026, 12, 3), time(10, 30))),
        ("昨天下午", (date(2026, 12, 1), time(15, 0))),
        ("11-21 15:30", (date(2026, 11, 21), time(15, 30))),
        ("2026-11-21 15:30", (date(2026, 11, 21), time(15, 30))),
        ("11月21日 15:30", (date(2026, 11, 21), time(15, 30))),
        ("11月21日下午3点", (date(2026, 11, 21), time(15, 0))),
        ("12-1 3pm", (date(2026, 12, 1), time(15, 0))),
        ("3天前下午2点", (date(2026, 11, 29), time(14, 0))),
        ("明天", (date(2026, 12, 3), None)),
        ("2026-11-21", (date(2026, 11, 21), None)),
    ],
)
def test_a_typed_moment(typed: str, expected: tuple[date, time | None]) -> None:
    assert parse_when(typed, today=WEDNESDAY) == expected


@pytest.mark.parametrize(
    "typed", ["25:00", "13pm", "0am", "15:60", "下午25点", "明天 3", "tomorrow at", "at 3pm later"]
)
def test_words_that_are_no_moment(typed: str) -> None:
    with pytest.raises(NotADate):
        parse_when(typed, today=WEDNESDAY)


def test_a_moment_in_the_past_reads_a_weekday_backwards() -> None:
    assert parse_when("周五 10:00", today=WEDNESDAY, prefer="past") == (
        date(2026, 11, 27),
        time(10, 0),
    )


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2026-11-01 2026-11-30", (date(2026, 11, 1), date(2026, 11, 30))),
        ("11-01 to 11-30", (date(2026, 11, 1), date(2026, 11, 30))),
        ("11月1日 至 昨天", (date(2026, 11, 1), date(2026, 12, 1))),
        ("11月1日到今天", (date(2026, 11, 1), date(2026, 12, 2))),
        ("last monday today", (date(2026, 11, 23), date(2026, 12, 2))),
        ("last monday to yesterday", (date(2026, 11, 23), date(2026, 12, 1))),
        ("上个月", (date(2026, 11, 1), date(2026, 11, 30))),
        ("last month", (date(2026, 11, 1), date(2026, 11, 30))),
        ("本月", (date(2026, 12, 1), date(2026, 12, 2))),
        ("this week", (date(2026, 11, 30), date(2026, 12, 2))),
        ("上周", (date(2026, 11, 23), date(2026, 11, 29))),
        ("去年", (date(2025, 1, 1), date(2025, 12, 31))),
        ("昨天", (date(2026, 12, 1), date(2026, 12, 1))),
    ],
)
def test_a_typed_period(typed: str, expected: tuple[date, date]) -> None:
    assert parse_period(typed, today=WEDNESDAY) == expected


def test_last_month_in_january_is_last_years_december() -> None:
    assert parse_period("上个月", today=date(2027, 1, 15)) == (
        date(2026, 12, 1),
        date(2026, 12, 31),
    )


@pytest.mark.parametrize(
    ("typed", "value"),
    [("0", 0), ("12", 12), ("十", 10), ("十二", 12), ("二十五", 25), ("两", 2), ("一百零五", 105)],
)
def test_numbers(typed: str, value: int) -> None:
    assert number(typed) == value


def test_adding_months_clamps_to_the_month_end() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 12, 15), 1) == date(2027, 1, 15)
    assert add_months(date(2026, 1, 15), -1) == date(2025, 12, 15)
    with pytest.raises(NotADate):
        add_months(date(9999, 12, 1), 1)


# validation.day: the question's direction and range on top of the grammar


def test_a_future_question_refuses_yesterday_and_reads_friday_forwards() -> None:
    with pytest.raises(validation.Invalid) as refused:
        validation.day("昨天", today=WEDNESDAY, past_ok=False)
    assert refused.value.code == "date_past"
    assert validation.day("周五", today=WEDNESDAY, past_ok=False) == date(2026, 12, 4)


def test_a_past_question_refuses_plus_seven_and_reads_friday_backwards() -> None:
    with pytest.raises(validation.Invalid) as refused:
        validation.day("+7", today=WEDNESDAY, future_ok=False)
    assert refused.value.code == "date_future"
    assert validation.day("Friday", today=WEDNESDAY, future_ok=False) == date(2026, 11, 27)


def test_huge_offsets_are_refused_as_out_of_range_not_crashes() -> None:
    latest = date(2031, 12, 2)
    with pytest.raises(validation.Invalid) as refused:
        validation.day("+99999", today=WEDNESDAY, latest=latest)
    assert refused.value.code == "date_range"
    with pytest.raises(validation.Invalid) as unreadable:
        validation.day("+9999999999", today=WEDNESDAY, latest=latest)
    assert unreadable.value.code == "date"


def test_the_parser_reads_no_clock() -> None:
    """The same words on two days give two answers: `today` is the only reference."""
    assert parse_day("明天", today=date(2000, 1, 1)) == date(2000, 1, 2)
    assert parse_when("15:30", today=date(2000, 1, 1)) == (date(2000, 1, 1), time(15, 30))
    assert datetime.combine(*parse_when("yesterday 15:30", today=date(2000, 1, 1))) == datetime(
        1999, 12, 31, 15, 30
    )
