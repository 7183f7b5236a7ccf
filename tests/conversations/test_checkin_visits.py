"""Verified check-in on a visit: the customer's location, the radius, the flag, check-out."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.context import Services
from storage import checkin
from storage.db import unit_of_work
from storage.models import Customer, Visit
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import Person
from tests.auxil.field_helpers import all_rows, customer_of, denied, field_world, reload, restart
from tests.auxil.flow_helpers import audit_actions, labels
from tests.auxil.world import NOW, World

HOME = checkin.Place(30.27415, 120.15515)
METRES_PER_DEGREE = checkin.EARTH_RADIUS_M * math.pi / 180


def north_of(place: checkin.Place, metres: float) -> checkin.Place:
    """A place `metres` due north (along the meridian the haversine distance is exact)."""
    return checkin.Place(place.latitude + metres / METRES_PER_DEGREE, place.longitude)


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with field_world(services) as made:
        yield made


async def place_customer(world: World, person: Person, customer: Customer) -> None:
    """Give the customer its location as the card's button would."""
    actor = await staff_of(world.services.sessions, person)
    async with unit_of_work(world.services.sessions) as session:
        await checkin.set_customer_location(
            session,
            keyring=world.services.keyring,
            actor=actor,
            customer_id=customer.id or 0,
            location={"latitude": HOME.latitude, "longitude": HOME.longitude},
            now=NOW,
        )


async def visit_at(
    person: Person, where: checkin.Place | None, *, kind: str | None = None, when: str | None = None
) -> None:
    """/visit for the first customer, the kind, the time (now unless given), the location,
    then the rest skipped and submitted."""
    await person.send("/visit")
    await person.press("明远" if person.user.get("language_code") != "en" else "Mingyuan")
    await person.press(
        kind or ("上门拜访" if person.user.get("language_code") != "en" else "On site")
    )
    if when is None:
        await person.press("跳过" if person.user.get("language_code") != "en" else "Skip")
    else:
        await person.send(when)
    if where is None:
        await person.send("跳过 »" if person.user.get("language_code") != "en" else "Skip »")
    else:
        await person.send_location(where.latitude, where.longitude)
    await person.press(
        "跳过其余" if person.user.get("language_code") != "en" else "Skip the remaining"
    )
    await person.press("提交" if person.user.get("language_code") != "en" else "Submit")


async def only_visit(world: World) -> Visit:
    [visit] = await all_rows(world, Visit)
    return visit


def saved_confirmation(person: Person) -> dict:
    return next(
        m
        for m in reversed(person.telegram.sent_to(person.id))
        if str(m.get("text", "")).startswith(("✅ 拜访已记录", "✅ Visit logged"))
    )


# ---------------------------------------------------------------------------------------------
# distances


def test_haversine_is_sane_at_the_poles_and_across_the_antimeridian() -> None:
    d = checkin.distance_m
    assert d(HOME, HOME) == 0
    assert d(HOME, north_of(HOME, 499)) == pytest.approx(499, abs=0.01)
    assert d(HOME, north_of(HOME, 501)) == pytest.approx(501, abs=0.01)
    # every longitude meets at a pole
    assert d(checkin.Place(90, 0), checkin.Place(90, 123.4)) == pytest.approx(0, abs=1e-6)
    assert d(checkin.Place(-90, -180), checkin.Place(-90, 180)) == pytest.approx(0, abs=1e-6)
    # across the antimeridian two near places are near, not 360 degrees apart
    across = d(checkin.Place(0, 179.9999), checkin.Place(0, -179.9999))
    assert across == pytest.approx(0.0002 * METRES_PER_DEGREE, rel=1e-6)
    # antipodes: half the circumference, no math domain error from rounding
    half = d(checkin.Place(0, 0), checkin.Place(0, 180))
    assert half == pytest.approx(math.pi * checkin.EARTH_RADIUS_M)
    assert d(checkin.Place(89.9999, 0), checkin.Place(89.9999, 180)) == pytest.approx(
        0.0002 * METRES_PER_DEGREE, rel=1e-4
    )


@pytest.mark.parametrize(
    "value",
    [
        None,
        {},
        {"latitude": 91, "longitude": 0},
        {"latitude": 0, "longitude": -180.5},
        {"latitude": float("nan"), "longitude": 0},
        {"latitude": "x", "longitude": 1},
        [30, 120],
    ],
)
def test_what_is_no_place_on_earth(value: object) -> None:
    assert checkin.Place.of(value) is None


# ---------------------------------------------------------------------------------------------
# the first on-site visit gives the customer its location


