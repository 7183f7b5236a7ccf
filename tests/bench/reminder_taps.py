"""Benchmark: how many interactions it takes to act on each kind of reminder (issue 13).

Each scenario builds the records, lets the scheduler deliver the reminder through the real
application and the fake Telegram, then acts the way a salesperson would with one thumb: press
the button that does the action if the message has one; else open the item first (a grouped
message's "open" button) and press it there; else type the command that finds it (/find <name>,
/review) and press through. Every interaction goes through the real handlers, and the scenario
counts only when the action is seen done (the database, or the card it opens). Where no button
leads there, the count is that of finding it by hand (/find, the card, its list, the item).

    .venv/bin/python -m tests.bench.reminder_taps [--json out.json] [--compare before.json]

It runs the scenarios under pytest (the fixtures of tests/conftest.py and test_reminders.py),
so the same file measures an older checkout too: copy it there and run it the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from storage.db import unit_of_work
from storage.models import Complaint, Customer, Review, Staff
from tests.auxil.fake_telegram import buttons
from tests.auxil.world import World
from tests.conversations import test_reminders as reminders
from tests.conversations.test_reminders import (
    BERLIN,
    Clock,
    Member,
    add_complaint,
    add_customer,
    add_key_person,
    add_review,
    member,
    tick,
    utc,
)

settings, services, clock, pacing = (
    reminders.settings,
    reminders.services,
    reminders.clock,
    reminders.pacing,
)
fake_pacing, fresh_numbers = reminders.fake_pacing, reminders.fresh_numbers

RESULTS_ENV = "REMINDER_TAPS_OUT"
NINE = utc(2026, 11, 21, 8, 0)  # 09:00 in Berlin
Goal = Callable[[], Awaitable[bool]]


class Thumb:
    """One person acting on what the bot sent them, counting every press and typed message."""

    def __init__(self, world: World, who: Member) -> None:
        self.world, self.who, self.count = world, who, 0

    def sent(self) -> list[dict[str, Any]]:
        return self.world.telegram.sent_to(self.who.person.id)

    async def press(self, message: dict[str, Any], data: str) -> None:
        self.count += 1
        await self.who.person.press_data(message, data)

    async def type(self, text: str) -> None:
        self.count += 1
        await self.who.person.send(text)


def _number_of(message: dict[str, Any], target: str) -> int | None:
    """The number of the item naming `target` in a grouped message's text."""
    for line in str(message.get("text", "")).splitlines():
        head, dot, _rest = line.partition(". ")
        if dot and head.isdigit() and target in line:
            return int(head)
    return None


def _for_item(label: str, message: dict[str, Any], target: str) -> bool:
    """Is the button about the target item (its name on it, its number, or the only item)?"""
    if target in label:
        return True
    number = _number_of(message, target)
    if number is None:
        return not label[:1].isdigit()
    return label.startswith(f"{number}.")


def _find(
    messages: list[dict[str, Any]], target: str, words: tuple[str, ...]
) -> tuple[dict[str, Any], str] | None:
    for message in reversed(messages):
        for label, data in buttons(message):
            if any(w in label for w in words) and _for_item(label, message, target):
                return message, data
    return None


async def act(
    thumb: Thumb, target: str, words: tuple[str, ...], goal: Goal, find: str | None
) -> int | None:
    """Act on the reminder about `target` with the button labelled with one of `words`."""
    start = 0
    for _ in range(3):
        found = _find(thumb.sent()[start:], target, words)
        if found is not None:
            await thumb.press(*found)
            if await goal():
                return thumb.count
        opened = _find(thumb.sent()[start:], target, ("›", target))
        if opened is None or found is not None:
            break
        start = len(thumb.sent())
        await thumb.press(*opened)  # open the item on its own
        if await goal():
            return thumb.count
    if find is None:
        return None
    start = len(thumb.sent())
    await thumb.type(find)  # no button: type the command that finds it
    for _ in range(3):
        found = _find(thumb.sent()[start:], target, words)
        if found is not None:
            await thumb.press(*found)
            return thumb.count if await goal() else None
        opened = _find(thumb.sent()[start:], target, (target,))
        if opened is None:
            return None
        start = len(thumb.sent())
        await thumb.press(*opened)
        if await goal():
            return thumb.count
    return None


