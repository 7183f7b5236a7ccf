"""Reassigning customers in post (在职继承): a manager gives customers of the team to another
salesperson (or manager) of it; an admin to anyone in any team, the customer then moving to
that person's team.

Who may: `permissions.can_reassign_customer` for every customer against its new owner. What
moves with the owner, the history and the audit entry are storage.ownership's. A pooled
customer is the pool's (storage.pool), a destroyed one nobody's: neither is reassigned here.

What the actor saw is what moves: each customer moves only if it still belongs to the owner the
actor saw (`seen`: customer id → owner id), checked on the locked row, so of two managers
reassigning one customer at once exactly one wins and a confirmation shown before someone else
reassigned it moves nothing. The owner rather than the version is compared because a visit or
an edit meanwhile does not change what the actor decided: "from A to B".

A selection from /my (`ReassignPick` rows) is kept here, in the database, so it survives page
turns and restarts; it is checked again, customer by customer, when it is confirmed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, func, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, ownership
from storage.crypto import Keyring
from storage.errors import Refused
from storage.models import (
    Customer,
    ReassignPick,
    RecordStatus,
    Role,
    Staff,
    Team,
    Transfer,
)
from storage.permissions import (
    can_be_handed_to,
    can_reassign,
    can_reassign_customer,
    can_view_customer,
    customers_visible_to,
    handed_to_clauses,
    is_admin,
)

SELECTION_MAX = 200  # ticked by hand; more than this is a hand-over's business


class Skip(StrEnum):
    """Why a customer of a reassignment did not move."""

    gone = "gone"  # no such customer, or not one the actor may see (indistinguishable)
    not_allowed = "not_allowed"  # the actor may not give it to this person
    pooled = "pooled"  # in the team pool: the pool's to assign
    destroyed = "destroyed"
    changed_hands = "changed_hands"  # its owner is no longer the one the actor saw
    already_theirs = "already_theirs"  # the new owner owns it already


@dataclass(frozen=True)
class Brief:
    """A customer as reassignment texts name it."""

    id: int
    customer_no: str
    name: str
    owner_id: int
    team_id: int | None


@dataclass(frozen=True)
class Skipped:
    customer_id: int
    reason: Skip
    customer: Brief | None = None  # None for one the actor may not see (it is not named)


@dataclass(frozen=True)
class Preview:
    """What a reassignment would do now: who gets which customers, and what it would skip."""

    to_staff: Staff
    eligible: tuple[Brief, ...]
    skipped: tuple[Skipped, ...]
    owners: Mapping[int, Staff]  # the present owners of `eligible`


@dataclass(frozen=True)
class Reassigned:
    """What a reassignment did: the customers moved (with their old owner), and the rest."""

    to_staff: Staff
    moved: tuple[Brief, ...]
    skipped: tuple[Skipped, ...]
    owners: Mapping[int, Staff]  # the old owners of `moved`
    complaints: int = 0
    reminders: int = 0
    reviews: int = 0

    def moved_from(self, owner_id: int) -> list[Brief]:
        return [b for b in self.moved if b.owner_id == owner_id]


@dataclass(frozen=True)
class Candidate:
    id: int
    name: str
    role: str
    team_id: int | None


@dataclass(frozen=True)
class CandidatePage:
    team: Team
    people: tuple[Candidate, ...]
    page: int
    pages: int
    total: int


@dataclass(frozen=True)
class TeamChoice:
    team: Team
    people: int  # how many of its people could take the customers


@dataclass(frozen=True)
class TeamPage:
    teams: tuple[TeamChoice, ...]
    page: int
    pages: int
    total: int


def _brief(customer: Customer) -> Brief:
    return Brief(
        id=customer.id or 0,
        customer_no=customer.customer_no,
        name=customer.name,
        owner_id=customer.owner_id,
        team_id=customer.team_id,
    )


def may_reassign_any(actor: Staff) -> bool:
    """Whether to offer reassigning at all (a card's button, /my's selection): someone who
    may reassign in some team, i.e. an admin or a manager of a team."""
    return is_admin(actor) or (actor.team_id is not None and can_reassign(actor, actor.team_id))


def offers_reassign(actor: Staff, *, team_id: int | None, status: str, pooled: bool) -> bool:
    """Whether a customer's card offers "Reassign" to the actor (the press checks again)."""
    return can_reassign(actor, team_id) and status != RecordStatus.destroyed and not pooled


# ---------------------------------------------------------------------------------------------
# who may take them


async def successor(session: AsyncSession, *, actor: Staff, staff_id: int) -> Staff:
    """The person the actor may give customers to, or Refused("successor"): an active
    salesperson or manager of a team the actor may reassign in (admins: any team)."""
    staff = await session.get(Staff, staff_id)
    if (
        staff is None
        or not can_be_handed_to(staff, staff.team_id)
        or not can_reassign(actor, staff.team_id)
    ):
        raise Refused("successor")
    return staff


