"""Hand-over (离职/调岗交接): what a leaver or mover still holds, kept until successors take it.

Deactivating or moving someone who still holds records opens a `Handover` in the same
transaction (`open_for`); the records wait there, in the database, until the successors are
chosen, so a restart in the middle resumes it. Moving the records is storage.ownership's.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, func, not_, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, drafts, outbox, ownership, permissions
from storage.crypto import Keyring
from storage.errors import NotFound, Refused
from storage.models import (
    Complaint,
    ComplaintStatus,
    Customer,
    Handover,
    HandoverPick,
    HandoverReason,
    HandoverStatus,
    RecordStatus,
    Reminder,
    ReminderStatus,
    Review,
    ReviewStatus,
    Role,
    Staff,
    Team,
    Transfer,
)
from storage.types import utcnow

# what a person can hold: customers in these states are theirs to follow up
HELD_STATUSES = (
    RecordStatus.draft,
    RecordStatus.pending,
    RecordStatus.approved,
    RecordStatus.rejected,
    RecordStatus.archived,
)

# reminders that follow a record to its new holder (the rest, such as a manager's review
# notices, are for whoever holds the role and lapse with an inactive recipient)
MOVABLE_REMINDERS = ("customer", "complaint")


@dataclass(frozen=True)
class Holdings:
    """What one person still holds: customers they own (not in the pool), open complaints they
    handle, pending reviews they submitted, and pending reminders addressed to them."""

    customers: int = 0
    complaints: int = 0
    reviews: int = 0
    reminders: int = 0
    followups: int = 0  # of `customers`: those with a next follow-up date

    @property
    def empty(self) -> bool:
        return not (self.customers or self.complaints or self.reviews or self.reminders)


def owned_customers(staff_id: int) -> list[object]:
    """WHERE clauses on Customer: the customers `staff_id` holds (the pool's are the pool's)."""
    return [
        Customer.owner_id == staff_id,
        col(Customer.status).in_(HELD_STATUSES),
        col(Customer.pooled_at).is_(None),
    ]


def handled_complaints(staff_id: int) -> list[object]:
    """WHERE clauses on Complaint: the open complaints `staff_id` handles."""
    return [Complaint.handler_id == staff_id, Complaint.status != ComplaintStatus.closed]


async def _count(session: AsyncSession, model: type, clauses: list[object]) -> int:
    result = await session.exec(select(func.count()).select_from(model).where(*clauses))
    return int(result.one())


async def holdings(session: AsyncSession, staff_id: int) -> Holdings:
    """What `staff_id` still holds (module docstring); all zero means nothing to hand over."""
    customers = owned_customers(staff_id)
    return Holdings(
        customers=await _count(session, Customer, customers),
        complaints=await _count(session, Complaint, handled_complaints(staff_id)),
        reviews=await _count(
            session,
            Review,
            [Review.submitted_by == staff_id, Review.status == ReviewStatus.pending],
        ),
        reminders=await _count(
            session,
            Reminder,
            [
                Reminder.recipient_id == staff_id,
                Reminder.status == ReminderStatus.pending,
                col(Reminder.subject_type).in_(MOVABLE_REMINDERS),
            ],
        ),
        followups=await _count(
            session, Customer, [*customers, col(Customer.next_followup_on).is_not(None)]
        ),
    )


async def open_handover(session: AsyncSession, staff_id: int) -> Handover | None:
    """The hand-over of `staff_id` still open, if any (there is at most one per person)."""
    return (
        await session.exec(
            select(Handover).where(
                Handover.from_staff_id == staff_id, Handover.status == HandoverStatus.open
            )
        )
    ).first()


async def open_for(
    session: AsyncSession,
    *,
    actor: Staff | None,
    staff: Staff,
    reason: HandoverReason,
    new_team_id: int | None = None,
) -> Handover | None:
    """Open (or return the already open) hand-over of `staff`, if they hold anything.

    Called by storage.staff in the transaction that deactivates or moves them; the caller has
    checked that `actor` may. None when there is nothing to hand over.
    """
    assert staff.id is not None
    existing = await open_handover(session, staff.id)
    if existing is not None:
        return existing
    if (await holdings(session, staff.id)).empty:
        return None
    handover = Handover(
        from_staff_id=staff.id,
        started_by=actor.id if actor else None,
        reason=reason,
        new_team_id=new_team_id,
    )
    session.add(handover)
    await session.flush()
    await audit.record(
        session,
        action="handover.open",
        actor_staff_id=actor.id if actor else None,
        actor_telegram_id=actor.telegram_id if actor else None,
        entity="handover",
        entity_id=handover.id,
        detail={"staff_id": staff.id, "reason": reason, "new_team_id": new_team_id},
    )
    return handover


# ---------------------------------------------------------------------------------------------
# the hand-over under way: who may run it, who may receive, what is still unassigned

PAGE_SIZE = 8
SHOWN_IN_SUMMARY = 20  # customers named in a successor's summary; the rest are counted
RECEIVING_ROLES = (Role.salesperson, Role.manager)


@dataclass(frozen=True)
class Opened:
    """An open hand-over, re-read for one press: its leaver and the teams its records are in."""

    handover: Handover
    leaver: Staff
    teams: frozenset[int]

    @property
    def id(self) -> int:
        assert self.handover.id is not None
        return self.handover.id


@dataclass(frozen=True)
class Rest:
    """What does not follow a held customer and so goes to the successor for all: complaints
    about other people's customers, pending reviews and reminders about other records."""

    complaints: int = 0
    reviews: int = 0
    reminders: int = 0

    @property
    def total(self) -> int:
        return self.complaints + self.reviews + self.reminders


