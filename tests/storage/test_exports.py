"""storage.exports on its own: rows page by page, columns from the catalogue, masks, formula
neutralising, who may export, and an erased data key (issue 12 item 1)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from storage import customers as customer_store
from storage import exports, validation
from storage import fields as catalogue
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.errors import Refused
from storage.exports import Column, ExportFormat, ExportKind, ExportRequest
from storage.fields import Place, Record
from storage.models import DataKey, Role, Staff, Team
from storage.search import Filters

ZONE = ZoneInfo("Asia/Shanghai")
MOBILE = "13812345678"


def _leftovers(folder: Path) -> list[Path]:
    """Export files left in the folder (the database's own files aside)."""
    return [p for p in folder.iterdir() if p.name.startswith("out")]


class Plain:
    """Headers and values as their keys: what the writer does, without a language."""

    def header(self, column: Column) -> str:
        return column.name

    def value(self, column: Column, value: Any) -> str:
        return f"{column.name}={value}"


async def _people(sessions: SessionFactory) -> dict[str, Staff]:
    async with unit_of_work(sessions) as session:
        east, west = Team(name="East"), Team(name="West")
        session.add_all([east, west])
        await session.flush()
        people = {
            "sales": Staff(telegram_id=1, display_name="S", role=Role.salesperson, team_id=east.id),
            "other": Staff(telegram_id=2, display_name="O", role=Role.salesperson, team_id=west.id),
            "admin": Staff(telegram_id=3, display_name="A", role=Role.admin),
            "gone": Staff(
                telegram_id=4,
                display_name="G",
                role=Role.manager,
                team_id=east.id,
                active=False,
            ),
        }
        session.add_all(people.values())
    return people


async def _customer(
    sessions: SessionFactory, keyring: Keyring, owner: Staff, name: str, **values: Any
) -> int:
    fields = {"kind": "company", "name": name, "customer_class": "C", **values}
    async with unit_of_work(sessions) as session:
        customer = await customer_store.create_customer(
            session, keyring=keyring, actor=owner, values=fields
        )
    return customer.id or 0


async def _csv(
    sessions: SessionFactory, keyring: Keyring, actor: Staff, tmp_path: Path, **request: Any
) -> list[list[str]]:
    path = tmp_path / "out.csv"
    result = await exports.write_export(
        sessions,
        keyring=keyring,
        actor=actor,
        request=ExportRequest(kind=ExportKind.customers, format=ExportFormat.csv, **request),
        path=path,
        labels=Plain(),
        zone=ZONE,
        title="t",
        page=2,
    )
    if result.path is None:
        return []
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    exports.discard(path)
    assert not path.exists()
    return rows


def test_columns_are_the_catalogues_export_place() -> None:
    for kind, record in (
        (ExportKind.customers, Record.customer),
        (ExportKind.visits, Record.visit),
        (ExportKind.complaints, Record.complaint),
        (ExportKind.key_persons, Record.key_person),
    ):
        field_columns = tuple(c.name for c in exports.COLUMNS[kind] if c.record is not None)
        assert field_columns == catalogue.fields_at(record, Place.export)
    assert set(exports.sensitive_columns(ExportKind.customers)) == set(
        catalogue.sealed_fields(Record.customer)
    )
    assert exports.sensitive_columns(ExportKind.key_persons) == ("kp_phones", "kp_birthday")
    assert exports.sensitive_columns(ExportKind.visits) == ()


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_formula_starts_are_neutralised(start: str) -> None:
    assert exports.neutralised(f"{start}cmd|' /C calc'!A0") == f"'{start}cmd|' /C calc'!A0"
    assert exports.neutralised(f"a{start}b") == f"a{start}b"


@pytest.mark.parametrize(
    "phone", ["+8613812345678", "+8619900001111", "+8657188889999", "+14155552671", "+85291234567"]
)
def test_the_fast_mobile_mask_reads_as_the_parsed_one(phone: str) -> None:
    digits = "".join(ch for ch in validation.format_phone(phone) if ch.isdigit())
    slow = "*" * len(digits) if len(digits) <= 7 else f"{digits[:3]}****{digits[-4:]}"
    assert validation.mask_phone(phone) == slow


async def test_pages_visibility_masks_and_destroyed(
    session_factory: SessionFactory, keyring: Keyring, tmp_path: Path
) -> None:
    people = await _people(session_factory)
    mine = [
        await _customer(
            session_factory, keyring, people["sales"], f"Own {i}", phones=["13812345678"]
        )
        for i in range(5)
    ]
    await _customer(session_factory, keyring, people["other"], "=West", tax_no="91330100MA27XYZ123")
    async with unit_of_work(session_factory) as session:
        await session.exec(
            update(exports.Customer)
            .where(exports.Customer.id == mine[0])  # type: ignore[arg-type]
            .values(status="destroyed")
        )
    rows = await _csv(session_factory, keyring, people["sales"], tmp_path)
    names = [r[rows[0].index("name")] for r in rows[1:]]
    assert names == [f"Own {i}" for i in range(1, 5)]  # keyset pages of 2, in id order
    assert {r[rows[0].index("phones")] for r in rows[1:]} == {"138****5678"}
    rows = await _csv(session_factory, keyring, people["admin"], tmp_path, clear=True)
    assert "'=West" in [r[rows[0].index("name")] for r in rows[1:]]
    assert "91330100MA27XYZ123" in str(rows) and "13812345678" in str(rows)
    rows = await _csv(session_factory, keyring, people["admin"], tmp_path)
    assert "**** Z123" in str(rows) and "13812345678" not in str(rows)


async def test_filters_and_refusals(
    session_factory: SessionFactory, keyring: Keyring, tmp_path: Path
) -> None:
    people = await _people(session_factory)
    await _customer(session_factory, keyring, people["sales"], "Alpha", customer_class="A")
    await _customer(session_factory, keyring, people["sales"], "Charlie")
    rows = await _csv(
        session_factory,
        keyring,
        people["admin"],
        tmp_path,
        filters=Filters(customer_class="A"),
    )
    assert [r[rows[0].index("name")] for r in rows[1:]] == ["Alpha"]
    assert await _csv(session_factory, keyring, people["other"], tmp_path) == []
    with pytest.raises(Refused):
        await _csv(session_factory, keyring, people["sales"], tmp_path, clear=True)
    with pytest.raises(Refused):
        await _csv(session_factory, keyring, people["gone"], tmp_path)
    assert _leftovers(tmp_path) == []


async def test_an_erased_data_key_exports_the_clear_columns_only(
    session_factory: SessionFactory, keyring: Keyring, tmp_path: Path
) -> None:
    people = await _people(session_factory)
    cid = await _customer(
        session_factory, keyring, people["sales"], "Erased", phones=["13812345678"]
    )
    async with unit_of_work(session_factory) as session:
        await session.exec(
            update(DataKey).where(DataKey.customer_id == cid).values(wrapped=None)  # type: ignore[arg-type]
        )
    rows = await _csv(session_factory, keyring, people["admin"], tmp_path, clear=True)
    assert rows[1][rows[0].index("name")] == "Erased" and rows[1][rows[0].index("phones")] == ""


async def test_more_rows_than_a_sheet_holds_is_refused_before_writing(
    session_factory: SessionFactory, keyring: Keyring, tmp_path: Path, monkeypatch: Any
) -> None:
    people = await _people(session_factory)
    for name in ("One", "Two"):
        await _customer(session_factory, keyring, people["sales"], name)
    monkeypatch.setattr(exports, "XLSX_ROW_LIMIT", 1)
    with pytest.raises(Refused, match="too_many_rows"):
        await exports.write_export(
            session_factory,
            keyring=keyring,
            actor=people["admin"],
            request=ExportRequest(kind=ExportKind.customers),
            path=tmp_path / "out.xlsx",
            labels=Plain(),
            zone=ZONE,
            title="t",
        )
    assert _leftovers(tmp_path) == []
