"""Dates and times as people type them, in Chinese and English: 明天, 下周一, 3天后, "next Monday",
"in 2 weeks", "下午3点", "yesterday 15:30", besides 2026-12-01, 12/1, 12月1日 and +7.

A small grammar of our own rather than `dateparser`: it reads every form we promise (Chinese
numerals, 两, 下午3点半, "3 days ago"), refuses what it does not know instead of guessing, and
answers in ~20 µs (tests/bench/date_parsers.py: dateparser 1.5 read 20 of our 30 forms, missing
下周一, 三天后, 两周后, 12月1日, 下午3点 and reading +7 as July, at ~0.7-0.9 ms a call and
~0.1-0.3 s to import, besides four more dependencies).

Pure: the day (`today`) or moment (`now`) the words are relative to is always passed in.

The rules where words are ambiguous (the same in both languages):
- Weeks run Monday to Sunday. 下周一 / "next Monday" is the Monday of next week, 上周五 /
  "last Friday" the Friday of the week before, 本周五 / 这周五 / "this Friday" the Friday of this
  week (past or not).
- A bare weekday (周五, "Friday") is the nearest such day in the question's direction, today
  included: on a Friday, "Friday" is today. A question about the past (`prefer="past"`) reads it
  as the latest Friday up to today, any other as the next Friday from today on.
- A month and day without a year (12/1, 12月1日) is in this year; a question about the past
  takes last year's when this year's is still to come and last year's is at most half a year
  ago (12-28 typed in January), one about the future next year's likewise (1/5 typed in
  December). A day alone (5号) is this month's, or the nearest month's in the direction.
- 下周 / "next week" is the same weekday a week on; 下个月 / "next month" the same day a month
  on, the last day of the month when it has fewer days (31 January → 28 or 29 February).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, time, timedelta
from typing import Literal

Direction = Literal["past", "future"] | None


class NotADate(ValueError):
    """Words that do not read as a date (or time)."""


# --- numbers ----------------------------------------------------------------------------------

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6}
_CN_DIGITS |= {"七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10_000}
_CN_NUMBER = "[零〇一二两三四五六七八九十百千万]+"
_NUM = rf"(?:\d+|{_CN_NUMBER})"

_EN_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fourteen": 14,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
}
_EN_NUM = r"(?:\d+|" + "|".join(sorted(_EN_NUMBERS, key=len, reverse=True)) + ")"


def number(text: str) -> int:
    """`12`, `十二`, `两`, `二十五`, `一百零五`, `three` as an int."""
    if text.isdigit():
        return int(text)
    if text in _EN_NUMBERS:
        return _EN_NUMBERS[text]
    total, section, digit = 0, 0, None
    for char in text:
        if char in _CN_DIGITS:
            digit = _CN_DIGITS[char]
        elif char in _CN_UNITS:
            unit = _CN_UNITS[char]
            if unit == 10_000:
                total = (total + section + (digit or 0)) * unit
                section, digit = 0, None
            else:
                section += (1 if digit is None else digit) * unit  # 十五: the 1 is implied
                digit = None
        else:
            raise NotADate(text)
    return total + section + (digit or 0)


_CJK = "\u4e00-\u9fff\u3007"

# --- normalising ------------------------------------------------------------------------------


def _normal(text: str) -> str:
    """Full-width forms folded (１２：３０ → 12:30), lower case, one space between words."""
    text = unicodedata.normalize("NFKC", text).lower().strip()
    text = text.replace("，", ",").replace("。", "")
    text = re.sub(r"\s+", " ", text)
    text = re.sub(rf"(?<=[{_CJK}]) | (?=[{_CJK}])", "", text)  # 下 周 一, 12月 1日
    # 今晚 / 明早: a day and a part of it in one word
    for short, long in (("今晚", "今天晚上"), ("明晚", "明天晚上"), ("昨晚", "昨天晚上")):
        text = text.replace(short, long)
    for short, long in (("今早", "今天早上"), ("明早", "明天早上"), ("昨早", "昨天早上")):
        text = text.replace(short, long)
    return text


# --- days -------------------------------------------------------------------------------------

_NAMED_DAYS = {
    "今天": 0,
    "今日": 0,
    "today": 0,
    "明天": 1,
    "明日": 1,
    "tomorrow": 1,
    "后天": 2,
    "the day after tomorrow": 2,
    "day after tomorrow": 2,
    "大后天": 3,
    "昨天": -1,
    "昨日": -1,
    "yesterday": -1,
    "前天": -2,
    "the day before yesterday": -2,
    "day before yesterday": -2,
    "大前天": -3,
}

_CN_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
_CN_WEEKDAY |= {str(n): n - 1 for n in range(1, 8)}
_EN_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_EN_WEEKDAY = {name: index for index, name in enumerate(_EN_WEEKDAYS)}
_EN_WEEKDAY |= {name[:3]: index for index, name in enumerate(_EN_WEEKDAYS)}
_EN_WEEKDAY |= {"tues": 1, "weds": 2, "thur": 3, "thurs": 3}
_EN_WEEKDAY_WORD = "|".join(sorted(_EN_WEEKDAY, key=len, reverse=True))
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_EN_MONTH = {name: index + 1 for index, name in enumerate(_MONTHS)}
_EN_MONTH |= {name[:3]: index + 1 for index, name in enumerate(_MONTHS)}
_EN_MONTH |= {"sept": 9}
_EN_MONTH_WORD = "|".join(sorted(_EN_MONTH, key=len, reverse=True))

_CN_WEEK_WORD = r"(?:周|星期|礼拜|个星期|个礼拜)"
_CN_WEEKDAY_RE = re.compile(
    rf"(?P<which>上上|上|下下|下|这|本|这个|下个|上个)?\s*{_CN_WEEK_WORD}\s*(?P<day>[一二三四五六日天末1-7])"
)
_EN_WEEKDAY_RE = re.compile(
    rf"(?:(?P<which>next|last|this|coming|this coming|previous|the)\s+)?"
    rf"(?P<day>{_EN_WEEKDAY_WORD})\.?(?:\s+(?P<after>next week|last week|this week))?"
)
_CN_OFFSET = re.compile(
    rf"(?P<n>{_NUM}|半)\s*(?P<unit>天|日|个?星期|个?礼拜|周|个?月|年)(?:以|之)?\s*(?P<dir>后|前)"
)
_CN_NEXT = re.compile(r"(?P<which>上上|上|下下|下|这|本)\s*(?:个)?\s*(?P<unit>星期|礼拜|周|月)")
_CN_YEAR = {"今年": 0, "明年": 1, "后年": 2, "去年": -1, "前年": -2}
_EN_OFFSET = re.compile(
    rf"(?:in\s+(?P<n1>{_EN_NUM})\s+(?P<u1>day|week|month|year)s?(?:\s+time)?"
    rf"|(?P<n2>{_EN_NUM})\s+(?P<u2>day|week|month|year)s?\s+"
    r"(?P<dir>ago|from now|later|after|before|earlier|hence))"
)
_EN_NEXT = re.compile(r"(?P<which>next|last|this|previous)\s+(?P<unit>week|month|year)")
_ISO = re.compile(rf"(?P<y>\d{{4}})\s*[-/.年]\s*(?P<m>{_NUM})\s*[-/.月]\s*(?P<d>{_NUM})\s*[日号]?")
_MONTH_DAY = re.compile(rf"(?P<m>{_NUM})\s*(?:[-/.]|月)\s*(?P<d>{_NUM})\s*[日号]?")
_DAY_ONLY = re.compile(rf"(?P<d>{_NUM})\s*[日号]")
_EN_MONTH_DAY = re.compile(
    rf"(?:(?P<m1>{_EN_MONTH_WORD})\.?\s+(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?"
    rf"|(?:the\s+)?(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m2>{_EN_MONTH_WORD})\.?)"
    rf"(?:,?\s+(?P<y>\d{{4}}))?"
)
_PLUS = re.compile(r"\+\s*(?P<n>\d+)(?:\s*(?:天|d|days?))?")


def add_months(day: date, months: int) -> date:
    """The same day `months` later (earlier when negative), clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise NotADate("year out of range")
    month += 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def _shift(today: date, n: int, unit: str) -> date:
    try:
        if unit in ("day", "天", "日"):
            return today + timedelta(days=n)
        if unit in ("week", "周") or unit.endswith(("星期", "礼拜")):
            return today + timedelta(weeks=n)
        if unit in ("month",) or unit.endswith("月"):
            return add_months(today, n)
        return add_months(today, 12 * n)  # year, 年
    except OverflowError as error:
        raise NotADate("too far") from error


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _weekday(today: date, weekday: int, weeks: int | None, prefer: Direction) -> date:
    """`weeks` None: the nearest such day in `prefer`'s direction, today included; else that day
    of the week `weeks` away from this one (0 this week, 1 next, -1 last)."""
    if weeks is not None:
        return _monday(today) + timedelta(weeks=weeks, days=weekday)
    if prefer == "past":
        return today - timedelta(days=(today.weekday() - weekday) % 7)
    return today + timedelta(days=(weekday - today.weekday()) % 7)