@dataclass(frozen=True)
class Overview:
    """What the hand-over's view shows: who, why, what they hold, how much is assigned."""

    opened: Opened
    holdings: Holdings
    rest: Rest
    successor: Staff | None
    new_team: Team | None
    picked: int  # held customers with a successor of their own
    by_successor: tuple[tuple[str, int], ...]  # successor's name, customers they would get

    @property
    def unassigned(self) -> int:
        """Held customers nobody would receive, plus the rest when there is no default."""
        if self.successor is not None:
            return 0
        return self.holdings.customers - self.picked + self.rest.total

    @property
    def unassigned_customers(self) -> int:
        return 0 if self.successor is not None else self.holdings.customers - self.picked


@dataclass(frozen=True)
class Candidates:
    """One page of the people who may receive; `elsewhere` when the team has nobody left and
    these are active people of other teams (the customers then move to that team)."""

    people: tuple[Staff, ...]
    page: int
    pages: int
    total: int
    elsewhere: bool


@dataclass(frozen=True)
class HeldEntry:
    customer_id: int
    customer_no: str
    name: str
    status: str
    successor_name: str | None  # its own pick, if any


@dataclass(frozen=True)
class HeldPage:
    entries: tuple[HeldEntry, ...]
    page: int
    pages: int
    total: int


@dataclass(frozen=True)
class Received:
    """What one successor received: the summary message names the first customers."""

    successor: Staff
    customers: int = 0
    complaints: int = 0
    reviews: int = 0
    reminders: int = 0
    first: tuple[tuple[str, str], ...] = ()  # (customer number, name) of the first customers


@dataclass(frozen=True)
class Finished:
    """A finished hand-over: who received what."""

    handover: Handover
    leaver: Staff
    received: tuple[Received, ...] = ()
    draft_discarded: bool = False
    messages: int = 0

    @property
    def customers(self) -> int:
        return sum(r.customers for r in self.received)

    @property
    def complaints(self) -> int:
        return sum(r.complaints for r in self.received)

    @property
    def reviews(self) -> int:
        return sum(r.reviews for r in self.received)

    @property
    def reminders(self) -> int:
        return sum(r.reminders for r in self.received)


# (recipient, the finished hand-over, what that recipient received or None for a manager) →
# the text of their summary, in their language: the caller's (storage knows no languages)
Notifier = Callable[[Staff, Finished, Received | None], str]


def _check_actor(actor: Staff | None, teams: frozenset[int]) -> None:
    """The command line (None) is the server's operator; in chat, admins of every team."""
    if actor is not None and not permissions.can_hand_over(actor, teams):
        raise Refused("not_allowed")


