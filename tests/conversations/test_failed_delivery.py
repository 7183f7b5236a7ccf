"""Telegram fails to deliver the next question: the user is told in their language, is shown
the question again, and no answer is ever taken for a question they did not see."""

from __future__ import annotations

from typing import Any

from bot import metrics
from storage import drafts
from storage.db import unit_of_work
from tests.auxil.fake_telegram import FakeTelegram, Person, buttons
from tests.auxil.flow_helpers import question
from tests.auxil.world import World, start_app

SORRY = "Sorry, something went wrong. Please try again; your answers so far are kept."
NETWORK = {"source": "network"}
AGAIN = "This question did not reach you earlier, so nothing was taken yet. Here it is:"


async def answers(world: World, person: Person) -> dict[str, Any]:
    from storage.staff import staff_by_telegram_id

    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_by_telegram_id(session, person.id)
        assert staff is not None and staff.id is not None
        state = await drafts.load(session, world.services.keyring, staff.id, not_before=None)
    assert state is not None
    return state.data


async def test_a_failed_question_is_shown_again_before_any_answer_is_taken(world: World) -> None:
    sales = await world.member(name="Li", language="en")
    await sales.send("/new")
    await sales.press("Company")
    await sales.send("Mingyuan Machinery Co., Ltd.")
    for label in ("Skip", "B important", "Yellow apple", "Visit", "Continue"):  # essentials
        await sales.press(label)
    assert question(sales) == "Short name?"

    world.telegram.fail_next["sendMessage"] = 1  # the industry question gets a 502
    network_errors = metrics.REGISTRY.get_sample_value("archive_bot_errors_total", NETWORK)
    await sales.send("Mingyuan")
    assert sales.last_text() == SORRY  # in English, though the error handler's context is new
    after = metrics.REGISTRY.get_sample_value("archive_bot_errors_total", NETWORK)
    assert (after or 0) - (network_errors or 0) == 1  # counted for /metrics, as a network error
    assert "industry" not in await answers(world, sales)

    await sales.send("Machinery")  # meant for the short name they saw: not the industry
    data = await answers(world, sales)
    assert data["short_name"] == "Mingyuan" and "industry" not in data
    assert sales.last_text().startswith(AGAIN)
    assert question(sales) == "Which industry?"

    await sales.send("Machinery")
    data = await answers(world, sales)
    assert data["industry"] == "Machinery" and "region" not in data
    assert question(sales) == "Region (province/city)?"


async def test_a_button_pressed_after_a_failed_question_shows_it_instead(world: World) -> None:
    sales = await world.member(name="Li", language="en")
    await sales.send("/new")
    kinds = sales.last_message()
    individual = next(data for text, data in buttons(kinds) if text == "Individual")

    world.telegram.fail_next["sendMessage"] = 1  # the name question gets a 502
    await sales.press("Company")
    assert sales.last_answer() == SORRY
    assert (await answers(world, sales))["kind"] == "company"

    await sales.press_data(kinds, individual)  # a second tap on the question they saw
    assert (await answers(world, sales))["kind"] == "company"
    assert sales.last_text().startswith(AGAIN)
    assert question(sales) == "What is the customer's full name?"

    await sales.press("Back")  # the buttons of the question shown again work
    assert question(sales) == "Is the customer a company or an individual?"
    await sales.press("Individual")
    assert (await answers(world, sales))["kind"] == "individual"
    assert question(sales) == "What is the customer's full name?"


async def test_a_question_that_never_arrived_is_shown_after_a_restart(world: World) -> None:
    sales = await world.member(name="Li", language="en")
    await sales.send("/new")
    await sales.press("Company")
    world.telegram.fail_next["sendMessage"] = 2  # the phones question and the apology
    await sales.send("Mingyuan Machinery Co., Ltd.")

    await world.app.shutdown()
    world.telegram = FakeTelegram()
    world.app = await start_app(world.services, world.telegram)
    sales = world.person(sales.id, "Li", "en")
    await sales.send("13812345678")
    assert "phones" not in await answers(world, sales)
    assert sales.last_text().startswith(AGAIN)
    assert question(sales) == "Phone numbers? Separate several with commas."
    await sales.send("13812345678")
    assert (await answers(world, sales))["phones"] == ["+8613812345678"]


async def test_the_error_reply_follows_the_language_chosen_with_lang(world: World) -> None:
    sales = await world.member(name="Li", language="zh")  # a Chinese phone, English by choice
    await sales.send("/lang")
    await sales.press("English")
    await sales.send("/new")
    world.telegram.fail_next["sendMessage"] = 1
    await sales.press("Company")
    assert sales.last_answer() == SORRY
