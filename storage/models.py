"""All tables of the customer archive, in one module (SQLModel).

Sensitive values never get a clear-text column: they live in a `sealed` blob encrypted with the
owning customer's data key (see `storage.crypto`), so erasing that key erases them everywhere,
history included. Enumerations are stored as short strings so both SQLite and PostgreSQL read them
the same way and adding a value needs no migration.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.orm import Mapped, relationship
from sqlmodel import Field, Relationship, SQLModel

from storage.types import UTCDateTime, utcnow

# Named constraints: later migrations alter them the same way on SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _created() -> datetime:
    return utcnow()


class Role(StrEnum):
    salesperson = "salesperson"
    manager = "manager"
    admin = "admin"


class CustomerKind(StrEnum):
    company = "company"
    individual = "individual"


class CustomerClass(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


class Stage(StrEnum):
    """Pipeline stage in the seeds' words (红/黄/青/烂苹果)."""

    red = "red"
    yellow = "yellow"
    green = "green"
    rotten = "rotten"


class DealStatus(StrEnum):
    none = "none"
    first = "first"
    repeat = "repeat"
    key_account = "key_account"


class CustomerSource(StrEnum):
    visit = "visit"
    referral = "referral"
    internet = "internet"
    exhibition = "exhibition"
    phone = "phone"
    other = "other"


class CustomerSize(StrEnum):
    micro = "micro"
    small = "small"
    medium = "medium"
    large = "large"


class RecordStatus(StrEnum):
    draft = "draft"
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    archived = "archived"
    destroyed = "destroyed"


class KeyPersonRole(StrEnum):
    decision_maker = "decision_maker"
    referrer = "referrer"
    influencer = "influencer"
    user = "user"
    finance = "finance"


class VisitKind(StrEnum):
    on_site = "on_site"
    phone = "phone"
    online = "online"
    other = "other"


class ComplaintType(StrEnum):
    quality = "quality"
    service = "service"
    delivery = "delivery"
    billing = "billing"
    other = "other"


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class ComplaintStatus(StrEnum):
    open = "open"
    in_progress = "in_progress"
    resolved = "resolved"  # resolved, awaiting approval
    closed = "closed"
    reopened = "reopened"


class ReviewKind(StrEnum):
    customer_new = "customer_new"
    customer_change = "customer_change"
    complaint_resolution = "complaint_resolution"
    archive = "archive"  # 合作终止: approved → archived (storage.life_cycle)
    reactivate = "reactivate"  # archived → approved again
    destroy = "destroy"  # 销毁: personal data erased, a tombstone stays (storage.erasure)
    complaint_removal = "complaint_removal"  # a complaint erased for good (storage.removals)


class ReviewStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    withdrawn = "withdrawn"


class ReminderStatus(StrEnum):
    pending = "pending"
    sending = "sending"  # claimed by a sender until `next_attempt_at` (its lease)
    sent = "sent"
    failed = "failed"
    cancelled = "cancelled"


class HandoverReason(StrEnum):
    leave = "leave"  # 离职: deactivated
    move = "move"  # 调岗: moved to another team


class HandoverStatus(StrEnum):
    open = "open"  # successors being chosen; the records still wait
    done = "done"
    cancelled = "cancelled"


class Transfer(StrEnum):
    """Why a customer changed hands: its history action and audit action."""

    handover = "handover"  # 离职/调岗交接
    reassign = "reassign"  # 在职继承
    pool_release = "pool_release"  # into the team pool
    pool_claim = "pool_claim"  # claimed from it by a salesperson
    pool_assign = "pool_assign"  # assigned from it by a manager


class Timestamped(SQLModel):
    """Created/updated stamps every table carries."""

    created_at: datetime = Field(default_factory=_created, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=_created, sa_type=UTCDateTime, nullable=False)