async def _teams(session: AsyncSession, handover: Handover, leaver: Staff) -> frozenset[int]:
    """The teams of the records held: of a move, the OLD team (where the customers still are)."""
    assert leaver.id is not None
    held = await session.exec(
        select(Customer.team_id).where(*owned_customers(leaver.id)).distinct()
    )
    teams = {team for team in held.all() if team is not None}
    about = await session.exec(
        select(Customer.team_id)
        .join(Complaint, col(Complaint.customer_id) == col(Customer.id))
        .where(*handled_complaints(leaver.id))
        .distinct()
    )
    teams.update(team for team in about.all() if team is not None)
    if handover.reason == HandoverReason.leave and leaver.team_id is not None:
        teams.add(leaver.team_id)
    return frozenset(teams)


async def load(session: AsyncSession, *, actor: Staff | None, handover_id: int) -> Opened:
    """The open hand-over `handover_id` for `actor`: refused if it is not theirs to run, gone
    (not_found) or over (handover_closed: finished or cancelled, its buttons have expired)."""
    handover = await session.get(Handover, handover_id, populate_existing=True)
    if handover is None:
        raise NotFound()
    leaver = await session.get(Staff, handover.from_staff_id)
    if leaver is None:
        raise NotFound()
    teams = await _teams(session, handover, leaver)
    _check_actor(actor, teams)
    if handover.status != HandoverStatus.open:
        raise Refused("handover_closed")
    return Opened(handover, leaver, teams)


async def open_handovers(session: AsyncSession, *, actor: Staff | None) -> list[Opened]:
    """Every open hand-over `actor` may run, oldest first (for /handover and the CLI)."""
    rows = await session.exec(
        select(Handover)
        .where(Handover.status == HandoverStatus.open)
        .order_by(col(Handover.created_at), col(Handover.id))
    )
    found = []
    for handover in rows.all():
        leaver = await session.get(Staff, handover.from_staff_id)
        if leaver is None:
            continue
        teams = await _teams(session, handover, leaver)
        if actor is None or permissions.can_hand_over(actor, teams):
            found.append(Opened(handover, leaver, teams))
    return found


def _receivers(leaver_id: int) -> list[Any]:
    """Who may receive at all: active non-admins in a team, not the leaver."""
    return [
        col(Staff.active).is_(True),
        col(Staff.role).in_(RECEIVING_ROLES),
        col(Staff.team_id).is_not(None),
        col(Staff.id) != leaver_id,
    ]


def _in_teams(teams: frozenset[int]) -> Any:
    if not teams:
        return false()
    return or_(*(and_(*permissions.handed_to_clauses(team)) for team in sorted(teams)))


async def _candidate_clauses(
    session: AsyncSession, teams: frozenset[int], leaver_id: int
) -> tuple[list[Any], bool]:
    """WHERE clauses for the candidates, and whether they are from elsewhere (module rule:
    the teams' own people; a team with nobody left, anyone active of another team)."""
    in_team = [_in_teams(teams), *_receivers(leaver_id)]
    found = await session.exec(select(Staff.id).where(*in_team).limit(1))
    if found.first() is not None:
        return in_team, False
    return _receivers(leaver_id), True


async def may_receive(
    session: AsyncSession, person: Staff | None, teams: frozenset[int], leaver_id: int
) -> bool:
    """Whether `person` may receive records of these teams from `leaver_id`, now."""
    if person is None or person.id == leaver_id or person.team_id is None:
        return False
    if any(permissions.can_be_handed_to(person, team) for team in teams):
        return True
    _clauses, elsewhere = await _candidate_clauses(session, teams, leaver_id)
    return elsewhere and person.active and person.role in RECEIVING_ROLES


async def candidates(
    session: AsyncSession,
    opened: Opened,
    *,
    teams: frozenset[int] | None = None,
    page: int = 0,
    page_size: int = PAGE_SIZE,
) -> Candidates:
    """One page of who may receive (for one customer: its own team, `teams`)."""
    assert opened.leaver.id is not None
    clauses, elsewhere = await _candidate_clauses(
        session, opened.teams if teams is None else teams, opened.leaver.id
    )
    total = int((await session.exec(select(func.count()).select_from(Staff).where(*clauses))).one())
    pages = max(1, math.ceil(total / page_size))
    page = min(max(page, 0), pages - 1)
    people = await session.exec(
        select(Staff)
        .where(*clauses)
        .order_by(col(Staff.team_id), col(Staff.display_name), col(Staff.id))
        .offset(page * page_size)
        .limit(page_size)
    )
    return Candidates(tuple(people.all()), page, pages, total, elsewhere)