_CN_WHICH = {"上上": -2, "上": -1, "上个": -1, "下下": 2, "下": 1, "下个": 1, "这": 0, "这个": 0}
_CN_WHICH |= {"本": 0}
_EN_WHICH = {"next": 1, "last": -1, "previous": -1, "this": 0}


ROLL_OVER = timedelta(days=183)  # how far into another year a month and day may be read


def _year_of(today: date, month: int, day: int, prefer: Direction) -> date:
    """A month and day without a year, in this year unless the direction says otherwise."""
    candidates = []
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            candidates.append(date(year, month, day))
        except ValueError:  # 29 February of a common year
            continue
    if not candidates:
        raise NotADate("no such day")
    if prefer == "future":
        nearest = min((c for c in candidates if c >= today), default=None)
    elif prefer == "past":
        nearest = max((c for c in candidates if c <= today), default=None)
    else:
        nearest = None
    if nearest is not None and (nearest.year == today.year or abs(nearest - today) <= ROLL_OVER):
        return nearest
    for candidate in candidates:
        if candidate.year == today.year:
            return candidate
    raise NotADate("no such day this year")


def _day_of_month(today: date, day: int, prefer: Direction) -> date:
    """`5号`: the 5th of this month, or the month before/after in the question's direction."""
    candidates = []
    for months in (-1, 0, 1, 2):
        first = add_months(today.replace(day=1), months)
        try:
            candidates.append((months, first.replace(day=day)))
        except ValueError:
            continue
    if prefer == "future":
        return min(c for _, c in candidates if c >= today)
    if prefer == "past":
        return max(c for _, c in candidates if c <= today)
    for months, candidate in candidates:
        if months == 0:
            return candidate
    raise NotADate("no such day this month")


