"""The registry of reminder kinds (issue 9, item 2): every kind is one module and one row, and the
row is all the planning walk, the descriptions and the buttons read.

A new kind that misses its row, its planner, its messages or its place in the rendering order
fails here, by name, instead of being silently never planned, cancelled at delivery, or shown
last.
"""

from __future__ import annotations

import importlib

import pytest

from bot.i18n import LANGUAGES, catalog
from bot.reminder_text import KIND_ORDER
from storage import reminders as store
from storage.reminders.kinds import Kind
from storage.reminders.registry import BY_KIND, PLANNERS, REGISTRY


def test_every_kind_has_exactly_one_row() -> None:
    kinds = [entry.kind for entry in REGISTRY]
    assert sorted(kinds) == sorted(Kind)
    assert len(kinds) == len(set(kinds))


@pytest.mark.parametrize("kind", list(Kind))
def test_each_kind_lives_in_a_module_of_its_own(kind: Kind) -> None:
    """The row's description comes from the kind's module (review and complaint modules hold
    their pairs: the digest, and the warning with the overdue notice)."""
    homes = {
        Kind.review_digest: "review",
        Kind.complaint_soon: "complaint",
        Kind.complaint_overdue: "complaint",
        Kind.review: "review",
        # the team pool's three: the warning, and the notices storage.pool writes
        Kind.pool_warning: "pool",
        Kind.pool_released: "pool",
        Kind.pool_assigned: "pool",
    }
    module = importlib.import_module(f"storage.reminders.{homes.get(kind, kind.value)}")
    assert BY_KIND[kind].describe.__module__ == "storage.reminders.reading"  # per_row's
    assert BY_KIND[kind].describe in vars(module).values()


def test_every_kind_is_planned_by_some_planner_and_planners_have_distinct_names() -> None:
    names = [planner.name for planner in PLANNERS]
    assert len(names) == len(set(names))
    # kinds without a planner of their own are planned with the kind their module plans; the
    # backup report is written by the backup job itself (bot.scheduler.scheduled_backup)
    unplanned = {entry.kind for entry in REGISTRY if entry.planner is None}
    assert unplanned == {
        Kind.review_digest,
        Kind.complaint_overdue,
        Kind.pool_released,  # written by storage.pool's release job, with the release
        Kind.pool_assigned,  # written by storage.pool.assign, with the assignment
        Kind.backup,  # written by the backup job (bot.scheduler)
    }
    # the planners' names are what ReminderPlanRun remembers: renaming one re-plans from scratch
    assert names == [
        "catch_up",  # issue 14: before the follow-ups plan today, the days they missed
        "followup",
        "overdue",
        "reviews",
        "rejected",
        "complaints",
        "weekly",
        "audit_head",
        "birthday",
        "stale",
        "survey",
        "pool_warning",
        "retention",
        "complete",
        "birthday_changed",  # issue 13: new and changed key persons, every poll
        "purge",
    ]


def test_the_buttons_are_the_rows_buttons() -> None:
    assert {e.kind: e.actions for e in REGISTRY if e.actions} == store.ACTIONS
    assert set(store.ACTIONS) == {
        Kind.followup,
        Kind.review,
        Kind.rejected,
        Kind.stale,
        Kind.survey,
        Kind.pool_warning,
        Kind.pool_assigned,
        Kind.complete,
        Kind.catch_up,  # issue 14: the /today plan (td:r), checked at its press
    }


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_has_its_message_and_its_place_in_the_order(kind: Kind, language: str) -> None:
    assert f"reminders.item.{kind}" in catalog(language)
    assert kind in KIND_ORDER