class Team(Timestamped, table=True):
    __tablename__ = "teams"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    manager_chat_id: int | None = Field(default=None, sa_type=BigInteger)
    # the bot was removed from that group or may no longer post there (my_chat_member): cards
    # go to the managers privately until it is back
    manager_chat_lost_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Staff(Timestamped, table=True):
    __tablename__ = "staff"

    id: int | None = Field(default=None, primary_key=True)
    telegram_id: int = Field(sa_type=BigInteger, unique=True, index=True)
    display_name: str = Field(max_length=200)
    role: str = Field(max_length=20)  # Role
    team_id: int | None = Field(default=None, foreign_key="teams.id", index=True)
    language: str | None = Field(default=None, max_length=5)  # None: follow Telegram's
    timezone: str | None = Field(default=None, max_length=64)  # None: TIMEZONE setting
    quiet_hours: str | None = Field(default=None, max_length=10)  # None: QUIET_HOURS setting
    active: bool = Field(default=True)
    version: int = Field(default=1)
    # when the person last used the bot (the gate writes it at most once an hour), for /staff
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # the teams a manager leads besides `team_id`, loaded with every Staff however it is loaded
    # (one extra SELECT ... IN per query): the permission predicates are synchronous and must
    # see them (storage.permissions.teams_of, storage.team_leads)
    team_leads: Mapped[list[TeamLead]] = Relationship(
        sa_relationship=relationship(
            "TeamLead",
            uselist=True,
            lazy="selectin",
            cascade="all, delete-orphan",
            order_by="TeamLead.team_id",
        )
    )


@event.listens_for(Staff, "init")
def _new_staff_leads_no_other_team(target: Staff, args: Any, kwargs: dict[str, Any]) -> None:
    """A Staff made here (not loaded) starts with its led teams loaded, as none: without this,
    reading them after its INSERT would try a lazy load, which an async session cannot do."""
    kwargs.setdefault("team_leads", [])


class StaffChanges(SQLModel, table=True):
    """One row whose `stamp` database triggers renew at every change to staff or team_leads
    (migration 0015), whichever process makes it: the gate's member cache is valid while the
    stamp it was filled under is still the one stored (bot/gate.py)."""

    __tablename__ = "staff_changes"

    id: int | None = Field(default=None, primary_key=True)
    stamp: int = Field(sa_type=BigInteger)


class TeamLead(SQLModel, table=True):
    """A team a manager leads besides their own `Staff.team_id` (SPEC section 10: a sales
    director over several teams)."""

    __tablename__ = "team_leads"

    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    team_id: int = Field(foreign_key="teams.id", primary_key=True, index=True)
    created_at: datetime = Field(default_factory=_created, sa_type=UTCDateTime, nullable=False)


class Invite(Timestamped, table=True):
    """A one-time join link; only a hash of its token is stored."""

    __tablename__ = "invites"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    role: str = Field(max_length=20)
    team_id: int | None = Field(default=None, foreign_key="teams.id")
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_by: int | None = Field(default=None, foreign_key="staff.id")


class NumberSequence(SQLModel, table=True):
    """Counters behind human-readable numbers (KH-2026-000123); values are never reused."""

    __tablename__ = "number_sequences"

    name: str = Field(primary_key=True, max_length=40)
    value: int = Field(default=0)


class DataKey(Timestamped, table=True):
    """A customer's data key, wrapped by a master key. Erasing `wrapped` crypto-shreds the data."""

    __tablename__ = "data_keys"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", unique=True, index=True)
    kek_id: str = Field(max_length=16)
    wrapped: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class BlindIndex(SQLModel, table=True):
    """Keyed hashes for exact look-up of encrypted values (phones, tax numbers)."""

    __tablename__ = "blind_index"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    digest: str = Field(max_length=64, index=True)
    kek_id: str = Field(max_length=16)
    customer_id: int = Field(foreign_key="customers.id", index=True)
    # indexed: a key person's edit, deletion and re-indexing in a key rotation delete by it
    key_person_id: int | None = Field(default=None, foreign_key="key_persons.id", index=True)


# the columns of the planners' covering indexes: a follow-up date range (or a class cycle after
# the last visit) first, then what the planners filter on and read (id for PostgreSQL's
# index-only scans; SQLite's indexes hold the rowid anyway)
FOLLOWUP_DUE = (
    "next_followup_on", "status", "pooled_at", "last_visit_on", "owner_id", "team_id", "id"
)  # fmt: skip
VISIT_DUE = (
    "last_visit_on", "next_followup_on", "customer_class", "status", "pooled_at", "owner_id",
    "team_id", "id",
)  # fmt: skip
# an approved record out of the pool, per owner, oldest first: re-check prompts by the day it was
# last checked (or approved), survey prompts by the day it was approved. Partial (out of the pool
# only): PostgreSQL reads `pooled_at IS NULL` as a filter, not an equality, so with pooled_at a
# column it sorted each owner's rows instead of reading them in the index's order.
OWNER_DUE = ("owner_id", "status")
OUT_OF_POOL = "pooled_at IS NULL"
RECHECK_BASIS = "coalesce(last_checked_at, approved_at)"