def _day(text: str, today: date, prefer: Direction) -> date:
    if text in _NAMED_DAYS:
        return today + timedelta(days=_NAMED_DAYS[text])
    if text in _CN_YEAR:
        return add_months(today, 12 * _CN_YEAR[text])
    if match := _PLUS.fullmatch(text):
        return _shift(today, int(match["n"]), "day")
    if match := _CN_WEEKDAY_RE.fullmatch(text):
        which = match["which"]
        weeks = None if which is None else _CN_WHICH[which]
        return _weekday(today, _CN_WEEKDAY[match["day"]], weeks, prefer)
    if match := _EN_WEEKDAY_RE.fullmatch(text):
        which, after = match["which"], match["after"]
        weeks = _EN_WHICH.get(which or "")
        if which in ("coming", "this coming"):
            prefer = "future"
        if after:
            weeks = {"next week": 1, "last week": -1, "this week": 0}[after]
        return _weekday(today, _EN_WEEKDAY[match["day"]], weeks, prefer)
    if match := _CN_OFFSET.fullmatch(text):
        sign = 1 if match["dir"] == "后" else -1
        if match["n"] == "半":  # 半个月后, 半年后
            unit = match["unit"]
            if unit.endswith("月"):
                return _shift(today, sign * 15, "day")
            if unit == "年":
                return _shift(today, sign * 6, "月")
            raise NotADate(text)
        return _shift(today, sign * number(match["n"]), match["unit"])
    if match := _CN_NEXT.fullmatch(text):
        return _shift(today, _CN_WHICH[match["which"]], match["unit"])
    if match := _EN_OFFSET.fullmatch(text):
        if match["n1"]:
            return _shift(today, number(match["n1"]), match["u1"])
        sign = -1 if match["dir"] in ("ago", "before", "earlier") else 1
        return _shift(today, sign * number(match["n2"]), match["u2"])
    if match := _EN_NEXT.fullmatch(text):
        return _shift(today, _EN_WHICH[match["which"]], match["unit"])
    try:
        if match := _ISO.fullmatch(text):
            return date(int(match["y"]), number(match["m"]), number(match["d"]))
        if match := _MONTH_DAY.fullmatch(text):
            return _year_of(today, number(match["m"]), number(match["d"]), prefer)
        if match := _DAY_ONLY.fullmatch(text):
            return _day_of_month(today, number(match["d"]), prefer)
        if match := _EN_MONTH_DAY.fullmatch(text):
            month = _EN_MONTH[match["m1"] or match["m2"]]
            day = int(match["d1"] or match["d2"])
            if match["y"]:
                return date(int(match["y"]), month, day)
            return _year_of(today, month, day, prefer)
    except (ValueError, OverflowError) as error:
        raise NotADate(text) from error
    raise NotADate(text)


