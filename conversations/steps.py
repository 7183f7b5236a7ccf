"""A flow is data: the steps of a guided form, each asked, checked, and skippable or not.

`conversations.runner` runs any `Flow` and gives it Skip / Back / Cancel, validation with a
reason and an example, the summary card with an Edit button per field, and restart-safety.
Adding a field to a flow is one `Step` here plus its messages in the catalogues:
`<flow>.ask.<field>` (the question), `field.<field>` (its label) and, for choices,
`choice.<field>.<value>`. How a field is kept, masked and shown is not the flow's business:
a record's field is declared once in the catalogue (storage.fields).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import InlineKeyboardMarkup

from bot.context import Services
from bot.i18n import Translator
from storage import validation
from storage.models import Staff


class Kind(StrEnum):
    TEXT = "text"
    CHOICE = "choice"  # buttons; with `search`, typing searches for more options
    YES_NO = "yes_no"
    LOCATION = "location"  # Telegram's location button
    MEDIA = "media"  # photos, documents and voice notes until Done


@dataclass
class FlowEnv:
    """What a flow's own functions get: who is answering, in what language, on what day."""

    services: Services
    staff: Staff
    _: Translator
    today: date


@dataclass(frozen=True)
class Option:
    """A button of a choice step: the stored value and its label (a message key or a name)."""

    value: str
    label: str
    translate: bool = True


Parser = Callable[[str, FlowEnv], Any]
OptionsProvider = Callable[[FlowEnv, AsyncSession, dict[str, Any]], Awaitable[list[Option]]]
Checker = Callable[[FlowEnv, AsyncSession, Any, dict[str, Any]], Awaitable[list[str]]]
Searcher = Callable[[FlowEnv, AsyncSession, str, dict[str, Any]], Awaitable[list[Option]]]


@dataclass(frozen=True)
class Step:
    """One question of a flow."""

    field: str
    kind: Kind = Kind.TEXT
    required: bool = False
    parse: Parser | None = None
    example: str | None = None  # message key of an example answer
    choices: Sequence[str] = ()  # static values; labels are `choice.<field>.<value>`
    options: OptionsProvider | None = None  # dynamic values (teams, customers)
    when: Callable[[dict[str, Any]], bool] | None = None
    check: Checker | None = None  # warnings after a valid answer (duplicates)
    columns: int = 2
    prompt_values: Callable[[FlowEnv, dict[str, Any]], dict[str, object]] | None = None
    display: Callable[[Any, Translator], Any] | None = None  # how the summary shows the value
    search: Searcher | None = None  # typed text on a choice question looks for options
    page_size: int = 8
    editable: bool = True  # offered as an Edit button on the summary
    default: Callable[[FlowEnv, dict[str, Any]], str] | None = None  # what a skip stands for
    # the part of the flow it belongs to: the counter says "<section> · n of m", m counting the
    # section's questions that apply, which only earlier sections' answers may change
    section: str | None = None
    counted: bool = True  # False: a question about the flow itself (save now?), not counted
    finishes: str | None = None  # the answer that saves the record now, leaving the rest
    # a shared Telegram contact answers it: its phone goes to this field (the step's own, or a
    # later one, the contact's name then answering this step)
    contact: str | None = None
    place: bool = False  # a shared location answers it (its coordinates as text)
    # False: an option already means what Skip would ("No change"), so no Skip button
    skip_button: bool = True

    def applies(self, data: dict[str, Any]) -> bool:
        return self.when is None or self.when(data)


@dataclass(frozen=True)
class Submitted:
    """What the user is told after a flow saved its record, and what may follow."""

    text: str
    markup: InlineKeyboardMarkup | None = None
    after: Callable[[Any, int], Awaitable[None]] | None = None  # (context, chat_id)


Submit = Callable[[FlowEnv, AsyncSession, dict[str, Any]], Awaitable[Submitted]]