async def by_hand(thumb: Thumb, command: str, labels: tuple[str, ...], goal: Goal) -> int | None:
    """No button leads there: type `command`, then press the buttons labelled `labels` in turn
    (each on the newest message that has one), as a person finding their way would."""
    await thumb.type(command)
    for wanted in labels:
        hit = next(
            ((m, d) for m in reversed(thumb.sent()) for label, d in buttons(m) if wanted in label),
            None,
        )
        if hit is None:
            return None
        await thumb.press(*hit)
        if await goal():
            return thumb.count
    return None


def card_of(thumb: Thumb, customer_id: int) -> Goal:
    """The customer's card was sent (its history button)."""

    async def seen() -> bool:
        return any(d == f"ch:{customer_id}" for m in thumb.sent() for _, d in buttons(m))

    return seen


def sent_with(thumb: Thumb, text: str, data_prefix: str) -> Goal:
    async def seen() -> bool:
        return any(
            text in str(m.get("text", "")) and any(d.startswith(data_prefix) for _, d in buttons(m))
            for m in thumb.sent()
        )

    return seen


def record(world: World, model: Any, record_id: int, test: Callable[[Any], bool]) -> Goal:
    async def done() -> bool:
        async with unit_of_work(world.services.sessions) as session:
            found = await session.get(model, record_id)
            return found is not None and test(found)

    return done


async def en_member(world: World, role: str = "salesperson", name: str = "Anna") -> Member:
    return await member(world, role, timezone=BERLIN, language="en", name=name)


# ---------------------------------------------------------------------------------------------
# the scenarios: (kind, how it arrives) → taps


async def followup_single(world: World, clock: Clock) -> int | None:
    owner = await en_member(world)
    cid = await add_customer(world, owner, "Hudson Tools", next_followup_on=date(2026, 11, 21))
    clock.set(NINE)
    await tick(world)
    thumb = Thumb(world, owner)
    moved = record(world, Customer, cid, lambda c: c.next_followup_on != date(2026, 11, 21))
    return await act(thumb, "Hudson Tools", ("Done",), moved, None)


async def followup_grouped(world: World, clock: Clock) -> int | None:
    owner = await en_member(world)
    for name in ("Alpha Ltd", "Beta Ltd"):
        await add_customer(world, owner, name, next_followup_on=date(2026, 11, 21))
    cid = await add_customer(world, owner, "Gamma Ltd", next_followup_on=date(2026, 11, 21))
    clock.set(NINE)
    await tick(world)
    thumb = Thumb(world, owner)
    moved = record(world, Customer, cid, lambda c: c.next_followup_on != date(2026, 11, 21))
    return await act(thumb, "Gamma Ltd", ("Done",), moved, None)


async def followup_snooze(world: World, clock: Clock) -> int | None:
    owner = await en_member(world)
    await add_customer(world, owner, "Hudson Tools", next_followup_on=date(2026, 11, 21))
    clock.set(NINE)
    await tick(world)
    thumb = Thumb(world, owner)

    async def snoozed() -> bool:
        return (owner.person.last_answer() or "").startswith("⏰")

    return await act(thumb, "Hudson Tools", ("Snooze 1 day",), snoozed, None)


async def overdue_digest(world: World, clock: Clock) -> int | None:
    owner = await en_member(world, name="Qian")
    manager = await en_member(world, "manager", name="Zhou")
    await add_customer(world, owner, "Alpha Ltd", next_followup_on=date(2026, 11, 18))
    cid = await add_customer(world, owner, "Beta Ltd", next_followup_on=date(2026, 11, 18))
    clock.set(NINE)
    await tick(world)
    thumb = Thumb(world, manager)
    return await act(thumb, "Beta Ltd", ("Card", "Beta Ltd"), card_of(thumb, cid), "/find Beta Ltd")


