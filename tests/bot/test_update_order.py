"""Several people at once, each person in order (bot.update_order, issue 15).

The application as `python -m bot run` starts it, fed through its update queue as the webhook
does, on a Telegram that is slow for one chat: another person is answered meanwhile, and the slow
person's next update waits for their first to finish, so their answers come in order."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from telegram import Update

from bot.app import build_application
from bot.context import Services
from bot.update_order import CONCURRENT_ON_POSTGRES, default_concurrency
from tests.auxil.fake_telegram import FakeTelegram, Person
from tests.auxil.world import World


class SlowForOneChat(FakeTelegram):
    """Telegram answering one chat's sends only once `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_chat: int | None = None
        self.release = asyncio.Event()

    async def do_request(self, url: str, method: str, request_data: Any = None, **kw: Any) -> Any:
        params = request_data.parameters if request_data is not None else {}
        if self.slow_chat is not None and str(params.get("chat_id")) == str(self.slow_chat):
            await self.release.wait()
        return await super().do_request(url, method, request_data, **kw)


def payload(person: Person, number: int, text: str) -> dict[str, Any]:
    return {
        "update_id": number,
        "message": {
            "message_id": number,
            "date": 1_790_000_000,
            "chat": person.chat,
            "from": person.user,
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
        },
    }


async def answered(telegram: FakeTelegram, chat: int, count: int) -> list[str]:
    for _ in range(500):
        texts = [
            str(p.get("text"))
            for n, p in telegram.calls
            if n == "sendMessage" and str(p.get("chat_id")) == str(chat)
        ]
        if len(texts) >= count:
            return texts
        await asyncio.sleep(0.01)
    raise AssertionError(f"chat {chat} got {count} answers: no")


async def test_another_person_is_answered_while_one_waits_and_each_keeps_their_order(
    services: Services,
) -> None:
    telegram = SlowForOneChat()
    settings = services.settings.model_copy(update={"CONCURRENT_UPDATES": 8})
    services = Services(
        settings=settings,
        sessions=services.sessions,
        keyring=services.keyring,
        clock=services.clock,
    )
    app = build_application(services, request=telegram, rate_limit=False)
    assert app.update_processor.max_concurrent_updates == 8
    world = World(app, telegram, services, itertools.count(700_001))
    slow, quick = await world.member(name="Li"), await world.member(name="Wang")
    async with app:
        await app.start()
        try:
            telegram.slow_chat = slow.id
            put = app.update_queue.put
            await put(Update.de_json(payload(slow, 1, "/help"), app.bot))
            await put(Update.de_json(payload(slow, 2, "/cancel"), app.bot))
            await put(Update.de_json(payload(quick, 3, "/help"), app.bot))
            assert len(await answered(telegram, quick.id, 1)) == 1  # not behind the slow chat
            assert app.update_processor.current_concurrent_updates >= 1  # the slow one waits
            telegram.release.set()
            texts = await answered(telegram, slow.id, 2)
            quick_help = (await answered(telegram, quick.id, 1))[0]
            assert texts[0] == quick_help  # /help first, then /cancel's answer, as sent
            assert texts[1] != quick_help
        finally:
            await app.stop()


def test_one_update_at_a_time_on_sqlite_several_on_postgresql() -> None:
    assert default_concurrency("sqlite:///data/archive.db") == 1
    assert default_concurrency("postgresql://u:p@db/archive") == CONCURRENT_ON_POSTGRES
    assert CONCURRENT_ON_POSTGRES > 1
