"""Hand-over in chat (离职/调岗交接): an admin chooses successors for Li, who left, and
finishes; everything she held moves in one go and nothing is left with her (orphans)."""

from __future__ import annotations

from sqlmodel import select

from storage import handover as handovers
from storage.db import reading
from storage.models import ChangeRecord, Customer, Draft, Handover, HandoverStatus
from tests.auxil.fake_telegram import buttons
from tests.auxil.flow_helpers import audit_actions
from tests.auxil.handover_helpers import (
    company,
    deactivate,
    handlers,
    leave,
    owners,
    pending_of,
)
from tests.auxil.world import World, start_app


async def _open(world: World, hid: int) -> dict:
    """The admin opens the hand-over from /handover."""
    admin = world.admin(language="en")
    await admin.send("/handover")
    assert "Open hand-overs: 1" in admin.last_text()
    await admin.press("Li")
    assert "Hand-over of Li" in admin.last_text()
    return admin.last_message()


async def test_one_successor_for_all_moves_every_record_and_leaves_no_orphan(
    world: World,
) -> None:
    sessions = world.services.sessions
    c = await company(world)
    hid = await leave(sessions, c.li_id)
    async with reading(sessions) as session:  # deactivating discarded it (storage.staff)
        assert (await session.exec(select(Draft).where(Draft.staff_id == c.li_id))).first() is None
    admin = world.admin(language="en")
    view = await _open(world, hid)
    assert "3 customers (1 with a next follow-up), 2 open complaints" in view["text"]
    assert "Still unassigned: 5" in view["text"]  # 3 customers, 2 records about Zhao's

    await admin.press("One successor for all")
    assert "Who takes over everything of Li" in admin.last_text()
    labels = [text for text, _ in buttons(admin.last_message())]
    assert any("Zhao" in label for label in labels) and any("Qian" in label for label in labels)
    assert not any("Wu" in label or "Li ·" in label for label in labels)  # other team, leaver
    await admin.press("Zhao")
    assert "Successor for all: Zhao" in admin.last_text()
    assert "Everything has a successor" in admin.last_text()

    await admin.press("Finish")
    plan = admin.last_text()
    assert "3 customers → Zhao" in plan and "cannot be undone" in plan
    await admin.press("Yes, hand over now")
    done = admin.last_text()
    assert "Hand-over of Li done: 3 customers, 2 complaints" in done
    assert "draft was discarded" not in done  # it went with the deactivation

    assert await owners(sessions, c.customers) == [c.zhao_id] * 3  # archived one too
    assert await handlers(sessions, c.complaints) == [c.zhao_id, c.zhao_id]
    assert await pending_of(sessions, c.li_id) == (0, 0)
    reviews, reminders = await pending_of(sessions, c.zhao_id)
    assert reminders == 4  # the snoozed one too
    assert reviews >= 4  # Li's three new-customer reviews and the one about Zhao's customer
    async with reading(sessions) as session:
        assert (await handovers.orphans(session)).empty
        assert (await session.exec(select(Draft).where(Draft.staff_id == c.li_id))).first() is None
        followup = await session.get(Customer, c.customers[1])
        assert followup is not None and followup.next_followup_on is not None  # kept, now Zhao's
        history = (
            await session.exec(
                select(ChangeRecord).where(
                    ChangeRecord.action == "handover", ChangeRecord.entity == "customer"
                )
            )
        ).all()
        assert sorted(r.customer_id for r in history) == sorted(c.customers)
        handover = await session.get(Handover, hid)
        assert handover is not None and handover.status == HandoverStatus.done
    actions = await audit_actions(sessions)
    assert "handover.finish" in actions and "customer.handover" in actions
    # the successor and the team's manager were each told once, in their language
    zhao_text = world.telegram.sent_to(c.zhao.id)[-1]["text"]
    assert "你已接手 Li 的 3 个客户" in zhao_text and "明远机械" in zhao_text
    boss_text = world.telegram.sent_to(c.boss.id)[-1]["text"]
    assert "The hand-over of Li (left) is done" in boss_text and "Zhao" in boss_text

    # the finished hand-over's old buttons have expired
    await admin.press_data(view, f"ho:f:{hid}")
    assert "already finished or cancelled" in (admin.last_answer() or "")