async def _complaints(world: World, clock: Clock, count: int) -> tuple[Thumb, int]:
    handler = await en_member(world)
    customer = await add_customer(world, handler, "Klage GmbH")
    ids = [
        await add_complaint(world, customer, handler, received_at=utc(2026, 11, 20), hours=24)
        for _ in range(count)
    ]
    clock.set(NINE)
    await tick(world)
    return Thumb(world, handler), ids[-1]


async def complaint_single(world: World, clock: Clock) -> int | None:
    thumb, complaint = await _complaints(world, clock, 1)
    taken = record(world, Complaint, complaint, lambda c: c.status == "in_progress")
    return await act(thumb, "Klage GmbH", ("Take",), taken, None) or await _by_hand_take(
        world, thumb, complaint, taken
    )


async def _by_hand_take(world: World, thumb: Thumb, complaint: int, taken: Goal) -> int | None:
    """/find the customer, open its card, its complaints, the complaint, and take it."""
    async with unit_of_work(world.services.sessions) as session:
        found = await session.get(Complaint, complaint)
        assert found is not None
        number = found.complaint_no
    route = ("Klage GmbH", "Complaints", number, "Start handling")
    return await by_hand(thumb, "/find Klage GmbH", route, taken)


async def complaint_grouped(world: World, clock: Clock) -> int | None:
    thumb, complaint = await _complaints(world, clock, 2)
    taken = record(world, Complaint, complaint, lambda c: c.status == "in_progress")
    # the item is the second complaint: its number names it
    async with unit_of_work(world.services.sessions) as session:
        found = await session.get(Complaint, complaint)
        assert found is not None
        number = found.complaint_no
    result = await act(thumb, number, ("Take",), taken, None)
    if result is None:  # an item's button names the customer, not the complaint number
        for message in thumb.sent():
            for label, data in buttons(message):
                if label.startswith("2.") and "Take" in label:
                    await thumb.press(message, data)
                    return thumb.count if await taken() else None
    return result or await _by_hand_take(world, thumb, complaint, taken)


async def birthday(world: World, clock: Clock) -> int | None:
    owner = await en_member(world)
    customer = await add_customer(world, owner, "Geburtstag AG")
    await add_key_person(world, customer, "Herr Kurz", "1975-11-24")
    clock.set(NINE)
    await tick(world)
    thumb = Thumb(world, owner)
    shown = sent_with(thumb, "Herr Kurz", "kp:")
    return await act(thumb, "Herr Kurz", ("Key persons",), shown, None) or await by_hand(
        thumb, "/find Geburtstag AG", ("Geburtstag AG", "Key persons"), shown
    )


async def review(world: World, clock: Clock) -> int | None:
    submitter = await member(world, name="Wang")
    manager = await en_member(world, "manager", name="Weber")
    customer = await add_customer(world, submitter, "Erste AG", status="pending")
    rid = await add_review(world, customer, submitter, submitted_at=utc(2026, 11, 19, 3))
    clock.set(utc(2026, 11, 20, 8, 0))  # the reminder, before the next morning's digest
    await tick(world)
    thumb = Thumb(world, manager)
    decided = record(world, Review, rid, lambda r: r.status == "approved")
    return await act(thumb, "Erste AG", ("Approve",), decided, "/review")


async def review_digest(world: World, clock: Clock) -> int | None:
    submitter = await member(world, name="Wang")
    manager = await en_member(world, "manager", name="Weber")
    first = await add_customer(world, submitter, "Erste AG", status="pending")
    second = await add_customer(world, submitter, "Zweite AG", status="pending")
    await add_review(world, first, submitter, submitted_at=utc(2026, 11, 20, 23))
    rid = await add_review(world, second, submitter, submitted_at=utc(2026, 11, 20, 23))
    clock.set(NINE)  # the digest hour; the reviews are too young for their own reminder
    await tick(world)
    thumb = Thumb(world, manager)
    card = sent_with(thumb, "Zweite AG", f"rv:a:{rid}")
    return await act(thumb, "Zweite AG", ("Review", "Open"), card, "/review")


