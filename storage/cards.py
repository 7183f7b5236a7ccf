"""The read side of a customer: its card, one sensitive value in clear, its history, and lists.

Every function here starts from what the actor may see (storage.permissions): a card, a reveal
or a history for a customer id goes through `customers.visible_customer`, which audits a
refusal; lists are limited in SQL. Cards and histories never carry a sensitive value in clear:
the card holds masks, the history only says that a sensitive field changed. The one way to a
clear value is `reveal`, which audits which field was shown to whom.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, customers, life_cycle_offers, permissions, vault
from storage import fields as catalogue
from storage.crypto import Keyring
from storage.errors import NotFound
from storage.life_cycle_offers import Offers
from storage.models import (
    ChangeRecord,
    Customer,
    RecordStatus,
    Review,
    ReviewKind,
    ReviewStatus,
    Staff,
)
from storage.permissions import customers_visible_to
from storage.search import Filters

# the sealed values a card shows masked and may reveal, in the card's order (storage.fields)
REVEALABLE = catalogue.card_sealed_fields()
# fields whose values a history never shows: the customer's sealed ones and key persons'
SENSITIVE_FIELDS = catalogue.sensitive_fields()
HIDDEN = catalogue.HIDDEN
LISTED_STATUSES = (
    RecordStatus.draft,
    RecordStatus.pending,
    RecordStatus.approved,
    RecordStatus.rejected,
)


def mask(field: str, value: Any) -> str | list[str] | None:
    """A sensitive value as a card shows it: `138****5678`, `**** 1234`, `杭******`."""
    return catalogue.mask(field, value)


# ---------------------------------------------------------------------------------------------
# the card


@dataclass(frozen=True)
class CustomerCard:
    """A customer as its card shows it; `masked` holds every sensitive value that is set."""

    id: int
    customer_no: str
    name: str
    short_name: str | None
    kind: str
    customer_class: str
    stage: str | None
    deal_status: str
    status: str
    owner_name: str
    next_followup_on: date | None
    last_visit_on: date | None
    region: str | None
    industry: str | None
    consent_given: bool
    masked: dict[str, str | list[str]]
    pending_change: bool
    rejection_reason: str | None
    team_id: int | None = None  # whose managers may reassign it (storage.reassign)
    pooled_at: datetime | None = None  # in the team pool since (storage.pool)
    # archive / reactivate / destroy requests the viewer may file, and one already waiting
    life_cycle: Offers = dataclasses.field(default_factory=Offers)
    resubmittable: bool = False  # rejected, and the viewer is the owner who may send it back
    incomplete: bool = False  # saved with its essentials only: offer to complete it

    @property
    def pooled(self) -> bool:
        """In the team pool: the pool's to assign, not to reassign."""
        return self.pooled_at is not None

    @property
    def read_only(self) -> bool:
        """Archived records are kept as they are: no visits, complaints or edits."""
        return self.status == RecordStatus.archived

    @property
    def revealable(self) -> tuple[str, ...]:
        return tuple(f for f in REVEALABLE if f in self.masked)


async def customer_card(
    session: AsyncSession, *, keyring: Keyring, actor: Staff, customer_id: int
) -> CustomerCard | None:
    """The card of a customer the actor may see; None (and an audit entry) otherwise."""
    customer = await customers.visible_customer(
        session, actor=actor, customer_id=customer_id, purpose="card"
    )
    if customer is None or customer.id is None:
        return None
    sealed = await customers.sealed_fields(session, keyring, customer)
    masked = {f: m for f in REVEALABLE if (m := mask(f, sealed.get(f))) is not None}
    owner = await session.get(Staff, customer.owner_id)
    pending = await session.exec(
        select(Review.id)
        .where(
            Review.customer_id == customer.id,
            Review.kind == ReviewKind.customer_change,
            Review.status == ReviewStatus.pending,
        )
        .limit(1)
    )
    reason = None
    if customer.status == RecordStatus.rejected:
        rejected = await session.exec(
            select(Review.reason)
            .where(Review.customer_id == customer.id, Review.status == ReviewStatus.rejected)
            .order_by(col(Review.decided_at).desc(), col(Review.id).desc())
            .limit(1)
        )
        reason = rejected.first()
    return CustomerCard(
        id=customer.id,
        customer_no=customer.customer_no,
        name=customer.name,
        short_name=customer.short_name,
        kind=customer.kind,
        customer_class=customer.customer_class,
        stage=customer.stage,
        deal_status=customer.deal_status,
        status=customer.status,
        owner_name=owner.display_name if owner is not None else "",
        next_followup_on=customer.next_followup_on,
        last_visit_on=customer.last_visit_on,
        region=customer.region,
        industry=customer.industry,
        consent_given=customer.consent_given,
        masked=masked,
        pending_change=pending.first() is not None,
        rejection_reason=reason,
        resubmittable=customer.status == RecordStatus.rejected
        and permissions.can_resubmit(actor, customer),
        team_id=customer.team_id,
        pooled_at=customer.pooled_at,
        life_cycle=await life_cycle_offers.offers(session, actor=actor, customer=customer),
        incomplete=catalogue.incomplete(
            {
                **sealed,
                "industry": customer.industry,
                "region": customer.region,
                "consent_given": customer.consent_given,
            }
        ),
    )


