"""A press's next question does not wait for the press's cosmetic calls (bot.side_calls): the
query's answer and the closing of the pressed message's buttons run beside it, are done when
the update is, and one that fails changes nothing else."""

from __future__ import annotations

import logging

import pytest

from tests.auxil.fake_telegram import buttons
from tests.auxil.flow_helpers import question
from tests.auxil.world import World

SLOW = 0.2  # seconds each cosmetic call takes to come back
NAME_QUESTION = "What is the customer's full name?"


async def test_the_next_question_is_sent_before_the_press_is_answered_and_closed(
    world: World,
) -> None:
    sales = await world.member(name="Li", language="en")
    await sales.send("/new")
    pressed = sales.last_message()
    world.telegram.round_trip.update(answerCallbackQuery=SLOW, editMessageText=SLOW)
    world.telegram.returned.clear()

    await sales.press("Company")

    assert question(sales) == NAME_QUESTION
    assert world.telegram.returned[0] == "sendMessage"  # the question did not wait
    # and both cosmetic calls were done when the update was
    assert sorted(world.telegram.returned[1:]) == ["answerCallbackQuery", "editMessageText"]
    closed = world.telegram.messages[(sales.id, pressed["message_id"])]
    assert closed["text"].endswith("→ Company") and not buttons(closed)


async def test_every_step_of_a_flow_pressed_with_slow_cosmetic_calls_still_follows_it(
    world: World,
) -> None:
    sales = await world.member(name="Li", language="en")
    world.telegram.round_trip.update(answerCallbackQuery=SLOW, editMessageText=SLOW)
    await sales.send("/new")
    await sales.press("Company")
    await sales.send("Mingyuan Machinery")
    await sales.press("Skip")  # phones
    assert question(sales) == "Customer class?"
    kind, name, phones, current = world.telegram.sent_to(sales.id)
    assert kind["text"].endswith("→ Company") and not buttons(kind)  # both presses closed
    assert phones["text"].endswith("→ skipped") and not buttons(phones)
    assert "full name" in name["text"] and current is sales.last_message()
    assert len(world.telegram.answers()) == 2  # each press answered once


async def test_a_failed_close_leaves_the_answer_taken_and_is_logged_without_its_text(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    sales = await world.member(name="Li", language="en")
    await sales.send("/new")
    pressed = sales.last_message()
    world.telegram.fail_methods.add("editMessageText")

    with caplog.at_level(logging.WARNING, logger="bot.side_calls"):
        await sales.press("Company")

    assert question(sales) == NAME_QUESTION
    assert "Sorry, something went wrong" not in " ".join(
        str(m.get("text")) for m in world.telegram.sent_to(sales.id)
    )
    assert buttons(world.telegram.messages[(sales.id, pressed["message_id"])])  # left open
    failures = [r.getMessage() for r in caplog.records if r.name == "bot.side_calls"]
    assert failures == ["a side call of an update failed: NetworkError"]

    world.telegram.fail_methods.clear()
    await sales.press("Company", pressed)  # the question moved on: the old buttons are stale
    assert sales.last_answer() is not None and "expired" in (sales.last_answer() or "")
    assert question(sales) == NAME_QUESTION
