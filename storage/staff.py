"""Staff, teams and one-time invites: the only module that writes them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, permissions, team_leads
from storage.crypto import random_token
from storage.errors import Refused
from storage.models import AuditEntry, Invite, Staff, Team
from storage.types import utcnow

MAX_NAME = 100
REFUSAL_AUDIT_EVERY = timedelta(hours=1)


def token_hash(token: str) -> str:
    """Invites are looked up by a hash, so a leaked database does not leak working links."""
    return hashlib.sha256(token.encode()).hexdigest()


async def staff_by_telegram_id(session: AsyncSession, telegram_id: int) -> Staff | None:
    return (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).first()


async def ensure_admins(session: AsyncSession, telegram_ids: list[int]) -> list[Staff]:
    """Create the configured admins that do not exist yet (the bootstrap of the first admins).

    An existing staff row is never changed here: once someone exists, staff changes made in
    the bot or on the command line win, so a configured admin can still be demoted or removed.
    """
    created = []
    for telegram_id in telegram_ids:
        if await staff_by_telegram_id(session, telegram_id) is not None:
            continue
        staff = Staff(telegram_id=telegram_id, display_name=f"admin {telegram_id}", role="admin")
        session.add(staff)
        await session.flush()
        await audit.record(
            session,
            action="staff.admin_configured",
            actor_telegram_id=telegram_id,
            entity="staff",
            entity_id=staff.id,
        )
        created.append(staff)
    return created


async def teams(session: AsyncSession) -> list[Team]:
    return list((await session.exec(select(Team).order_by(col(Team.name)))).all())


async def team_by_name(session: AsyncSession, name: str) -> Team | None:
    return (await session.exec(select(Team).where(Team.name == name))).first()


async def get_or_create_team(session: AsyncSession, name: str, *, actor: Staff | None) -> Team:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise Refused("team_name")
    team = await team_by_name(session, name)
    if team is None:
        if actor is not None and not permissions.can_manage_staff(actor):
            raise Refused("not_allowed")
        team = Team(name=name)
        session.add(team)
        await session.flush()
        await audit.record(
            session,
            action="team.create",
            actor_staff_id=actor.id if actor else None,
            entity="team",
            entity_id=team.id,
        )
    return team


def roles_inviteable_by(actor: Staff | None) -> list[str]:
    """The roles `actor` may invite; the command line (actor None) is the operator's: any."""
    return permissions.roles_inviteable_by(actor)


@dataclass(frozen=True)
class NewInvite:
    invite: Invite
    token: str


async def create_invite(
    session: AsyncSession,
    *,
    actor: Staff | None,
    role: str,
    team_id: int | None,
    ttl: timedelta,
) -> NewInvite:
    """A one-time join token for a role and team; checks who may invite whom."""
    if actor is not None and not permissions.can_invite(actor, role=role, team_id=team_id):
        raise Refused("not_allowed")
    if permissions.role_needs_team(role) and team_id is None:
        raise Refused("team_required")
    token = random_token(18)
    invite = Invite(
        token_hash=token_hash(token),
        role=role,
        team_id=team_id,
        created_by=actor.id if actor else None,
        expires_at=utcnow() + ttl,
    )
    session.add(invite)
    await session.flush()
    await audit.record(
        session,
        action="invite.create",
        actor_staff_id=actor.id if actor else None,
        actor_telegram_id=actor.telegram_id if actor else None,
        entity="invite",
        entity_id=invite.id,
        detail={"role": role, "team_id": team_id},
    )
    return NewInvite(invite=invite, token=token)


async def _inviter_may_still_invite(session: AsyncSession, invite: Invite) -> bool:
    """A link is worth what its maker may do now: a manager's link for a manager (made before
    managers were limited to salespeople) or a link of someone since deactivated opens nothing."""
    if invite.created_by is None:
        return True  # the command line: the server's operator
    inviter = await session.get(Staff, invite.created_by)
    return inviter is not None and permissions.can_invite(
        inviter, role=invite.role, team_id=invite.team_id
    )


