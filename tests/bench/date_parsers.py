"""Our date grammar (storage/dates.py) against `dateparser` on the forms the bot promises.

Run: `python tests/bench/date_parsers.py` (dateparser is measured only where it is installed;
it is not a dependency). Prints, for each parser, how many forms it reads right, its import
time and its time per call. Reference day: Wednesday 2 December 2026, 10:00.
"""

from __future__ import annotations

import contextlib
import importlib
import subprocess
import sys
import time as clock
from datetime import date, datetime, time

TODAY = date(2026, 12, 2)  # a Wednesday
NOW = datetime(2026, 12, 2, 10, 0)

# (typed, the day meant, the time meant or None)
FORMS: list[tuple[str, date, time | None]] = [
    ("今天", date(2026, 12, 2), None),
    ("明天", date(2026, 12, 3), None),
    ("后天", date(2026, 12, 4), None),
    ("昨天", date(2026, 12, 1), None),
    ("前天", date(2026, 11, 30), None),
    ("下周一", date(2026, 12, 7), None),
    ("下星期一", date(2026, 12, 7), None),
    ("周五", date(2026, 12, 4), None),
    ("3天后", date(2026, 12, 5), None),
    ("三天后", date(2026, 12, 5), None),
    ("两周后", date(2026, 12, 16), None),
    ("下个月", date(2027, 1, 2), None),
    ("today", date(2026, 12, 2), None),
    ("tomorrow", date(2026, 12, 3), None),
    ("yesterday", date(2026, 12, 1), None),
    ("next Monday", date(2026, 12, 7), None),
    ("Friday", date(2026, 12, 4), None),
    ("in 3 days", date(2026, 12, 5), None),
    ("in 2 weeks", date(2026, 12, 16), None),
    ("3 days ago", date(2026, 11, 29), None),
    ("2026-12-01", date(2026, 12, 1), None),
    ("12/1", date(2026, 12, 1), None),
    ("12月1日", date(2026, 12, 1), None),
    ("+7", date(2026, 12, 9), None),
    ("下午3点", date(2026, 12, 2), time(15, 0)),
    ("15:30", date(2026, 12, 2), time(15, 30)),
    ("3pm", date(2026, 12, 2), time(15, 0)),
    ("yesterday 15:30", date(2026, 12, 1), time(15, 30)),
    ("明天上午10点半", date(2026, 12, 3), time(10, 30)),
    ("11-21 15:30", date(2026, 11, 21), time(15, 30)),
]


def ours() -> tuple[float, int, float]:
    started = clock.perf_counter()
    dates = importlib.import_module("storage.dates")
    imported = clock.perf_counter() - started
    right = 0
    for typed, day, at in FORMS:
        try:
            got = dates.parse_when(typed, today=TODAY)
        except dates.NotADate:
            continue
        right += got == (day, at)
    started = clock.perf_counter()
    rounds = 200
    for _ in range(rounds):
        for typed, _day, _at in FORMS:
            with contextlib.suppress(dates.NotADate):
                dates.parse_when(typed, today=TODAY)
    per_call = (clock.perf_counter() - started) / (rounds * len(FORMS))
    return imported, right, per_call


def theirs() -> tuple[float, int, float, list[str]] | None:
    started = clock.perf_counter()
    try:
        dateparser = importlib.import_module("dateparser")
    except ImportError:
        return None
    imported = clock.perf_counter() - started
    settings = {"RELATIVE_BASE": NOW, "PREFER_DATES_FROM": "future"}
    languages = ["zh", "en"]
    wrong: list[str] = []
    right = 0
    for typed, day, at in FORMS:
        got = dateparser.parse(typed, languages=languages, settings=settings)
        ok = got is not None and got.date() == day and (at is None or got.time() == at)
        right += ok
        if not ok:
            wrong.append(f"{typed} → {got}")
    started = clock.perf_counter()
    rounds = 5
    for _ in range(rounds):
        for typed, _day, _at in FORMS:
            dateparser.parse(typed, languages=languages, settings=settings)
    per_call = (clock.perf_counter() - started) / (rounds * len(FORMS))
    return imported, right, per_call, wrong


def main() -> None:
    if sys.argv[1:] == ["--theirs"]:
        result = theirs()
        if result is None:
            print("dateparser: not installed")
            return
        imported, right, per_call, wrong = result
        print(
            f"dateparser: {right}/{len(FORMS)} right, import {imported * 1000:.0f} ms, "
            f"{per_call * 1e6:.0f} µs a call"
        )
        for line in wrong:
            print(f"  misread: {line}")
        return
    imported, right, per_call = ours()
    print(
        f"storage.dates: {right}/{len(FORMS)} right, import {imported * 1000:.1f} ms, "
        f"{per_call * 1e6:.1f} µs a call"
    )
    # each parser in a fresh interpreter, so neither import is warmed by the other
    subprocess.run([sys.executable, __file__, "--theirs"], check=False)


if __name__ == "__main__":
    main()
