"""The kinds of reminder (SPEC section 7), and the record states they care about."""

from __future__ import annotations

from enum import StrEnum

from storage.models import ComplaintStatus, RecordStatus


class Kind(StrEnum):
    followup = "followup"  # the owner's follow-up is due (today, or overdue)
    overdue = "overdue"  # a follow-up overdue by OVERDUE_ESCALATION_DAYS → the team's managers
    review = "review"  # still pending after REVIEW_REMINDER_HOURS → whoever may decide it
    review_digest = "review_digest"  # every morning: all pending reviews one may decide
    rejected = "rejected"  # rejected, not resubmitted after REJECTED_REMINDER_DAYS → submitter
    complaint_soon = "complaint_soon"  # due within COMPLAINT_WARNING_HOURS → handler, managers
    complaint_overdue = "complaint_overdue"  # past its due time → handler, managers
    birthday = "birthday"  # a key person's birthday, BIRTHDAY_NOTICE_DAYS before and on the day
    stale = "stale"  # approved, not checked for STALE_RECORD_DAYS → owner confirms
    survey = "survey"  # every SURVEY_INTERVAL_DAYS of cooperation → owner asks the customer
    weekly = "weekly"  # the week in numbers → managers and admins
    audit_head = "audit_head"  # every AUDIT_HEAD_DAYS: the audit log's head (id, MAC) → admins
    pool_warning = "pool_warning"  # POOL_WARNING_DAYS before a customer goes to the pool → owner
    pool_released = "pool_released"  # it went to the team pool → its last owner
    pool_assigned = "pool_assigned"  # a manager assigned it from the pool → the new owner
    backup = "backup"  # after each scheduled backup: how it went (or why it failed) → admins
    complete = "complete"  # saved with its essentials only → its owner, once, to complete it
    catch_up = "catch_up"  # after whole days without polls: what fell due, one message a person
    retention = (
        "retention"  # monthly: archived past RETENTION_YEARS, to propose destroying → admins
    )


# customers whose follow-ups matter: not drafts, not archived or destroyed
LIVE = (RecordStatus.pending, RecordStatus.approved, RecordStatus.rejected)
OPEN_COMPLAINTS = (ComplaintStatus.open, ComplaintStatus.in_progress, ComplaintStatus.reopened)