async def redeem_invite(
    session: AsyncSession,
    *,
    token: str,
    telegram_id: int,
    display_name: str,
    language: str | None,
) -> Staff:
    """Register the Telegram user with the invite's role and team; the token works once."""
    invite = (
        await session.exec(
            select(Invite).where(Invite.token_hash == token_hash(token)).with_for_update()
        )
    ).first()
    existing = await staff_by_telegram_id(session, telegram_id)
    reason = None
    if invite is None:
        reason = "invite_invalid"
    elif invite.used_at is not None:
        reason = "invite_used"
    elif invite.expires_at <= utcnow():
        reason = "invite_expired"
    elif not await _inviter_may_still_invite(session, invite):
        reason = "invite_invalid"
    elif existing is not None and existing.active:
        reason = "already_registered"
    if reason or invite is None:
        raise Refused(reason or "invite_invalid")
    # the row is locked (FOR UPDATE; BEGIN IMMEDIATE on SQLite): two people racing with one link
    # queue here, and the second sees it used
    invite.used_at = utcnow()
    if existing is None:
        staff = Staff(
            telegram_id=telegram_id,
            display_name=display_name[:200] or str(telegram_id),
            role=invite.role,
            team_id=invite.team_id,
            language=language,
        )
        session.add(staff)
    else:  # a deactivated member re-joining through a fresh invite
        staff = existing
        staff.role, staff.team_id, staff.active = invite.role, invite.team_id, True
        staff.display_name, staff.updated_at = display_name[:200], utcnow()
        session.add(staff)
        await team_leads.tidy(session, actor=None, staff=staff, drop_all=True)  # afresh
    await session.flush()
    invite.used_by = staff.id
    session.add(invite)
    await session.flush()
    await audit.record(
        session,
        action="staff.join",
        actor_telegram_id=telegram_id,
        actor_staff_id=staff.id,
        entity="staff",
        entity_id=staff.id,
        detail={"invite_id": invite.id, "role": invite.role},
    )
    return staff


async def record_invite_refusal(session: AsyncSession, *, telegram_id: int, reason: str) -> None:
    """Log a refused join; called in its own transaction, since the refused one rolls back."""
    await audit.record(
        session,
        action="invite.refused",
        actor_telegram_id=telegram_id,
        detail={"reason": reason},
    )


async def set_manager_chat(
    session: AsyncSession,
    *,
    actor: Staff,
    chat_id: int,
    enabled: bool = True,
    team_id: int | None = None,
) -> Team:
    """Send (or stop sending) the review cards of one of the actor's teams to this group chat.

    `team_id` says which team; without it, the actor's only team (or, to stop, the only one of
    theirs sending its cards here). A manager of several teams must say which: Refused
    "choose_team", whose `teams` detail lists the ids to choose from.
    """
    if not permissions.is_decider(actor):
        raise Refused("not_allowed")
    mine = sorted(permissions.teams_of(actor))
    if team_id is None:
        choices = mine
        if not enabled and len(mine) > 1:
            here = await session.exec(
                select(Team.id).where(col(Team.id).in_(mine), Team.manager_chat_id == chat_id)
            )
            choices = [t for t in here.all() if t is not None] or mine[:1]
        if len(choices) > 1:
            raise Refused("choose_team", teams=choices)
        team_id = choices[0] if choices else None
    elif team_id not in mine:
        raise Refused("not_allowed")
    team = await session.get(Team, team_id) if team_id else None
    if team is None:
        raise Refused("team_required")
    if not enabled and team.manager_chat_id != chat_id:
        raise Refused("not_this_group")
    team.manager_chat_id = chat_id if enabled else None
    team.updated_at = utcnow()
    session.add(team)
    await audit.record(
        session,
        action="team.manager_chat" if enabled else "team.manager_chat_off",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="team",
        entity_id=team.id,
    )
    return team


async def set_language(session: AsyncSession, *, staff_id: int, language: str) -> None:
    staff = await session.get(Staff, staff_id)
    if staff is not None:
        staff.language, staff.updated_at = language, utcnow()
        session.add(staff)


async def refresh_display_name(session: AsyncSession, *, staff_id: int, name: str) -> None:
    staff = await session.get(Staff, staff_id)
    if staff is not None and name and staff.display_name != name[:200]:
        staff.display_name, staff.updated_at = name[:200], utcnow()
        session.add(staff)


async def deactivate(session: AsyncSession, *, actor: Staff | None, staff_id: int) -> Staff:
    if actor is not None and not permissions.can_manage_staff(actor):
        raise Refused("not_allowed")
    staff = await session.get(Staff, staff_id)
    if staff is None:
        raise Refused("not_found")
    staff.active, staff.updated_at = False, utcnow()
    session.add(staff)
    await team_leads.tidy(session, actor=actor, staff=staff)  # a leaver leads no team
    await audit.record(
        session,
        action="staff.deactivate",
        actor_staff_id=actor.id if actor else None,
        entity="staff",
        entity_id=staff.id,
    )
    return staff


async def record_refusal(
    session: AsyncSession, *, telegram_id: int | None, reason: str, kind: str
) -> bool:
    """Log an update from someone who may not use the bot (unregistered or deactivated).

    At most one entry per person per `REFUSAL_AUDIT_EVERY`: a stranger who keeps writing cannot
    flood the audit log (each entry takes its append lock). False when this one was not logged.
    """
    since = utcnow() - REFUSAL_AUDIT_EVERY
    recent = await session.exec(
        select(AuditEntry.id)
        .where(
            AuditEntry.action == "access.refused",
            AuditEntry.actor_telegram_id == telegram_id,
            col(AuditEntry.at) >= since,
        )
        .limit(1)
    )
    if recent.first() is not None:
        return False
    await audit.record(
        session,
        action="access.refused",
        actor_telegram_id=telegram_id,
        detail={"reason": reason, "update": kind},
    )
    return True