async def test_first_on_site_visit_places_the_customer_and_checks_in(world: World) -> None:
    li = await world.member()
    customer = await customer_of(world, li)
    assert customer.location_sealed is None
    await visit_at(li, HOME)
    confirmation = saved_confirmation(li)
    assert "📍 这是该客户第一次现场拜访的位置,已设为客户位置。" in confirmation["text"]
    assert "⏱ 10:00 签到,尚未签退" in confirmation["text"]
    assert labels(confirmation)[0] == "🏁 签退"
    visit = await only_visit(world)
    assert visit.checked_in_at == NOW
    assert visit.checkin_distance_m == 0
    assert visit.checkin_flagged is False
    fresh = await reload(world, customer)
    async with unit_of_work(world.services.sessions) as session:
        assert await checkin.customer_location(session, world.services.keyring, fresh) == HOME
    assert fresh.location_set_at == NOW
    assert "customer.location" in await audit_actions(world.services.sessions)


async def test_a_visit_without_location_checks_nothing(world: World) -> None:
    li = await world.member()
    customer = await customer_of(world, li)
    await visit_at(li, None)
    confirmation = saved_confirmation(li)
    assert "签到" not in confirmation["text"]
    assert "🏁 签退" not in labels(confirmation)
    visit = await only_visit(world)
    assert (visit.checked_in_at, visit.checkin_distance_m, visit.checkin_flagged) == (
        None,
        None,
        False,
    )
    assert (await reload(world, customer)).location_sealed is None


async def test_a_phone_call_far_away_is_not_flagged_nor_places_the_customer(world: World) -> None:
    li = await world.member()
    customer = await customer_of(world, li)
    await visit_at(li, north_of(HOME, 5000), kind="电话")
    visit = await only_visit(world)
    assert visit.checkin_flagged is False and visit.checkin_distance_m is None
    assert (await reload(world, customer)).location_sealed is None


# ---------------------------------------------------------------------------------------------
# the radius


@pytest.mark.parametrize(("metres", "flagged"), [(499, False), (501, True)])
async def test_499_metres_is_verified_and_501_is_flagged(
    world: World, metres: int, flagged: bool
) -> None:
    li = await world.member()
    customer = await customer_of(world, li)
    await place_customer(world, li, customer)
    await li.send("/visit")
    await li.press("明远")
    await li.press("上门拜访")
    await li.press("跳过")
    here = north_of(HOME, metres)
    await li.send_location(here.latitude, here.longitude)
    warned = any("超出 500 米" in str(m.get("text", "")) for m in world.telegram.sent_to(li.id))
    assert warned is flagged  # told before saving, while still at the place
    await li.press("跳过其余")
    await li.press("提交")
    visit = await only_visit(world)
    assert visit.checkin_flagged is flagged
    assert visit.checkin_distance_m == pytest.approx(metres, abs=0.1)
    text = saved_confirmation(li)["text"]
    if flagged:
        assert f"⚠️ 签到异常:距客户位置 {metres} 米(允许范围 500 米)" in text
    else:
        assert f"✅ 已在客户处签到(相距 {metres} 米)" in text
    # the customer's location stays where it was: a later visit never moves it
    async with unit_of_work(world.services.sessions) as session:
        fresh = await session.get(Customer, customer.id)
        assert fresh is not None
        assert await checkin.customer_location(session, world.services.keyring, fresh) == HOME


async def test_the_manager_sees_the_flag_in_the_visit_list_in_english(world: World) -> None:
    li = await world.member(language="en")
    boss = await world.member("manager", name="Wang", language="en")
    customer = await customer_of(world, li, name="Mingyuan Machinery")
    await place_customer(world, li, customer)
    far = north_of(HOME, 1234)
    await li.send("/visit")
    await li.press("Mingyuan")
    await li.press("On site")
    await li.press("Skip")
    await li.send_location(far.latitude, far.longitude)
    assert any(
        "You are 1.2 km from the customer's location, beyond 500 m" in str(m.get("text", ""))
        for m in world.telegram.sent_to(li.id)
    )
    await li.press("Skip the remaining")
    await li.press("Submit")
    assert (
        "⚠️ Check-in flagged: 1.2 km from the customer's location (allowed 500 m)"
        in (saved_confirmation(li)["text"])
    )
    await boss.press_data(li_card(boss), f"cvl:{customer.id}")
    listing = boss.last_text()
    assert "⚠️ Check-in flagged: 1.2 km from the customer's location (allowed 500 m)" in listing
    assert "⏱ Checked in at 10:00, not checked out" in listing


def li_card(person: Person) -> dict:
    return {"message_id": 1, "date": 1_790_000_000, "chat": person.chat, "text": "card"}


async def test_the_radius_comes_from_the_setting(world: World) -> None:
    world.services.settings.CHECKIN_RADIUS_M = 1000
    li = await world.member()
    customer = await customer_of(world, li)
    await place_customer(world, li, customer)
    await visit_at(li, north_of(HOME, 800))
    assert (await only_visit(world)).checkin_flagged is False


# ---------------------------------------------------------------------------------------------
# check-out