async def test_split_between_two_successors_the_last_pick_counts(world: World) -> None:
    sessions = world.services.sessions
    c = await company(world)
    hid = await leave(sessions, c.li_id)
    admin = world.admin(language="en")
    await _open(world, hid)
    await admin.press("Split by customer")
    assert "3 customers." in admin.last_text()
    await admin.press("明远机械")
    assert "Who receives 明远机械" in admin.last_text()
    assert "Now: nobody yet" in admin.last_text()
    await admin.press("Zhao")
    assert "明远机械 · " in admin.last_text() or "明远机械" in str(buttons(admin.last_message()))
    await admin.press("明远机械")  # picked again: the last pick counts
    await admin.press("Qian")
    listed = [text for text, _ in buttons(admin.last_message())]
    assert any("明远机械" in t and "Qian" in t for t in listed)
    await admin.press("恒通钢铁")
    await admin.press("Qian")
    await admin.press("Back")
    assert "2 of 3 customers have their own successor" in admin.last_text()
    assert "Still unassigned: 3" in admin.last_text()  # one customer, two records on Zhao's

    await admin.press("Finish")
    assert "Without a successor yet: 3 records" in admin.last_text()
    await admin.press("One successor for all")
    await admin.press("Zhao")
    await admin.press("Finish")
    plan = admin.last_text()
    assert "2 customers → Qian" in plan and "1 customer → Zhao" in plan
    assert "2 records about others' customers → Zhao" in plan
    await admin.press("Yes, hand over now")
    assert await owners(sessions, c.customers) == [c.qian_id, c.qian_id, c.zhao_id]
    # the complaint on Li's first customer went with it; the one on Zhao's to the default
    assert await handlers(sessions, c.complaints) == [c.qian_id, c.zhao_id]
    assert "Qian" in world.telegram.sent_to(c.boss.id)[-1]["text"]
    assert "你已接手 Li 的 2 个客户" in world.telegram.sent_to(c.qian.id)[-1]["text"]


async def test_typed_text_narrows_the_customer_list(world: World) -> None:
    sessions = world.services.sessions
    c = await company(world)
    hid = await leave(sessions, c.li_id)
    admin = world.admin(language="en")
    await _open(world, hid)
    await admin.press("Split by customer")
    await admin.press("Search")
    assert "Type part of the customer's name or number" in admin.last_text()
    await admin.send("明远")
    assert "Matching “明远”: 2 customers" in admin.last_text()
    names = [text for text, _ in buttons(admin.last_message())]
    assert sum("明远" in n for n in names) == 2 and not any("恒通" in n for n in names)
    await admin.send("钢铁")  # typing again narrows again
    assert "Matching “钢铁”: 1 customer" in admin.last_text()
    # a restart keeps the search: a new application on the same database
    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)
    admin = world.admin(language="en")
    await admin.press_data(admin.last_message(), f"ho:c:{hid}:0")
    assert "Matching “钢铁”: 1 customer" in admin.last_text()
    await admin.press("Show all")
    assert "3 customers." in admin.last_text()
    await admin.send("nothing like it")
    assert "No customer matches" in admin.last_text()
    assert c.customers  # untouched: searching moves nothing
    assert await owners(sessions, c.customers) == [c.li_id] * 3


