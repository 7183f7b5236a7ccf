"""Staff, teams and one-time invites: the only module that writes them."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, drafts, permissions, quick_lane, team_leads
from storage import handover as handover_store
from storage.crypto import random_token
from storage.db import SessionFactory, alone, on_postgresql, reading
from storage.errors import NotFound, Refused
from storage.models import (
    AuditEntry,
    Handover,
    HandoverReason,
    HandoverStatus,
    Invite,
    Role,
    Staff,
    StaffChanges,
    Team,
)
from storage.types import utcnow
from storage.validation import printable

MAX_NAME = 100  # a team's name (the column's length)
REFUSAL_AUDIT_EVERY = timedelta(hours=1)


def token_hash(token: str) -> str:
    """Invites are looked up by a hash, so a leaked database does not leak working links."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class MemberCache:
    """Active members by telegram id, as read while the staff stamp was `stamp` (the gate's,
    one per process): valid only while no change to staff or team_leads committed since."""

    stamp: int | None = None
    by_telegram_id: dict[int, Staff] = field(default_factory=dict)

    def valid_under(self, stamp: int | None) -> bool:
        """Keep the cache only while the stamp is unchanged; empty it otherwise."""
        if stamp is None or stamp != self.stamp:
            self.by_telegram_id.clear()
            self.stamp = stamp
        return stamp is not None


async def staff_by_telegram_id(
    session: AsyncSession, telegram_id: int, *, cache: MemberCache | None = None
) -> Staff | None:
    """The person's staff row; with `cache`, an active member from it while the stamp is
    unchanged (one small read), else read (the stamp first: a row is never older than the
    stamp it is cached under; on PostgreSQL each statement may see newer commits)."""
    if cache is None:
        return (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).first()
    stamp = await staff_stamp(session)
    valid = cache.valid_under(stamp)
    staff = cache.by_telegram_id.get(telegram_id) if valid else None
    if staff is not None:
        return staff
    staff = (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).first()
    # not if another update saw the stamp move meanwhile: this row may predate that change
    if valid and cache.stamp == stamp and staff is not None and staff.active:
        cache.by_telegram_id[telegram_id] = staff
    return staff


async def recognised(
    sessions: SessionFactory, telegram_id: int, *, cache: MemberCache
) -> Staff | None:
    """The gate's look-up, a unit of its own: a cached active member after one read of the
    stamp, on SQLite's quick lane (storage.quick_lane) when it can, on PostgreSQL `alone`;
    otherwise, or for anyone not cached, `staff_by_telegram_id` in a reading unit."""
    lane = quick_lane.of(sessions)
    stamp: int | None = None
    read = False
    if lane is not None:
        with contextlib.suppress(quick_lane.Busy):
            stamp, read = lane.scalar(_STAMP), True
    elif on_postgresql(sessions):  # one autocommit read: no BEGIN and COMMIT around it
        stamp, read = (await alone(sessions, _STAMP, {}, reads=True)).scalar(), True
    if read:
        staff = cache.by_telegram_id.get(telegram_id) if cache.valid_under(stamp) else None
        if staff is not None:
            return staff
    async with reading(sessions) as session:
        return await staff_by_telegram_id(session, telegram_id, cache=cache)


_STAMP = select(StaffChanges.stamp).where(StaffChanges.id == 1)


async def staff_stamp(session: AsyncSession) -> int | None:
    """The stamp triggers renew at every change to staff or team_leads, by any process
    (migration 0015); None if its row is missing (then nothing may be cached)."""
    return (await session.exec(_STAMP)).first()


def placeholder_name(telegram_id: int) -> str:
    """The name a configured admin has until Telegram tells us theirs (their first update)."""
    return f"admin {telegram_id}"


def has_placeholder_name(staff: Staff) -> bool:
    return staff.display_name == placeholder_name(staff.telegram_id)


