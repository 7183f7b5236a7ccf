"""Every screen with the longest valid data still reaches the user (Telegram's limits).

The fake Telegram refuses what Telegram refuses (tests/auxil/telegram_rules.py): a message over
4,096 UTF-16 units, a caption over 1,024, a callback answer over 200, button data over 64
bytes. Here every field of /new is typed at its longest, in characters of the CJK extension
planes (two units each, the widest a valid answer can be), the customer gets many key
persons, visits and complaints at their longest, the manager a full review queue, the owner
a grouped reminder; then every list, card and summary is opened through the bot, and not
one message may have been refused.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select

from bot.i18n import Translator
from bot.reminder_text import render
from conversations import fit, new_customer
from conversations.steps import Kind
from storage import complaints as complaint_store
from storage import key_persons as key_person_store
from storage import validation
from storage import visits as visit_store
from storage.db import unit_of_work
from storage.models import Customer
from storage.reminders import Kind as ReminderKind
from storage.reminders import Notice
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.record_helpers import make_customer, set_status
from tests.auxil.world import World


def wide(length: int, seed: int = 0) -> str:
    """`length` characters of CJK Extension B: each is two UTF-16 units."""
    return "".join(chr(0x20000 + (seed * 97 + i) % 4000) for i in range(length))


def _tax_number() -> str:
    first = "91330100MA2AB1234"
    return first + validation.uscc_check_char(first)


EMAIL = "x" * 100 + "@" + "y" * 60 + "." + "z" * 60 + "." + "w" * 27 + ".com"
LONGEST: dict[str, str] = {
    "name": wide(100, 1),
    "short_name": wide(30, 2),
    "industry": wide(50, 3),
    "region": wide(50, 4),
    "address": wide(200, 5),
    "parent_org": wide(100, 6),
    "profile": wide(1000, 7),
    "phones": ",".join(f"1381234560{i}" for i in range(5)),
    "email": EMAIL,
    "website": "https://example.com/" + "p" * 180,
    "wechat": wide(50, 8),
    "credit_status": wide(100, 9),
    "trade_notes": wide(1000, 10),
    "legal_representative": wide(50, 15),
    "invoice_title": wide(100, 11),
    "tax_no": _tax_number(),
    "bank": wide(100, 12),
    "account_no": "6" * 34,
    "billing_address": wide(200, 13),
    "billing_phone": "13900001111",
    "consent_on": "2026-11-01",
    "consent_note": wide(200, 14),
    "next_followup_on": "2026-12-20",
}
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def _data_with(message: dict[str, Any], part: str) -> str:
    found = [data for _label, data in buttons(message) if part in data]
    assert found, f"no button with {part!r}: {buttons(message)} {message.get('text')}"
    return found[0]


async def answer_new_at_the_longest(person: Person) -> None:
    """/new with every question answered: the first option of each choice, the longest text."""
    await person.send("/new")
    data: dict[str, Any] = {"kind": "company", "finance": "yes", "consent_given": "yes"}
    for step in new_customer.STEPS:
        if not step.applies(data):
            continue
        if step.kind in (Kind.CHOICE, Kind.YES_NO):
            first = ":c:1" if step.finishes else ":c:0"  # "continue", not "save now"
            await person.press_data(person.last_message(), _data_with(person.last_message(), first))
        else:
            await person.send(LONGEST[step.field])
        data.setdefault(step.field, "x")


async def answer(person: Person, *answers: str) -> None:
    """Answer the flow's questions in order: "c0" presses the first choice, "skip", "done"
    (attachments), "ok" (submit) and "loc" press or send what they say, "photos" sends many
    photos; anything else is typed."""
    for given in answers:
        question = person.last_message()
        if given in ("c0", "skip", "done", "ok"):
            part = {"c0": ":c:0", "skip": ":s:", "done": ":m:", "ok": ":ok:"}[given]
            await person.press_data(question, _data_with(question, part))
        elif given == "loc":
            await person.send_location(30.25, 120.16)
        elif given == "photos":
            for _n in range(20):
                await person.send_photo()
        else:
            await person.send(given)


async def _many_reviews(world: World, owner: Person, count: int) -> list[int]:
    ids = []
    for n in range(count):
        ids.append(await make_customer(world, owner, status="pending", name=wide(100, 100 + n)))
    return ids


async def _key_persons(world: World, owner: Person, customer_id: int, count: int) -> None:
    actor = await staff_of(world.services.sessions, owner)
    async with unit_of_work(world.services.sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        for n in range(count):
            await key_person_store.add_key_person(
                session,
                keyring=world.services.keyring,
                actor=actor,
                customer=customer,
                values={
                    "kp_name": wide(100, 200 + n),
                    "kp_title": wide(100, 300 + n),
                    "kp_role": "decision_maker",
                    "kp_influence": 90,
                    "kp_phones": [f"+86138000000{n:02d}" for _ in range(1)],
                    "kp_birthday": "1970-01-02",
                    "kp_notes": wide(1000, 400 + n),
                },
            )


async def _visits(world: World, owner: Person, customer_id: int, count: int) -> None:
    actor = await staff_of(world.services.sessions, owner)
    for n in range(count):
        async with unit_of_work(world.services.sessions) as session:
            await visit_store.log_visit(
                session,
                keyring=world.services.keyring,
                actor=actor,
                customer_id=customer_id,
                values={
                    "kind": "on_site",
                    "visited_at": None,
                    "location": {"latitude": 30.25, "longitude": 120.16, "accuracy": 5},
                    "purpose": wide(500, 500 + n),
                    "discussion": wide(2000, 600 + n),
                    "needs_feedback": wide(2000, 700 + n),
                    "outcome": wide(1000, 800 + n),
                    "stage_change": None,
                    "next_followup_on": None,
                    "attachments": [
                        {"kind": "photo", "file_id": f"p-{n}-{i}", "unique": f"u-{n}-{i}"}
                        for i in range(visit_store.MAX_ATTACHMENTS)
                    ],
                },
                now=NOW,
                timezone="Asia/Shanghai",
                followup_cycles=world.services.settings.followup_cycles,
            )


async def _complaints(world: World, owner: Person, customer_id: int, count: int) -> list[int]:
    actor = await staff_of(world.services.sessions, owner)
    ids = []
    for n in range(count):
        async with unit_of_work(world.services.sessions) as session:
            complaint = await complaint_store.log_complaint(
                session,
                keyring=world.services.keyring,
                actor=actor,
                customer_id=customer_id,
                values={
                    "channel": None,
                    "complaint_type": "service",
                    "severity": "critical",
                    "description": wide(complaint_store.MAX_DESCRIPTION, 900 + n),
                },
                now=NOW,
                due_hours=world.services.settings.complaint_due_hours,
            )
            ids.append(complaint.id or 0)
    return ids


def card_press(person: Person) -> dict[str, Any]:
    """A stand-in for a message whose button the person presses."""
    return {"message_id": 1, "date": 1_790_000_000, "chat": person.chat, "text": "card"}


async def _press_every(person: Person, message: dict[str, Any], prefix: str) -> None:
    """Press each button of `message` whose data starts with `prefix`."""
    for _label, data in buttons(message):
        if data.startswith(prefix):
            await person.press_data(message, data)


def _grouped_reminders(customer_ids: list[int]) -> list[Notice]:
    notices = []
    for n, customer_id in enumerate(customer_ids):
        values = {
            "customer": wide(100, 1000 + n),
            "number": f"KH-2026-{n:06d}",
            "days": 12,
            "on": "2026-11-10",
            "late": True,
        }
        notices.append(
            Notice(n + 1, ReminderKind.followup, values, ("visit", "snooze"), customer_id)
        )
    rejected = {
        "customer": wide(100, 1100),
        "number": "KH-2026-000999",
        "what": "x",
        "review_kind": "customer_new",
        "days": 4,
        "reason": wide(500, 1200),
    }
    notices.append(Notice(90, ReminderKind.rejected, rejected, ("resubmit",), customer_ids[0]))
    digest_line = {
        "review_kind": "customer_new",
        "subject": wide(100, 1300) + " · KH-2026-000001",
        "submitter": wide(64, 1400),
        "when": "2026-11-20 10:00",
    }
    notices.append(
        Notice(91, ReminderKind.review_digest, {"count": 40, "more": 25}, lines=(digest_line,) * 15)
    )
    return notices


async def test_every_list_card_and_summary_fits_with_the_longest_valid_data(
    world: World,
) -> None:
    seller = await world.member("salesperson", name=wide(64, 20))
    manager = await world.member("manager", name=wide(64, 21))
    telegram = world.telegram

    # /new at the longest: every question, the summary, an edit, the summary again, submit
    await answer_new_at_the_longest(seller)
    summary = seller.last_message()
    profile_edit = _data_with(summary, f":e:{new_customer.FLOW.index('profile')}")
    await seller.press_data(summary, profile_edit)
    await seller.send(LONGEST["profile"])
    await seller.press_data(seller.last_message(), _data_with(seller.last_message(), ":ok:"))

    async with unit_of_work(world.services.sessions) as session:
        customer = (await session.exec(select(Customer).order_by(col(Customer.id)))).first()
    assert customer is not None and customer.id is not None
    customer_id = customer.id

    # the same customer again: the summary carries every duplicate warning too
    await answer_new_at_the_longest(seller)
    await seller.press_data(seller.last_message(), _data_with(seller.last_message(), ":ok:"))

    # the manager's notice, queue and full cards
    await _many_reviews(world, seller, 12)
    await manager.send("/review")
    queue = manager.last_message()
    await _press_every(manager, queue, "rv:o:")
    await _press_every(manager, queue, "rv:q:")
    await _press_every(manager, manager.last_message(), "rv:o:")

    # the records of the customer, at their longest and many
    await set_status(world.services.sessions, customer_id, "approved")
    await _key_persons(world, seller, customer_id, 30)
    await _visits(world, seller, customer_id, 7)
    await _complaints(world, seller, customer_id, 8)

    # a change to the approved record: the manager's card shows before and after
    field_button = Translator("zh")("field.profile")
    await seller.press_data(card_press(seller), f"ce:{customer_id}")
    await seller.press(field_button)
    await answer(seller, wide(1000, 77), "ok")
    await _press_every(manager, manager.last_message(), "rv:o:")

    # a visit and a complaint through their flows, every answer at its longest
    await seller.press_data(card_press(seller), f"cv:{customer_id}")
    await answer(seller, "c0", "skip", "loc", wide(500, 31), wide(2000, 32), wide(2000, 33))
    await answer(seller, wide(1000, 34), "c0", "skip", "photos", "done", "ok")
    await seller.press_data(card_press(seller), f"cc:{customer_id}")
    await answer(seller, "c0", "c0", "c0", wide(complaint_store.MAX_DESCRIPTION, 35), "ok")
    complaint_card = seller.last_message()
    await seller.press_data(complaint_card, _data_with(complaint_card, ":resolve"))
    await answer(seller, wide(complaint_store.MAX_RESOLUTION, 36))
    await answer(seller, wide(complaint_store.MAX_FEEDBACK, 37), "skip", "ok")
    complaint_id = int(_data_with(complaint_card, ":resolve").split(":")[1])
    await _press_every(manager, manager.last_message(), "rv:o:")
    await seller.press_data(card_press(seller), f"cx:{complaint_id}:v")
    await _press_every(seller, seller.last_message(), f"cx:{complaint_id}:t")

    # the card and everything it opens
    await seller.press_data(card_press(seller), f"cu:{customer_id}")
    card = seller.last_message()
    for prefix in ("ck:", "cvl:", "ccl:", "ch:"):
        await seller.press_data(card, _data_with(card, prefix))
        shown = seller.last_message()
        await _press_every(seller, shown, "cvl:")  # visits: details and pages
        await _press_every(seller, shown, "ccl:")  # complaints: pages
        await _press_every(seller, shown, "cx:")  # complaints: each card
        await _press_every(seller, shown, "ch:")  # history: pages
    await seller.press_data(card, f"ch:{customer_id}:1")

    # the edit flow's summary, and lists of customers
    await seller.press_data(card, f"ce:{customer_id}")
    await seller.send("/cancel")
    await seller.send("/my")
    await seller.send("/find " + wide(30, 1))
    await manager.send("/my")

    # a grouped reminder message with many items, rendered as the sender renders it
    notices = _grouped_reminders([customer_id] * 12)
    for outgoing in render(notices, Translator("zh")):
        await world.app.bot.send_message(seller.id, outgoing.text, reply_markup=outgoing.markup)

    oversize = [(r.method, r.description) for r in telegram.refused]
    assert oversize == [], oversize
    # and the walk did see every screen, at full size
    texts = [str(p.get("text")) for name, p in telegram.calls if name == "sendMessage"]
    people = [t for t in texts if t.startswith("👥 关键联系人")]
    assert len(people) == 3 and people[1].startswith("👥 关键联系人(续 2/3)\n11. ")
    assert len([t for t in texts if t.startswith("🗓 拜访")]) == 5  # each of page 1 in full
    assert any(t.startswith("📋 新建客户") and "⚠️" in t for t in texts)  # with the warnings
    assert any(t.startswith("🗂") and fit.units(t) > 4000 for t in texts)  # visits, cut to fit
    assert any(t.startswith("📣 投诉") and fit.units(t) > 4000 for t in texts)
    assert any(t.startswith("🔔 10 条提醒") for t in texts)
    captions = [p["caption"] for name, p in telegram.calls if name == "sendPhoto"]
    assert len(captions) == 5 * 20


async def test_a_summary_with_dozens_of_duplicate_warnings_is_shown_and_submitted(
    world: World,
) -> None:
    """A switchboard number shared by 30 branches: every warning is listed, cut to fit, and
    Submit still closes the card with its note and sends the confirmation."""
    seller = await world.member("salesperson", name=wide(64, 40))
    for n in range(30):
        await make_customer(world, seller, name=wide(100, 50 + n), phones=["+8613812345600"])
    await answer_new_at_the_longest(seller)
    summary = seller.last_message()
    assert summary["text"].startswith("📋 新建客户")
    assert summary["text"].count("⚠️") >= 30 and fit.units(summary["text"]) <= fit.MESSAGE_LIMIT
    await seller.press_data(summary, _data_with(summary, ":ok:"))
    assert seller.telegram.messages[(seller.id, summary["message_id"])]["text"].endswith("→ 已提交")
    assert seller.last_text().startswith("✅ 客户")
    assert world.telegram.refused == []


async def test_the_edit_question_shows_the_whole_current_value(world: World) -> None:
    """The summary cuts a long answer; the question that changes it shows it whole."""
    seller = await world.member("salesperson")
    await answer_new_at_the_longest(seller)
    summary = seller.last_message()
    assert LONGEST["profile"] not in summary["text"]  # cut on the summary
    await seller.press_data(
        summary, _data_with(summary, f":e:{new_customer.FLOW.index('profile')}")
    )
    assert f"当前值:{LONGEST['profile']}" in seller.last_text()
    assert world.telegram.refused == []


async def test_full_texts_are_only_for_those_who_may_see_the_record(world: World) -> None:
    """`cvl:<customer>:t<visit>` and `cx:<complaint>:t` re-check who asks, like every button."""
    seller = await world.member("salesperson", "East")
    stranger = await world.member("salesperson", "West")
    customer_id = await make_customer(world, seller, status="approved")
    await _visits(world, seller, customer_id, 1)
    [complaint_id] = await _complaints(world, seller, customer_id, 1)

    await seller.press_data(card_press(seller), f"cvl:{customer_id}")
    visits = seller.last_message()
    full = _data_with(visits, ":t")
    assert ("📄 第 1 条全文", full) in buttons(visits)
    whole = await _texts_sent(world, seller.press_data(visits, full))
    assert whole[0].startswith("🗓 拜访") and len(whole) >= 3
    assert sum(fit.units(t) for t in whole) > 11_000  # 5,500 wide characters, all of them

    refused = Translator("zh")("refused.not_found")
    for forged in (full, f"cx:{complaint_id}:t", f"cvl:{customer_id}:t99999"):
        assert await _texts_sent(world, stranger.press_data(card_press(stranger), forged)) == []
        assert world.telegram.answers()[-1]["text"] == refused

    await seller.press_data(card_press(seller), f"cx:{complaint_id}:v")
    card = seller.last_message()
    assert fit.units(card["text"]) <= fit.MESSAGE_LIMIT
    whole = await _texts_sent(
        world, seller.press_data(card, _data_with(card, f"cx:{complaint_id}:t"))
    )
    assert sum(fit.units(t) for t in whole) > 2 * complaint_store.MAX_DESCRIPTION
    assert world.telegram.refused == []


async def _texts_sent(world: World, action: Awaitable[Any]) -> list[str]:
    """The texts of the messages sent while `action` ran."""
    before = len(world.telegram.calls)
    await action
    return [str(p["text"]) for n, p in world.telegram.calls[before:] if n == "sendMessage"]


async def test_a_short_visit_list_has_no_full_text_buttons(world: World) -> None:
    seller = await world.member("salesperson")
    customer_id = await make_customer(world, seller, status="approved")
    actor = await staff_of(world.services.sessions, seller)
    async with unit_of_work(world.services.sessions) as session:
        await visit_store.log_visit(
            session,
            keyring=world.services.keyring,
            actor=actor,
            customer_id=customer_id,
            values={"kind": "phone", "purpose": "报价", "discussion": "谈了价格"},
            now=NOW,
            timezone="Asia/Shanghai",
            followup_cycles=world.services.settings.followup_cycles,
        )
    await seller.press_data(card_press(seller), f"cvl:{customer_id}")
    assert "拜访目的: 报价" in seller.last_text() or "报价" in seller.last_text()
    assert not [d for _label, d in buttons(seller.last_message()) if ":t" in d]
