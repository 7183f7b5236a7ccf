"""Unfinished entries hold personal data, so they do not wait for ever: a draft untouched for
DRAFT_EXPIRY_DAYS is gone when its member comes back (told once, kindly), and the scheduler's
poll empties expired drafts in bulk even if nobody comes back."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlmodel import select

from bot import scheduler
from bot.context import Services
from bot.i18n import translate
from bot.settings import Settings, describe_errors
from storage.crypto import Keyring
from storage.db import SessionFactory, reading
from storage.models import Draft
from tests.auxil.fake_telegram import TOKEN, Person
from tests.auxil.flow_helpers import draft_of, question
from tests.auxil.world import NOW, World

DAYS = 14  # the default DRAFT_EXPIRY_DAYS
EXPIRED = translate("zh", "flow.expired", title="新建客户", days=DAYS)


class Clock:
    """The bot's one clock; tests move it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def services(
    settings: Settings, session_factory: SessionFactory, keyring: Keyring, clock: Clock
) -> Services:
    return Services(settings=settings, sessions=session_factory, keyring=keyring, clock=clock)


async def half_entered(world: World, name: str = "Li") -> Person:
    """A salesperson who started a new customer and stopped after its name."""
    seller = await world.member("salesperson", "East", name)
    await seller.send("/new")
    await seller.press("企业")
    await seller.send(f"{name}的杭州明远机械有限公司")
    return seller


def texts(sent: list[dict]) -> list[str]:
    return [str(m.get("text", "")) for m in sent]


async def all_drafts(world: World) -> list[Draft]:
    async with reading(world.services.sessions) as session:
        return list((await session.exec(select(Draft).order_by(Draft.id))).all())


async def test_a_draft_a_day_short_of_expiry_continues(world: World, clock: Clock) -> None:
    seller = await half_entered(world)
    asked = question(seller)
    clock.advance(days=DAYS - 1, hours=23)
    sent = await seller.send("/start")
    assert EXPIRED not in texts(sent)
    assert question(seller) == asked


async def test_an_expired_draft_is_gone_and_its_member_told_once(
    world: World, clock: Clock
) -> None:
    seller = await half_entered(world)
    prompt = seller.last_message()
    clock.advance(days=DAYS, seconds=1)
    sent = await seller.send("明远")  # the answer to the short-name question, too late
    assert texts(sent)[0] == EXPIRED
    assert await draft_of(world.services.sessions, seller.id) is None
    assert EXPIRED not in texts(await seller.send("明远"))  # told once
    # the old prompt's buttons are stale now, and /new starts afresh
    await seller.press("跳过", prompt)
    assert seller.last_answer() == translate("zh", "button.expired")
    await seller.send("/new")
    assert "企业" in str(seller.last_message().get("reply_markup"))


async def test_a_press_on_an_expired_draft_tells_and_expires_it(world: World, clock: Clock) -> None:
    seller = await half_entered(world)
    clock.advance(days=DAYS + 3)
    sent = await seller.press("跳过")
    assert EXPIRED in texts(sent)
    assert await draft_of(world.services.sessions, seller.id) is None


async def test_the_scheduler_empties_expired_drafts_in_bulk(world: World, clock: Clock) -> None:
    early = await half_entered(world, "Li")
    never_back = await half_entered(world, "Wu")
    clock.advance(days=10)
    late = await half_entered(world, "Zhao")
    clock.advance(days=5)  # early and never_back: 15 days untouched; late: 5

    await scheduler.run_once(world.app)
    rows = {row.staff_id: row for row in await all_drafts(world)}
    assert len(rows) == 3
    emptied = [row for row in rows.values() if row.mode == "expired"]
    assert len(emptied) == 2
    assert all(row.sealed is None and row.step is None for row in emptied)
    kept = await draft_of(world.services.sessions, late.id)
    assert kept is not None and kept.sealed is not None and kept.mode != "expired"

    # the member who comes back is told once, and continues nothing
    sent = await early.send("/start")
    assert EXPIRED in texts(sent)
    assert await draft_of(world.services.sessions, early.id) is None
    assert EXPIRED not in texts(await early.send("/start"))
    # the one still fresh goes on where it stopped
    asked = question(late)
    await late.send("/start")
    assert question(late) == asked

    # a tombstone nobody came back for goes after another period; the late draft expires now
    clock.advance(days=DAYS + 1)
    await scheduler.run_once(world.app)
    assert await draft_of(world.services.sessions, never_back.id) is None
    left = await all_drafts(world)
    assert [(row.mode, row.sealed) for row in left] == [("expired", None)]


async def test_a_search_in_progress_expires_without_a_word(world: World, clock: Clock) -> None:
    seller = await world.member("salesperson", "East", "Li")
    await seller.send("/find 明远")
    clock.advance(days=DAYS + 1)
    await scheduler.run_once(world.app)
    sent = await seller.send("/start")
    assert all("已删除" not in text for text in texts(sent))
    assert await draft_of(world.services.sessions, seller.id) is None


@pytest.mark.parametrize("days", ["0", "-3", "5000", "two weeks"])
def test_a_bad_expiry_setting_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, days: str
) -> None:
    monkeypatch.setenv("DRAFT_EXPIRY_DAYS", days)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, TELEGRAM_BOT_TOKEN=TOKEN)  # type: ignore[call-arg]
    assert [line.split(":")[0] for line in describe_errors(refused.value)] == ["DRAFT_EXPIRY_DAYS"]