async def teams_for(
    session: AsyncSession,
    *,
    actor: Staff,
    exclude_staff_id: int | None,
    page: int,
    page_size: int,
) -> TeamPage:
    """The teams whose people the actor may give customers to, with how many could take them
    (teams with nobody to take them are left out), by name, one page."""
    found = await session.exec(
        select(Team, func.count(col(Staff.id)))
        .join(Staff, col(Staff.team_id) == col(Team.id))
        .where(
            col(Staff.active).is_(True),
            col(Staff.role).in_([Role.salesperson, Role.manager]),
            *([col(Staff.id) != exclude_staff_id] if exclude_staff_id is not None else []),
        )
        .group_by(col(Team.id))
        .order_by(col(Team.name), col(Team.id))
    )
    allowed = [TeamChoice(t, n) for t, n in found.all() if can_reassign(actor, t.id)]
    pages = max(1, math.ceil(len(allowed) / page_size))
    page = min(max(page, 0), pages - 1)
    shown = tuple(allowed[page * page_size : (page + 1) * page_size])
    return TeamPage(shown, page, pages, len(allowed))


async def candidates(
    session: AsyncSession,
    *,
    actor: Staff,
    team_id: int,
    exclude_staff_id: int | None,
    page: int,
    page_size: int,
) -> CandidatePage:
    """One page of the people of `team_id` the actor may give customers to, by name;
    Refused("not_allowed") for a team the actor may not reassign in (a forged button)."""
    team = await session.get(Team, team_id)
    if team is None or not can_reassign(actor, team_id):
        raise Refused("not_allowed")
    where = list(handed_to_clauses(team_id))
    if exclude_staff_id is not None:
        where.append(col(Staff.id) != exclude_staff_id)
    total = (await session.exec(select(func.count()).select_from(Staff).where(*where))).one()
    pages = max(1, math.ceil(total / page_size))
    page = min(max(page, 0), pages - 1)
    rows = await session.exec(
        select(Staff)
        .where(*where)
        .order_by(col(Staff.display_name), col(Staff.id))
        .offset(page * page_size)
        .limit(page_size)
    )
    people = tuple(
        Candidate(s.id or 0, s.display_name, s.role, s.team_id) for s in rows.all() if s.id
    )
    return CandidatePage(team, people, page, pages, total)


# ---------------------------------------------------------------------------------------------
# one customer, and the checks every customer of a reassignment passes


async def reassignable(session: AsyncSession, *, actor: Staff, customer_id: int) -> Customer:
    """The customer, if the actor may reassign it at all (to someone); else Refused with the
    reason. A customer the actor may not see is `gone` (the caller audits the refusal:
    `record_refusal`, in a transaction of its own)."""
    customer = await session.get(Customer, customer_id)
    if customer is None or not can_view_customer(actor, customer):
        raise Refused(Skip.gone)
    reason = _state_refusal(customer)
    if reason is not None:
        raise Refused(reason)
    if not can_reassign(actor, customer.team_id):
        raise Refused(Skip.not_allowed)
    return customer


def _state_refusal(customer: Customer) -> Skip | None:
    if customer.status == RecordStatus.destroyed:
        return Skip.destroyed
    if customer.pooled_at is not None:
        return Skip.pooled
    return None


async def _owners(session: AsyncSession, ids: set[int]) -> dict[int, Staff]:
    if not ids:
        return {}
    rows = await session.exec(select(Staff).where(col(Staff.id).in_(ids)))
    return {s.id: s for s in rows.all() if s.id is not None}


async def preview(
    session: AsyncSession, *, actor: Staff, to_staff_id: int, seen: Mapping[int, int]
) -> Preview:
    """What reassigning these customers (id → the owner the actor saw) to `to_staff_id` would
    do now; Refused("successor") if that person may not take customers from the actor."""
    to_staff = await successor(session, actor=actor, staff_id=to_staff_id)
    found: dict[int, Customer] = {}
    ids = list(seen)
    for start in range(0, len(ids), ownership.CHUNK):
        rows = await session.exec(
            select(Customer).where(col(Customer.id).in_(ids[start : start + ownership.CHUNK]))
        )
        found.update({c.id: c for c in rows.all() if c.id is not None})
    eligible: list[Brief] = []
    skipped: list[Skipped] = []
    for customer_id, owner_id in seen.items():
        customer = found.get(customer_id)
        if customer is None or not can_view_customer(actor, customer):
            skipped.append(Skipped(customer_id, Skip.gone))
            continue
        brief = _brief(customer)
        reason = _state_refusal(customer)
        if reason is None and customer.owner_id != owner_id:
            reason = Skip.changed_hands
        if reason is None and customer.owner_id == to_staff.id:
            reason = Skip.already_theirs
        if reason is None and not can_reassign_customer(actor, customer, to_staff):
            reason = Skip.not_allowed
        if reason is None:
            eligible.append(brief)
        else:
            skipped.append(Skipped(customer_id, reason, brief))
    owners = await _owners(session, {b.owner_id for b in eligible})
    return Preview(to_staff, tuple(eligible), tuple(skipped), owners)


