"""The field catalogue (storage.fields) and the flows agree: every field a flow asks is declared,
every declared field is asked by a flow or kept by the model, and each has its label."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from sqlmodel import SQLModel

from bot.i18n import LANGUAGES, catalog
from conversations import complaint, key_persons, new_customer, visit
from conversations.steps import Step
from storage import customers
from storage import fields as catalogue
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.fields import Place, Record
from storage.models import Complaint, Customer, KeyPerson, Role, Staff, Visit

KEYRING = Keyring([bytes(range(32))])
# questions of a flow that are no field of its record: gates, the customer picked, the
# visit's place and files (their own tables), the complaint's routing
NOT_FIELDS: dict[Record, frozenset[str]] = {
    Record.customer: new_customer.GATES,
    Record.key_person: frozenset(),
    Record.visit: frozenset({"customer_id", "location", "attachments"}),
    Record.complaint: frozenset({"customer_id", "handler"}),
}
FLOW_STEPS: dict[Record, tuple[Step, ...]] = {
    Record.customer: new_customer.STEPS,
    Record.key_person: key_persons.STEPS,
    Record.visit: visit.STEPS,
    Record.complaint: (*complaint.STEPS, *complaint.RESOLUTION_STEPS),
}
MODELS: dict[Record, type[SQLModel]] = {
    Record.customer: Customer,
    Record.key_person: KeyPerson,
    Record.visit: Visit,
    Record.complaint: Complaint,
}


def undeclared(record: Record, steps: Iterable[Step]) -> list[str]:
    """Fields a flow asks that the catalogue does not know (they would be dropped or refused)."""
    known = set(catalogue.names(catalogue.of(record))) | NOT_FIELDS[record]
    return [s.field for s in steps if s.field not in known]


def unprovided(record: Record) -> list[str]:
    """Declared fields no flow asks and no column of the record's table keeps."""
    asked = {s.field for s in FLOW_STEPS[record]}
    columns = set(MODELS[record].__table__.columns.keys())  # type: ignore[attr-defined]
    return [
        f.name
        for f in catalogue.of(record)
        if f.name not in asked and (f.sealed or f.stored_as not in columns)
    ]


@pytest.mark.parametrize("record", list(Record))
def test_every_field_a_flow_asks_is_in_the_catalogue(record: Record) -> None:
    assert undeclared(record, FLOW_STEPS[record]) == []


def test_a_step_the_catalogue_does_not_know_is_caught() -> None:
    steps = (*new_customer.STEPS, Step("legal_rep_typo"))
    assert undeclared(Record.customer, steps) == ["legal_rep_typo"]


@pytest.mark.parametrize("record", list(Record))
def test_every_catalogue_field_is_asked_or_kept_by_the_model(record: Record) -> None:
    assert unprovided(record) == []


@pytest.mark.parametrize("record", list(Record))
def test_clear_fields_are_columns_and_sealed_ones_are_not(record: Record) -> None:
    """A clear field needs its column (model and migration, tests/storage/test_migrations.py);
    a sealed one lives in the sealed blob and must not shadow a column."""
    columns = set(MODELS[record].__table__.columns.keys())  # type: ignore[attr-defined]
    clear = [f.stored_as for f in catalogue.of(record) if not f.sealed]
    assert [c for c in clear if c not in columns] == []
    if record == Record.customer:
        assert [f for f in catalogue.sealed_fields() if f in columns] == []


def test_customer_fields_asked_by_new_are_the_catalogues() -> None:
    asked = [s.field for s in new_customer.STEPS if s.field not in new_customer.GATES]
    assert sorted(asked) == sorted(catalogue.names(catalogue.CUSTOMER))


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_field_has_its_label(language: str) -> None:
    messages = catalog(language)
    labelled = (Record.customer, Record.key_person, Record.visit)
    keys = [f.label for r in labelled for f in catalogue.of(r)]
    keys += [f.label for f in catalogue.COMPLAINT]
    # the resolution review shows the `notes` parts (exports show every field, by its label)
    keys += [f"review.field.{f.stored_as}" for f in catalogue.COMPLAINT if Place.notes in f.shows]
    assert [k for k in keys if k not in messages] == []


def test_one_mask_for_every_rule() -> None:
    assert catalogue.mask("phones", ["+8613812345678"]) == ["138****5678"]
    assert catalogue.mask("billing_phone", "+8613812345678") == "138****5678"
    assert catalogue.mask("tax_no", "91330100MA2B3C4D5E") == "**** 4D5E"
    assert catalogue.mask("address", "杭州市西湖区") == "杭*****"
    assert catalogue.mask("consent_on", "2026-11-20") == catalogue.HIDDEN
    assert catalogue.mask("consent_method", "written") == catalogue.HIDDEN
    assert catalogue.mask("kp_phones", ["+8613812345678"], Record.key_person) == ["138****5678"]
    assert catalogue.mask("region", "杭州") == "杭州"  # clear values as they are
    assert catalogue.mask("address", "") is None


async def test_a_value_no_field_declares_is_refused_not_dropped(
    session_factory: SessionFactory,
) -> None:
    async with unit_of_work(session_factory) as session:
        session.add(seller := Staff(telegram_id=1001, display_name="Li", role=Role.salesperson))
        await session.flush()
        with pytest.raises(ValueError, match="legal_rep_typo"):
            await customers.create_customer(
                session,
                keyring=KEYRING,
                actor=seller,
                values={"kind": "company", "name": "Mingyuan", "legal_rep_typo": "Wang"},
            )