@dataclass(frozen=True)
class Revealed:
    """One sensitive value in clear (None when it is not set), for one viewer, once."""

    customer_id: int
    customer_no: str
    field: str
    value: Any


async def reveal(
    session: AsyncSession, *, keyring: Keyring, actor: Staff, customer_id: int, field: str
) -> Revealed | None:
    """Open one sensitive field of a customer the actor may see, auditing `customer.reveal`.

    None (and an `access.denied` entry) if the actor may not see the customer; NotFound for
    a field that is not a sensitive field of customers (a hand-made button).
    """
    if field not in REVEALABLE:
        raise NotFound()
    customer = await customers.visible_customer(
        session, actor=actor, customer_id=customer_id, purpose="reveal"
    )
    if customer is None or customer.id is None:
        return None
    value = (await customers.sealed_fields(session, keyring, customer)).get(field)
    if value in (None, "", []):
        return Revealed(customer.id, customer.customer_no, field, None)
    await audit.record(
        session,
        action="customer.reveal",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="customer",
        entity_id=customer.id,
        detail={"field": field},
    )
    return Revealed(customer.id, customer.customer_no, field, value)


# ---------------------------------------------------------------------------------------------
# history


@dataclass(frozen=True)
class FieldChange:
    """One field of a change. Sensitive fields carry their values masked (`138****5678`)."""

    field: str
    old: Any
    new: Any
    sensitive: bool

    @property
    def how(self) -> str:
        """set / changed / cleared: what a sensitive field's change says when its masks do
        not tell the values apart (`••••` before and after)."""
        if self.old in (None, "", []):
            return "set"
        if self.new in (None, "", []):
            return "cleared"
        return "changed"


@dataclass(frozen=True)
class HistoryEntry:
    """One 变更记录: one change to a record, whoever proposed it and whoever decided it.

    The lines a change leaves (its proposal, the values applied, the decision) share its
    review and read as one entry; `at` is when it was proposed, `decided_at` when decided."""

    at: datetime
    entity: str
    entity_id: int
    action: str
    by: str | None
    changes: tuple[FieldChange, ...]
    review_status: str | None
    decided_by: str | None
    # its values were erased with the record they describe (a removed key person or complaint)
    values_erased: bool = False
    decided_at: datetime | None = None
    reason: str | None = None  # why it was sent back


# records whose own removal erases the values of their history lines (storage.erasure); every
# line of theirs but the removal itself was written with values
_ERASABLE = frozenset({"key_person", "complaint"})
_WITHOUT_VALUES = frozenset({"remove", "remove_request"})
# lines that only record a review's outcome: their status change is what the entry says
_DECISIONS = frozenset({"approve", "reject", "submit"})


def values_erased(record: ChangeRecord) -> bool:
    """Whether a history line once held values that an erasure has since emptied."""
    return (
        record.diff_sealed is None
        and record.entity in _ERASABLE
        and record.action not in _WITHOUT_VALUES
    )


@dataclass(frozen=True)
class HistoryPage:
    customer_id: int
    customer_no: str
    name: str
    entries: tuple[HistoryEntry, ...]
    page: int
    pages: int
    total: int


def _masked(entity: str, field: str, value: Any) -> Any:
    """A sensitive value of a history line as cards show it; never in clear."""
    if value in (None, "", []):
        return None
    try:
        record = catalogue.Record(entity)
    except ValueError:
        record = catalogue.Record.customer
    shown = catalogue.mask(field, value, record)
    return HIDDEN if shown == value else shown  # a sealed field with no rule of its own


def _field_changes(entity: str, diff: dict[str, Any] | None) -> tuple[FieldChange, ...]:
    changes = []
    for field, pair in (diff or {}).items():
        old, new = pair if isinstance(pair, list | tuple) and len(pair) == 2 else (None, pair)
        if field in SENSITIVE_FIELDS:
            changes.append(
                FieldChange(field, _masked(entity, field, old), _masked(entity, field, new), True)
            )
        else:
            changes.append(FieldChange(field, old, new, False))
    return tuple(changes)


