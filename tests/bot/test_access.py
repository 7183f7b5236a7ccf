"""Only registered staff get in: invites, joining, refusals, roles and languages."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from storage.db import unit_of_work
from storage.models import AuditEntry, Invite, Staff
from storage.staff import staff_by_telegram_id
from storage.types import utcnow
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.flow_helpers import audit_actions, labels, question
from tests.auxil.world import World


async def invite_link(inviter: Person, role_label: str, team_label: str | None) -> str:
    await inviter.send("/invite")
    await inviter.press(role_label)
    if team_label is not None:
        await inviter.press(team_label)
    link = next(line for line in inviter.last_text().splitlines() if "start=" in line)
    return link.split("start=")[1]


async def refusals(world: World) -> list[AuditEntry]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(select(AuditEntry).where(AuditEntry.action == "access.refused"))
        return list(rows.all())


async def test_a_stranger_gets_one_polite_refusal_per_update(world: World) -> None:
    stranger = world.person(123_456, "Stranger")
    calls_before = len(world.telegram.calls)
    assert len(await stranger.send("hello")) == 1
    assert "仅供公司登记员工使用" in stranger.last_text()
    assert len(await stranger.send("/new")) == 1
    assert len(await stranger.send("/start")) == 1
    assert len(await stranger.send_photo()) == 1
    await stranger.press_data(stranger.last_message(), "w:1:s:")  # a forged button
    assert "仅供公司登记员工使用" in (stranger.last_answer() or "")
    methods = [name for name, _ in world.telegram.calls[calls_before:]]
    assert methods == ["sendMessage"] * 4 + ["answerCallbackQuery"]
    entries = await refusals(world)  # audited once an hour per person, answered every time
    assert [e.actor_telegram_id for e in entries] == [123_456]
    assert "message" in (entries[-1].detail or "")


async def test_english_speaking_stranger_is_refused_in_english(world: World) -> None:
    stranger = world.person(123_457, "Bob", language="en")
    await stranger.send("hi")
    assert stranger.last_text().startswith("Hello! This bot is for the company's registered staff")


async def test_a_deactivated_member_is_refused(world: World) -> None:
    sales = await world.member()
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_by_telegram_id(session, sales.id)
        assert staff is not None
        staff.active = False
        session.add(staff)
    await sales.send("/new")
    assert sales.last_text() == "您的账号已停用。如有疑问,请联系管理员。"
    [entry] = await refusals(world)
    assert "deactivated" in (entry.detail or "")


async def test_admin_invites_a_salesperson_into_a_new_team_who_joins_once(world: World) -> None:
    admin = world.admin()
    await admin.send("/invite")
    assert labels(admin.last_message())[:3] == ["业务员", "销售经理", "管理员"]
    await admin.press("业务员")
    await admin.press("新建团队")
    await admin.send("华东一组")
    assert "https://t.me/archive_test_bot?start=" in admin.last_text()
    token = admin.last_text().split("start=")[1].split()[0]

    newcomer = world.person(555_001, "Xiao Wang")
    await newcomer.send(f"/start {token}")
    sent = world.telegram.sent_to(newcomer.id)
    assert "欢迎加入,Xiao Wang!您的角色:业务员。" in sent[-2]["text"]
    assert "/new" in newcomer.last_text()
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_by_telegram_id(session, newcomer.id)
        assert staff is not None and staff.role == "salesperson" and staff.team_id is not None
    await newcomer.send("/new")
    assert question(newcomer) == "客户是企业还是个人?"

    someone_else = world.person(555_002, "Copycat")
    await someone_else.send(f"/start {token}")
    assert someone_else.last_text() == "这个邀请链接已被使用过。请向您的经理索取新的链接。"
    await someone_else.send("/new")
    assert "仅供公司登记员工使用" in someone_else.last_text()
    actions = await audit_actions(world.services.sessions)
    assert "invite.create" in actions and "staff.join" in actions
    assert "invite.refused" in actions


async def test_expired_and_forged_invites_are_refused(world: World) -> None:
    admin = world.admin()
    await admin.send("/invite")
    await admin.press("业务员")
    await admin.press("新建团队")
    await admin.send("West")
    token = admin.last_text().split("start=")[1].split()[0]
    async with unit_of_work(world.services.sessions) as session:
        invite = (await session.exec(select(Invite))).one()
        invite.expires_at = utcnow() - timedelta(minutes=1)
        session.add(invite)
    late = world.person(555_010)
    await late.send(f"/start {token}")
    assert late.last_text() == "这个邀请链接已过期。请向您的经理索取新的链接。"
    forger = world.person(555_011)
    await forger.send("/start not-a-real-token")
    assert forger.last_text() == "这个邀请链接无效。请向您的经理索取新的链接。"
    async with unit_of_work(world.services.sessions) as session:
        assert (await staff_by_telegram_id(session, late.id)) is None
        assert (await staff_by_telegram_id(session, forger.id)) is None


async def test_a_member_opening_an_invite_again_is_told_so(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    token = await invite_link(manager, "业务员", "East")
    sales = await world.member("salesperson", "East")
    await sales.send(f"/start {token}")
    sent = world.telegram.sent_to(sales.id)
    assert any("您已经是注册员工了" in m["text"] for m in sent)
    # the link is still unused and works for the newcomer it was meant for
    newcomer = world.person(555_020)
    await newcomer.send(f"/start {token}")
    assert any("欢迎加入" in m["text"] for m in world.telegram.sent_to(newcomer.id))


async def test_a_manager_invites_only_into_their_own_team(world: World) -> None:
    await world.member("manager", "West", "Other")  # another team exists
    manager = await world.member("manager", "East", "Chen")
    await manager.send("/invite")
    assert labels(manager.last_message())[:1] == ["业务员"]
    assert "销售经理" not in labels(manager.last_message())
    assert "管理员" not in labels(manager.last_message())
    await manager.press("业务员")
    team_buttons = [b for b in labels(manager.last_message()) if "«" not in b and "✖" not in b]
    assert team_buttons == ["East"]
    # a hand-made press on an option index that is not offered is refused
    prompt = manager.last_message()
    token = buttons(prompt)[0][1].split(":")[1]
    await manager.press_data(prompt, f"w:{token}:c:5")
    assert manager.last_answer() == "这个按钮已过期,请使用最新的消息。"
    await manager.press("East")
    assert "start=" in manager.last_text()
    async with unit_of_work(world.services.sessions) as session:
        invite = (await session.exec(select(Invite))).one()
        staff = await staff_by_telegram_id(session, manager.id)
        assert staff is not None and invite.team_id == staff.team_id


async def test_a_salesperson_cannot_invite(world: World) -> None:
    sales = await world.member()
    await sales.send("/invite")
    assert sales.last_text() == "您没有权限执行此操作。"
    async with unit_of_work(world.services.sessions) as session:
        assert (await session.exec(select(Invite))).first() is None


async def test_language_follows_telegram_and_lang_changes_it(world: World) -> None:
    sales = await world.member(language="en")
    await sales.send("/help")
    assert sales.last_text().startswith("Here is what you can do:")
    await sales.send("/lang")
    await sales.press("中文")
    assert sales.last_text() == "已切换为中文。"
    await sales.send("/help")
    assert sales.last_text().startswith("您可以使用以下命令")
    async with unit_of_work(world.services.sessions) as session:
        staff = (await session.exec(select(Staff).where(Staff.telegram_id == sales.id))).one()
        assert staff.language == "zh"


async def test_unknown_commands_and_stray_messages_get_a_pointer_to_help(world: World) -> None:
    sales = await world.member()
    await sales.send("/frobnicate")
    assert "没有这个命令" in sales.last_text()
    await sales.send("hello")
    assert "发送 /help" in sales.last_text()
    await sales.send_sticker()
    assert "发送 /help" in sales.last_text()
    await sales.press_data(sales.last_message(), "zz:unknown")
    assert sales.last_answer() == "这个按钮已过期,请使用最新的消息。"


async def test_configured_admin_exists_from_the_first_start(world: World) -> None:
    async with unit_of_work(world.services.sessions) as session:
        admins = (await session.exec(select(Staff).where(Staff.role == "admin"))).all()
    assert [a.telegram_id for a in admins] == [900_001]
    methods = [name for name, _ in world.telegram.calls]
    assert methods.count("setMyCommands") == 3  # default (zh), zh and en