def parse_day(text: str, *, today: date, prefer: Direction = None) -> date:
    """The calendar day `text` names, counted from `today`; `prefer` is the question's direction
    for words that could mean either (周五, 12月1日). Raises `NotADate`."""
    value = _normal(text)
    value = re.sub(r"^(?:on|the|在)\s+", "", value)
    if not value or len(value) > MAX_LENGTH:
        raise NotADate(text)
    return _day(value, today, prefer)


# --- times of day -----------------------------------------------------------------------------

_PERIODS = "凌晨|早上|早晨|清晨|上午|中午|下午|傍晚|晚上|夜里|夜间|晚"
_PERIOD = rf"(?P<period>{_PERIODS})"
_MINUTE = rf"(?P<minute>{_NUM}|半|一刻|三刻)"
_CN_TIME = re.compile(rf"(?:{_PERIOD}\s*)?(?P<hour>{_NUM})\s*[点时](?:\s*{_MINUTE}\s*分?)?(?:钟)?")
_CLOCK = re.compile(
    rf"(?:{_PERIOD}\s*)?(?P<hour>\d{{1,2}})\s*:\s*(?P<minute>\d{{2}})(?:\s*(?P<ampm>[ap])\.?m\.?)?"
)
_EN_TIME = re.compile(
    r"(?P<hour>\d{1,2})(?:\s*[:.]\s*(?P<minute>\d{2}))?\s*(?P<ampm>[ap])\.?m\.?"
    r"|(?P<word>noon|midday|midnight)"
    r"|(?P<oclock>\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\s+o'?clock"
)
_LATER = ("中午", "下午", "傍晚", "晚上", "夜里", "夜间", "晚")


def _minute(text: str | None) -> int:
    if not text:
        return 0
    return {"半": 30, "一刻": 15, "三刻": 45}.get(text) or number(text)


def _clock(hour: int, minute: int, period: str | None = None, ampm: str | None = None) -> time:
    if ampm:
        if not 1 <= hour <= 12:
            raise NotADate("hour")
        hour = hour % 12 + (12 if ampm == "p" else 0)
    elif period in _LATER and hour < 12:
        if period == "中午" and hour >= 10:  # 中午11点 is before noon
            pass
        else:
            hour += 12
    elif period == "凌晨" and hour == 12:
        hour = 0
    if hour == 24 and minute == 0:
        hour, minute = 0, 0  # not reachable through periods; 24:00 is refused below
        raise NotADate("24:00")
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise NotADate("time")
    return time(hour, minute)


def _time(text: str) -> time:
    if match := _CLOCK.fullmatch(text):
        return _clock(int(match["hour"]), int(match["minute"]), match["period"], match["ampm"])
    if match := _CN_TIME.fullmatch(text):
        return _clock(number(match["hour"]), _minute(match["minute"]), match["period"])
    if match := _EN_TIME.fullmatch(text):
        if match["word"]:
            return time(0, 0) if match["word"] == "midnight" else time(12, 0)
        if match["oclock"]:
            return _clock(number(match["oclock"]), 0)
        return _clock(int(match["hour"]), int(match["minute"] or 0), None, match["ampm"])
    if text in _PERIOD_ONLY:
        return _PERIOD_ONLY[text]
    raise NotADate(text)


