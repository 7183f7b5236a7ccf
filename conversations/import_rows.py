"""The rows of an import checked exactly as /new checks answers.

The columns are the catalogue's (storage.fields `Place.import_`) plus an optional owner column
(the owner's Telegram id: names are not unique, ids are). Each row goes through /new's own
steps (conversations/new_customer.STEPS): the same parsers (phones via phonenumbers, tax
numbers with their check character, dates in their ranges, lengths), the same choices, the same
required questions and the same "applies when" rules, then `new_customer.values_of` makes the
record's values as /new's submit does. Duplicates are looked up as /new's are
(storage.customers, the same blind indexes and name rule), for all rows at once, and worded as
/new words them (conversations.duplicates: details only of customers the importer may see);
rows repeating an earlier row of the same file are rejected too.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import LANGUAGES, Translator, translate
from conversations import duplicates as wording
from conversations import new_customer
from conversations.spreadsheet import BadFile, Sheet
from conversations.steps import FlowEnv, Kind, Step
from storage import customers, fields, imports, permissions, validation
from storage.customers import CustomerCreate, Duplicate, Match, Query
from storage.models import Staff

OWNER = "owner"  # the owner column's name (its header is `import.column.owner`)
COLUMNS: tuple[str, ...] = (
    *fields.fields_at(fields.Record.customer, fields.Place.import_),
    OWNER,
)
STEPS: dict[str, Step] = {
    s.field: s for s in new_customer.STEPS if s.field not in new_customer.GATES
}
# fields /new asks only after "has financial data?": a value in any of them answers it yes
FINANCE_FIELDS = frozenset(
    s.field
    for s in STEPS.values()
    if not s.applies({"kind": "company", "finance": "no", "consent_given": "yes"})
    and s.applies({"kind": "company", "finance": "yes", "consent_given": "yes"})
)
# columns a file must have: questions /new always asks and never lets one skip
REQUIRED_COLUMNS = tuple(f for f, s in STEPS.items() if s.required and s.when is None)
_YES = {"yes", "y", "true", "1"}  # besides `common.yes` in every language
_NO = {"no", "n", "false", "0"}
_TELEGRAM_ID = re.compile(r"[0-9]{1,15}")
_SYMBOLS = re.compile(r"^[^\w]+")  # a label's leading emoji and spaces


def header_label(_: Translator, column: str) -> str:
    return _("import.column.owner") if column == OWNER else _(f"field.{column}")


def _key(text: str) -> str:
    """How two spellings of a header, label or name compare: no spaces, no case."""
    return "".join(text.split()).casefold()


def _headers_by_label() -> dict[str, str]:
    """Every language's header of every column, to the column: a file in either language."""
    known: dict[str, str] = {}
    for language in LANGUAGES:
        _ = Translator(language)
        for column in COLUMNS:
            known[_key(header_label(_, column))] = column
            known[_key(column)] = column
    return known


def choice_labels(_: Translator, column: str) -> list[str]:
    """The drop-down list of a choice column, in the user's language."""
    step = STEPS[column]
    if step.kind == Kind.YES_NO:
        return [_("common.yes"), _("common.no")]
    return [_(f"choice.{column}.{value}") for value in step.choices]


def _choice_value(step: Step, text: str) -> str | None:
    """A choice cell's stored value: its label in either language, or the value itself."""
    return _choices(step.field).get(_key(text))


@cache
def _choices(name: str) -> dict[str, str]:
    """What may be typed for each value of a choice column (read once, not per cell)."""
    step = STEPS[name]
    if step.kind == Kind.YES_NO:
        yes = {_key(translate(lang, "common.yes")) for lang in LANGUAGES} | _YES
        no = {_key(translate(lang, "common.no")) for lang in LANGUAGES} | _NO
        return {**dict.fromkeys(no, "no"), **dict.fromkeys(yes, "yes")}
    table: dict[str, str] = {}
    for value in step.choices:
        for lang in LANGUAGES:
            for form in _label_forms(translate(lang, f"choice.{name}.{value}")):
                table.setdefault(form, value)
        table[_key(value)] = value
    return table


