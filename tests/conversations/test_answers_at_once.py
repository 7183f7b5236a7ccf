"""Two updates of one member at the same moment, as two instances behind a load balancer take
them: both answers are taken, one after the other, none lost and none taken twice; an answer
reaching one instance while another is still marking its prompt shown waits for the mark."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from storage import drafts
from storage.db import unit_of_work
from storage.drafts import DraftMoved
from storage.staff import staff_by_telegram_id
from tests.auxil.fake_telegram import Person
from tests.auxil.flow_helpers import question
from tests.auxil.world import World

AGAIN = "This question did not reach you earlier, so nothing was taken yet. Here it is:"


async def staff_id(world: World, person: Person) -> int:
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_by_telegram_id(session, person.id)
    assert staff is not None and staff.id is not None
    return staff.id


async def answers(world: World, person: Person) -> dict[str, Any]:
    sid = await staff_id(world, person)
    async with unit_of_work(world.services.sessions) as session:
        state = await drafts.load(session, world.services.keyring, sid, not_before=None)
    assert state is not None
    return state.data


async def test_two_answers_at_the_same_moment_are_both_taken_in_turn(world: World) -> None:
    sales = await world.member(name="Li", language="en")
    await sales.send("/new")
    await sales.press("Company")
    assert question(sales) == "What is the customer's full name?"

    await asyncio.gather(sales.send("Mingyuan Machinery"), sales.send("13812345678"))

    data = await answers(world, sales)
    texts = [m.get("text") or "" for m in world.telegram.sent_to(sales.id)]
    if data["name"] == "Mingyuan Machinery":  # taken in the order sent
        assert data["phones"] == ["+8613812345678"]
        assert question(sales) == "Customer class?"
    else:  # the phone came first and was taken as the name; the name is no phone
        assert data["name"] == "13812345678" and "phones" not in data
        assert "That is not a valid phone number." in texts[-1]
    assert sum("Phone numbers?" in t for t in texts) == 1 + ("phones" not in data)
    assert not [t for t in texts if t.startswith(AGAIN)]


async def test_an_answer_waits_for_the_mark_of_a_prompt_still_being_sent(world: World) -> None:
    sales = await world.member(name="Li", language="en")
    await sales.send("/new")
    await sales.press("Company")
    sid = await staff_id(world, sales)
    async with unit_of_work(world.services.sessions) as session:
        state = await drafts.load(session, world.services.keyring, sid, not_before=None)
        assert state is not None and not state.unseen
        state.shown = state.token - 1  # as if the name question were still on its way
        await drafts.save(session, world.services.keyring, sid, state)

    async def the_other_instance_marks_it() -> None:
        await asyncio.sleep(0.3)
        assert await drafts.mark_shown_alone(world.services.sessions, sid, state.token)

    marking = asyncio.create_task(the_other_instance_marks_it())
    await sales.send("Mingyuan Machinery")
    await marking
    assert (await answers(world, sales))["name"] == "Mingyuan Machinery"
    assert question(sales) == "Phone numbers? Separate several with commas."
    assert not sales.last_text().startswith(AGAIN)


async def test_a_draft_saved_over_by_another_update_is_not_overwritten(world: World) -> None:
    sales = await world.member(name="Li", language="en")
    await sales.send("/new")
    sid = await staff_id(world, sales)
    keyring, sessions = world.services.keyring, world.services.sessions
    async with unit_of_work(sessions) as session:
        mine = await drafts.load(session, keyring, sid, not_before=None)
        theirs = await drafts.load(session, keyring, sid, not_before=None)
    assert mine is not None and theirs is not None
    theirs.token += 1
    theirs.data["kind"] = "company"
    await drafts.save_alone(sessions, keyring, sid, theirs)
    mine.token += 1
    mine.data["kind"] = "individual"
    with pytest.raises(DraftMoved):
        await drafts.save_alone(sessions, keyring, sid, mine)
    assert (await answers(world, sales))["kind"] == "company"
    theirs.token += 1  # the winner goes on saving over its own row
    await drafts.save_alone(sessions, keyring, sid, theirs)