async def reassign(
    session: AsyncSession,
    keyring: Keyring,
    *,
    actor: Staff,
    to_staff_id: int,
    seen: Mapping[int, int],
    selection: bool = False,
) -> Reassigned:
    """Give these customers (id → the owner the actor saw) to `to_staff_id`, those that may
    still go (`preview`'s rules, again on the locked rows); the rest are skipped and named.

    The caller queues the old and new owners' notices in the same transaction. A selection
    (`selection`) is cleared of what moved.
    """
    plan = await preview(session, actor=actor, to_staff_id=to_staff_id, seen=seen)
    skipped = list(plan.skipped)
    if not plan.eligible:
        return Reassigned(plan.to_staff, (), tuple(skipped), {})
    pairs = [(b.id, b.owner_id) for b in plan.eligible]
    moved = await ownership.move_customers(
        session,
        keyring,
        customer_ids=[b.id for b in plan.eligible],
        to_staff=plan.to_staff,
        actor_id=actor.id,
        transfer=Transfer.reassign,
        only_if=(
            tuple_(col(Customer.id), col(Customer.owner_id)).in_(pairs),
            col(Customer.pooled_at).is_(None),
            col(Customer.status) != RecordStatus.destroyed,
            customers_visible_to(actor),
        ),
        audit_detail={"selection": selection, "skipped": len(skipped)},
    )
    done = set(moved.customer_ids)
    moved_briefs = tuple(b for b in plan.eligible if b.id in done)
    skipped += [Skipped(b.id, Skip.changed_hands, b) for b in plan.eligible if b.id not in done]
    if selection and done:
        await session.exec(
            delete(ReassignPick).where(
                col(ReassignPick.staff_id) == actor.id, col(ReassignPick.customer_id).in_(done)
            )
        )
    owners = {k: v for k, v in plan.owners.items() if any(b.owner_id == k for b in moved_briefs)}
    return Reassigned(
        plan.to_staff,
        moved_briefs,
        tuple(skipped),
        owners,
        complaints=moved.complaints,
        reminders=moved.reminders,
        reviews=moved.reviews,
    )


async def record_refusal(
    session: AsyncSession, *, actor: Staff, code: str, customer_id: int | None, staff_id: int | None
) -> None:
    """A refused reassignment (a forged or stale button), audited in its own transaction."""
    await audit.record(
        session,
        action="customer.reassign_refused",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="customer" if customer_id is not None else "staff",
        entity_id=customer_id if customer_id is not None else staff_id,
        detail={"reason": code, "to": staff_id},
    )


# ---------------------------------------------------------------------------------------------
# a selection from /my


async def picks(session: AsyncSession, *, actor: Staff) -> dict[int, int]:
    """The actor's selection: customer id → its owner when ticked, oldest tick first."""
    rows = await session.exec(
        select(ReassignPick.customer_id, ReassignPick.owner_id)
        .where(col(ReassignPick.staff_id) == actor.id)
        .order_by(col(ReassignPick.picked_at), col(ReassignPick.customer_id))
    )
    return dict(rows.all())


def digest(selection: Mapping[int, int]) -> str:
    """A short fingerprint of a selection, carried by its confirmation's button: a selection
    changed in another message since then is not confirmed unseen."""
    text = ",".join(f"{c}.{o}" for c, o in sorted(selection.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


async def toggle(session: AsyncSession, *, actor: Staff, customer_id: int, now: datetime) -> bool:
    """Tick the customer if it was not ticked, untick it if it was; whether it is ticked now.
    Refused as `reassignable` for one the actor may not reassign, or "selection_full"."""
    if not may_reassign_any(actor):
        raise Refused(Skip.not_allowed)
    removed = await session.exec(
        delete(ReassignPick).where(
            col(ReassignPick.staff_id) == actor.id, col(ReassignPick.customer_id) == customer_id
        )
    )
    if (removed.rowcount or 0) > 0:
        return False
    customer = await reassignable(session, actor=actor, customer_id=customer_id)
    count = (
        await session.exec(
            select(func.count())
            .select_from(ReassignPick)
            .where(col(ReassignPick.staff_id) == actor.id)
        )
    ).one()
    if count >= SELECTION_MAX:
        raise Refused("selection_full", limit=SELECTION_MAX)
    dialect = session.get_bind().dialect.name
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    await session.exec(
        insert(ReassignPick)  # type: ignore[call-overload]
        .values(
            staff_id=actor.id, customer_id=customer_id, owner_id=customer.owner_id, picked_at=now
        )
        .on_conflict_do_nothing()
    )
    return True


async def clear(session: AsyncSession, *, actor: Staff) -> None:
    """Forget the actor's selection."""
    await session.exec(delete(ReassignPick).where(col(ReassignPick.staff_id) == actor.id))


def ticked(selection: Mapping[int, int], ids: Sequence[int]) -> set[int]:
    """Which of `ids` (a page of /my) are in the selection."""
    return {i for i in ids if i in selection}