@dataclass(frozen=True)
class Flow:
    name: str
    steps: tuple[Step, ...]
    submit: Submit
    confirm: bool = True  # show the summary card before submitting
    disposable: bool = False  # another flow may replace its draft without asking
    # editing a record: Skip keeps the stored value; an optional field with a value offers
    # Clear. `has_value(data, field)` says whether the record holds a value to clear.
    skip_keeps: bool = False
    has_value: Callable[[dict[str, Any], str], bool] | None = None
    start_data: Callable[[FlowEnv], dict[str, Any]] = field(default=lambda env: {})
    # checks answers given at the start (e.g. the customer of a card); None refuses the start
    prepare: Callable[[FlowEnv, AsyncSession, dict[str, Any]], Awaitable[dict[str, Any] | None]] | (
        None
    ) = None

    def step(self, name: str | None) -> Step | None:
        return next((s for s in self.steps if s.field == name), None)

    def index(self, name: str | None) -> int:
        return self._positions.get(name, -1)

    @functools.cached_property
    def _positions(self) -> dict[str | None, int]:
        """Each field's place, the first step asking it (a summary asks one per field)."""
        positions: dict[str | None, int] = {}
        for place, step in enumerate(self.steps):
            positions.setdefault(step.field, place)
        return positions

    def applicable(self, data: dict[str, Any]) -> list[Step]:
        return [s for s in self.steps if s.applies(data)]

    def next_step(self, after: str | None, data: dict[str, Any]) -> Step | None:
        start = self.index(after) + 1 if after else 0
        return next((s for s in self.steps[start:] if s.applies(data)), None)

    def previous_step(self, before: str | None, data: dict[str, Any]) -> Step | None:
        end = self.index(before)
        return next((s for s in reversed(self.steps[:end]) if s.applies(data)), None)

    def first_missing(self, data: dict[str, Any], *, required_only: bool = False) -> Step | None:
        """The first applicable question never answered (a required one must have a value);
        `required_only`: the first required one without a value (what saving now needs)."""
        for step in self.applicable(data):
            empty = data.get(step.field) in (None, "", [])
            if required_only and not (step.required and step.counted):
                continue
            if step.field not in data or (step.required and empty):
                return step
        return None

    def counter(self, step: Step, data: dict[str, Any]) -> tuple[int, int] | None:
        """(n, m) of "n of m": the step's place among its section's questions that apply."""
        if not step.counted:
            return None
        same = [s for s in self.applicable(data) if s.counted and s.section == step.section]
        names = [s.field for s in same]
        if step.field not in names:
            return None
        return names.index(step.field) + 1, len(names)


def show_phones(value: Any, _: Translator) -> Any:
    if isinstance(value, list):
        return [validation.format_phone(v) for v in value]
    return validation.format_phone(value)


# Parsers: each wraps a rule of storage.validation for use as a step's `parse`.
def text(max_len: int) -> Parser:
    return lambda value, env: validation.text(value, max_len=max_len)


def phones(value: str, env: FlowEnv) -> list[str]:
    return validation.phones(value)


def phone(value: str, env: FlowEnv) -> str:
    return validation.phone(value)


def email(value: str, env: FlowEnv) -> str:
    return validation.email(value)


def website(value: str, env: FlowEnv) -> str:
    return validation.website(value)


def tax_number(value: str, env: FlowEnv) -> str:
    return validation.tax_number(value)


def bank_account(value: str, env: FlowEnv) -> str:
    return validation.bank_account(value)


def any_date(value: str, env: FlowEnv) -> str:
    return validation.day(
        value,
        today=env.today,
        earliest=validation.EARLIEST_BIRTHDAY,
        latest=validation.years_after(env.today, validation.FOLLOWUP_YEARS),
    ).isoformat()


def past_date(value: str, env: FlowEnv) -> str:
    """A day that happened in the archive's time: from 2000 to today (a consent, a deal)."""
    return validation.day(
        value,
        today=env.today,
        future_ok=False,
        earliest=validation.EARLIEST_RECORD,
        latest=env.today,
    ).isoformat()


def birthday(value: str, env: FlowEnv) -> str:
    return validation.day(
        value,
        today=env.today,
        future_ok=False,
        earliest=validation.EARLIEST_BIRTHDAY,
        latest=env.today,
    ).isoformat()


def future_date(value: str, env: FlowEnv) -> str:
    """A planned day: from today to a few years ahead (a follow-up)."""
    return validation.day(
        value,
        today=env.today,
        past_ok=False,
        earliest=env.today,
        latest=validation.years_after(env.today, validation.FOLLOWUP_YEARS),
    ).isoformat()


def place_text(latitude: float, longitude: float) -> str:
    """A shared location written as an address answer: offline there is no reverse geocoding,
    so its coordinates (about a metre at five decimals)."""
    return f"📍 {latitude:.5f}, {longitude:.5f}"