async def test_check_out_records_the_duration_once(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await visit_at(li, HOME)
    confirmation = saved_confirmation(li)
    world.services.clock = lambda: NOW + timedelta(minutes=47)
    await li.press("签退", confirmation)
    assert li.last_text() == "🏁 已签退,本次拜访用时 47 分钟。"
    visit = await only_visit(world)
    assert visit.checked_out_at == NOW + timedelta(minutes=47)
    # twice: the same button again (a double tap, or the old message)
    await li.press_data(confirmation, f"ci:o:{visit.id}")
    assert li.last_answer() == "这次拜访已经签退了。"
    assert (await only_visit(world)).checked_out_at == NOW + timedelta(minutes=47)
    assert (await audit_actions(world.services.sessions)).count("visit.check_out") == 1
    # the list shows the span
    await li.press_data(li_card(li), f"cvl:{visit.customer_id}")
    assert "⏱ 签到 10:00 – 签退 10:47,用时 47 分钟" in li.last_text()


async def test_an_hour_and_more_reads_in_hours_in_english(world: World) -> None:
    li = await world.member(language="en")
    await customer_of(world, li, name="Mingyuan Machinery")
    await visit_at(li, HOME)
    confirmation = saved_confirmation(li)
    world.services.clock = lambda: NOW + timedelta(minutes=65)
    await li.press("Check out", confirmation)
    assert li.last_text() == "🏁 Checked out: the visit took 1 h 05 min."


async def test_someone_else_cannot_check_out(world: World) -> None:
    li = await world.member()
    boss = await world.member("manager", name="Wang")
    await customer_of(world, li)
    await visit_at(li, HOME)
    visit = await only_visit(world)
    await boss.press_data(li_card(boss), f"ci:o:{visit.id}")
    assert boss.last_answer() == "只有本次拜访的业务员可以签退。"
    other = await world.member("manager", team="West", name="Zhao")
    before = len(await denied(world))
    await other.press_data(li_card(other), f"ci:o:{visit.id}")
    assert other.last_answer() == "找不到该记录,或您无权查看。"
    assert len(await denied(world)) == before + 1  # another team's visit: refused and audited
    assert (await only_visit(world)).checked_out_at is None


async def test_a_visit_of_yesterday_cannot_be_checked_out(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await visit_at(li, HOME)
    confirmation = saved_confirmation(li)
    world.services.clock = lambda: NOW + timedelta(days=1)
    await li.press("签退", confirmation)
    assert li.last_answer() == "签退只能在签到当天进行。"
    assert (await only_visit(world)).checked_out_at is None


async def test_a_visit_logged_afterwards_has_no_check_in(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await visit_at(li, HOME, when="11-21 15:30")
    assert "🏁 签退" not in labels(saved_confirmation(li))
    visit = await only_visit(world)
    assert visit.checked_in_at is None
    await li.press_data(li_card(li), f"ci:o:{visit.id}")
    assert li.last_answer() == "这次拜访没有签到,无法签退。"


@pytest.mark.parametrize("data", ["ci:o", "ci:o:abc", "ci:x:1", "ci:o:1:2", "ci:l:-1", "ci:o:²"])
async def test_malformed_check_in_buttons_expire(world: World, data: str) -> None:
    li = await world.member()
    await li.press_data(li_card(li), data)
    assert li.last_answer() == "这个按钮已过期,请使用最新的消息。"


async def test_a_deactivated_salesperson_cannot_check_out(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await visit_at(li, HOME)
    visit = await only_visit(world)
    actor = await staff_of(world.services.sessions, li)
    async with unit_of_work(world.services.sessions) as session:
        from storage.models import Staff

        row = await session.get(Staff, actor.id)
        assert row is not None
        row.active = False
        session.add(row)
    await li.press_data(li_card(li), f"ci:o:{visit.id}")
    assert (await only_visit(world)).checked_out_at is None


async def test_two_check_out_presses_at_once_record_one(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await visit_at(li, HOME)
    visit = await only_visit(world)
    confirmation = saved_confirmation(li)
    world.services.clock = lambda: NOW + timedelta(minutes=30)
    await asyncio.gather(
        li.press_data(confirmation, f"ci:o:{visit.id}"),
        li.press_data(confirmation, f"ci:o:{visit.id}"),
    )
    answers = sorted(str(a.get("text")) for a in world.telegram.answers()[-2:])
    assert answers == sorted(["🏁 已签退,本次拜访用时 30 分钟。", "这次拜访已经签退了。"])
    assert (await audit_actions(world.services.sessions)).count("visit.check_out") == 1
    assert (await only_visit(world)).checked_out_at == NOW + timedelta(minutes=30)


async def test_the_check_out_button_works_after_a_restart(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await visit_at(li, HOME)
    confirmation = saved_confirmation(li)
    await restart(world)  # a new process: the button's data is all it has
    again = Person(world.app, world.telegram, li.id, "Li")
    await again.press("签退", confirmation)
    assert again.last_text() == "🏁 已签退,本次拜访用时 0 分钟。"