def _label_forms(label: str) -> set[str]:
    """A label as people type it: whole, without its leading emoji, or only its name before a
    colon (`🍎 红苹果:即将成交` is also `红苹果:即将成交` and `红苹果`)."""
    bare = _SYMBOLS.sub("", label)
    head = re.split(r"[:：]", bare, maxsplit=1)[0]
    return {_key(label), _key(bare), _key(head)} - {""}


# the rejected-rows file's own columns: ignored when it comes back fixed
IGNORED_HEADERS = ("import.column.row", "import.column.reason")


def columns_of(sheet: Sheet) -> list[str | None]:
    """Which column each header names; BadFile for an unknown, repeated or missing one."""
    known = _headers_by_label()
    ignored = {_key(translate(lang, key)) for lang in LANGUAGES for key in IGNORED_HEADERS}
    columns: list[str | None] = []
    for header in sheet.headers:
        if not header or _key(header) in ignored:
            columns.append(None)
            continue
        column = known.get(_key(header))
        if column is None:
            raise BadFile("unknown_header")
        if column in columns:
            raise BadFile("repeated_header")
        columns.append(column)
    if any(c not in columns for c in REQUIRED_COLUMNS):
        raise BadFile("missing_headers")
    return columns


def example_rows() -> list[dict[str, str]]:
    """The template's example row in each language, by column, as read back: a row equal to
    one of them is skipped, never imported."""
    return [
        {c: _key(v) for c, v in zip(COLUMNS, example(Translator(lang)), strict=True) if v}
        for lang in LANGUAGES
    ]


def example(_: Translator) -> list[str]:
    """One row that passes every check (but the example-row skip)."""
    values = {
        "kind": _("choice.kind.company"),
        "name": _("import.example.name"),
        "short_name": _("import.example.short_name"),
        "industry": _("import.example.industry"),
        "region": _("import.example.region"),
        "size": _("choice.size.medium"),
        "source": _("choice.source.exhibition"),
        "phones": "13812345678",
        "email": "sales@example.com",
        "customer_class": _("choice.customer_class.B"),
        "stage": _("choice.stage.yellow"),
        "deal_status": _("choice.deal_status.none"),
        "invoice_title": _("import.example.name"),
        "tax_no": "91330100MA27XL123W",
        "consent_given": _("common.yes"),
        "consent_method": _("choice.consent_method.written"),
        "consent_on": "2026-11-01",
        "next_followup_on": "+14",
    }
    return [values.get(column, "") for column in COLUMNS]


# ---------------------------------------------------------------------------------------------
# one row


@dataclass
class RowResult:
    """One data row: its cells as read, why it is refused (if it is), and what it would be."""

    row: int
    texts: tuple[str, ...]
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (kind, sentence)
    values: CustomerCreate | None = None
    file_owner: Staff | None = None
    owner: Staff | None = None  # the file's, else the chosen one (at confirmation)
    matches: tuple[Match, ...] = ()

    @property
    def accepted(self) -> bool:
        return not self.reasons and self.values is not None


def _invalid(_: Translator, error: validation.Invalid) -> str:
    return _(
        f"invalid.{error.code}",
        limit=error.limit or 0,
        earliest=error.earliest or "",
        latest=error.latest or "",
    )


