"""Forged button data: every pattern of the routing table answers politely, never with an error.

A client may send any callback data. `"²".isdigit()` is true (and `int("²")` fails), `-1` and
`1e3` are no ids, a 20-digit id overflows SQLite and an 11-digit one PostgreSQL's INTEGER.
"""

from __future__ import annotations

from typing import Any

import pytest

from conversations.callback_data import RECORD_ID_MAX, parse_id, parse_ids
from tests.auxil.customer_factory import add_customer
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.world import World

BAD_IDS = ("²", "٣", "-1", "+1", " 1", "1e3", "1.0", "12345678901234567890", "99999999999", "")

# Every callback pattern of bot/app.py's routing table, with X where an id (or a number) goes.
# {cid} is a real customer, {token} the live /new draft's, {sid} the live search's.
FORMS = (
    "w:X:b:",
    "w:{token}:c:X",
    "w:{token}:e:X",
    "w:{token}:p:X",
    "lang:X",
    "cu:X",
    "cr:X",
    "cr:X:phones",
    "ch:X",
    "ch:{cid}:X",
    "fp:X:0",
    "fp:{sid}:X",
    "ff:X",
    "fk:X:c",
    "fm:X",
    "cv:X",
    "cvl:X",
    "cvl:{cid}:pX",
    "cvl:{cid}:aX",
    "cc:X",
    "ccl:X",
    "ccl:{cid}:pX",
    "cx:X:v",
    "cx:X:take",
    "cx:1:toX",
    "ck:X",
    "kp:add:X",
    "kp:edit:{cid}:X",
    "kp:del:X:1",
    "kp:rm:{cid}:X:1",
    "ce:X",
    "rv:a:X",
    "rv:r:X",
    "rv:o:X",
    "rv:q:X",
    "rm:o:X",
    "rm:s:X:1",
    "rm:s:1:X",
    "rm:d:1:X",
    "rm:a:X",
    "ra:o:X",
    "ra:T:cX:0",
    "ra:T:c{cid}:X",
    "ra:p:c{cid}:X:0",
    "ra:p:c{cid}:1:X",
    "ra:k:cX:1",
    "ra:k:c{cid}:X",
    "ra:y:c{cid}:X:1",
    "ra:y:c{cid}:1:X",
    "ra:y:s:X:0123456789",
    "ra:m:X",
    "ra:t:X:0",
    "ra:t:{cid}:X",
    "sf:l:X:0",
    "sf:p:X:0:0",
    "sf:q:X:1:d",
    "sf:ok:1:X:m:1",
    "sf:tv:X",
    "ho:o:X",
    "ho:a:X:0",
    "ho:a:1:X",
    "ho:k:1:X:0",
    "ho:p:1:1:X",
    "ho:y:1:X",
    "ho:l:X",
    "tl:X",
    "tl:1:pX",
    "tl:1:X",
    "tl:X:1:a",
    "tl:1:X:r",
    "tl:g:X:1",
    "ar:a:X",
    "ar:r:X",
    "ar:d:X",
    "ar:p:X",
    "ar:X:{cid}",
)


def _from_buttons(person: Person, prefix: str) -> str:
    """The second field of the first button whose data starts with `prefix`."""
    for _text, data in buttons(person.last_message()):
        if data.startswith(prefix):
            return data.split(":")[1]
    raise AssertionError(f"no {prefix} button in {person.last_text()!r}")


async def _prepare(world: World, form: str) -> tuple[Person, dict[str, Any]]:
    manager = await world.member("manager", name="Zhou")
    customer = await add_customer(
        world.services.sessions, world.services.keyring, manager.id, "杭州明远机械有限公司"
    )
    values: dict[str, Any] = {"cid": customer.id}
    await manager.send("/help")  # a message of the bot's to press forged buttons on
    if "{sid}" in form:
        await manager.send("/find")
        values["sid"] = _from_buttons(manager, "ff:")
    if "{token}" in form:
        await manager.send("/new")
        values["token"] = _from_buttons(manager, "w:")
    return manager, values


@pytest.fixture
def errors(world: World) -> list[BaseException | None]:
    """Every error that reached the error handler."""
    caught: list[BaseException | None] = []

    async def record(update: object, context: Any) -> None:
        caught.append(context.error)

    world.app.add_error_handler(record)
    return caught


@pytest.mark.parametrize("form", FORMS)
async def test_a_forged_id_in_any_button_is_refused_politely(
    world: World, errors: list[BaseException | None], form: str
) -> None:
    person, values = await _prepare(world, form)
    message = person.last_message()
    for bad in BAD_IDS:
        data = form.format(**values).replace("X", bad)
        before = len(world.telegram.answers())
        await person.press_data(message, data)
        assert errors == [], (data, errors)
        answers = world.telegram.answers()[before:]
        assert len(answers) == 1, (data, answers)
        assert answers[0].get("text"), (data, "a press is answered with a reason")


@pytest.mark.parametrize("form", FORMS)
async def test_extra_or_missing_fields_are_refused_politely(
    world: World, errors: list[BaseException | None], form: str
) -> None:
    person, values = await _prepare(world, form)
    message = person.last_message()
    good = form.format(**values).replace("X", "1")
    largest = form.format(**values).replace("X", str(RECORD_ID_MAX))  # an id, but none of ours
    prefix = good.split(":")[0]
    for data in (f"{good}:9:9", f"{good}:²", f"{prefix}:", prefix, f"{prefix}::::", largest):
        before = len(world.telegram.answers())
        await person.press_data(message, data)
        assert errors == [], (data, errors)
        assert len(world.telegram.answers()[before:]) == 1, data


def test_the_parser_takes_ascii_ids_within_integer_range_only() -> None:
    assert parse_id("0") == 0
    assert parse_id("42") == 42
    assert parse_id(str(RECORD_ID_MAX)) == RECORD_ID_MAX
    assert parse_id(str(RECORD_ID_MAX + 1)) is None
    assert parse_id("7", maximum=6) is None
    for bad in (*BAD_IDS, "１２", "1\n", "0x1", None):
        assert parse_id(bad) is None, bad
    assert parse_ids(["1", "2"]) == [1, 2]
    assert parse_ids(["1", "²"]) is None