async def learn_name(session: AsyncSession, *, staff_id: int, name: str) -> bool:
    """Replace a configured admin's placeholder with their Telegram name, once: a name given
    in the bot or on the command line is never overwritten. True when it was learned."""
    name = " ".join(printable(name).split())[:200]
    staff = await session.get(Staff, staff_id)
    if staff is None or not name or not has_placeholder_name(staff):
        return False
    staff.display_name, staff.updated_at = name, utcnow()
    session.add(staff)
    await audit.record(
        session,
        action="staff.name_learned",
        actor_staff_id=staff.id,
        actor_telegram_id=staff.telegram_id,
        entity="staff",
        entity_id=staff.id,
    )
    return True


async def ensure_admins(session: AsyncSession, telegram_ids: list[int]) -> list[Staff]:
    """Create the configured admins that do not exist yet (the bootstrap of the first admins).

    An existing staff row is never changed here: once someone exists, staff changes made in
    the bot or on the command line win, so a configured admin can still be demoted or removed.
    """
    created = []
    for telegram_id in telegram_ids:
        if await staff_by_telegram_id(session, telegram_id) is not None:
            continue
        staff = Staff(
            telegram_id=telegram_id, display_name=placeholder_name(telegram_id), role="admin"
        )
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
    name = clean_team_name(name)
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
    team.manager_chat_lost_at = None  # /setgroup came from there: the bot is in the group
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


# ---------------------------------------------------------------------------------------------
# last activity


SEEN_EVERY = timedelta(hours=1)


def seen_is_due(staff: Staff, now: datetime) -> bool:
    """Whether the gate should write `last_seen_at` now: at most once per `SEEN_EVERY`."""
    return staff.last_seen_at is None or now - staff.last_seen_at >= SEEN_EVERY