# a part of the day without a clock time: 今天上午 is today at 9
_PERIOD_ONLY = {
    "早上": time(8, 0),
    "上午": time(9, 0),
    "中午": time(12, 0),
    "下午": time(15, 0),
    "傍晚": time(18, 0),
    "晚上": time(20, 0),
    "morning": time(9, 0),
    "noon": time(12, 0),
    "afternoon": time(15, 0),
    "evening": time(19, 0),
    "tonight": time(20, 0),
}


def parse_time(text: str) -> time:
    """A time of day: 15:30, 下午3点, 三点半, 上午10点一刻, 3pm, 3:30 p.m., noon."""
    return _time(_normal(text))


MAX_LENGTH = 60  # longer text is no date; bounds the search for where the time begins


def _split_time(text: str) -> time | None:
    """The time of `text` if all of it is one (`at` and the like allowed around it)."""
    text = re.sub(r"^(?:at|in the|the)\s+|^[,在]\s*|\s*[,的]$", "", text.strip()).strip()
    try:
        return _time(text) if text else None
    except NotADate:
        return None


def parse_when(text: str, *, today: date, prefer: Direction = None) -> tuple[date, time | None]:
    """A day with or without a time of day: `yesterday 15:30`, `明天上午10点半`, `下午3点`
    (today), `3pm tomorrow`, `11-21 15:30`, `周五`. The time is None when none was typed.

    The day and the time are found by trying each place the text could split at: the day part
    first, then the time part first (`3pm tomorrow`)."""
    value = _normal(text)
    if not value or len(value) > MAX_LENGTH:
        raise NotADate(text)
    try:
        return parse_day(value, today=today, prefer=prefer), None
    except NotADate:
        pass
    for cut in range(len(value) + 1):
        for day_text, time_text in ((value[:cut], value[cut:]), (value[cut:], value[:cut])):
            clock = _split_time(time_text)
            if clock is None:
                continue
            day_text = re.sub(r"^(?:on)\s+|\s+(?:at|on)$|[,的]$", "", day_text.strip()).strip()
            if not day_text:
                return today, clock
            try:
                return parse_day(day_text, today=today, prefer=prefer), clock
            except NotADate:
                continue
    raise NotADate(text)


# --- periods ----------------------------------------------------------------------------------

_SEPARATOR = re.compile(r"\s*(?:\bto\b|\buntil\b|\btill\b|至|到|~|—|–|\s-\s)\s*")


def _named_period(text: str, today: date) -> tuple[date, date] | None:
    """本周 / "this week" (Monday to today), 上周 / "last week" (Monday to Sunday), 本月,
    上个月, 今年, 去年 and their English names; None for other words."""
    monday = _monday(today)
    first_of_month = today.replace(day=1)
    last_month = add_months(first_of_month, -1)
    periods = {
        ("本周", "这周", "this week"): (monday, today),
        ("上周", "上个星期", "上星期", "last week"): (
            monday - timedelta(weeks=1),
            monday - timedelta(days=1),
        ),
        ("本月", "这个月", "this month"): (first_of_month, today),
        ("上个月", "上月", "last month"): (last_month, first_of_month - timedelta(days=1)),
        ("今年", "this year"): (date(today.year, 1, 1), today),
        ("去年", "last year"): (date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
    }
    for names, period in periods.items():
        if text in names:
            return period
    return None


def parse_period(text: str, *, today: date) -> tuple[date, date]:
    """A report's period: two days (`2026-11-01 2026-11-30`, `11-01 to 11-30`, `上周一 至 昨天`,
    `last monday today`) or a named one (上个月, "this week"). Days read towards the past.
    Raises `NotADate`."""
    value = _normal(text)
    if not value or len(value) > 2 * MAX_LENGTH:
        raise NotADate(text)
    named = _named_period(value, today)
    if named is not None:
        return named
    parts = _SEPARATOR.split(value)
    if len(parts) == 2 and all(parts):
        return (
            parse_day(parts[0], today=today, prefer="past"),
            parse_day(parts[1], today=today, prefer="past"),
        )
    words = value.split(" ")
    for cut in range(1, len(words)):
        try:
            return (
                parse_day(" ".join(words[:cut]), today=today, prefer="past"),
                parse_day(" ".join(words[cut:]), today=today, prefer="past"),
            )
        except NotADate:
            continue
    single = parse_day(value, today=today, prefer="past")
    return single, single
