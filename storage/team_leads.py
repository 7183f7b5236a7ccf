"""The teams a manager leads (SPEC section 10: a sales director over several teams): the only
module that writes `TeamLead` rows.

A manager leads their own team (`Staff.team_id`) and every team of their `TeamLead` rows; the
permission predicates read both through `permissions.teams_of`, which every load of a Staff
makes possible (the rows come with it). Only admins (or the server's operator on the command
line, actor None) change who leads what; only an active manager leads teams besides their own.

A led team stops counting the moment its manager is no longer an active manager (the
predicates ignore the rows of anyone else), and `tidy` removes such rows for good, so that a
director demoted, deactivated or re-invited as a salesperson does not get their old teams back
by being made a manager again later. Whoever changes a role, a team or deactivates someone
calls `tidy` in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, permissions
from storage.errors import NotFound, Refused
from storage.models import Role, Staff, Team, TeamLead
from storage.types import utcnow


def teams_of(staff: Staff) -> frozenset[int]:
    """The ids of the teams `staff` works in: their own, and as a manager those they lead."""
    return permissions.teams_of(staff)


def extra_teams_of(staff: Staff) -> frozenset[int]:
    """The teams a manager leads besides their own (none for anyone else)."""
    return teams_of(staff) - ({staff.team_id} if staff.team_id is not None else set())


async def teams_led_by(session: AsyncSession, staff: Staff) -> list[Team]:
    """The teams `staff` works in, as records: their own team first, then the others by name."""
    ids = teams_of(staff)
    if not ids:
        return []
    found = (
        await session.exec(select(Team).where(col(Team.id).in_(sorted(ids))).order_by(Team.name))
    ).all()
    return sorted(found, key=lambda t: t.id != staff.team_id)


async def team_by_name_or_id(session: AsyncSession, given: str) -> Team | None:
    """A team by its exact name, else by its id (the operator's words): never guessed."""
    given = given.strip()
    team = (await session.exec(select(Team).where(Team.name == given))).first()
    if team is None and given.isascii() and given.isdigit() and len(given) <= 9:
        team = await session.get(Team, int(given))
    return team


@dataclass(frozen=True)
class LeadChange:
    """What `lead_team` or `unlead_team` did: `changed` False when it was so already."""

    staff: Staff
    team: Team
    leads: bool  # whether the manager leads the team now
    changed: bool


async def _locked_staff(session: AsyncSession, staff_id: int) -> Staff:
    """The person, locked against a concurrent change of them (FOR UPDATE; BEGIN IMMEDIATE on
    SQLite) and read afresh, their led teams included, even if this session had them."""
    staff = (
        await session.exec(
            select(Staff)
            .where(Staff.id == staff_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()
    if staff is None:
        raise NotFound()
    return staff


async def _checked(
    session: AsyncSession, *, actor: Staff | None, staff_id: int, team_id: int
) -> tuple[Staff, Team]:
    if actor is not None and not permissions.can_manage_staff(actor):
        raise Refused("not_allowed")
    staff = await _locked_staff(session, staff_id)
    team = await session.get(Team, team_id)
    if team is None:
        raise Refused("team_not_found")
    if team.id == staff.team_id:
        raise Refused("own_team")  # their own team is changed by moving them
    return staff, team


async def _audit(
    session: AsyncSession, *, actor: Staff | None, action: str, staff: Staff, team: Team
) -> None:
    await audit.record(
        session,
        action=action,
        actor_staff_id=actor.id if actor else None,
        actor_telegram_id=actor.telegram_id if actor else None,
        entity="staff",
        entity_id=staff.id,
        detail={"team_id": team.id},
    )


def _touch(staff: Staff) -> None:
    staff.version += 1
    staff.updated_at = utcnow()


async def lead_team(
    session: AsyncSession, *, actor: Staff | None, staff_id: int, team_id: int
) -> LeadChange:
    """Let an active manager lead `team_id` besides their own team (admins; audited)."""
    staff, team = await _checked(session, actor=actor, staff_id=staff_id, team_id=team_id)
    if not staff.active:
        raise Refused("staff_inactive")
    if staff.role != Role.manager:
        raise Refused("not_a_manager")
    if any(lead.team_id == team_id for lead in staff.team_leads):
        return LeadChange(staff, team, leads=True, changed=False)
    # the person's row is locked: of two admins adding the same team at once, the second
    # finds the first one's row here and changes nothing
    staff.team_leads.append(TeamLead(staff_id=staff_id, team_id=team_id))
    _touch(staff)
    session.add(staff)
    await session.flush()
    await _audit(session, actor=actor, action="staff.lead_team", staff=staff, team=team)
    return LeadChange(staff, team, leads=True, changed=True)


async def unlead_team(
    session: AsyncSession, *, actor: Staff | None, staff_id: int, team_id: int
) -> LeadChange:
    """Stop a manager leading `team_id` (admins; audited). Works for anyone who has the row,
    so an admin can clear what a former manager still has."""
    staff, team = await _checked(session, actor=actor, staff_id=staff_id, team_id=team_id)
    kept = [lead for lead in staff.team_leads if lead.team_id != team_id]
    if len(kept) == len(staff.team_leads):
        return LeadChange(staff, team, leads=False, changed=False)
    staff.team_leads = kept  # delete-orphan: the row goes
    _touch(staff)
    session.add(staff)
    await session.flush()
    await _audit(session, actor=actor, action="staff.unlead_team", staff=staff, team=team)
    return LeadChange(staff, team, leads=False, changed=True)


async def tidy(
    session: AsyncSession, *, actor: Staff | None, staff: Staff, drop_all: bool = False
) -> list[int]:
    """Remove the led teams that no longer count, after a change of `staff` in this
    transaction: all of them unless they are an active manager (or with `drop_all`: someone
    re-joining starts afresh), and the one that became their own team. Returns the teams
    removed (each audited)."""
    keep_all = staff.active and staff.role == Role.manager and not drop_all
    gone = [
        lead.team_id for lead in staff.team_leads if not keep_all or lead.team_id == staff.team_id
    ]
    if not gone:
        return []
    staff.team_leads = [lead for lead in staff.team_leads if lead.team_id not in gone]
    session.add(staff)
    await session.flush()
    for team_id in gone:
        await audit.record(
            session,
            action="staff.unlead_team",
            actor_staff_id=actor.id if actor else None,
            actor_telegram_id=actor.telegram_id if actor else None,
            entity="staff",
            entity_id=staff.id,
            detail={"team_id": team_id, "why": "no_longer_counts"},
        )
    return gone


async def managers_leading(session: AsyncSession, team_id: int) -> list[Staff]:
    """The active managers of a team, whether it is their own or one they lead besides."""
    return list(
        (
            await session.exec(
                select(Staff).where(*permissions.managers_of(team_id)).order_by(col(Staff.id))
            )
        ).all()
    )


# ---------------------------------------------------------------------------------------------
# the "Teams led" view of one person (admins)


@dataclass(frozen=True)
class TeamChoice:
    """A team as the view offers it: whether the person leads it besides their own."""

    team_id: int
    name: str
    leads: bool


@dataclass(frozen=True)
class LeadView:
    """A person's teams, and one page of the other teams to add or remove."""

    staff_id: int
    name: str
    role: str
    active: bool
    own_team_id: int | None
    own_team: str | None
    led_ids: frozenset[int]  # the teams they lead besides their own
    led: tuple[str, ...]  # their names
    choices: tuple[TeamChoice, ...]  # this page of the teams other than their own
    page: int
    pages: int

    @property
    def may_lead_more(self) -> bool:
        """Only an active manager leads teams besides their own."""
        return self.active and self.role == Role.manager


async def lead_view(
    session: AsyncSession, *, actor: Staff, staff_id: int, page: int = 0, page_size: int = 8
) -> LeadView:
    """The teams a person leads, for an admin deciding which; refuses anyone else."""
    if not permissions.can_manage_staff(actor):
        raise Refused("not_allowed")
    staff = await session.get(Staff, staff_id, populate_existing=True)
    if staff is None:
        raise NotFound()
    led_ids = extra_teams_of(staff)
    teams = (await session.exec(select(Team).order_by(col(Team.name), col(Team.id)))).all()
    own = next((t.name for t in teams if t.id == staff.team_id), None)
    others = [t for t in teams if t.id != staff.team_id and t.id is not None]
    pages = max(1, -(-len(others) // page_size))
    page = min(max(page, 0), pages - 1)
    shown = others[page * page_size : (page + 1) * page_size]
    return LeadView(
        staff_id=staff_id,
        name=staff.display_name,
        role=staff.role,
        active=staff.active,
        own_team_id=staff.team_id,
        own_team=own,
        led_ids=led_ids,
        led=tuple(t.name for t in others if t.id in led_ids),
        choices=tuple(TeamChoice(t.id or 0, t.name, t.id in led_ids) for t in shown),
        page=page,
        pages=pages,
    )