async def note_seen(session: AsyncSession, *, staff_id: int, now: datetime) -> bool:
    """Record that the person used the bot; one conditional UPDATE, so two updates at once
    write once. It leaves `version` alone: being seen is no change to the person."""
    result = await session.exec(
        update(Staff)
        .where(
            col(Staff.id) == staff_id,
            or_(col(Staff.last_seen_at).is_(None), col(Staff.last_seen_at) <= now - SEEN_EVERY),
        )
        .values(last_seen_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# teams: create and rename (admins)


def clean_team_name(name: str) -> str:
    """A team name as stored: control characters out, spaces collapsed, 1 to MAX_NAME long."""
    name = " ".join(printable(name).split())
    if not name or len(name) > MAX_NAME:
        raise Refused("team_name")
    return name


async def _team_named_like(session: AsyncSession, name: str, *, other_than: int | None) -> bool:
    """Whether another team has this name, ignoring case ("East" and "east" are one team)."""
    query = select(Team.id).where(func.lower(Team.name) == name.lower())
    if other_than is not None:
        query = query.where(col(Team.id) != other_than)
    return (await session.exec(query)).first() is not None


async def _acting_admin(session: AsyncSession, actor: Staff | None) -> Staff | None:
    """The actor as the database has them now (an admin deactivated a moment ago acts no more);
    None for the command line, the server's operator."""
    if actor is None:
        return None
    fresh = await session.get(Staff, actor.id, populate_existing=True)
    if fresh is None or not permissions.can_manage_staff(fresh):
        raise Refused("not_allowed")
    return fresh


async def create_team(session: AsyncSession, *, actor: Staff | None, name: str) -> Team:
    """A new team; its name unique (ignoring case) and clean."""
    actor = await _acting_admin(session, actor)
    name = clean_team_name(name)
    if await _team_named_like(session, name, other_than=None):
        raise Refused("team_exists")
    team = Team(name=name)
    try:
        async with session.begin_nested():  # two admins creating one name at once: one wins
            session.add(team)
            await session.flush()
    except IntegrityError:
        raise Refused("team_exists") from None
    await audit.record(
        session,
        action="team.create",
        actor_staff_id=actor.id if actor else None,
        actor_telegram_id=actor.telegram_id if actor else None,
        entity="team",
        entity_id=team.id,
    )
    return team


async def rename_team(
    session: AsyncSession,
    *,
    actor: Staff | None,
    team_id: int,
    name: str,
    expected_name: str | None = None,
) -> Team:
    """Give a team a new name. `expected_name` is the name the actor saw: if someone renamed it
    meanwhile, this rename is refused (`stale`) rather than overwriting theirs."""
    actor = await _acting_admin(session, actor)
    name = clean_team_name(name)
    team = await session.get(Team, team_id, with_for_update=True, populate_existing=True)
    if team is None:
        raise Refused("not_found")
    if expected_name is not None and team.name != expected_name:
        raise Refused("stale")
    if team.name == name:
        raise Refused("unchanged")
    if await _team_named_like(session, name, other_than=team.id):
        raise Refused("team_exists")
    old = team.name
    try:
        async with session.begin_nested():
            team.name, team.updated_at = name, utcnow()
            session.add(team)
            await session.flush()
    except IntegrityError:
        team.name = old
        raise Refused("team_exists") from None
    await audit.record(
        session,
        action="team.rename",
        actor_staff_id=actor.id if actor else None,
        actor_telegram_id=actor.telegram_id if actor else None,
        entity="team",
        entity_id=team.id,
    )
    return team


# ---------------------------------------------------------------------------------------------
# reading staff: admins everyone, managers their teams (read-only)


@dataclass(frozen=True)
class StaffPage:
    """One page of the staff an actor may see, ordered by team then name."""

    entries: list[Staff]
    teams: dict[int, Team]  # every team an entry works in
    total: int
    page: int
    pages: int


async def visible_teams(session: AsyncSession, actor: Staff | None) -> list[Team]:
    """The teams whose staff `actor` may read (the command line: all)."""
    every = await teams(session)
    if actor is None:
        return every
    return [t for t in every if permissions.can_view_staff(actor, t.id)]


async def staff_page(
    session: AsyncSession,
    *,
    actor: Staff | None,
    team_id: int | None = None,
    include_inactive: bool = False,
    page: int = 0,
    page_size: int = 10,
) -> StaffPage:
    """One page of staff by team (team headers come from `teams`); people without a team
    (admins) last, and only for admins."""
    shown = {t.id: t for t in await visible_teams(session, actor)}
    query = select(Staff).outerjoin(Team, col(Team.id) == col(Staff.team_id))
    if team_id is not None:
        query = query.where(col(Staff.team_id) == (team_id if team_id in shown else -1))
    elif actor is not None and not permissions.can_view_staff(actor, None):
        query = query.where(col(Staff.team_id).in_([i for i in shown if i is not None] or [-1]))
    if not include_inactive:
        query = query.where(col(Staff.active).is_(True))
    total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
    pages = max(1, -(-total // page_size))
    page = min(max(page, 0), pages - 1)
    ordered = query.order_by(
        col(Team.name).is_(None), col(Team.name), col(Staff.display_name), col(Staff.id)
    )
    entries = list((await session.exec(ordered.offset(page * page_size).limit(page_size))).all())
    used = {s.team_id for s in entries if s.team_id is not None}
    return StaffPage(entries, {i: t for i, t in shown.items() if i in used}, total, page, pages)


async def person_for(session: AsyncSession, *, actor: Staff | None, staff_id: int) -> Staff:
    """One person, if `actor` may read them; NotFound alike for missing and not theirs."""
    staff = await session.get(Staff, staff_id)
    if staff is None:
        raise NotFound()
    if actor is not None and not permissions.can_view_staff(actor, staff.team_id):
        raise NotFound()
    return staff


# ---------------------------------------------------------------------------------------------
# changing staff (admins; the command line): role, team, deactivate, reactivate
#
# Each change names the version of the person it was decided on (`version`; None: whatever it is
# now, for the command line). The active admins are locked first, then the person: of two
# admins changing one person at once exactly one wins, the other is refused `stale`; and two
# admins deactivating each other at once cannot leave the company without one.


class StaffChangeKind(StrEnum):
    role = "role"
    team = "team"
    deactivate = "deactivate"
    reactivate = "reactivate"


@dataclass(frozen=True)
class StaffChange:
    """What a change did: the person after it, what they were, and any hand-over it opened."""

    staff: Staff
    kind: StaffChangeKind
    old_role: str
    old_team_id: int | None
    handover: Handover | None = None

    @property
    def team_changed(self) -> bool:
        return self.staff.team_id != self.old_team_id

    @property
    def role_changed(self) -> bool:
        return self.staff.role != self.old_role


async def _locked(
    session: AsyncSession, *, actor: Staff | None, staff_id: int, version: int | None
) -> tuple[Staff | None, Staff, list[Staff]]:
    """The actor re-checked, the person locked at the version the change was decided on, and
    the active admins (locked, in id order, before the person)."""
    admins = list(
        (
            await session.exec(
                select(Staff)
                .where(*permissions.admins())
                .order_by(col(Staff.id))
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).all()
    )
    if actor is not None and actor.id not in {a.id for a in admins}:
        raise Refused("not_allowed")  # no longer an (active) admin
    acting = await _acting_admin(session, actor)
    staff = (
        await session.exec(
            select(Staff)
            .where(col(Staff.id) == staff_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()
    if staff is None:
        raise NotFound()
    if version is not None and staff.version != version:
        raise Refused("stale")
    return acting, staff, admins


def _refuse_self(actor: Staff | None, staff: Staff) -> None:
    if actor is not None and actor.id == staff.id:
        raise Refused("self")


def _refuse_last_admin(staff: Staff, admins: list[Staff]) -> None:
    if staff.active and staff.role == Role.admin and not [a for a in admins if a.id != staff.id]:
        raise Refused("last_admin")


async def _team(session: AsyncSession, team_id: int | None) -> Team | None:
    if team_id is None:
        return None
    team = await session.get(Team, team_id)
    if team is None:
        raise Refused("team_not_found")
    return team


async def _write(
    session: AsyncSession,
    *,
    actor: Staff | None,
    staff: Staff,
    kind: StaffChangeKind,
    old_role: str,
    old_team_id: int | None,
    handover: Handover | None = None,
) -> StaffChange:
    """Write a change of `staff` and audit it; the teams they led and no longer count go
    (a leaver, someone demoted, a manager moved into a team they led)."""
    staff.version += 1
    staff.updated_at = utcnow()
    session.add(staff)
    await session.flush()
    await team_leads.tidy(session, actor=actor, staff=staff)
    detail: dict[str, object] = {}
    if staff.role != old_role:
        detail["role"] = [old_role, staff.role]
    if staff.team_id != old_team_id:
        detail["team_id"] = [old_team_id, staff.team_id]
    if handover is not None:
        detail["handover_id"] = handover.id
    await audit.record(
        session,
        action=f"staff.{kind}",
        actor_staff_id=actor.id if actor else None,
        actor_telegram_id=actor.telegram_id if actor else None,
        entity="staff",
        entity_id=staff.id,
        detail=detail or None,
    )
    return StaffChange(staff, kind, old_role, old_team_id, handover)


async def change_role(
    session: AsyncSession,
    *,
    actor: Staff | None,
    staff_id: int,
    role: str,
    version: int | None,
    team_id: int | None = None,
) -> StaffChange:
    """Give someone another role (and, where the new role needs one, a team: `team_id`).

    Nobody demotes themselves, the last active admin stays an admin; a new team is a move, so
    their records wait in a hand-over for the old team's successors."""
    acting, staff, admins = await _locked(session, actor=actor, staff_id=staff_id, version=version)
    if role not in permissions.ALL_ROLES:
        raise Refused("invalid_role")
    if not staff.active:
        raise Refused("inactive")
    new_team = await _team(session, team_id) if team_id is not None else None
    new_team_id = new_team.id if new_team is not None else staff.team_id
    if role == staff.role and new_team_id == staff.team_id:
        raise Refused("unchanged")
    if role != staff.role:
        _refuse_self(acting, staff)
        if role != Role.admin:
            _refuse_last_admin(staff, admins)
    if permissions.role_needs_team(role) and new_team_id is None:
        raise Refused("team_required")
    old_role, old_team_id = staff.role, staff.team_id
    staff.role, staff.team_id = role, new_team_id
    handover = None
    if new_team_id != old_team_id:
        handover = await handover_store.open_for(
            session,
            actor=acting,
            staff=staff,
            reason=HandoverReason.move,
            new_team_id=new_team_id,
        )
    return await _write(
        session,
        actor=acting,
        staff=staff,
        kind=StaffChangeKind.role,
        old_role=old_role,
        old_team_id=old_team_id,
        handover=handover,
    )


async def move_to_team(
    session: AsyncSession, *, actor: Staff | None, staff_id: int, team_id: int, version: int | None
) -> StaffChange:
    """Move someone to another team at once; what they hold waits in a hand-over (调岗交接) for
    successors of the old team."""
    acting, staff, _admins = await _locked(session, actor=actor, staff_id=staff_id, version=version)
    team = await _team(session, team_id)
    assert team is not None
    if not staff.active:
        raise Refused("inactive")
    if staff.team_id == team.id:
        raise Refused("unchanged")
    old_team_id = staff.team_id
    staff.team_id = team.id
    handover = await handover_store.open_for(
        session, actor=acting, staff=staff, reason=HandoverReason.move, new_team_id=team.id
    )
    return await _write(
        session,
        actor=acting,
        staff=staff,
        kind=StaffChangeKind.team,
        old_role=staff.role,
        old_team_id=old_team_id,
        handover=handover,
    )


async def deactivate(
    session: AsyncSession, *, actor: Staff | None, staff_id: int, version: int | None = None
) -> StaffChange:
    """Deactivate someone (离职): their draft goes, their next update is refused, and what they
    hold waits in a hand-over (离职交接). Never oneself, never the last active admin."""
    acting, staff, admins = await _locked(session, actor=actor, staff_id=staff_id, version=version)
    if not staff.active:
        raise Refused("already_inactive")
    _refuse_self(acting, staff)
    _refuse_last_admin(staff, admins)
    await drafts.discard(session, staff.id or 0)
    staff.active = False
    handover = await handover_store.open_for(
        session, actor=acting, staff=staff, reason=HandoverReason.leave
    )
    return await _write(
        session,
        actor=acting,
        staff=staff,
        kind=StaffChangeKind.deactivate,
        old_role=staff.role,
        old_team_id=staff.team_id,
        handover=handover,
    )


async def reactivate(
    session: AsyncSession,
    *,
    actor: Staff | None,
    staff_id: int,
    version: int | None = None,
    team_id: int | None = None,
) -> StaffChange:
    """Let someone back in, in their team or in `team_id`; refused `team_required` when their
    role needs a team they no longer have. Back in their own team, they hold their records
    again (a leave hand-over still open is cancelled); in another, what they still hold waits
    in a hand-over of the old team, as for a move."""
    acting, staff, _admins = await _locked(session, actor=actor, staff_id=staff_id, version=version)
    if staff.active:
        raise Refused("already_active")
    team = await _team(session, team_id if team_id is not None else staff.team_id)
    new_team_id = team.id if team is not None else None
    if permissions.role_needs_team(staff.role) and new_team_id is None:
        raise Refused("team_required")
    old_team_id = staff.team_id
    staff.active, staff.team_id = True, new_team_id
    waiting = await handover_store.open_handover(session, staff.id or 0)
    if waiting is not None:
        waiting.status, waiting.finished_at = HandoverStatus.cancelled, utcnow()
        waiting.version += 1
        session.add(waiting)
        await session.flush()
        await audit.record(
            session,
            action="handover.cancel",
            actor_staff_id=acting.id if acting else None,
            actor_telegram_id=acting.telegram_id if acting else None,
            entity="handover",
            entity_id=waiting.id,
            detail={"staff_id": staff.id, "reason": "reactivated"},
        )
    handover = None
    if new_team_id != old_team_id:
        handover = await handover_store.open_for(
            session, actor=acting, staff=staff, reason=HandoverReason.move, new_team_id=new_team_id
        )
    return await _write(
        session,
        actor=acting,
        staff=staff,
        kind=StaffChangeKind.reactivate,
        old_role=staff.role,
        old_team_id=old_team_id,
        handover=handover,
    )
