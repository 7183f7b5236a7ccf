"""The field catalogue: one declaration per field of each kind of record.

Each `FieldSpec` says whether a value is sealed (SPEC section 5) or kept in clear, which blind
index it feeds, how it is masked, where it shows and under which label. Storage, cards, review
diffs and the edit flow read their lists from here (`clear_fields`, `sealed_fields`, ...), and
`mask` is the one masking rule. A flow's `Step` names the field it asks; a test holds the flows
and this catalogue in step (tests/conversations/test_field_catalogue.py).

Export columns and import headers are `fields_at(record, Place...)` selections of the same
declarations: `Place.export` for /export's spreadsheets (storage.exports), `Place.import_` for
the /import template's columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from storage import validation


class Record(StrEnum):
    """The kinds of record whose fields are declared here."""

    customer = "customer"
    key_person = "key_person"
    visit = "visit"
    complaint = "complaint"


class Mask(StrEnum):
    """How a sensitive value reads wherever it is not revealed."""

    none = "none"  # a clear value, shown as it is
    phone = "phone"  # 138****5678
    tail = "tail"  # **** 2233
    text = "text"  # first character, then stars: 杭******
    hidden = "hidden"  # •••• (short values a first letter would give away)


class Place(StrEnum):
    """Where a field shows, besides the record's own flow and history."""

    card = "card"  # the customer card (sealed ones masked, revealable)
    review_key = "review_key"  # the short notice of a new customer
    review_full = "review_full"  # the full card behind the notice's "Open"
    notes = "notes"  # a visit's or complaint's free-text parts, shown where it is listed
    import_ = "import"  # a column of the /import template (conversations/importing.py)
    export = "export"  # a column of /export's spreadsheets (sealed ones masked unless asked)


HIDDEN = "••••"


@dataclass(frozen=True)
class FieldSpec:
    """One field: how it is kept, masked and shown. `column` is where the value lives when it
    differs from the name (a key person's `kp_phones` is `phones` in its sealed blob)."""

    record: Record
    name: str
    sealed: bool = False
    mask: Mask = Mask.none
    shows: tuple[Place, ...] = ()
    index: str | None = None  # blind-index kind (exact-match duplicates): phone / tax_no
    duplicates: str | None = None  # which duplicate look-up the value feeds: name/phones/tax_no
    date: bool = False  # a calendar day, kept as an ISO string in answers and sealed blobs
    required: bool = False  # may be changed, never cleared
    choice: bool = False  # the value is one of fixed choices labelled `choice.<name>.<value>`
    column: str | None = None

    @property
    def label(self) -> str:
        """The message key of the field's name."""
        return f"field.{self.name}"

    @property
    def stored_as(self) -> str:
        return self.column or self.name


def _imported(kw: dict[str, Any]) -> dict[str, Any]:
    """Every customer field is a column of the import template (/new asks them all)."""
    return {**kw, "shows": (*kw.get("shows", ()), Place.import_)}


def _customer(name: str, **kw: Any) -> FieldSpec:
    return FieldSpec(Record.customer, name, **_imported(kw))


def _sealed(name: str, mask: Mask = Mask.text, **kw: Any) -> FieldSpec:
    return FieldSpec(Record.customer, name, sealed=True, mask=mask, **_imported(kw))


_CARD = (Place.card,)
_FULL = (Place.review_full,)
_KEY_FULL = (Place.review_key, Place.review_full)
_CARD_FULL = (Place.card, Place.review_full)
_EVERYWHERE = (Place.card, Place.review_key, Place.review_full)

