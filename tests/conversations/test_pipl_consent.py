"""Consent to the collection of personal data (SPEC section 2, PIPL): the card shows whether,
how and when it was given (masked), and warns when none is recorded; review cards of new
customers and of changes flag its absence."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlmodel import col

from storage import changes
from storage.db import unit_of_work
from storage.models import Customer, Review
from tests.auxil.customer_factory import add_customer, staff_of
from tests.auxil.fake_telegram import Person
from tests.auxil.flow_helpers import labels
from tests.auxil.record_helpers import card
from tests.auxil.world import World

NO_CONSENT = {"en": "⚠️ no consent recorded", "zh": "⚠️ 未记录同意"}
REVIEW_FLAG = {"en": "⚠️ No consent recorded", "zh": "⚠️ 未记录同意:"}
CONSENTED = {
    "consent_given": True,
    "consent_method": "written",
    "consent_on": "2026-01-05",
    "consent_note": "签署了个人信息告知书",
}


async def card_text(person: Person, customer_id: int) -> str:
    await person.press_data(card(person), f"cu:{customer_id}")
    return person.last_text()


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_the_card_warns_when_no_consent_is_recorded(world: World, language: str) -> None:
    sales = await world.member("salesperson", "East", "Li", language=language)
    customer = await add_customer(
        world.services.sessions, world.services.keyring, sales, consent_given=False
    )
    text = await card_text(sales, customer.id or 0)
    label = "Consent" if language == "en" else "已告知并同意"
    assert any(line.startswith(label) and NO_CONSENT[language] in line for line in text.split("\n"))


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_the_card_shows_consent_given_how_and_when_masked(
    world: World, language: str
) -> None:
    sales = await world.member("salesperson", "East", "Li", language=language)
    customer = await add_customer(
        world.services.sessions, world.services.keyring, sales, **CONSENTED
    )
    text = await card_text(sales, customer.id or 0)
    assert NO_CONSENT[language] not in text
    lines = text.split("\n")
    yes = "Yes" if language == "en" else "是"
    consent = next(i for i, line in enumerate(lines) if line.endswith(f": {yes}"))
    # how and when right under it, masked as the catalogue says; the note masked by its rule
    assert lines[consent + 1].endswith(": ••••") and lines[consent + 2].endswith(": ••••")
    assert lines[consent + 3].endswith(": 签******")
    assert "2026-01-05" not in text and "written" not in text and "签署了" not in text


async def submitted_card(world: World, manager: Person) -> str:
    await manager.send("/review")
    await manager.press("1.", manager.last_message())
    return manager.last_text()


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_new_customer_without_consent_is_flagged_on_review(
    world: World, language: str
) -> None:
    sales = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Chen", language=language)
    await add_customer(world.services.sessions, world.services.keyring, sales, consent_given=False)
    assert REVIEW_FLAG[language] in await submitted_card(world, manager)


async def test_a_new_customer_with_consent_is_not_flagged(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Chen")
    await add_customer(world.services.sessions, world.services.keyring, sales, **CONSENTED)
    text = await submitted_card(world, manager)
    assert text.startswith("🔔") and REVIEW_FLAG["zh"] not in text


async def _change(world: World, owner: Person, customer_id: int, values: dict) -> None:
    """Its entry review decided, then a change proposed as the edit flow would."""
    actor = await staff_of(world.services.sessions, owner)
    async with unit_of_work(world.services.sessions) as session:
        await session.exec(
            update(Review).where(col(Review.customer_id) == customer_id).values(status="approved")
        )
    async with unit_of_work(world.services.sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        await changes.edit_customer(
            session,
            keyring=world.services.keyring,
            actor=actor,
            customer=customer,
            version=customer.version,
            values=values,
        )


async def test_a_change_that_withdraws_consent_is_flagged_and_one_that_records_it_not(
    world: World,
) -> None:
    sales = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Chen", language="en")
    given = await add_customer(
        world.services.sessions, world.services.keyring, sales, status="approved", **CONSENTED
    )
    await _change(world, sales, given.id or 0, {"consent_given": False})
    text = await submitted_card(world, manager)
    assert "change to a customer" in text.split("\n")[0] and REVIEW_FLAG["en"] in text

    missing = await add_customer(
        world.services.sessions,
        world.services.keyring,
        sales,
        "另一家有限公司",
        status="approved",
        consent_given=False,
    )
    await _change(world, sales, missing.id or 0, CONSENTED)
    await manager.send("/review")
    queue = manager.last_message()
    later = [label for label in labels(queue) if "另一家" in label]
    await manager.press(later[0], queue)
    assert REVIEW_FLAG["en"] not in manager.last_text()