class Customer(Timestamped, table=True):
    """客户档案. Clear columns are what lists and filters need; the rest is sealed."""

    __tablename__ = "customers"
    # recent customers, and the search index's "what changed since" (storage.search); the
    # reminder planners' date ranges (storage.reminders.followup), read from the index alone:
    # over a million customers a week of them is 70,000 rows, each a look-up in the table
    # otherwise (issue 14)
    __table_args__ = (
        Index("ix_customers_updated_at", "updated_at"),
        Index("ix_customers_followup_due", *FOLLOWUP_DUE),
        Index("ix_customers_visit_due", *VISIT_DUE),
        # the daily planners' "oldest few per owner" (storage.reminders.planning.first_per_owner)
        Index(
            "ix_customers_recheck_due",
            *OWNER_DUE,
            text(RECHECK_BASIS),
            sqlite_where=text(OUT_OF_POOL),
            postgresql_where=text(OUT_OF_POOL),
        ),
        Index(
            "ix_customers_survey_due",
            *OWNER_DUE,
            "approved_at",
            sqlite_where=text(OUT_OF_POOL),
            postgresql_where=text(OUT_OF_POOL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_no: str = Field(max_length=20, unique=True, index=True)
    kind: str = Field(max_length=20)
    name: str = Field(max_length=200, index=True)
    short_name: str | None = Field(default=None, max_length=100)
    industry: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    parent_org: str | None = Field(default=None, max_length=200)
    size: str | None = Field(default=None, max_length=20)
    profile: str | None = Field(default=None, sa_type=Text)
    source: str | None = Field(default=None, max_length=20)
    website: str | None = Field(default=None, max_length=200)
    customer_class: str = Field(default=CustomerClass.C, max_length=1, index=True)
    stage: str | None = Field(default=None, max_length=10)
    deal_status: str = Field(default=DealStatus.none, max_length=20)
    credit_status: str | None = Field(default=None, max_length=200)
    trade_notes: str | None = Field(default=None, sa_type=Text)
    consent_given: bool = Field(default=False)
    # phones, email, wechat, address, financial data, consent details:
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    owner_id: int = Field(foreign_key="staff.id", index=True)
    team_id: int | None = Field(default=None, foreign_key="teams.id", index=True)
    status: str = Field(default=RecordStatus.draft, max_length=20, index=True)
    next_followup_on: date | None = Field(default=None)  # ix_customers_followup_due
    last_visit_on: date | None = Field(default=None)  # ix_customers_visit_due
    last_checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    destroyed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # in the team pool (公海) since then; `owner_id` keeps the last owner meanwhile, who no
    # longer sees it as their own (storage.permissions)
    pooled_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # when the present owner claimed it from the pool: the claim limit counts these
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int = Field(default=1)
    # bumped with every write of `sealed`, which is bound to it (storage.vault.seal_customer)
    sealed_seq: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # verified check-in (storage.checkin): where the customer is, sealed with its data key (a
    # person's home is personal data), so destroying the key erases it; when it was set
    location_sealed: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary, nullable=True)
    )
    location_set_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class KeyPerson(Timestamped, table=True):
    """关键联系人 of a customer; phones and birthday are sealed."""

    __tablename__ = "key_persons"
    # birthday planning: "which key persons changed since the last poll?"
    __table_args__ = (Index("ix_key_persons_updated_at", "updated_at"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", index=True)
    name: str = Field(max_length=100)
    title: str | None = Field(default=None, max_length=100)
    role: str | None = Field(default=None, max_length=20)
    influence: int | None = Field(default=None)  # 90 / 70 / 50 / 30 (%)
    notes: str | None = Field(default=None, sa_type=Text)
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    version: int = Field(default=1)


class Visit(Timestamped, table=True):
    """拜访记录."""

    __tablename__ = "visits"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", index=True)
    salesperson_id: int = Field(foreign_key="staff.id", index=True)
    visited_at: datetime = Field(sa_type=UTCDateTime)
    kind: str = Field(max_length=20)
    latitude: float | None = None
    longitude: float | None = None
    accuracy_m: float | None = None
    purpose: str | None = Field(default=None, sa_type=Text)
    discussion: str | None = Field(default=None, sa_type=Text)
    needs_feedback: str | None = Field(default=None, sa_type=Text)
    outcome: str | None = Field(default=None, sa_type=Text)
    stage_change: str | None = Field(default=None, max_length=10)
    next_followup_on: date | None = None
    version: int = Field(default=1)
    # verified check-in (storage.checkin): metres from the customer's location, and whether
    # that is past CHECKIN_RADIUS_M; check-in and check-out moments (the visit's duration)
    checkin_distance_m: float | None = None
    checkin_flagged: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    checked_in_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    checked_out_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Attachment(Timestamped, table=True):
    """A Telegram photo, document or voice note, kept by file_id."""

    __tablename__ = "attachments"

    id: int | None = Field(default=None, primary_key=True)
    visit_id: int | None = Field(default=None, foreign_key="visits.id", index=True)
    complaint_id: int | None = Field(default=None, foreign_key="complaints.id", index=True)
    kind: str = Field(max_length=20)  # photo / document / voice
    file_id: str = Field(max_length=255)
    file_unique_id: str | None = Field(default=None, max_length=100)


class Complaint(Timestamped, table=True):
    """投诉."""

    __tablename__ = "complaints"

    id: int | None = Field(default=None, primary_key=True)
    complaint_no: str = Field(max_length=20, unique=True, index=True)
    customer_id: int = Field(foreign_key="customers.id", index=True)
    received_by: int = Field(foreign_key="staff.id")
    received_at: datetime = Field(sa_type=UTCDateTime)
    channel: str | None = Field(default=None, max_length=20)
    type: str = Field(max_length=20)
    severity: str = Field(max_length=10)
    description: str = Field(sa_type=Text)
    handler_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    status: str = Field(default=ComplaintStatus.open, max_length=20, index=True)
    resolution: str | None = Field(default=None, sa_type=Text)
    approver_id: int | None = Field(default=None, foreign_key="staff.id")
    feedback: str | None = Field(default=None, sa_type=Text)
    feedback_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime, index=True)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int = Field(default=1)


class Review(Timestamped, table=True):
    """审核: one submission awaiting (or having had) a decision."""

    __tablename__ = "reviews"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=30)
    status: str = Field(default=ReviewStatus.pending, max_length=20, index=True)
    customer_id: int | None = Field(default=None, foreign_key="customers.id", index=True)
    complaint_id: int | None = Field(default=None, foreign_key="complaints.id")
    team_id: int | None = Field(default=None, foreign_key="teams.id", index=True)
    submitted_by: int = Field(foreign_key="staff.id")
    submitted_at: datetime = Field(default_factory=_created, sa_type=UTCDateTime)
    decided_by: int | None = Field(default=None, foreign_key="staff.id")
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason: str | None = Field(default=None, sa_type=Text)  # the decider's (required to reject)
    # why the submitter asks, for requests that are not record contents (archive, reactivate,
    # destroy): kept with a destruction as its record of why
    request_reason: str | None = Field(default=None, sa_type=Text)
    # field-by-field difference of a change, sealed with the customer's data key
    changes_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # existing customers the submission looked like, found when it was filed: JSON
    # [[customer id, "phone" | "tax_no" | "name"], ...]; ids and reasons only, no personal data
    duplicates: str | None = Field(default=None, sa_type=Text)
    version: int = Field(default=1)


class ChangeRecord(SQLModel, table=True):
    """变更记录: one field-by-field difference of a record, sealed with the customer's data key."""

    __tablename__ = "change_records"

    id: int | None = Field(default=None, primary_key=True)
    entity: str = Field(max_length=20)  # customer / key_person / visit / complaint
    entity_id: int = Field(index=True)
    customer_id: int = Field(foreign_key="customers.id", index=True)
    action: str = Field(max_length=20)  # create / update / submit / approve / reject / ...
    changed_by: int | None = Field(default=None, foreign_key="staff.id")
    changed_at: datetime = Field(default_factory=_created, sa_type=UTCDateTime)
    review_id: int | None = Field(default=None, foreign_key="reviews.id")
    diff_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class AuditEntry(SQLModel, table=True):
    """访问日志: append-only, each entry chained to the previous one by hash."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=_created, sa_type=UTCDateTime)
    actor_telegram_id: int | None = Field(default=None, sa_type=BigInteger)
    actor_staff_id: int | None = Field(default=None)
    action: str = Field(max_length=40, index=True)
    entity: str | None = Field(default=None, max_length=20)
    entity_id: int | None = Field(default=None)
    detail: str | None = Field(default=None, sa_type=Text)  # JSON, never personal data
    prev_hash: str = Field(max_length=64, unique=True)  # a fork (two successors) is refused
    hash: str = Field(max_length=64, unique=True)


class AuditKey(SQLModel, table=True):
    """The audit log's MAC key (one row), wrapped by a master key and re-wrapped by rotate-keys,
    so the chain outlives every master key. `legacy_upto` is the last entry chained by plain
    SHA-256 before this key existed; it is bound into the wrapping, so it cannot be moved."""

    __tablename__ = "audit_keys"

    id: int | None = Field(default=None, primary_key=True)
    kek_id: str = Field(max_length=16)
    wrapped: bytes = Field(sa_type=LargeBinary)
    legacy_upto: int = Field(default=0)
    created_at: datetime = Field(default_factory=_created, sa_type=UTCDateTime)


class Reminder(Timestamped, table=True):
    """Outbox of scheduled notices; the unique key makes planning idempotent."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("dedup_key"),
        # planning: "is there already a reminder of this kind about this record for that day?"
        Index("ix_reminders_subject", "subject_id", "kind", "period_on"),
        # delivery: "what is pending (or whose lease ran out) and due by now?"
        Index("ix_reminders_delivery", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str = Field(max_length=200)  # kind:subject:recipient:period
    kind: str = Field(max_length=30)
    subject_type: str | None = Field(default=None, max_length=20)
    subject_id: int | None = None
    # None only for a message to a chat rather than a person (a team's review group chat)
    recipient_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    due_at: datetime = Field(sa_type=UTCDateTime, index=True)
    status: str = Field(default=ReminderStatus.pending, max_length=20, index=True)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    period_on: date | None = None  # the day it is about (a follow-up date), for planning
    payload: str | None = Field(default=None, sa_type=Text)  # JSON, never personal data
    chat_id: int | None = Field(default=None, sa_type=BigInteger)  # where it was sent
    message_id: int | None = Field(default=None, sa_type=BigInteger)
    snoozed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acted: str | None = Field(default=None, max_length=20)  # done / snoozed / rescheduled / ...
    acted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # the sender instance (SenderInstance.token) holding the claim, while status is sending
    claimed_by: str | None = Field(default=None, max_length=32)


class SenderInstance(SQLModel, table=True):
    """A running bot process that claims reminders; its heartbeat tells the others it lives,
    so a restart takes back what a crashed one had claimed at once, never a live one's."""

    __tablename__ = "sender_instances"

    token: str = Field(primary_key=True, max_length=32)
    started_at: datetime = Field(sa_type=UTCDateTime)
    seen_at: datetime = Field(sa_type=UTCDateTime)


class Draft(Timestamped, table=True):
    """A half-finished guided flow; answers are sealed under a master-derived key."""

    __tablename__ = "drafts"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", unique=True)
    flow: str = Field(max_length=30)
    step: str | None = Field(default=None, max_length=40)
    mode: str = Field(default="ask", max_length=10)  # ask / summary / edit / expired
    token: int = Field(default=1)  # bumped at each prompt; stale buttons carry an older one
    # the token of the last prompt Telegram accepted; an answer to an undelivered one is not
    # taken (NULL: a draft from before this column, taken as delivered)
    shown_token: int | None = Field(default=None)
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class ReviewNotice(SQLModel, table=True):
    """Where a review's card was sent, so a decision can edit every copy of it in place."""

    __tablename__ = "review_notices"

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(foreign_key="reviews.id", index=True)
    chat_id: int = Field(sa_type=BigInteger)
    message_id: int = Field(sa_type=BigInteger)
    sent_at: datetime = Field(default_factory=_created, sa_type=UTCDateTime)
    full: bool = Field(default=False)  # the full card a decider opened, not the short notice


class ReminderPlanRun(SQLModel, table=True):
    """When each reminder planner last ran: a restart catches up from here, and the heavy
    planners (birthdays need decryption) run a few times a day rather than every poll."""

    __tablename__ = "reminder_plan_runs"

    name: str = Field(primary_key=True, max_length=30)
    ran_at: datetime = Field(sa_type=UTCDateTime)


class ReminderPlanCursor(SQLModel, table=True):
    """How far a dated planner (follow-ups, their escalation) has planned: the last day it
    planned, the customers' newest change and highest id it had seen, and a mark of the staff
    and rules it planned with. A poll re-reads only new days and customers changed since; a
    staff or rules change (another mark) re-reads the whole window."""

    __tablename__ = "reminder_plan_cursors"

    name: str = Field(primary_key=True, max_length=30)
    # the first day it plans (days before it were told of in a catch-up), the last it planned
    planned_from: date
    planned_through: date
    changes_seen: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_customer_id: int = 0
    mark: str = Field(max_length=64)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class DuplicateCheckCount(SQLModel, table=True):
    """How many duplicate look-ups a person made on a day: DUPLICATE_CHECKS_PER_DAY caps them,
    so the check cannot be used to probe the archive for phone and tax numbers."""

    __tablename__ = "duplicate_check_counts"

    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    day: date = Field(primary_key=True)
    count: int = Field(default=0)


class Handover(Timestamped, table=True):
    """交接: the records of someone who left or moved, waiting for their successors. Kept in
    the database so a restart in the middle resumes it; `done` once everything moved."""

    __tablename__ = "handovers"

    id: int | None = Field(default=None, primary_key=True)
    from_staff_id: int = Field(foreign_key="staff.id", index=True)
    started_by: int | None = Field(default=None, foreign_key="staff.id")  # None: command line
    reason: str = Field(max_length=10)  # HandoverReason
    new_team_id: int | None = Field(default=None, foreign_key="teams.id")  # a move's new team
    successor_id: int | None = Field(default=None, foreign_key="staff.id")  # one for all
    status: str = Field(default=HandoverStatus.open, max_length=10, index=True)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int = Field(default=1)


class HandoverPick(SQLModel, table=True):
    """A split hand-over: this customer goes to this successor (the rest to `successor_id`)."""

    __tablename__ = "handover_picks"

    handover_id: int = Field(foreign_key="handovers.id", primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", primary_key=True)
    successor_id: int = Field(foreign_key="staff.id")


class ReassignPick(SQLModel, table=True):
    """A customer someone ticked in /my to reassign with others (在职继承), with its owner when
    ticked: the selection survives page turns and restarts, and is checked again on confirm."""

    __tablename__ = "reassign_picks"

    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", primary_key=True)
    owner_id: int = Field(foreign_key="staff.id")
    picked_at: datetime = Field(default_factory=_created, sa_type=UTCDateTime, nullable=False)


class ImportStatus(StrEnum):
    awaiting = "awaiting"  # /import sent the template; the filled file is awaited
    checked = "checked"  # a dry run reported on a file; waiting for confirmation
    done = "done"  # its accepted rows became customers
    cancelled = "cancelled"


class Import(Timestamped, table=True):
    """一次导入: a spreadsheet import between its dry run and its confirmation.

    No personal data of a pending import is kept: only the file's Telegram id, size and
    checksum (the file is fetched again at confirmation and must be the same), and counts."""

    __tablename__ = "imports"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)  # who imports
    status: str = Field(default=ImportStatus.awaiting, max_length=12, index=True)
    file_id: str | None = Field(default=None, max_length=255)
    file_size: int | None = Field(default=None)
    checksum: str | None = Field(default=None, max_length=64)  # SHA-256 of the file
    rows: int = Field(default=0)
    accepted: int = Field(default=0)
    rejected: int = Field(default=0)
    # SHA-256 over the accepted rows' numbers and owners: a confirmation whose re-check
    # accepts other rows than the dry run showed writes nothing
    accepted_digest: str | None = Field(default=None, max_length=64)
    customers: int = Field(default=0)  # how many it created
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int = Field(default=1)