def _held_ids(leaver_id: int) -> Any:
    return select(Customer.id).where(*owned_customers(leaver_id))


def _rest_clauses(leaver_id: int) -> tuple[list[Any], list[Any], list[Any]]:
    """WHERE clauses of the rest (`Rest`): complaints, reviews, reminders."""
    held = _held_ids(leaver_id)
    moving_complaints = select(Complaint.id).where(*handled_complaints(leaver_id))
    complaints = [
        *handled_complaints(leaver_id),
        not_(col(Complaint.customer_id).in_(held)),
    ]
    reviews = [
        Review.submitted_by == leaver_id,
        Review.status == ReviewStatus.pending,
        or_(col(Review.customer_id).is_(None), not_(col(Review.customer_id).in_(held))),
    ]
    reminders = [
        Reminder.recipient_id == leaver_id,
        Reminder.status == ReminderStatus.pending,
        or_(
            and_(Reminder.subject_type == "customer", not_(col(Reminder.subject_id).in_(held))),
            and_(
                Reminder.subject_type == "complaint",
                not_(col(Reminder.subject_id).in_(moving_complaints)),
            ),
        ),
    ]
    return complaints, reviews, reminders


async def rest(session: AsyncSession, leaver_id: int) -> Rest:
    complaints, reviews, reminders = _rest_clauses(leaver_id)
    return Rest(
        complaints=await _count(session, Complaint, complaints),
        reviews=await _count(session, Review, reviews),
        reminders=await _count(session, Reminder, reminders),
    )


def _picks_of_held(handover_id: int, leaver_id: int) -> list[Any]:
    return [
        HandoverPick.handover_id == handover_id,
        col(HandoverPick.customer_id).in_(_held_ids(leaver_id)),
    ]


async def overview(session: AsyncSession, opened: Opened) -> Overview:
    """The hand-over's view, re-read from the database."""
    leaver_id = opened.leaver.id
    assert leaver_id is not None
    handover = opened.handover
    successor = await session.get(Staff, handover.successor_id) if handover.successor_id else None
    new_team = await session.get(Team, handover.new_team_id) if handover.new_team_id else None
    held = await holdings(session, leaver_id)
    rows = await session.exec(
        select(Staff.id, Staff.display_name, func.count())
        .select_from(HandoverPick)
        .join(Staff, col(Staff.id) == col(HandoverPick.successor_id))
        .where(*_picks_of_held(opened.id, leaver_id))
        .group_by(col(Staff.id), col(Staff.display_name))
    )
    counts = {(sid or 0, name): int(n) for sid, name, n in rows.all()}
    picked = sum(counts.values())
    if successor is not None and held.customers - picked:
        key = (successor.id or 0, successor.display_name)
        counts[key] = counts.get(key, 0) + held.customers - picked
    by_successor = tuple(
        (name, n) for (_sid, name), n in sorted(counts.items(), key=lambda i: (-i[1], i[0][1]))
    )
    return Overview(
        opened=opened,
        holdings=held,
        rest=await rest(session, leaver_id),
        successor=successor,
        new_team=new_team,
        picked=picked,
        by_successor=by_successor,
    )