def _merged(entity: str, diffs: list[tuple[str, Any]], decided: bool) -> tuple[FieldChange, ...]:
    """The fields of one change across its lines, in order: each field's value before the
    first line and after the last (a proposal and the values it applied name them twice)."""
    merged: dict[str, list[Any]] = {}
    for action, diff in diffs:
        if not isinstance(diff, dict):
            continue
        for field, pair in diff.items():
            if decided and action in _DECISIONS and field == "status":
                continue  # the review line says it: 审核通过 / 退回
            old, new = pair if isinstance(pair, list | tuple) and len(pair) == 2 else (None, pair)
            if field in merged:
                merged[field][1] = new
            else:
                merged[field] = [old, new]
    return _field_changes(entity, merged)


async def _names(session: AsyncSession, staff_ids: set[int]) -> dict[int, str]:
    if not staff_ids:
        return {}
    rows = await session.exec(
        select(Staff.id, Staff.display_name).where(col(Staff.id).in_(staff_ids))
    )
    return {sid: name for sid, name in rows.all() if sid is not None}


async def _changes(session: AsyncSession, customer_id: int) -> list[list[int]]:
    """The customer's history lines grouped one change each, newest change first: lines
    sharing a review are one change, and a new customer's creation belongs with its first
    review (it was filed with it)."""
    first_review = (
        await session.exec(
            select(func.min(Review.id)).where(
                Review.customer_id == customer_id, Review.kind == ReviewKind.customer_new
            )
        )
    ).one()
    lines = (
        await session.exec(
            select(
                ChangeRecord.id,
                ChangeRecord.review_id,
                ChangeRecord.action,
                ChangeRecord.entity,
                ChangeRecord.changed_at,
            )
            .where(ChangeRecord.customer_id == customer_id)
            .order_by(col(ChangeRecord.changed_at), col(ChangeRecord.id))
        )
    ).all()
    groups: dict[tuple[str, int], list[int]] = {}
    latest: dict[tuple[str, int], tuple[datetime, int]] = {}
    for line_id, review_id, action, entity, changed_at in lines:
        assert line_id is not None
        if review_id is None and action == "create" and entity == "customer" and first_review:
            review_id = first_review
        key = ("review", review_id) if review_id is not None else ("line", line_id)
        groups.setdefault(key, []).append(line_id)
        latest[key] = (changed_at, line_id)
    # newest first, by each change's last line (a decision brings its change to the top)
    return [groups[key] for key in sorted(groups, key=lambda k: latest[k], reverse=True)]


async def history(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer_id: int,
    page: int,
    page_size: int = 5,
) -> HistoryPage | None:
    """One page of a customer's history, newest change first: one entry per change, with
    who proposed and who decided it, and its fields before → after (sensitive ones masked).

    None (and an audit entry) if the actor may not see the customer. Changes of its key
    persons, visits and complaints are part of the customer's history.
    """
    customer = await customers.visible_customer(
        session, actor=actor, customer_id=customer_id, purpose="history"
    )
    if customer is None or customer.id is None:
        return None
    changes = await _changes(session, customer.id)
    total = len(changes)
    pages = max(1, math.ceil(total / page_size))
    page = min(max(page, 0), pages - 1)
    shown = changes[page * page_size : (page + 1) * page_size]
    wanted = [line_id for ids in shown for line_id in ids]
    records = {
        r.id: r
        for r in (
            await session.exec(select(ChangeRecord).where(col(ChangeRecord.id).in_(wanted)))
        ).all()
    }
    review_ids = {r.review_id for r in records.values() if r.review_id is not None}
    reviews = {
        r.id: r
        for r in (await session.exec(select(Review).where(col(Review.id).in_(review_ids)))).all()
    }
    names = await _names(
        session,
        {r.changed_by for r in records.values() if r.changed_by is not None}
        | {r.decided_by for r in reviews.values() if r.decided_by is not None},
    )
    key = await vault.data_key(session, keyring, customer.id) if records else b""
    entries = []
    for ids in shown:
        lines = [records[i] for i in ids if i in records]
        if not lines:
            continue
        first = lines[0]
        review = next((reviews[r.review_id] for r in lines if r.review_id in reviews), None)
        decided = review is not None and review.decided_by is not None
        diffs = [(r.action, vault.open_change(key, r)) for r in lines]
        entries.append(
            HistoryEntry(
                at=first.changed_at,
                entity=first.entity,
                entity_id=first.entity_id,
                action=first.action,
                by=names.get(first.changed_by) if first.changed_by is not None else None,
                changes=_merged(first.entity, diffs, decided),
                review_status=review.status if review is not None else None,
                decided_by=(
                    names.get(review.decided_by)
                    if review is not None and review.decided_by is not None
                    else None
                ),
                values_erased=any(values_erased(r) for r in lines),
                decided_at=review.decided_at if review is not None else None,
                reason=review.reason if review is not None else None,
            )
        )
    return HistoryPage(
        customer.id, customer.customer_no, customer.name, tuple(entries), page, pages, total
    )