# The order is /new's: the full review card lists fields in it. CARD_ORDER orders the sealed
# values on the card (phones first) and KEY_ORDER the short notice's lines; a field missing
# from them comes after the listed ones, in this order.
CUSTOMER: tuple[FieldSpec, ...] = (
    _customer("kind", shows=_KEY_FULL, required=True, choice=True),
    _customer("name", required=True, duplicates="name"),
    _customer("short_name", shows=_FULL),
    _customer("industry", shows=_KEY_FULL),
    _customer("region", shows=_KEY_FULL),
    _sealed("address", shows=_CARD_FULL),
    _customer("parent_org", shows=_FULL),
    _sealed("legal_representative", shows=_CARD_FULL),
    _customer("size", shows=_FULL, choice=True),
    _customer("profile", shows=_FULL),
    _customer("source", shows=_KEY_FULL, choice=True),
    _sealed("phones", Mask.phone, shows=_EVERYWHERE, index="phone", duplicates="phones"),
    _sealed("email", shows=_CARD_FULL),
    _customer("website", shows=_FULL),
    _sealed("wechat", shows=_CARD_FULL),
    _customer("customer_class", shows=_KEY_FULL, required=True, choice=True),
    _customer("stage", shows=_KEY_FULL, choice=True),
    _customer("deal_status", shows=_KEY_FULL, required=True, choice=True),
    _customer("credit_status", shows=_FULL),
    _customer("trade_notes", shows=_FULL),
    _sealed("invoice_title", shows=_CARD_FULL),
    _sealed("tax_no", Mask.tail, shows=_EVERYWHERE, index="tax_no", duplicates="tax_no"),
    _sealed("bank", shows=_CARD_FULL),
    _sealed("account_no", Mask.tail, shows=_CARD_FULL),
    _sealed("billing_address", shows=_CARD_FULL),
    _sealed("billing_phone", Mask.phone, shows=_CARD_FULL, index="phone", duplicates="phones"),
    _customer("consent_given", shows=_FULL, required=True),
    _sealed("consent_method", Mask.hidden, shows=_CARD, choice=True),
    _sealed("consent_on", Mask.hidden, shows=_CARD, date=True),
    _sealed("consent_note", shows=_CARD),
    _customer("next_followup_on", shows=_FULL, date=True),
)
# the card's sealed values in this order (the review notice's in KEY_ORDER)
CARD_ORDER = (
    "phones",
    "email",
    "wechat",
    "address",
    "invoice_title",
    "bank",
    "account_no",
    "tax_no",
    "billing_address",
    "billing_phone",
    "consent_method",
    "consent_on",
    "consent_note",
)
KEY_ORDER = (
    "kind",
    "customer_class",
    "stage",
    "deal_status",
    "source",
    "industry",
    "region",
    "phones",
    "tax_no",
)


def _kp(name: str, column: str, **kw: Any) -> FieldSpec:
    return FieldSpec(Record.key_person, name, column=column, **kw)


KEY_PERSON: tuple[FieldSpec, ...] = (
    _kp("kp_name", "name", required=True),
    _kp("kp_title", "title"),
    _kp("kp_role", "role", choice=True),
    _kp("kp_influence", "influence", choice=True),
    _kp("kp_phones", "phones", sealed=True, mask=Mask.phone, index="phone"),
    _kp("kp_birthday", "birthday", sealed=True, mask=Mask.hidden, date=True),
    _kp("kp_notes", "notes"),
)

VISIT: tuple[FieldSpec, ...] = (
    FieldSpec(Record.visit, "visit_kind", choice=True, required=True, column="kind"),
    FieldSpec(Record.visit, "visited_at"),
    *(
        FieldSpec(Record.visit, name, shows=(Place.notes,))
        for name in ("purpose", "discussion", "needs_feedback", "outcome")
    ),
    FieldSpec(Record.visit, "stage_change", choice=True),
    FieldSpec(Record.visit, "next_followup_on", date=True),
)

# a complaint's parts; its resolution review shows the `notes` ones by column, under the
# labels `review.field.<column>`
COMPLAINT: tuple[FieldSpec, ...] = (
    FieldSpec(Record.complaint, "channel", choice=True),
    FieldSpec(Record.complaint, "complaint_type", shows=(Place.notes,), choice=True, column="type"),
    FieldSpec(Record.complaint, "severity", shows=(Place.notes,), choice=True, required=True),
    FieldSpec(Record.complaint, "description", shows=(Place.notes,), required=True),
    FieldSpec(Record.complaint, "resolution", shows=(Place.notes,)),
    FieldSpec(Record.complaint, "feedback", shows=(Place.notes,)),
    FieldSpec(Record.complaint, "feedback_at"),
)


def _exported(fields: tuple[FieldSpec, ...]) -> tuple[FieldSpec, ...]:
    """Every field of a record is a column of its export (SPEC section 11: what a person may
    see); a field kept out of exports would be declared here."""
    return tuple(replace(f, shows=(*f.shows, Place.export)) for f in fields)


CUSTOMER = _exported(CUSTOMER)
KEY_PERSON = _exported(KEY_PERSON)
VISIT = _exported(VISIT)
COMPLAINT = _exported(COMPLAINT)

CATALOGUE: dict[Record, tuple[FieldSpec, ...]] = {
    Record.customer: CUSTOMER,
    Record.key_person: KEY_PERSON,
    Record.visit: VISIT,
    Record.complaint: COMPLAINT,
}
_BY_NAME = {(f.record, f.name): f for fields in CATALOGUE.values() for f in fields}


# ---------------------------------------------------------------------------------------------
# what the code reads