async def held_customers(
    session: AsyncSession,
    opened: Opened,
    *,
    query: str | None = None,
    page: int = 0,
    page_size: int = PAGE_SIZE,
) -> HeldPage:
    """One page of the customers the leaver holds, each with its own pick; `query` narrows
    them to names (full or short) and numbers containing it."""
    leaver_id = opened.leaver.id
    assert leaver_id is not None
    clauses = list(owned_customers(leaver_id))
    if query:
        needle = query.casefold()
        clauses.append(
            or_(
                func.lower(col(Customer.name)).contains(needle, autoescape=True),
                func.lower(col(Customer.short_name)).contains(needle, autoescape=True),
                func.lower(col(Customer.customer_no)).contains(needle, autoescape=True),
            )
        )
    total = int(
        (await session.exec(select(func.count()).select_from(Customer).where(*clauses))).one()
    )
    pages = max(1, math.ceil(total / page_size))
    page = min(max(page, 0), pages - 1)
    rows = await session.exec(
        select(
            Customer.id, Customer.customer_no, Customer.name, Customer.status, Staff.display_name
        )
        .select_from(Customer)
        .outerjoin(
            HandoverPick,
            and_(
                col(HandoverPick.customer_id) == col(Customer.id),
                col(HandoverPick.handover_id) == opened.id,
            ),
        )
        .outerjoin(Staff, col(Staff.id) == col(HandoverPick.successor_id))
        .where(*clauses)
        .order_by(col(Customer.customer_no))
        .offset(page * page_size)
        .limit(page_size)
    )
    entries = tuple(
        HeldEntry(cid, number, name, status, successor)
        for cid, number, name, status, successor in rows.all()
        if cid is not None
    )
    return HeldPage(entries, page, pages, total)


async def held_customer(session: AsyncSession, opened: Opened, customer_id: int) -> Customer:
    """One customer the leaver still holds, or refused (moved away meanwhile, or forged)."""
    leaver_id = opened.leaver.id
    assert leaver_id is not None
    customer = (
        await session.exec(
            select(Customer).where(col(Customer.id) == customer_id, *owned_customers(leaver_id))
        )
    ).first()
    if customer is None:
        raise Refused("handover_not_held")
    return customer


async def _touch(session: AsyncSession, opened: Opened, **values: Any) -> None:
    """Bump the hand-over's version while it is still open (a finish shown before is stale)."""
    result = await session.exec(
        update(Handover)
        .where(col(Handover.id) == opened.id, col(Handover.status) == HandoverStatus.open)
        .values(version=col(Handover.version) + 1, updated_at=utcnow(), **values)
    )
    if not result.rowcount:
        raise Refused("handover_closed")


async def choose_successor(
    session: AsyncSession, *, actor: Staff | None, handover_id: int, successor_id: int
) -> Staff:
    """One successor for all: every customer without a pick of its own, and the rest."""
    opened = await load(session, actor=actor, handover_id=handover_id)
    successor = await session.get(Staff, successor_id)
    if not await may_receive(session, successor, opened.teams, opened.leaver.id or 0):
        raise Refused("handover_successor")
    assert successor is not None
    await _touch(session, opened, successor_id=successor_id)
    await audit.record(
        session,
        action="handover.successor",
        actor_staff_id=actor.id if actor else None,
        actor_telegram_id=actor.telegram_id if actor else None,
        entity="handover",
        entity_id=opened.id,
        detail={"successor_id": successor_id},
    )
    return successor


async def pick(
    session: AsyncSession,
    *,
    actor: Staff | None,
    handover_id: int,
    customer_id: int,
    successor_id: int | None,
) -> Staff | None:
    """Split by customer: this customer goes to `successor_id` (None: back to the successor
    for all). Picking a customer again replaces its pick: the last one counts."""
    opened = await load(session, actor=actor, handover_id=handover_id)
    customer = await held_customer(session, opened, customer_id)
    successor = None
    if successor_id is not None:
        successor = await session.get(Staff, successor_id)
        teams = frozenset({customer.team_id}) if customer.team_id is not None else opened.teams
        if not await may_receive(session, successor, teams, opened.leaver.id or 0):
            raise Refused("handover_successor")
    await _touch(session, opened)
    table = HandoverPick.__table__  # type: ignore[attr-defined]
    if successor_id is None:
        await session.exec(
            table.delete().where(
                table.c.handover_id == opened.id, table.c.customer_id == customer_id
            )
        )
    else:
        insert = sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert
        statement = insert(table).values(
            handover_id=opened.id, customer_id=customer_id, successor_id=successor_id
        )
        await session.exec(
            statement.on_conflict_do_update(  # type: ignore[call-overload]
                index_elements=["handover_id", "customer_id"],
                set_={"successor_id": successor_id},
            )
        )
    await audit.record(
        session,
        action="handover.pick",
        actor_staff_id=actor.id if actor else None,
        actor_telegram_id=actor.telegram_id if actor else None,
        entity="handover",
        entity_id=opened.id,
        detail={"customer_id": customer_id, "successor_id": successor_id},
    )
    return successor


