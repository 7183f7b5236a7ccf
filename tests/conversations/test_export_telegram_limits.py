"""The fake Telegram refuses uploads as Telegram does: a document over 50 MB, a caption over
1,024 characters, a sendDocument without a document; and keeps what it received."""

from __future__ import annotations

import pytest
from telegram.error import BadRequest, TelegramError

from tests.auxil import telegram_rules
from tests.auxil.world import World


async def test_a_document_is_received_with_its_bytes(world: World) -> None:
    member = await world.member("salesperson")
    sent = await world.app.bot.send_document(
        member.id, document=b"a,b\n", filename="x.csv", caption="ok", protect_content=True
    )
    upload = world.telegram.documents[(member.id, sent.message_id)]
    assert upload.content == b"a,b\n" and upload.filename == "x.csv"
    assert sent.document is not None and sent.document.file_size == 4


async def test_what_telegram_refuses_is_refused(world: World) -> None:
    world.telegram.expect_refusals = True
    member = await world.member("salesperson")
    with pytest.raises(BadRequest, match="caption is too long"):
        await world.app.bot.send_document(member.id, document=b"x", caption="长" * 1025)
    with pytest.raises(TelegramError, match="Too Large"):
        big = b"x" * (telegram_rules.UPLOAD_LIMIT + 1)
        await world.app.bot.send_document(member.id, document=big, filename="big.csv")
    assert telegram_rules.upload_refusal("sendDocument", {}, None) == telegram_rules.NO_DOCUMENT
    assert world.telegram.documents == {}
