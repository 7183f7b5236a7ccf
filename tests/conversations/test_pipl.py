"""PIPL requests in chat: an admin exports everything held about a customer or key person
(two protected documents, removed from disk afterwards), erases a key person, hands a
customer's erasure to the destruction request; everyone else is refused and audited."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from storage import erasure
from storage.db import unit_of_work
from storage.models import Customer, KeyPerson, Staff
from tests.auxil import telegram_rules
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import FakeTelegram, Person, buttons
from tests.auxil.pipl_helpers import FULL, LONG_NAME, held, rich_customer
from tests.auxil.record_helpers import audit_entries, card
from tests.auxil.world import NOW, World, start_app

WORDS = {
    "en": {
        "button": "PIPL request",
        "export": "Export everything",
        "erase_customer": "Erase this customer",
        "section": "== Customer ==",
        "consent": "== Consent to collection ==",
        "refused": "Only an admin answers PIPL requests.",
        "erase_confirm": "Erase for good",
        "erased": "Erased:",
    },
    "zh": {
        "button": "个人信息请求",
        "export": "导出所保存的全部信息",
        "erase_customer": "删除该客户",
        "section": "== 客户 ==",
        "consent": "== 收集同意 ==",
        "refused": "只有管理员可以处理个人信息请求。",
        "erase_confirm": "永久删除",
        "erased": "已删除:",
    },
}


def uploads(world: World, person: Person) -> list[dict[str, Any]]:
    return [
        {"filename": u.filename, "content": u.content, "params": u.params}
        for u in world.telegram.documents_to(person.id)
    ]


def export_folder(world: World) -> Path:
    return world.services.settings.DATA_DIR / "pipl"


async def open_card(person: Person, customer_id: int) -> dict[str, Any]:
    await person.press_data(card(person), f"cu:{customer_id}")
    return person.last_message()


def number_of(world: World, customer_id: int) -> str:
    return f"KH-2026-{customer_id:06d}"


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_an_admin_exports_everything_from_the_card(world: World, language: str) -> None:
    words = WORDS[language]
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales)
    admin = world.admin(language)
    await admin.send("/help")
    shown = await open_card(admin, cid)
    assert ("🔏 " + words["button"], f"pi:m:{cid}") in buttons(shown)
    await admin.press(words["button"], shown)
    menu = admin.telegram.sent_to(admin.id)[-2:]  # 12 key persons: the menu comes in two
    assert LONG_NAME[:20] in menu[0]["text"]
    assert f"ar:p:{cid}" in [data for _label, data in buttons(menu[0])]
    assert sum(len(buttons(m)) for m in menu) == 2 + 2 * 12
    await admin.press(words["export"], menu[0])

    sent = uploads(world, admin)
    assert [u["filename"].rsplit(".", 1)[1] for u in sent] == ["json", "txt"]
    assert all(u["params"]["protect_content"] is True for u in sent)
    caption = sent[0]["params"]["caption"]
    assert telegram_rules.units(caption) <= telegram_rules.CAPTION_LIMIT
    assert "30" in caption and "12" in caption
    document = json.loads(sent[0]["content"].decode("utf-8"))
    db = await held(world, cid)
    assert document["customer"]["fields"]["name"] == LONG_NAME
    assert all(document["customer"]["fields"][k] == v for k, v in FULL.items())
    assert {v["id"] for v in document["visits"]} == {v.id for v in db["visits"]}
    assert {c["description"] for c in document["complaints"]} == {
        c.description for c in db["complaints"]
    }
    assert [r["action"] for r in document["reads"]] == ["customer.reveal", "customer.reveal"]
    text = sent[1]["content"].decode("utf-8")
    assert words["section"] in text and words["consent"] in text
    assert FULL["profile"] in text and db["visits"][0].discussion in text  # nothing cut
    assert "photo-0" in text and "+8613812345678" in text
    # gone from disk, and audited without personal data
    assert export_folder(world).is_dir() and list(export_folder(world).iterdir()) == []
    [entry] = await audit_entries(world.services.sessions, "pipl.access")
    assert entry.entity_id == cid and LONG_NAME[:5] not in (entry.detail or "")


async def test_a_salespersons_and_a_managers_card_offer_no_pipl_request(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Chen")
    cid = await rich_customer(world, sales, people=0, visit_count=0, complaint_count=0)
    for person in (sales, manager):
        await person.send("/help")
        assert "/pipl" not in person.last_text()
        shown = await open_card(person, cid)
        assert not [d for _l, d in buttons(shown) if d.startswith("pi:")]
    admin = world.admin("en")
    await admin.send("/help")
    assert "/pipl" in admin.last_text()


async def test_the_pipl_command(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=1, visit_count=1, complaint_count=0)
    admin = world.admin("en")
    await admin.send("/pipl")
    assert admin.last_text().startswith("Send /pipl with a customer number")
    await admin.send("/pipl KH-2099-999999")
    assert admin.last_text() == "There is no customer numbered KH-2099-999999."
    await admin.send(f"/pipl {number_of(world, cid).lower()}")
    assert admin.last_text().startswith("🔏 PIPL request · KH-2026-")
    await admin.press("Export everything")
    assert len(uploads(world, admin)) == 2


@pytest.mark.parametrize("role", ["salesperson", "manager"])
async def test_others_are_refused_and_audited(world: World, role: str) -> None:
    """The command, and forged buttons for a customer they may see: refused, audited, and
    nothing is sent."""
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=1, visit_count=1, complaint_count=0)
    async with unit_of_work(world.services.sessions) as session:
        person_id = (await session.exec(select(KeyPerson.id))).first()
    person = sales if role == "salesperson" else await world.member("manager", "East", "Chen")
    actor = await staff_of(world.services.sessions, person)
    await person.send(f"/pipl {number_of(world, cid)}")
    assert person.last_text() == WORDS["zh"]["refused"]
    for data in (
        f"pi:m:{cid}",
        f"pi:x:{cid}",
        f"pi:k:{cid}:{person_id}",
        f"pi:d:{cid}:{person_id}",
        f"pi:e:{cid}:{person_id}:1",
    ):
        await person.press_data(card(person), data)
        assert person.last_answer() == WORDS["zh"]["refused"], data
    assert uploads(world, person) == []
    async with unit_of_work(world.services.sessions) as session:
        assert await session.get(KeyPerson, person_id) is not None
    denied = [
        json.loads(e.detail or "{}")["purpose"]
        for e in await audit_entries(world.services.sessions, "access.denied")
        if e.actor_staff_id == actor.id
    ]
    assert denied == ["pipl.access"] * 6
    assert await audit_entries(world.services.sessions, "pipl.access") == []


async def test_a_deactivated_admin_is_refused(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=0, visit_count=0, complaint_count=0)
    other = await world.member("admin", None, "Wu")
    async with unit_of_work(world.services.sessions) as session:
        row = (await session.exec(select(Staff).where(Staff.telegram_id == other.id))).one()
        row.active = False
        session.add(row)
    await other.send(f"/pipl {number_of(world, cid)}")
    await other.press_data(card(other), f"pi:x:{cid}")
    assert uploads(world, other) == []
    assert await audit_entries(world.services.sessions, "pipl.access") == []
    assert "PIPL" not in other.last_text() and "个人信息" not in other.last_text()


async def test_malformed_buttons_are_expired(world: World) -> None:
    admin = world.admin("en")
    await admin.send("/help")
    for data in ("pi:x", "pi:x:abc", "pi:x:1:2", "pi:zz:1", "pi:e:1:2", f"pi:x:{2**40}"):
        await admin.press_data(card(admin), data)
        assert admin.last_answer() is not None and "expired" in (admin.last_answer() or ""), data
    await admin.press_data(card(admin), "pi:x:999999")  # no such customer
    assert uploads(world, admin) == []


async def test_a_destroyed_customers_export_holds_no_personal_data(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=2, visit_count=2, complaint_count=1)
    async with unit_of_work(world.services.sessions) as session:
        await erasure.erase_customer(session, world.services.keyring, customer_id=cid, now=NOW)
    admin = world.admin("en")
    await admin.send(f"/pipl {number_of(world, cid)}")
    assert "was destroyed" in admin.last_text()
    assert [d for _l, d in buttons(admin.last_message())] == [f"pi:x:{cid}"]
    await admin.press("Export everything")
    sent = uploads(world, admin)
    assert "Destroyed" in sent[0]["params"]["caption"]
    for upload in sent:
        content = upload["content"].decode("utf-8")
        for value in (LONG_NAME[:10], "13812345678", "photo-0", "王0", FULL["tax_no"]):
            assert value not in content
    assert "was destroyed" in sent[1]["content"].decode("utf-8")
    assert list(export_folder(world).iterdir()) == []


async def test_a_failed_send_leaves_no_file_behind(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=1, visit_count=1, complaint_count=0)
    admin = world.admin("en")
    await admin.send(f"/pipl {number_of(world, cid)}")
    menu = admin.last_message()
    world.telegram.fail_methods.add("sendDocument")
    await admin.press("Export everything", menu)
    assert (
        admin.last_text()
        == "The export could not be sent; its files were removed. Try again later."
    )
    assert list(export_folder(world).iterdir()) == []


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_key_persons_export_and_erasure(world: World, language: str) -> None:
    words = WORDS[language]
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=2, visit_count=1, complaint_count=0)
    async with unit_of_work(world.services.sessions) as session:
        first, second = (await session.exec(select(KeyPerson).order_by(KeyPerson.id))).all()
    admin = world.admin(language)
    await admin.send(f"/pipl {number_of(world, cid)}")
    menu = admin.last_message()
    assert (f"📦 {first.name}"[:20], f"pi:k:{cid}:{first.id}") in [
        (label[:20], data) for label, data in buttons(menu)
    ]
    await admin.press_data(menu, f"pi:k:{cid}:{first.id}")
    sent = uploads(world, admin)
    document = json.loads(sent[0]["content"])
    assert document["subject"] == "key_person"
    assert document["key_person"]["fields"]["kp_notes"] == first.notes
    assert document["customer"]["name"] == LONG_NAME
    assert second.name not in sent[1]["content"].decode("utf-8")

    await admin.press_data(menu, f"pi:d:{cid}:{first.id}")
    ask = admin.last_message()
    assert buttons(ask)[0][1] == f"pi:e:{cid}:{first.id}:{first.version}"
    await admin.press(words["erase_confirm"], ask)
    assert words["erased"] in admin.last_text()
    async with unit_of_work(world.services.sessions) as session:
        assert await session.get(KeyPerson, first.id) is None
        assert await session.get(KeyPerson, second.id) is not None
    [entry] = await audit_entries(world.services.sessions, "pipl.erasure")
    assert entry.entity_id == first.id
    await admin.press_data(ask, f"pi:e:{cid}:{first.id}:{first.version}")  # again: gone
    assert await audit_entries(world.services.sessions, "pipl.erasure") == [entry]
    await admin.press_data(menu, f"pi:k:{cid}:{first.id}")  # its export: gone too
    assert len(uploads(world, admin)) == 2


async def test_a_key_person_of_another_customer_is_refused(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    one = await rich_customer(world, sales, people=1, visit_count=0, complaint_count=0)
    other = await rich_customer(world, sales, people=0, visit_count=0, complaint_count=0)
    async with unit_of_work(world.services.sessions) as session:
        person = (await session.exec(select(KeyPerson))).one()
    admin = world.admin("en")
    await admin.send("/help")
    await admin.press_data(card(admin), f"pi:k:{other}:{person.id}")
    await admin.press_data(card(admin), f"pi:d:{other}:{person.id}")
    await admin.press_data(card(admin), f"pi:e:{other}:{person.id}:{person.version}")
    assert uploads(world, admin) == []
    async with unit_of_work(world.services.sessions) as session:
        assert await session.get(KeyPerson, person.id) is not None
        assert (await session.get(Customer, one)) is not None


async def test_two_admins_erasing_one_key_person_at_once(world: World) -> None:
    """Both confirm at the same moment: it is erased once, the other hears it is gone."""
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=1, visit_count=0, complaint_count=0)
    async with unit_of_work(world.services.sessions) as session:
        person = (await session.exec(select(KeyPerson))).one()
    first, second = world.admin("en"), await world.member("admin", None, "Wu", language="en")
    asks = []
    for admin in (first, second):
        await admin.send(f"/pipl {number_of(world, cid)}")
        await admin.press_data(admin.last_message(), f"pi:d:{cid}:{person.id}")
        asks.append(admin.last_message())
    await asyncio.gather(
        *(a.press("Erase for good", ask) for a, ask in zip((first, second), asks, strict=True))
    )
    assert len(await audit_entries(world.services.sessions, "pipl.erasure")) == 1
    heard = sorted(
        "done" if "Erased:" in a.last_text() else (a.last_answer() or "") for a in (first, second)
    )
    assert heard[0] in (
        "That key person is gone already.",
        "The key person was changed meanwhile; open the PIPL menu again.",
    )
    assert heard[1] == "done"


async def test_the_menu_works_after_a_restart(world: World) -> None:
    """Nothing of the menu lives in memory: its buttons work on a new Application."""
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=1, visit_count=1, complaint_count=0)
    admin = world.admin("en")
    await admin.send(f"/pipl {number_of(world, cid)}")
    menu = admin.last_message()
    await world.app.shutdown()
    telegram = FakeTelegram()
    world.app = await start_app(world.services, telegram)
    world.telegram = telegram
    admin.app, admin.telegram = world.app, telegram
    await admin.press_data(menu, f"pi:x:{cid}")
    assert len(uploads(world, admin)) == 2
    assert list(export_folder(world).iterdir()) == []


async def test_an_admins_key_person_list_leads_to_the_pipl_menu(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=1, visit_count=0, complaint_count=0)
    admin = world.admin("en")
    await admin.send("/help")
    await admin.press_data(card(admin), f"ck:{cid}")
    assert ("🔏 PIPL request of a key person", f"pi:m:{cid}") in buttons(admin.last_message())
    await admin.press("PIPL request of a key person")
    assert admin.last_text().startswith("🔏 PIPL request · KH-2026-")
    await sales.press_data(card(sales), f"ck:{cid}")
    assert not [d for _l, d in buttons(sales.last_message()) if d.startswith("pi:")]