def _check_values(env: FlowEnv, result: RowResult, raw: dict[str, str]) -> None:
    """/new's steps over the row's cells, in /new's order (later questions depend on earlier
    answers: a company's parent organisation, the consent's details)."""
    _ = env._
    data: dict[str, Any] = {"finance": "yes" if FINANCE_FIELDS & set(raw) else "no"}
    for name, step in STEPS.items():
        label = _(f"field.{name}")
        text = raw.get(name)
        if not step.applies(data):
            if text:
                reason = _("import.reason.not_applicable")
                result.reasons.append(("not_applicable", f"{label}: {reason}"))
            continue
        if not text:
            if step.required:
                result.reasons.append(("required", f"{label}: {_('import.reason.required')}"))
            continue
        if step.kind in (Kind.CHOICE, Kind.YES_NO):
            value = _choice_value(step, text)
            if value is None:
                allowed = ", ".join(choice_labels(_, name))
                reason = _("import.reason.choice", choices=allowed)
                result.reasons.append(("choice", f"{label}: {reason}"))
                continue
            data[name] = value
            continue
        try:
            data[name] = step.parse(text, env) if step.parse else text  # every step parses
        except validation.Invalid as error:
            result.reasons.append(("invalid", f"{label}: {_invalid(_, error)}"))
    if not result.reasons:
        result.values = new_customer.values_of(env, data)


def _queries(values: CustomerCreate) -> dict[str, list[Any]]:
    """The row's values by duplicate look-up (name / phones / tax_no), as /new's review keeps."""
    queries: dict[str, list[Any]] = {}
    for name, query in fields.duplicate_queries().items():
        value = values.get(name)
        if value in (None, "", []):
            continue
        queries.setdefault(query, []).extend(value if isinstance(value, list) else [value])
    return queries


def _in_file(_: Translator, results: Sequence[RowResult]) -> None:
    """A row repeating an earlier accepted row's phone, tax number or name is refused."""
    seen: dict[tuple[str, str], int] = {}
    for result in results:
        if not result.accepted or result.values is None:
            continue
        keys = [
            (query, _key(str(v)) if query == "name" else str(v))
            for query, values in _queries(result.values).items()
            for v in values
        ]
        earlier = next((seen[k] for k in keys if k in seen), None)
        if earlier is not None:
            result.reasons.append(("in_file", _("import.reason.in_file", row=earlier)))
            continue
        for k in keys:
            seen.setdefault(k, result.row)


# ---------------------------------------------------------------------------------------------
# the whole file


@dataclass
class Checked:
    """A file checked: every data row's result."""

    results: list[RowResult]
    headers: tuple[str, ...] = ()
    audited: list[dict[str, Any]] = field(default_factory=list)  # the matches' audit entries

    @property
    def accepted(self) -> list[RowResult]:
        return [r for r in self.results if r.accepted]

    @property
    def rejected(self) -> list[RowResult]:
        return [r for r in self.results if not r.accepted]

    def by_reason(self) -> Counter[str]:
        """Rejected rows by their first reason's kind."""
        return Counter(r.reasons[0][0] for r in self.rejected if r.reasons)

    def digest(self) -> str:
        return imports.digest_of(
            [(r.row, r.file_owner.id if r.file_owner else None) for r in self.accepted]
        )

    @property
    def all_owned(self) -> bool:
        """Every accepted row names its owner (the owner column alone may be used)."""
        return all(r.file_owner is not None for r in self.accepted)


@dataclass
class Read:
    """A file's rows through /new's steps, before the archive is asked: the file's headers
    (the rejected rows are given back under them), each row's result and its cells by column."""

    headers: tuple[str, ...]
    results: list[RowResult]
    raws: list[dict[str, str]]


def read_rows(env: FlowEnv, sheet: Sheet) -> Read:
    """Every data row through /new's steps (CPU only: the caller runs it in a thread, so
    10,000 rows never block the event loop); the example row is skipped."""
    columns = columns_of(sheet)
    skip = example_rows()
    results: list[RowResult] = []
    raws: list[dict[str, str]] = []
    for number, texts in sheet.rows:
        raw = {c: t for c, t in zip(columns, texts, strict=False) if c is not None and t}
        if {c: _key(t) for c, t in raw.items()} in skip:
            continue
        result = RowResult(number, tuple(texts[: len(columns)]))
        _check_values(env, result, raw)
        results.append(result)
        raws.append(raw)
    return Read(tuple(sheet.headers[: len(columns)]), results, raws)