async def cancel(
    session: AsyncSession, *, actor: Staff | None, handover_id: int, version: int | None = None
) -> Opened:
    """Stop the hand-over: the records stay where they are (`orphans` lists them)."""
    opened = await load(session, actor=actor, handover_id=handover_id)
    await _close(session, opened, HandoverStatus.cancelled, version)
    await audit.record(
        session,
        action="handover.cancel",
        actor_staff_id=actor.id if actor else None,
        actor_telegram_id=actor.telegram_id if actor else None,
        entity="handover",
        entity_id=opened.id,
        detail={"staff_id": opened.leaver.id},
    )
    return opened


async def _close(
    session: AsyncSession, opened: Opened, status: HandoverStatus, version: int | None
) -> None:
    """Mark it done or cancelled if it is still open (and unchanged since `version` was shown):
    of two admins finishing at once, exactly one gets here."""
    now = utcnow()
    clauses = [col(Handover.id) == opened.id, col(Handover.status) == HandoverStatus.open]
    if version is not None:
        clauses.append(col(Handover.version) == version)
    result = await session.exec(
        update(Handover)
        .where(*clauses)
        .values(status=status, version=col(Handover.version) + 1, finished_at=now, updated_at=now)
    )
    if not result.rowcount:
        current = await session.get(Handover, opened.id, populate_existing=True)
        if current is None or current.status != HandoverStatus.open:
            raise Refused("handover_closed")
        raise Refused("handover_changed")
    await session.refresh(opened.handover)


# ---------------------------------------------------------------------------------------------
# finishing: everything moves in one transaction


async def _first_customers(
    session: AsyncSession, ids: Sequence[int]
) -> tuple[tuple[str, str], ...]:
    """The numbers and names of the first customers received, for the summary."""
    shown = sorted(ids)[:SHOWN_IN_SUMMARY]
    rows = await session.exec(
        select(Customer.customer_no, Customer.name)
        .where(col(Customer.id).in_(shown))
        .order_by(col(Customer.customer_no))
        .limit(SHOWN_IN_SUMMARY)
    )
    return tuple((number, name) for number, name in rows.all())


async def _notify_managers(
    session: AsyncSession, teams: frozenset[int], skip: set[int]
) -> list[Staff]:
    if not teams:
        return []
    rows = await session.exec(
        select(Staff)
        .where(or_(*(and_(*permissions.managers_of(team)) for team in sorted(teams))))
        .order_by(col(Staff.id))
    )
    return [person for person in rows.all() if person.id not in skip]