async def rejected(world: World, clock: Clock) -> int | None:
    owner = await en_member(world)
    cid = await add_customer(world, owner, "Back GmbH", status="rejected")
    await add_review(
        world,
        cid,
        owner,
        submitted_at=utc(2026, 11, 16),
        status="rejected",
        decided_at=utc(2026, 11, 17),
        reason="no tax number",
    )
    clock.set(NINE)
    await tick(world)
    thumb = Thumb(world, owner)
    again = record(world, Customer, cid, lambda c: c.status == "pending")
    return await act(thumb, "Back GmbH", ("Resubmit",), again, None)


async def _stale(world: World, clock: Clock, names: tuple[str, ...]) -> tuple[Thumb, int]:
    owner = await en_member(world)
    ids = [await add_customer(world, owner, n, approved_at=utc(2026, 1, 1)) for n in names]
    clock.set(NINE)
    await tick(world)
    return Thumb(world, owner), ids[-1]


async def stale_single(world: World, clock: Clock) -> int | None:
    thumb, cid = await _stale(world, clock, ("Old Ltd",))
    checked = record(world, Customer, cid, lambda c: c.last_checked_at is not None)
    return await act(thumb, "Old Ltd", ("Still accurate",), checked, None)


async def stale_grouped(world: World, clock: Clock) -> int | None:
    thumb, cid = await _stale(world, clock, ("Old Ltd", "Older Ltd"))
    checked = record(world, Customer, cid, lambda c: c.last_checked_at is not None)
    return await act(thumb, "Older Ltd", ("Still accurate",), checked, None)


SCENARIOS: dict[str, Callable[[World, Clock], Awaitable[int | None]]] = {
    "follow-up due (alone): done": followup_single,
    "follow-up due (alone): snooze 1 day": followup_snooze,
    "follow-up due (3 in one message): done the 3rd": followup_grouped,
    "overdue digest (manager): open the 2nd customer": overdue_digest,
    "complaint overdue (alone): take": complaint_single,
    "complaints (2 in one message): take the 2nd": complaint_grouped,
    "birthday: open the key person": birthday,
    "pending review: approve": review,
    "review digest: open the 2nd review card": review_digest,
    "rejected record: resubmit": rejected,
    "record to re-check (alone): still accurate": stale_single,
    "records to re-check (2 in one message): the 2nd": stale_grouped,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_taps(world: World, clock: Clock, name: str) -> None:
    async with unit_of_work(world.services.sessions) as session:
        assert (await session.exec(select(Staff))).all() is not None
    _keep(name, await SCENARIOS[name](world, clock))


def _keep(name: str, taps: int | None) -> None:
    out = os.environ.get(RESULTS_ENV)
    if out:
        path = Path(out)
        found = json.loads(path.read_text()) if path.exists() else {}
        found[name] = taps
        path.write_text(json.dumps(found, ensure_ascii=False, indent=1))


def _table(after: dict[str, Any], before: dict[str, Any] | None) -> str:
    def shown(value: Any) -> str:
        return "none" if value is None else str(value)

    width = max(len(n) for n in SCENARIOS)
    head = f"{'reminder kind: action':<{width}}  " + ("before  after" if before else "taps")
    lines = [head, "-" * len(head)]
    for name in SCENARIOS:
        if before is not None:
            lines.append(
                f"{name:<{width}}  {shown(before.get(name)):>6}  {shown(after.get(name)):>5}"
            )
        else:
            lines.append(f"{name:<{width}}  {shown(after.get(name)):>4}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the counts here too")
    parser.add_argument("--compare", help="the counts of an older checkout (its --json)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "taps.json"
        os.environ[RESULTS_ENV] = str(out)
        code = pytest.main([__file__, "-q", "-p", "no:cacheprovider", "--no-header"])
        counts = json.loads(out.read_text()) if out.exists() else {}
    if args.json:
        Path(args.json).write_text(json.dumps(counts, ensure_ascii=False, indent=1))
    before = json.loads(Path(args.compare).read_text()) if args.compare else None
    print()
    print(_table(counts, before))
    sys.exit(int(code))


if __name__ == "__main__":
    main()
