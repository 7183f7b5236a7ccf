"""The storage floor of /import: the batched duplicate look-up finds what /new's finds, many
audit entries chain like single ones, blocks of numbers are never shared, and a confirmation
is taken once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from storage import audit, customers, imports, numbers
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.errors import Refused
from storage.models import Customer, Import, ImportStatus, RecordStatus, Role, Staff, Team

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


async def _people(factory: SessionFactory) -> tuple[Staff, Staff, int]:
    async with unit_of_work(factory) as session:
        team = Team(name="East")
        session.add(team)
        await session.flush()
        manager = Staff(telegram_id=1, display_name="M", role=Role.manager, team_id=team.id)
        sales = Staff(telegram_id=2, display_name="S", role=Role.salesperson, team_id=team.id)
        session.add_all([manager, sales])
        await session.flush()
        await session.refresh(manager, ["team_leads"])
        await session.refresh(sales, ["team_leads"])
    assert team.id is not None
    return manager, sales, team.id


async def test_the_batched_look_up_finds_what_new_finds(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    _manager, sales, team_id = await _people(session_factory)
    made = []
    for name, phone, tax in (
        ("杭州明远机械有限公司", "+8613800001111", None),
        ("宁波海天塑料制品厂", "+8613800002222", "91330100MA27XL123W"),
        ("温州正泰电器股份", None, None),
    ):
        async with unit_of_work(session_factory) as session:
            values = {"kind": "company", "name": name}
            if phone:
                values["phones"] = [phone]
            if tax:
                values["tax_no"] = tax
            made.append(
                await customers.create_customer(
                    session, keyring=keyring, actor=sales, values=values
                )
            )
    async with unit_of_work(session_factory) as session:  # a destroyed one is found by neither
        gone = await session.get(Customer, made[2].id)
        assert gone is not None
        gone.status = RecordStatus.destroyed
        session.add(gone)
    asked = [
        customers.Query(team_id, phones=("+8613800001111",)),
        customers.Query(team_id, tax_no="91330100MA27XL123W", name="某某"),
        customers.Query(team_id, name="杭州明远机械有限公司"),
        customers.Query(team_id, name="温州正泰电器股份"),
        customers.Query(None, name="杭州明远机械有限公司"),  # another team's names
        customers.Query(team_id, phones=("+8613999999999",), name="完全不同的名字"),
    ]
    async with unit_of_work(session_factory) as session:
        batched = await customers.matches_of_many(session, keyring=keyring, queries=asked)
        one_by_one = [
            await customers.matches(
                session,
                keyring=keyring,
                team_id=q.team_id,
                phones=list(q.phones),
                tax_no=q.tax_no,
                name=q.name,
            )
            for q in asked
        ]
    assert batched == one_by_one
    assert [len(m) for m in batched] == [1, 1, 1, 0, 0, 0]


async def test_many_audit_entries_chain_like_single_ones(session_factory: SessionFactory) -> None:
    async with unit_of_work(session_factory) as session:
        await audit.record(session, action="before")
        written = await audit.record_many(
            session, [{"action": "many", "entity_id": i, "detail": {"n": i}} for i in range(2500)]
        )
        await audit.record(session, action="after")
    assert written == 2500
    async with unit_of_work(session_factory) as session:
        report = await audit.verify_chain(session)
    assert report.ok and report.checked == 2502


async def test_blocks_of_numbers_are_never_shared(session_factory: SessionFactory) -> None:
    async def block() -> range:
        async with unit_of_work(session_factory) as session:
            return await numbers.next_values(session, "KH:2026", 100)

    async def one() -> str:
        async with unit_of_work(session_factory) as session:
            return await numbers.next_number(session, "KH", 2026)

    taken = await asyncio.gather(block(), one(), block(), one())
    values = [*taken[0], *taken[2]]
    singles = [int(str(n).rsplit("-", 1)[1]) for n in (taken[1], taken[3])]
    everything = values + singles
    assert len(set(everything)) == 202 and sorted(everything) == list(range(1, 203))


async def test_a_confirmation_is_taken_once(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    manager, sales, _team = await _people(session_factory)
    async with unit_of_work(session_factory) as session:
        opened = await imports.await_file(session, actor=manager, now=NOW)
        version = await imports.record_check(
            session,
            actor=manager,
            import_id=opened.id or 0,
            file_id="f",
            file_size=1,
            checksum="0" * 64,
            rows=1,
            accepted=1,
            rejected=0,
            accepted_digest=imports.digest_of([(2, None)]),
            now=NOW,
        )
    row = imports.AcceptedRow(
        2, customers.CustomerCreate({"kind": "company", "name": "杭州明远"}), sales
    )

    async def confirm() -> str:
        try:
            async with unit_of_work(session_factory) as session:
                await imports.confirm(
                    session,
                    keyring=keyring,
                    actor=manager,
                    import_id=opened.id or 0,
                    version=version,
                    rows=[row],
                    approve=False,
                    now=NOW,
                )
        except Refused as refusal:
            return refusal.code
        return "done"

    outcomes = await asyncio.gather(confirm(), confirm())
    assert sorted(outcomes) == ["already_imported", "done"]
    async with unit_of_work(session_factory) as session:
        assert len((await session.exec(select(Customer))).all()) == 1
        (found,) = (await session.exec(select(Import))).all()
    assert found.status == ImportStatus.done and found.customers == 1
    with pytest.raises(Refused):  # a manager may not approve directly
        async with unit_of_work(session_factory) as session:
            await imports.confirm(
                session,
                keyring=keyring,
                actor=manager,
                import_id=opened.id or 0,
                version=version + 1,
                rows=[row],
                approve=True,
                now=NOW,
            )
