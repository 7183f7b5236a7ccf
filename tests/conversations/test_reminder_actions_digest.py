"""Grouped messages offer each item's first action directly, with full names (issue 13): names
of the longest a customer may have, many items, every Telegram limit kept (the fake Telegram
refuses over 4,096 characters and over 64 bytes of button data), and "…and N more" with a
button that lists them all, a page at a time, each item still one tap from its action."""

from __future__ import annotations

from datetime import date

import pytest

from tests.auxil.fake_telegram import buttons
from tests.auxil.world import World
from tests.conversations import test_reminders as reminders
from tests.conversations.test_reminders import (
    BERLIN,
    SHANGHAI,
    Clock,
    add_customer,
    customer_row,
    labels,
    last_of,
    member,
    rows,
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

NAME_MAX = 200  # customers.name


def longest(prefix: str, index: int) -> str:
    tail = f" {index:03d}"
    return (prefix * NAME_MAX)[: NAME_MAX - len(tail)] + tail


@pytest.mark.parametrize(
    ("language", "zone", "nine", "filler", "done"),
    [
        ("zh", SHANGHAI, utc(2026, 11, 21, 1, 0), "包头稀土贸易", "✅ 已完成"),
        ("en", BERLIN, utc(2026, 11, 21, 8, 0), "Baotou Rare Earth Trading ", "✅ Done"),
    ],
)
async def test_thirty_longest_names_fit_every_limit_and_each_is_one_tap_away(
    world: World, clock: Clock, language: str, zone: str, nine: object, filler: str, done: str
) -> None:
    owner = await member(world, timezone=zone, language=language)
    names = [longest(filler, n) for n in range(30)]
    ids = [await add_customer(world, owner, n, next_followup_on=date(2026, 11, 21)) for n in names]
    clock.set(nine)  # type: ignore[arg-type]
    await tick(world)
    sent = world.telegram.sent_to(owner.person.id)
    assert all(len(m["text"]) <= 4096 for m in sent)
    assert all(len(d.encode()) <= 64 for m in sent for _, d in buttons(m))
    shown = [n for n in names if any(n in m["text"] for m in sent)]
    assert len(shown) >= 10  # listed whole, never cut
    # a full name does not fit on a button: numbered buttons, numbered full names in the text
    first = sent[0]
    assert labels(first)[0] == f"1. {done}"
    assert "1. 📞" in first["text"] and names[0] in first["text"]
    await owner.person.press(f"1. {done}", first)
    assert (await customer_row(world, ids[0])).next_followup_on != date(2026, 11, 21)
    # the counted rest: a button lists them all
    show_all = next(t for m in sent for t, _ in buttons(m) if t.startswith("📋"))
    holder = next(m for m in sent if show_all in labels(m))
    await owner.person.press(show_all, holder)
    listing = last_of(world, owner)
    assert len(listing["text"]) <= 4096
    assert listing["text"].count(filler.strip()[:4]) >= 8
    assert "1/" in " ".join(labels(listing))  # paged
    pages = int(next(t for t in labels(listing) if "/" in t).split("/")[1])
    assert pages >= 3
    await owner.person.press("›", listing)
    turned = last_of(world, owner)
    assert turned is listing or turned["message_id"] == listing["message_id"]  # in place
    assert "2/" in " ".join(labels(turned))
    item = next(t for t in labels(turned) if t[0].isdigit())
    number = int(item.split(".")[0])
    await owner.person.press(item, turned)
    every = await rows(world)
    acted = [r for r in every if r.acted == "done"]
    assert len(acted) == 2 and number > 8


async def test_short_full_names_sit_on_the_buttons_themselves(world: World, clock: Clock) -> None:
    owner = await member(world, timezone=BERLIN, language="en")
    name = "Baotou Rare Earth Trading Co., Ltd."
    await add_customer(world, owner, name, next_followup_on=date(2026, 11, 21))
    await add_customer(world, owner, "Hudson Tools", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 21, 8, 0))
    await tick(world)
    message = last_of(world, owner)
    assert labels(message) == [f"1. ✅ Done: {name}", "2. ✅ Done: Hudson Tools"]
    assert f"1. 📞 Follow-up due today: {name}" in message["text"]


async def test_an_overdue_digest_of_many_customers_pages_by_message(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI, name="Qian")
    manager = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    for n in range(25):
        await add_customer(
            world, owner, longest("鄂尔多斯煤炭", n), next_followup_on=date(2026, 11, 18)
        )
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    sent = world.telegram.sent_to(manager.person.id)
    assert all(len(m["text"]) <= 4096 for m in sent)
    item_buttons = [t for m in sent for t in labels(m) if t[0].isdigit()]
    assert all(t.endswith("📇 档案") for t in item_buttons)
    assert len(item_buttons) >= 10
    # one digest (issue 14), each listed line its button, the rest counted with /my
    [digest] = sent
    listed = [line for line in digest["text"].splitlines() if line[:1].isdigit()]
    assert len(item_buttons) == len(listed)
    assert "……另有" in digest["text"] and "/my" in digest["text"]


async def test_a_review_digest_of_the_longest_names_fits_and_each_line_has_its_button(
    world: World, clock: Clock
) -> None:
    submitter = await member(world, timezone=SHANGHAI, name="Wang" * 50)
    manager = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    for n in range(20):
        customer = await add_customer(
            world, submitter, longest("呼和浩特乳业", n), status="pending"
        )
        await reminders.add_review(world, customer, submitter, submitted_at=utc(2026, 11, 20, 20))
    clock.set(utc(2026, 11, 21, 1, 0))  # the digest hour; the reviews are too young alone
    await tick(world)
    [digest] = world.telegram.sent_to(manager.person.id)
    assert len(digest["text"]) <= 4096
    listed = [line for line in digest["text"].splitlines() if line[:1].isdigit()]
    assert len(labels(digest)) == len(listed) >= 5
    assert all(t.endswith("🔎 审核") for t in labels(digest))  # numbered: too long to fit
    assert "/review" in digest["text"]
    assert all(d.startswith("rv:o:") for _, d in buttons(digest))
