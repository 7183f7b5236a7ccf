"""Invite a colleague (/invite): role and team with buttons, then a one-time join link."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from conversations import steps as s
from conversations.runner import register
from conversations.steps import Flow, FlowEnv, Kind, Option, Step, Submitted
from storage import permissions
from storage import staff as staff_store

NEW_TEAM = "new"


async def role_options(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> list[Option]:
    return [Option(r, f"choice.role.{r}") for r in staff_store.roles_inviteable_by(env.staff)]


async def team_options(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> list[Option]:
    """Managers invite into the teams they lead (a director chooses which); admins pick any
    team or start a new one."""
    teams = await staff_store.teams(session)
    if not permissions.can_manage_staff(env.staff):
        mine = permissions.teams_of(env.staff)  # whether the role may be invited: at submit
        teams = [t for t in teams if t.id in mine]
        return [Option(str(t.id), t.name, translate=False) for t in teams]
    return [Option(str(t.id), t.name, translate=False) for t in teams] + [
        Option(NEW_TEAM, "choice.team.new")
    ]


def _needs_team(data: dict[str, Any]) -> bool:
    return data.get("role") is not None and permissions.role_needs_team(data["role"])


STEPS = (
    Step("role", Kind.CHOICE, required=True, options=role_options, columns=3),
    Step("team", Kind.CHOICE, required=True, options=team_options, when=_needs_team),
    Step(
        "team_name",
        required=True,
        parse=s.text(100),
        when=lambda d: _needs_team(d) and d.get("team") == NEW_TEAM,
    ),
)


async def submit(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    """Create the invite and hand over its link."""
    team_id = None
    if _needs_team(data):
        if data.get("team") == NEW_TEAM:
            team = await staff_store.get_or_create_team(session, data["team_name"], actor=env.staff)
            team_id = team.id
        else:
            team_id = int(data["team"])
    created = await staff_store.create_invite(
        session,
        actor=env.staff,
        role=data["role"],
        team_id=team_id,
        ttl=env.services.invite_ttl,
    )
    username = env.services.bot_username
    link = f"https://t.me/{username}?start={created.token}"
    return Submitted(
        env._(
            "invite.created",
            role=env._(f"choice.role.{data['role']}"),
            link=link,
            hours=env.services.settings.INVITE_TTL_HOURS,
        )
    )


FLOW = register(Flow(name="invite", steps=STEPS, submit=submit, confirm=False))