# ---------------------------------------------------------------------------------------------
# lists: /my and /find's filters


@dataclass(frozen=True)
class ListEntry:
    """A customer as a list shows it, with how its follow-up stands today."""

    id: int
    customer_no: str
    name: str
    short_name: str | None
    customer_class: str
    status: str
    next_followup_on: date | None
    due: str | None  # overdue / today / None
    overdue_days: int


@dataclass(frozen=True)
class CustomerList:
    entries: tuple[ListEntry, ...]
    total: int
    page: int
    pages: int
    overdue: int = 0
    due_today: int = 0


def list_entry(customer: Customer, today: date) -> ListEntry:
    due, days = None, 0
    if customer.next_followup_on is not None and customer.status != RecordStatus.archived:
        if customer.next_followup_on < today:
            due, days = "overdue", (today - customer.next_followup_on).days
        elif customer.next_followup_on == today:
            due = "today"
    return ListEntry(
        id=customer.id or 0,
        customer_no=customer.customer_no,
        name=customer.name,
        short_name=customer.short_name,
        customer_class=customer.customer_class,
        status=customer.status,
        next_followup_on=customer.next_followup_on,
        due=due,
        overdue_days=days,
    )


def _followup_order() -> tuple[Any, ...]:
    """Overdue first (oldest first), then due today, then later ones; none last."""
    return (
        col(Customer.next_followup_on).is_(None),
        col(Customer.next_followup_on),
        col(Customer.name),
        col(Customer.id),
    )


async def _page(
    session: AsyncSession, where: list[Any], today: date, page: int, page_size: int
) -> tuple[tuple[ListEntry, ...], int, int, int]:
    total = (await session.exec(select(func.count()).select_from(Customer).where(*where))).one()
    pages = max(1, math.ceil(total / page_size))
    page = min(max(page, 0), pages - 1)
    rows = await session.exec(
        select(Customer)
        .where(*where)
        .order_by(*_followup_order())
        .offset(page * page_size)
        .limit(page_size)
    )
    return tuple(list_entry(c, today) for c in rows.all()), total, page, pages


async def my_customers(
    session: AsyncSession, *, actor: Staff, today: date, page: int, page_size: int = 8
) -> CustomerList:
    """/my: the actor's customers (a manager's: the team's), follow-ups due first, a page."""
    where = [customers_visible_to(actor), col(Customer.status).in_(LISTED_STATUSES)]
    entries, total, page, pages = await _page(session, where, today, page, page_size)
    due = col(Customer.next_followup_on)
    overdue = (
        await session.exec(select(func.count()).select_from(Customer).where(*where, due < today))
    ).one()
    due_today = (
        await session.exec(select(func.count()).select_from(Customer).where(*where, due == today))
    ).one()
    return CustomerList(entries, total, page, pages, overdue, due_today)


async def filtered_customers(
    session: AsyncSession,
    *,
    actor: Staff,
    filters: Filters,
    today: date,
    page: int,
    page_size: int = 8,
) -> CustomerList:
    """/find's filters without a search text: the customers they admit, follow-ups due first.

    Archived records are left out unless the status filter asks for them.
    """
    statuses = [filters.status] if filters.status else list(LISTED_STATUSES)
    where = [
        customers_visible_to(actor),
        col(Customer.status).in_([s for s in statuses if s != RecordStatus.destroyed]),
        *filters.clauses(),
    ]
    entries, total, page, pages = await _page(session, where, today, page, page_size)
    return CustomerList(entries, total, page, pages)


FREE_TEXT_FILTERS = ("industry", "region")


async def filter_values(
    session: AsyncSession, *, actor: Staff, kind: str, limit: int = 20
) -> list[str]:
    """The industries or regions of the customers the actor may see, the commonest first."""
    if kind not in FREE_TEXT_FILTERS:
        raise ValueError(kind)
    column = col(getattr(Customer, kind))
    rows = await session.exec(
        select(column, func.count())
        .where(
            customers_visible_to(actor),
            col(Customer.status) != RecordStatus.destroyed,
            column.is_not(None),
            column != "",
        )
        .group_by(column)
        .order_by(func.count().desc(), column)
        .limit(limit)
    )
    return [value for value, _count in rows.all()]
