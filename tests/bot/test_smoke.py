from tests.auxil.world import World


async def test_admin_gets_help(world: World) -> None:
    admin = world.admin()
    replies = await admin.send("/start")
    assert replies, "bot said nothing"
    assert "/invite" in admin.last_text()