async def finish(
    session: AsyncSession,
    keyring: Keyring,
    *,
    actor: Staff | None,
    handover_id: int,
    version: int | None,
    notify: Notifier,
    now: datetime | None = None,
) -> Finished:
    """Move everything the leaver holds to its successors, in the caller's one transaction.

    Re-reads what is held (a customer the leaver gained meanwhile is included), refuses while
    any of it has nobody to go to (`handover_unassigned`, with the count) or a successor may
    no longer receive (`handover_successor`), and marks the hand-over done first, on condition
    it is open and at `version` (None: whatever it is now, the command line's case), so of two
    admins finishing at once exactly one moves anything. Each successor and the teams'
    managers are sent one summary through the outbox; the leaver's draft is discarded.
    """
    now = now or utcnow()
    opened = await load(session, actor=actor, handover_id=handover_id)
    await _close(session, opened, HandoverStatus.done, version)
    handover, leaver = opened.handover, opened.leaver
    leaver_id = leaver.id
    assert leaver_id is not None
    held = await session.exec(
        select(Customer.id, Customer.team_id)
        .where(*owned_customers(leaver_id))
        .order_by(col(Customer.id))
        .with_for_update()
    )
    held_rows = [(cid, team) for cid, team in held.all() if cid is not None]
    picks = dict(
        (
            await session.exec(
                select(HandoverPick.customer_id, HandoverPick.successor_id).where(
                    HandoverPick.handover_id == opened.id
                )
            )
        ).all()
    )
    default_id = handover.successor_id
    left = await rest(session, leaver_id)
    targets: dict[int, list[int]] = defaultdict(list)
    unassigned = 0
    for cid, _team in held_rows:
        target = picks.get(cid, default_id)
        if target is None:
            unassigned += 1
        else:
            targets[target].append(cid)
    if default_id is None:
        unassigned += left.total
    if unassigned:
        raise Refused("handover_unassigned", count=unassigned)

    team_of = dict(held_rows)
    people: dict[int, Staff] = {}
    for person_id in {*targets, *([default_id] if default_id and left.total else [])}:
        person = await session.get(Staff, person_id, populate_existing=True)
        if person_id == default_id:
            teams = opened.teams
        else:  # a pick: the teams of the customers picked for them
            picked_teams = {team_of[cid] for cid in targets[person_id]}
            teams = frozenset(t for t in picked_teams if t is not None) or opened.teams
        if person is None or not await may_receive(session, person, teams, leaver_id):
            raise Refused("handover_successor", name=person.display_name if person else "")
        people[person_id] = person

    actor_id = actor.id if actor else None
    received: dict[int, dict[str, Any]] = {
        pid: {"customers": 0, "complaints": 0, "reviews": 0, "reminders": 0, "ids": []}
        for pid in people
    }
    for person_id, ids in targets.items():
        moved = await ownership.move_customers(
            session,
            keyring,
            customer_ids=ids,
            to_staff=people[person_id],
            actor_id=actor_id,
            transfer=Transfer.handover,
            only_if=owned_customers(leaver_id),
            audit_detail={"handover_id": opened.id},
        )
        got = received[person_id]
        got["customers"] += moved.customers
        got["complaints"] += moved.complaints
        got["reviews"] += moved.reviews
        got["reminders"] += moved.reminders
        got["ids"] = list(moved.customer_ids)
    if default_id is not None and default_id in people:
        default = people[default_id]
        complaint_ids = (
            await session.exec(select(Complaint.id).where(*handled_complaints(leaver_id)))
        ).all()
        got = received[default_id]
        if complaint_ids:
            moved = await ownership.move_complaints(
                session,
                keyring,
                complaint_ids=[c for c in complaint_ids if c is not None],
                to_staff=default,
                actor_id=actor_id,
                transfer=Transfer.handover,
            )
            got["complaints"] += moved.complaints
            got["reminders"] += moved.reminders
        reviews = await session.exec(
            update(Review)
            .where(
                col(Review.submitted_by) == leaver_id,
                col(Review.status) == ReviewStatus.pending,
            )
            .values(submitted_by=default_id, updated_at=now)
        )
        got["reviews"] += reviews.rowcount or 0
        got["reminders"] += await ownership.move_reminders_of(
            session, from_id=leaver_id, to_id=default_id, subject_types=MOVABLE_REMINDERS
        )
    discarded = await drafts.discard(session, leaver_id)
    results = []
    for person_id, person in people.items():
        got = received[person_id]
        if not (got["customers"] or got["complaints"] or got["reviews"] or got["reminders"]):
            continue
        results.append(
            Received(
                successor=person,
                customers=got["customers"],
                complaints=got["complaints"],
                reviews=got["reviews"],
                reminders=got["reminders"],
                first=await _first_customers(session, got["ids"]),
            )
        )
    results.sort(key=lambda r: (-r.customers, r.successor.display_name))
    finished = Finished(handover, leaver, tuple(results), discarded)
    await audit.record(
        session,
        action="handover.finish",
        actor_staff_id=actor_id,
        actor_telegram_id=actor.telegram_id if actor else None,
        entity="handover",
        entity_id=opened.id,
        detail={
            "staff_id": leaver_id,
            "successors": {str(r.successor.id): r.customers for r in results},
            "customers": finished.customers,
            "complaints": finished.complaints,
            "reviews": finished.reviews,
            "reminders": finished.reminders,
            "draft_discarded": discarded,
        },
    )
    messages = 0
    for got_it in results:
        await outbox.queue_confirmation(
            session,
            keyring=keyring,
            recipient=got_it.successor,
            text=notify(got_it.successor, finished, got_it),
            markup=None,
            now=now,
        )
        messages += 1
    skip = {r.successor.id for r in results if r.successor.id is not None}
    for manager in await _notify_managers(session, opened.teams, skip):
        await outbox.queue_confirmation(
            session,
            keyring=keyring,
            recipient=manager,
            text=notify(manager, finished, None),
            markup=None,
            now=now,
        )
        messages += 1
    return Finished(handover, leaver, tuple(results), discarded, messages)