def spec(name: str, record: Record = Record.customer) -> FieldSpec | None:
    return _BY_NAME.get((record, name))


def names(fields: Iterable[FieldSpec]) -> tuple[str, ...]:
    return tuple(f.name for f in fields)


def of(record: Record) -> tuple[FieldSpec, ...]:
    return CATALOGUE[record]


def clear_fields(record: Record = Record.customer) -> tuple[str, ...]:
    """Values kept in clear columns: what lists, filters and the scheduler need."""
    return names(f for f in of(record) if not f.sealed)


def sealed_fields(record: Record = Record.customer) -> tuple[str, ...]:
    """Values sealed with the customer's data key (SPEC section 5)."""
    return names(f for f in of(record) if f.sealed)


def date_fields(record: Record = Record.customer) -> frozenset[str]:
    return frozenset(f.name for f in of(record) if f.date)


# /new asks these first and may save the customer after them (SPEC section 2: a record saved
# then is valid, the other required fields having defaults); the rest is completed later
ESSENTIALS = ("kind", "name", "phones", "customer_class", "stage", "source")
# a customer lacking any of these is incomplete: its card and a reminder offer completing it
EXPECTED = ("industry", "region", "address", "consent_given")


def completion_fields() -> tuple[str, ...]:
    """What completing a customer asks, where it is empty: everything but the essentials."""
    return tuple(f.name for f in CUSTOMER if f.name not in ESSENTIALS)


def incomplete(values: dict[str, Any]) -> bool:
    """Saved with the essentials only (or missing what a record is expected to hold):
    consent not recorded counts as missing."""
    return any(values.get(name) in (None, "", [], False) for name in EXPECTED)


def required_fields(record: Record = Record.customer) -> frozenset[str]:
    return frozenset(f.name for f in of(record) if f.required)


def indexed_fields(record: Record = Record.customer) -> dict[str, str]:
    """Field → blind-index kind, for the values exact-match duplicates are found by."""
    return {f.name: f.index for f in of(record) if f.index is not None}


def choice_fields(record: Record = Record.customer) -> frozenset[str]:
    return frozenset(f.name for f in of(record) if f.choice)


def duplicate_queries(record: Record = Record.customer) -> dict[str, str]:
    """Field → the duplicate look-up its value feeds (name / phones / tax_no)."""
    return {f.name: f.duplicates for f in of(record) if f.duplicates is not None}


def fields_at(record: Record, place: Place) -> tuple[str, ...]:
    """The fields that show at `place`, in catalogue order."""
    return names(f for f in of(record) if place in f.shows)


def columns_at(record: Record, place: Place) -> tuple[str, ...]:
    """Where the values of the fields that show at `place` are kept, in catalogue order."""
    return tuple(f.stored_as for f in of(record) if place in f.shows)


def card_sealed_fields() -> tuple[str, ...]:
    """The customer's sealed values a card shows masked (and may reveal), in card order."""
    on_card = {f.name for f in CUSTOMER if f.sealed and Place.card in f.shows}
    ordered = [n for n in CARD_ORDER if n in on_card]
    return (*ordered, *(n for n in sealed_fields() if n in on_card and n not in ordered))


def review_key_fields() -> tuple[str, ...]:
    """What the short notice of a new customer shows, in its order."""
    shown = fields_at(Record.customer, Place.review_key)
    return (*(n for n in KEY_ORDER if n in shown), *(n for n in shown if n not in KEY_ORDER))


def is_sealed(name: str, record: Record = Record.customer) -> bool:
    found = spec(name, record)
    return found is not None and found.sealed


def sensitive_fields() -> frozenset[str]:
    """Fields whose values a history never shows: every sealed one, of any record."""
    return frozenset(f.name for fields in CATALOGUE.values() for f in fields if f.sealed)


# ---------------------------------------------------------------------------------------------
# the one mask


def mask(name: str, value: Any, record: Record = Record.customer) -> Any:
    """A value as it reads wherever it is not revealed: sensitive ones masked by their rule
    (`138****5678`, `**** 1234`, `杭******`, `••••`), clear ones as they are; empty → None."""
    if value in (None, "", []):
        return None
    found = spec(name, record)
    rule = found.mask if found is not None else Mask.none
    if rule == Mask.none:
        return value
    if isinstance(value, list):
        return [mask(name, v, record) for v in value]
    if rule == Mask.phone:
        return validation.mask_phone(str(value))
    if rule == Mask.tail:
        return validation.mask_tail(str(value))
    if rule == Mask.hidden:
        return HIDDEN
    return validation.mask_text(str(value))