async def test_forged_buttons_of_non_admins_and_bad_choices_change_nothing(
    world: World,
) -> None:
    sessions = world.services.sessions
    c = await company(world)
    hid = await leave(sessions, c.li_id)
    await c.boss.send("/handover")
    assert "not allowed" in c.boss.last_text()
    message = c.boss.last_message()
    for data in (
        f"ho:o:{hid}",
        f"ho:s:{hid}:{c.zhao_id}",
        f"ho:p:{hid}:{c.customers[0]}:{c.zhao_id}",
        f"ho:y:{hid}:1",
        f"ho:z:{hid}:1",
        "ho:l:0",
    ):
        await c.boss.press_data(message, data)
        assert c.boss.last_answer() == "You are not allowed to do this.", data
        await c.zhao.press_data(message, data)
        assert c.zhao.last_answer() == "您没有权限执行此操作。", data
    admin = world.admin(language="en")
    await admin.send("/handover")
    message = admin.last_message()
    # Wu works in West, which still has people: not a successor of East's customers
    await admin.press_data(message, f"ho:s:{hid}:{await _id(world, c.wu)}")
    assert "can no longer receive" in (admin.last_answer() or "")
    # Zhao's own customer is not Li's to hand over
    await admin.press_data(message, f"ho:p:{hid}:{c.zhao_customer}:{c.qian_id}")
    assert "no longer held" in (admin.last_answer() or "")
    for data in ("ho:v:abc", "ho:v", "ho:q", f"ho:y:{hid}:x", "ho:w:1", f"ho:k:{hid}:²:0"):
        await admin.press_data(message, data)
        assert "expired" in (admin.last_answer() or ""), data
    async with reading(sessions) as session:
        handover = await session.get(Handover, hid)
        assert handover is not None and handover.successor_id is None
        assert handover.status == HandoverStatus.open and handover.version == 1
    assert await owners(sessions, c.customers) == [c.li_id] * 3


async def _id(world: World, person: object) -> int:
    from tests.auxil.customer_factory import staff_of

    return (await staff_of(world.services.sessions, person)).id or 0  # type: ignore[arg-type]


async def test_a_successor_deactivated_before_the_finish_is_refused(world: World) -> None:
    sessions = world.services.sessions
    c = await company(world)
    hid = await leave(sessions, c.li_id)
    admin = world.admin(language="en")
    await _open(world, hid)
    await admin.press("One successor for all")
    await admin.press("Zhao")
    await admin.press("Finish")
    confirm = admin.last_message()
    await deactivate(sessions, c.zhao_id)
    await admin.press("Yes, hand over now", confirm)
    assert "can no longer receive" in (admin.last_answer() or "")
    assert await owners(sessions, c.customers) == [c.li_id] * 3
    async with reading(sessions) as session:
        handover = await session.get(Handover, hid)
        assert handover is not None and handover.status == HandoverStatus.open


async def test_restart_in_the_middle_resumes_and_cancel_leaves_orphans(world: World) -> None:
    sessions = world.services.sessions
    c = await company(world)
    hid = await leave(sessions, c.li_id)
    admin = world.admin(language="en")
    await _open(world, hid)
    await admin.press("One successor for all")
    await admin.press("Qian")
    view = admin.last_message()
    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)
    admin = world.admin(language="en")
    await admin.press("Finish", view)  # an old button, on a new application
    assert "3 customers → Qian" in admin.last_text()
    confirm = admin.last_message()
    finish = next(data for text, data in buttons(confirm) if "Yes, hand over now" in text)
    # then the admin cancels it instead: the confirmation's button has expired
    await admin.press_data(view, f"ho:n:{hid}")
    assert "Cancel the hand-over of Li?" in admin.last_text()
    await admin.press("Yes, cancel the hand-over")
    assert "was cancelled" in admin.last_text()
    await admin.press_data(confirm, finish)
    assert "already finished or cancelled" in (admin.last_answer() or "")
    assert await owners(sessions, c.customers) == [c.li_id] * 3
    async with reading(sessions) as session:
        found = await handovers.orphans(session)
    kinds = {r.kind for r in found.records}
    assert kinds == {"customer", "complaint", "review", "reminder"}
    assert not found.handovers  # the cancelled one is no longer open
    await admin.send("/handover")
    assert "No hand-over is open" in admin.last_text()
    assert "handover.cancel" in await audit_actions(sessions)