async def hand_over_all(
    session: AsyncSession,
    keyring: Keyring,
    *,
    actor: Staff | None,
    staff_id: int,
    successor_id: int,
    notify: Notifier,
) -> Finished | None:
    """The command line's `staff handover`: open the hand-over of an inactive person (or take
    the open one of a mover), give everything to one successor and finish, in one go. None
    when they hold nothing."""
    staff = await session.get(Staff, staff_id)
    if staff is None:
        raise NotFound()
    handover = await open_handover(session, staff_id)
    if handover is None:
        if staff.active:
            raise Refused("handover_still_active")
        handover = await open_for(session, actor=actor, staff=staff, reason=HandoverReason.leave)
    if handover is None or handover.id is None:
        return None
    await choose_successor(session, actor=actor, handover_id=handover.id, successor_id=successor_id)
    return await finish(
        session, keyring, actor=actor, handover_id=handover.id, version=None, notify=notify
    )


# ---------------------------------------------------------------------------------------------
# orphans: nothing may stay with an inactive person


@dataclass(frozen=True)
class Orphan:
    kind: str  # customer / complaint / review / reminder
    record_id: int
    label: str  # a customer's or complaint's number, a review's or reminder's kind
    holder_id: int


@dataclass(frozen=True)
class Orphans:
    """Records held by inactive people, by holder; their open hand-overs, if any."""

    records: tuple[Orphan, ...] = ()
    holders: dict[int, str] = field(default_factory=dict)  # staff id → name
    handovers: dict[int, int] = field(default_factory=dict)  # staff id → open hand-over id

    @property
    def empty(self) -> bool:
        return not self.records


async def orphans(session: AsyncSession) -> Orphans:
    """Every record an inactive person still holds (module docstring: `Holdings`' kinds)."""
    inactive = select(Staff.id).where(col(Staff.active).is_(False))
    records: list[Orphan] = []
    queries: list[tuple[str, Any]] = [
        (
            "customer",
            select(Customer.id, Customer.customer_no, Customer.owner_id).where(
                col(Customer.owner_id).in_(inactive),
                col(Customer.status).in_(HELD_STATUSES),
                col(Customer.pooled_at).is_(None),
            ),
        ),
        (
            "complaint",
            select(Complaint.id, Complaint.complaint_no, Complaint.handler_id).where(
                col(Complaint.handler_id).in_(inactive), Complaint.status != ComplaintStatus.closed
            ),
        ),
        (
            "review",
            select(Review.id, Review.kind, Review.submitted_by).where(
                col(Review.submitted_by).in_(inactive), Review.status == ReviewStatus.pending
            ),
        ),
        (
            "reminder",
            select(Reminder.id, Reminder.kind, Reminder.recipient_id).where(
                col(Reminder.recipient_id).in_(inactive),
                Reminder.status == ReminderStatus.pending,
                col(Reminder.subject_type).in_(MOVABLE_REMINDERS),
            ),
        ),
    ]
    for kind, query in queries:
        rows = await session.exec(query.order_by(query.selected_columns[0]))
        records.extend(
            Orphan(kind, record_id, str(label), holder)
            for record_id, label, holder in rows.all()
            if record_id is not None and holder is not None
        )
    holder_ids = sorted({r.holder_id for r in records})
    holders: dict[int, str] = {}
    handovers: dict[int, int] = {}
    if holder_ids:
        names = await session.exec(
            select(Staff.id, Staff.display_name).where(col(Staff.id).in_(holder_ids))
        )
        holders = {sid: name for sid, name in names.all() if sid is not None}
        open_ones = await session.exec(
            select(Handover.from_staff_id, Handover.id).where(
                col(Handover.from_staff_id).in_(holder_ids),
                Handover.status == HandoverStatus.open,
            )
        )
        handovers = {sid: hid for sid, hid in open_ones.all() if hid is not None}
    return Orphans(tuple(records), holders, handovers)