async def check(
    session: AsyncSession, env: FlowEnv, read: Read, *, default_owner: Staff | None = None
) -> Checked:
    """The rows `read_rows` read, checked against the archive and each other; it only reads
    (the caller counts the dry run's look-up first and writes `Checked.audited` after, as /new's
    look-ups are counted and audited). `default_owner` owns the rows without an owner of their
    own (None: nobody chosen yet)."""
    _ = env._
    actor = env.staff
    results, raws = read.results, read.raws
    owner_ids = [int(raw[OWNER]) for raw in raws if _TELEGRAM_ID.fullmatch(raw.get(OWNER, ""))]
    staff = await imports.staff_by_telegram_ids(session, owner_ids)
    for result, raw in zip(results, raws, strict=True):
        text = raw.get(OWNER)
        if text:
            owner = staff.get(int(text)) if _TELEGRAM_ID.fullmatch(text) else None
            if owner is None:
                reason = _("import.reason.owner_unknown", owner=text[:20])
                result.reasons.append(("owner", reason))
            elif not permissions.can_import_for(actor, owner):
                reason = _("import.reason.owner_not_allowed", owner=text[:20])
                result.reasons.append(("owner", reason))
            else:
                result.file_owner = owner
        result.owner = result.file_owner or default_owner
    _in_file(_, results)
    audited = await _against_archive(session, env, results)
    return Checked(results, read.headers, audited)


async def _against_archive(
    session: AsyncSession, env: FlowEnv, results: list[RowResult]
) -> list[dict[str, Any]]:
    """Reject the rows the archive already has, worded as /new words it; returns the audit
    entries of the matches (as /new's `customer.duplicate`, purpose import)."""
    actor = env.staff
    candidates = [r for r in results if r.accepted and r.values is not None]
    if not candidates:
        return []
    queries = []
    for result in candidates:
        assert result.values is not None
        asked = _queries(result.values)
        team = result.owner.team_id if result.owner is not None else actor.team_id
        queries.append(
            Query(
                team_id=team,
                phones=tuple(asked.get("phones", ())),
                tax_no=next(iter(asked.get("tax_no", [])), None),
                name=next(iter(asked.get("name", [])), None),
            )
        )
    found = await customers.matches_of_many(session, keyring=env.services.keyring, queries=queries)
    every = list(dict.fromkeys(m for each in found for m in each))
    described: dict[Match, Duplicate] = dict(
        await customers.describe(
            session,
            every,
            may_see=lambda c: permissions.can_view_customer(actor, c),
            team_id=actor.team_id,
        )
    )
    audited = []
    for result, each in zip(candidates, found, strict=True):
        shown = [described[m] for m in each if m in described]
        result.matches = tuple(each)
        if shown:
            result.reasons.append(("duplicate", "; ".join(wording.warnings(env._, shown))))
        audited.extend(
            {
                "action": "customer.duplicate",
                "actor_staff_id": actor.id,
                "actor_telegram_id": actor.telegram_id,
                "entity": "customer",
                "entity_id": m.customer_id,
                "detail": {"reason": m.reason, "shown": described[m].shown, "purpose": "import"},
            }
            for m in each
            if m in described
        )
    return audited


async def count_look_up(session: AsyncSession, env: FlowEnv) -> None:
    """A dry run takes one of the importer's DUPLICATE_CHECKS_PER_DAY, whatever the file's
    size; BadFile("capped") once the day's are used up (nothing is looked up then)."""
    limit = env.services.settings.DUPLICATE_CHECKS_PER_DAY
    if not await customers.take_look_up(
        session, actor=env.staff, today=env.today, daily_limit=limit, purpose="import"
    ):
        raise BadFile("capped", limit)
