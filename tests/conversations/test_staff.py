"""/staff: admins list, change and deactivate staff in chat; managers read their teams.

Every change is asked first (naming the person and the change) and re-checked at the press,
the person's version included; a deactivated person's very next update is refused.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func
from sqlmodel import select

from bot.i18n import translate
from conversations.callback_data import RECORD_ID_MAX
from storage import staff as staff_store
from storage.db import unit_of_work
from storage.models import Draft, Handover, HandoverReason, Role, Staff, Team
from tests.auxil.customer_factory import add_customer, staff_of
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.flow_helpers import audit_actions, start_new_company
from tests.auxil.world import NOW, World, start_app
from tests.bot.test_forged_buttons import BAD_IDS

DEACTIVATED = translate("zh", "access.deactivated")


def data_of(person: Person, label: str, message: dict[str, Any] | None = None) -> str:
    """The data of the button labelled `label` (a part of it) on the last message."""
    for text, data in buttons(message or person.last_message()):
        if label in text:
            return data
    raise AssertionError(f"no {label!r} in {buttons(message or person.last_message())}")


async def open_person(admin: Person, name: str) -> None:
    await admin.send("/staff")
    await admin.press(name)


async def row(world: World, who: Person) -> Staff:
    return await staff_of(world.services.sessions, who)


async def handovers(world: World) -> list[Handover]:
    async with unit_of_work(world.services.sessions) as session:
        return list((await session.exec(select(Handover))).all())


# --- the list and the person -----------------------------------------------------------------


async def test_an_admin_sees_staff_by_team_with_role_language_activity_and_status(
    world: World,
) -> None:
    admin = world.admin("en")
    li = await world.member("salesperson", team="East", name="Li")
    await world.member("manager", team="West", name="Zhou")
    gone = await world.member("salesperson", team="East", name="Gone")
    await li.send("/help")  # seen now
    async with unit_of_work(world.services.sessions) as session:
        await staff_store.deactivate(session, actor=None, staff_id=(await row(world, gone)).id or 0)
    await admin.send("/staff")
    text = admin.last_text()
    assert text.index("【East】") < text.index("Li") < text.index("【West】") < text.index("Zhou")
    assert "• Li · Salesperson · 中文 · within the hour" in text
    assert "• Zhou · Manager · as Telegram · never" in text
    assert "Gone" not in text  # active staff only, until asked
    await admin.press("Show deactivated")
    assert "• Gone · Salesperson · as Telegram · never · ⛔ deactivated" in admin.last_text()
    await admin.press("Li")
    view = admin.last_text()
    assert "Role: Salesperson" in view and "Team: East" in view and "Status: active" in view
    labels = [text for text, _ in buttons(admin.last_message())]
    assert labels[:3] == ["Change role", "Move team", "⛔ Deactivate"]


async def test_last_activity_is_relative_and_written_at_most_once_an_hour(world: World) -> None:
    li = await world.member("salesperson", name="Li")
    engine = world.services.sessions.kw["bind"].sync_engine
    writes: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE staff SET last_seen_at"):
            writes.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(5):  # a burst of updates
            await li.send("/help")
        assert len(writes) == 1
        world.services.clock = lambda: NOW + timedelta(minutes=59)
        await li.send("/help")
        assert len(writes) == 1
        world.services.clock = lambda: NOW + timedelta(hours=1, minutes=1)
        await li.send("/help")
        assert len(writes) == 2
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert (await row(world, li)).last_seen_at == NOW + timedelta(hours=1, minutes=1)
    admin = world.admin("en")
    world.services.clock = lambda: NOW + timedelta(days=3, hours=2)
    await admin.send("/staff")
    assert "• Li · Salesperson · 中文 · 3 days ago" in admin.last_text()


async def test_a_manager_reads_their_own_team_only_and_changes_nothing(world: World) -> None:
    manager = await world.member("manager", team="East", name="Zhou", language="en")
    await world.member("salesperson", team="East", name="Li")
    other = await world.member("salesperson", team="West", name="Wang")
    await manager.send("/staff")
    text = manager.last_text()
    assert "Li" in text and "Zhou" in text and "Wang" not in text and "admin" not in text
    assert "🏷" not in str(buttons(manager.last_message()))  # no teams management
    await manager.press("Li")
    assert [text for text, _ in buttons(manager.last_message())] == ["« Back"]
    # another team's person through forged data: as if they did not exist
    wang = await row(world, other)
    await manager.press_data(manager.last_message(), f"sf:p:{wang.id}:0:0")
    assert manager.last_answer() == translate("en", "staff.refused.not_found")


async def test_help_offers_staff_to_admins_and_managers_only(world: World) -> None:
    admin = world.admin()
    manager = await world.member("manager", name="Zhou")
    seller = await world.member("salesperson", name="Li")
    await admin.send("/help")
    assert "/staff" in admin.last_text()
    await manager.send("/help")
    assert "/staff" in manager.last_text()
    await seller.send("/help")
    assert "/staff" not in seller.last_text()
    await seller.send("/staff")
    assert seller.last_text() == translate("zh", "refused.not_allowed")


# --- changes ---------------------------------------------------------------------------------


async def test_deactivating_asks_first_then_refuses_every_next_update(world: World) -> None:
    admin = world.admin("en")
    li = await world.member("salesperson", name="Li")
    await start_new_company(li)  # a /new draft under way
    flow_prompt = li.last_message()
    await open_person(admin, "Li")
    await admin.press("Deactivate")
    assert "Deactivate Li?" in admin.last_text()
    assert await row(world, li) is not None and (await row(world, li)).active  # only asked
    await admin.press("Confirm")
    assert "is deactivated" in admin.last_text()
    staff = await row(world, li)
    assert (staff.active, staff.version) == (False, 2)
    async with unit_of_work(world.services.sessions) as session:
        assert (await session.exec(select(Draft))).first() is None  # the draft went with them
    assert "staff.deactivate" in await audit_actions(world.services.sessions)
    # the very next update of each kind is refused
    await li.send("杭州明远")  # a flow step mid-draft
    assert li.last_text() == DEACTIVATED
    await li.send("/find")
    assert li.last_text() == DEACTIVATED
    await li.send("hello")
    assert li.last_text() == DEACTIVATED
    await li.press_data(flow_prompt, data_of(li, "取消", flow_prompt))
    assert li.last_answer() == DEACTIVATED


async def test_deactivating_someone_who_holds_records_opens_a_hand_over(world: World) -> None:
    admin = world.admin("en")
    li = await world.member("salesperson", name="Li")
    for n in range(3):
        await add_customer(world.services.sessions, world.services.keyring, li, f"客户{n}")
    await open_person(admin, "Li")
    assert "Holds: 3 customers" in admin.last_text()
    await admin.press("Deactivate")
    await admin.press("Confirm")
    text = admin.last_text()
    assert (
        "hand-over is open" in text
        and "3 customers (0 with a follow-up planned), 0 open complaints" in text
    )
    (handover,) = await handovers(world)
    assert (handover.reason, handover.from_staff_id) == (
        HandoverReason.leave,
        (await row(world, li)).id,
    )
    assert data_of(admin, "Choose successors") == f"ho:o:{handover.id}"


async def test_moving_someone_moves_them_at_once_and_tells_them(world: World) -> None:
    admin = world.admin("en")
    li = await world.member("salesperson", team="East", name="Li", language="en")
    await world.member("manager", team="West", name="Zhou")
    await li.send("/help")  # Li's language: English
    await add_customer(world.services.sessions, world.services.keyring, li)
    await open_person(admin, "Li")
    await admin.press("Move team")
    await admin.press("West")
    assert "Move Li to team West?" in admin.last_text()
    await admin.press("Confirm")
    assert "✅ Li has moved to team West." in admin.last_text()
    assert "hand-over is open" in admin.last_text() and "Holds: 1 customer" in admin.last_text()
    assert "Choose successors" in str(buttons(admin.last_message()))
    staff = await row(world, li)
    async with unit_of_work(world.services.sessions) as session:
        west = await staff_store.team_by_name(session, "West")
    assert west is not None and staff.team_id == west.id
    (handover,) = await handovers(world)
    assert (handover.reason, handover.new_team_id) == (HandoverReason.move, west.id)
    assert li.last_text() == "You have moved to team West."


async def test_changing_a_role_is_confirmed_and_the_person_told_in_their_language(
    world: World,
) -> None:
    admin = world.admin("en")
    li = await world.member("salesperson", name="Li")
    await li.send("/help")  # Li's language: Chinese
    await open_person(admin, "Li")
    await admin.press("Change role")
    assert [t for t, _ in buttons(admin.last_message())][:2] == ["Manager", "Admin"]
    await admin.press("Manager")
    assert "Make Li a Manager?" in admin.last_text()
    await admin.press("Confirm")
    assert admin.last_text() == "✅ Li is now a Manager in team East."
    assert (await row(world, li)).role == Role.manager
    assert li.last_text().startswith("您的角色已改为:销售经理")
    await li.send("/help")
    assert "/staff" in li.last_text()  # the next update sees the new role


async def test_an_admin_made_salesperson_is_asked_for_a_team(world: World) -> None:
    admin = world.admin("en")
    await world.member("admin", team=None, name="Chen")
    await world.member("salesperson", team="East", name="Li")
    await open_person(admin, "Chen")
    await admin.press("Change role")
    await admin.press("Salesperson")
    assert "needs a team" in admin.last_text()
    await admin.press("East")
    assert "Make Chen a Salesperson in team East?" in admin.last_text()
    await admin.press("Confirm")
    chen = await staff_of(world.services.sessions, 700_001)
    assert (chen.role, chen.team_id is not None) == (Role.salesperson, True)


async def test_reactivating_someone_without_a_team_asks_for_one(world: World) -> None:
    admin = world.admin("en")
    await world.member("salesperson", team="East", name="Li")
    lone = await world.member("salesperson", team=None, name="Lone")
    async with unit_of_work(world.services.sessions) as session:
        await staff_store.deactivate(session, actor=None, staff_id=(await row(world, lone)).id or 0)
    await admin.send("/staff")
    await admin.press("Show deactivated")
    await admin.press("Lone")
    await admin.press("Reactivate")
    assert "Reactivate into which team?" in admin.last_text()
    await admin.press("East")
    assert "Reactivate Lone in team East?" in admin.last_text()
    await admin.press("Confirm")
    staff = await row(world, lone)
    assert staff.active and staff.team_id is not None
    assert lone.last_text().startswith("您的账号已恢复,团队:East")
    await lone.send("/help")
    assert lone.last_text() != DEACTIVATED


async def test_reactivating_in_the_own_team_gives_back_the_records(world: World) -> None:
    admin = world.admin("en")
    li = await world.member("salesperson", team="East", name="Li")
    await add_customer(world.services.sessions, world.services.keyring, li)
    li_id = (await row(world, li)).id or 0
    async with unit_of_work(world.services.sessions) as session:
        done = await staff_store.deactivate(session, actor=None, staff_id=li_id)
    assert done.handover is not None
    await admin.send("/staff")
    await admin.press("Show deactivated")
    await admin.press("Li")
    await admin.press("Reactivate")
    assert "Reactivate Li in team East?" in admin.last_text()
    await admin.press("Confirm")
    (handover,) = await handovers(world)
    assert handover.status == "cancelled"
    assert (await row(world, li)).active


async def test_teams_led_is_offered_for_managers_to_admins(world: World) -> None:
    admin = world.admin("en")
    await world.member("manager", name="Zhou")
    await open_person(admin, "Zhou")
    zhou = await staff_of(world.services.sessions, 700_001)
    assert data_of(admin, "Teams led") == f"tl:{zhou.id}"


# --- unhappy paths ---------------------------------------------------------------------------


async def test_a_manager_forging_change_buttons_changes_nothing(world: World) -> None:
    manager = await world.member("manager", name="Zhou", language="en")
    li = await world.member("salesperson", name="Li")
    staff = await row(world, li)
    await manager.send("/staff")
    for forged in (
        f"sf:q:{staff.id}:1:d",
        f"sf:ok:{staff.id}:1:d",
        f"sf:ok:{staff.id}:1:r:admin",
        f"sf:r:{staff.id}:1",
        f"sf:m:{staff.id}:1:0",
        "sf:t:0",
        "sf:tn",
        "sf:tr:1",
    ):
        await manager.press_data(manager.last_message(), forged)
        assert manager.last_answer() == translate("en", "staff.refused.not_allowed"), forged
    after = await row(world, li)
    assert (after.active, after.role, after.version) == (True, Role.salesperson, 1)


async def test_a_salesperson_pressing_staff_buttons_is_refused(world: World) -> None:
    seller = await world.member("salesperson", name="Li")
    other = await world.member("salesperson", name="Wang")
    await seller.send("/help")
    target = await row(world, other)
    for forged in ("sf:l:0:0", f"sf:p:{target.id}:0:0", f"sf:ok:{target.id}:1:d", "sf:x", "sf:"):
        await seller.press_data(seller.last_message(), forged)
        assert seller.last_answer() in (
            translate("zh", "staff.refused.not_allowed"),
            translate("zh", "button.expired"),
        ), forged
    assert (await row(world, other)).active


async def test_malformed_staff_buttons_are_expired(world: World) -> None:
    admin = world.admin()
    await admin.send("/staff")
    for forged in ("sf:p:²:0:0", "sf:l:0:2", "sf:ok:1:1:z", "sf:q:1:1:r:boss", "sf:ok:1:x:d"):
        await admin.press_data(admin.last_message(), forged)
        assert admin.last_answer() == translate("zh", "button.expired"), forged


ADMIN_FORMS = (
    "sf:l:X:0",
    "sf:l:0:X",
    "sf:p:X:0:0",
    "sf:p:{li}:X:0",
    "sf:r:X:1",
    "sf:r:{li}:X",
    "sf:m:{li}:1:X",
    "sf:rt:{li}:1:manager:X",
    "sf:at:X:1:0",
    "sf:q:X:1:d",
    "sf:q:{li}:1:m:X",
    "sf:q:{li}:1:r:manager:X",
    "sf:ok:X:1:d",
    "sf:ok:{li}:X:d",
    "sf:ok:{li}:1:m:X",
    "sf:ok:{li}:1:a:X",
    "sf:t:X",
    "sf:tv:X",
    "sf:tr:X",
)


@pytest.mark.parametrize("form", ADMIN_FORMS)
async def test_an_admin_forging_ids_gets_a_polite_answer(world: World, form: str) -> None:
    caught: list[BaseException | None] = []

    async def record(update: object, context: Any) -> None:
        caught.append(context.error)

    world.app.add_error_handler(record)
    admin = world.admin()
    li = await row(world, await world.member("salesperson", name="Li"))
    await admin.send("/staff")
    for bad in (*BAD_IDS, str(RECORD_ID_MAX)):
        before = len(world.telegram.answers())
        data = form.format(li=li.id).replace("X", bad)
        await admin.press_data(admin.last_message(), data)
        answers = world.telegram.answers()[before:]
        assert caught == [] and len(answers) == 1, (data, caught, answers)
    assert (await row(world, world.person(li.telegram_id))).active


async def test_a_stale_confirmation_is_refused(world: World) -> None:
    admin = world.admin("en")
    li = await world.member("salesperson", name="Li")
    await open_person(admin, "Li")
    await admin.press("Change role")
    await admin.press("Manager")
    confirmation = admin.last_message()
    async with unit_of_work(world.services.sessions) as session:  # someone else, meanwhile
        await staff_store.change_role(
            session, actor=None, staff_id=(await row(world, li)).id or 0, role="admin", version=1
        )
    await admin.press("Confirm", confirmation)
    assert admin.last_answer() == translate("en", "staff.refused.stale")
    assert (await row(world, li)).role == Role.admin
    assert "staff.refused" in await audit_actions(world.services.sessions)


async def test_two_admins_confirming_different_changes_at_once_one_wins(world: World) -> None:
    first = world.admin("en")
    second = await world.member("admin", team=None, name="Chen", language="en")
    await world.member("manager", team="West", name="Zhou")
    li = await world.member("salesperson", team="East", name="Li")
    await open_person(first, "Li")
    await first.press("Deactivate")
    await open_person(second, "Li")
    await second.press("Move team")
    await second.press("West")
    await asyncio.gather(first.press("Confirm"), second.press("Confirm"))
    staff = await row(world, li)
    assert staff.version == 2
    stale = translate("en", "staff.refused.stale")
    answers = [first.last_answer(), second.last_answer()]
    assert stale in [a.get("text") for a in world.telegram.answers()], answers
    async with unit_of_work(world.services.sessions) as session:
        east = await staff_store.team_by_name(session, "East")
        west = await staff_store.team_by_name(session, "West")
    assert east is not None and west is not None
    # exactly one of the two changes: deactivated in East, or moved to West and active
    assert (staff.active, staff.team_id) in ((False, east.id), (True, west.id))


async def test_nobody_deactivates_or_demotes_themselves(world: World) -> None:
    admin = world.admin("en")
    await world.member("admin", team=None, name="Chen")
    me = await staff_of(world.services.sessions, admin.id)
    await open_person(admin, "Boss")  # the configured admin, named as Telegram names them
    assert "Deactivate" not in str(buttons(admin.last_message()))
    for forged in (f"sf:ok:{me.id}:{me.version}:d", f"sf:ok:{me.id}:{me.version}:r:manager:1"):
        await admin.press_data(admin.last_message(), forged)
        assert admin.last_answer() in (
            translate("en", "staff.refused.self"),
            translate("en", "staff.refused.team_not_found"),
        )
    staff = await staff_of(world.services.sessions, admin.id)
    assert (staff.active, staff.role) == (True, Role.admin)


async def test_restart_between_the_question_and_the_press(world: World) -> None:
    admin = world.admin("en")
    li = await world.member("salesperson", name="Li")
    await open_person(admin, "Li")
    await admin.press("Deactivate")
    confirmation = admin.last_message()
    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)  # a new process
    admin.app = world.app
    await admin.press("Confirm", confirmation)
    assert "is deactivated" in admin.last_text()
    assert not (await row(world, li)).active


async def test_hundreds_of_staff_with_long_names_fit_telegram(world: World) -> None:
    admin = world.admin("en")
    long_team = "团" * 100
    async with unit_of_work(world.services.sessions) as session:
        for n in range(12):
            team = await staff_store.create_team(
                session, actor=None, name=f"{long_team[:97]}{n:03}"
            )
            for m in range(25):
                session.add(
                    Staff(
                        telegram_id=800_000 + n * 100 + m,
                        display_name=f"{m:03}" + "名" * 197,
                        role="salesperson",
                        team_id=team.id,
                        language="zh",
                        last_seen_at=NOW,
                    )
                )
    await admin.send("/staff")
    text = admin.last_text()
    assert "👥 Staff (301)" in text and "Page 1 of 31" in text
    await admin.press("›")
    assert "Page 2 of 31" in admin.last_text()
    await admin.press_data(admin.last_message(), "sf:l:30:0")
    assert "Page 31 of 31" in admin.last_text() and "【No team】" in admin.last_text()
    await admin.press("‹")
    assert "Page 30 of 31" in admin.last_text()
    await admin.press("名")
    assert "名" * 197 in admin.last_text()  # the person view shows the name whole
    await admin.press("Move team")
    await admin.press("›")
    assert "2/2" in str(buttons(admin.last_message()))
    assert all(len(d.encode()) <= 64 for _, d in buttons(admin.last_message()))
    assert not world.telegram.refused


# --- teams -----------------------------------------------------------------------------------


async def test_an_admin_creates_and_renames_a_team_by_typing_its_name(world: World) -> None:
    admin = world.admin("en")
    await admin.send("/staff")
    await admin.press("Teams")
    await admin.press("New team")
    await admin.send("  North\x00 \x07  Sales ")
    assert "North Sales" in admin.last_text()  # the summary: the confirmation
    await admin.press("Submit")
    async with unit_of_work(world.services.sessions) as session:
        team = await staff_store.team_by_name(session, "North Sales")
    assert team is not None
    await admin.send("/staff")
    await admin.press("Teams")
    await admin.press("North Sales")
    await admin.press("Rename")
    assert "North Sales" in admin.last_text()
    await admin.send("South")
    assert "Rename: North Sales → South" in admin.last_text()
    await admin.press("Submit")
    async with unit_of_work(world.services.sessions) as session:
        renamed = await session.get(Team, team.id)
    assert renamed is not None and renamed.name == "South"
    actions = await audit_actions(world.services.sessions)
    assert "team.create" in actions and "team.rename" in actions


async def test_invalid_and_duplicate_team_names_are_refused(world: World) -> None:
    admin = world.admin("en")
    await world.member("salesperson", team="East", name="Li")
    await admin.send("/staff")
    await admin.press("Teams")
    await admin.press("New team")
    await admin.send("\x00\x01")
    assert translate("en", "invalid.empty") in admin.last_text()
    await admin.send("x" * 101)
    assert "100" in admin.last_text()
    await admin.send("east")  # East exists, whatever the case
    await admin.press("Submit")
    assert admin.last_text() == translate("en", "refused.team_exists")
    async with unit_of_work(world.services.sessions) as session:
        assert (await session.exec(select(func.count()).select_from(Team))).one() == 1


async def test_a_stale_rename_is_refused(world: World) -> None:
    admin = world.admin("en")
    await world.member("salesperson", team="East", name="Li")
    await admin.send("/staff")
    await admin.press("Teams")
    await admin.press("East")
    await admin.press("Rename")
    await admin.send("Far East")
    async with unit_of_work(world.services.sessions) as session:
        team = await staff_store.team_by_name(session, "East")
        assert team is not None
        await staff_store.rename_team(session, actor=None, team_id=team.id or 0, name="Orient")
    await admin.press("Submit")
    assert admin.last_text() == translate("en", "refused.stale")
    async with unit_of_work(world.services.sessions) as session:
        assert await staff_store.team_by_name(session, "Orient") is not None
