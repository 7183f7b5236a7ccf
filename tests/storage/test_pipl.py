"""PIPL requests in storage: the access export holds every value the database holds, reads
included; only active admins may make one; a destroyed customer's export holds nothing
personal; erasure of a key person and the customer's destruction request."""

from __future__ import annotations

import json

import pytest
from sqlmodel import col, select

from storage import erasure, life_cycle, pipl
from storage.db import unit_of_work
from storage.errors import Refused
from storage.models import AuditEntry, KeyPerson, Review, Staff
from tests.auxil.customer_factory import staff_of
from tests.auxil.pipl_helpers import FULL, LONG_NAME, held, rich_customer, strings_of
from tests.auxil.record_helpers import audit_entries
from tests.auxil.world import ADMIN_ID, NOW, World


async def _export(world: World, actor: Staff | None, customer_id: int) -> pipl.AccessExport:
    async with unit_of_work(world.services.sessions) as session:
        return await pipl.export_customer(
            session, world.services.keyring, actor=actor, customer_id=customer_id, now=NOW
        )


async def test_a_customers_export_holds_every_value_the_database_holds(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales)
    admin = await staff_of(world.services.sessions, ADMIN_ID)
    export = await _export(world, admin, cid)
    document = json.loads(json.dumps(export.document))  # as the file holds it
    db = await held(world, cid)

    fields = document["customer"]["fields"]
    assert fields["name"] == LONG_NAME
    for name, value in FULL.items():
        assert fields[name] == value, name
    assert db["sealed"] and all(fields[k] == v for k, v in db["sealed"].items())
    assert document["consent"] == {
        "given": True,
        "method": "written",
        "on": "2026-01-05",
        "note": FULL["consent_note"],
    }
    exported_people = {p["id"]: p["fields"] for p in document["key_persons"]}
    assert len(exported_people) == 12
    for person in db["people"]:
        assert exported_people[person.id] == person.values
    exported_visits = {v["id"]: v for v in document["visits"]}
    assert len(exported_visits) == 30
    for visit in db["visits"]:
        mine = exported_visits[visit.id]
        for part in ("purpose", "discussion", "needs_feedback", "outcome", "latitude", "longitude"):
            assert mine[part] == getattr(visit, part), part
        assert mine["visit_kind"] == visit.kind
        assert mine["visited_at"] == visit.visited_at.isoformat()
    file_ids = {a["file_id"] for v in document["visits"] for a in v["attachments"]}
    assert file_ids == {a.file_id for a in db["attachments"]}
    assert {a["attachment_kind"] for v in document["visits"] for a in v["attachments"]} == {"photo"}
    exported_complaints = {c["id"]: c for c in document["complaints"]}
    assert len(exported_complaints) == 8
    for complaint in db["complaints"]:
        assert exported_complaints[complaint.id]["description"] == complaint.description
        assert exported_complaints[complaint.id]["complaint_no"] == complaint.complaint_no
    # the history with its values opened: every diff the database holds
    assert sorted(json.dumps(h["changes"], sort_keys=True) for h in document["history"]) == sorted(
        json.dumps(pipl.plain(d), sort_keys=True) for d in db["diffs"]
    )
    # the reads: both reveals, with who and which field
    reveals = [r for r in document["reads"] if r["action"] == "customer.reveal"]
    assert [(r["by"], r["detail"]["field"]) for r in reveals] == [
        ("Li", "phones"),
        ("Li", "tax_no"),
    ]
    assert export.counts()["reads"] == 2


async def test_the_export_is_audited_without_personal_data_and_counts_as_a_read(
    world: World,
) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=2, visit_count=2, complaint_count=1)
    admin = await staff_of(world.services.sessions, ADMIN_ID)
    await _export(world, admin, cid)
    [entry] = await audit_entries(world.services.sessions, "pipl.access")
    assert (entry.entity, entry.entity_id, entry.actor_staff_id) == ("customer", cid, admin.id)
    detail = json.loads(entry.detail or "{}")
    assert detail["counts"]["visits"] == 2 and detail["via"] == "chat"
    assert not strings_of(detail) & strings_of(FULL) and LONG_NAME not in (entry.detail or "")
    # a second export lists the first among the reads of the customer's data
    again = await _export(world, admin, cid)
    assert [r["action"] for r in again.document["reads"]][-1] == "pipl.access"
    assert again.document["reads"][-1]["by"] == admin.display_name


async def test_a_key_persons_export(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=3, visit_count=1, complaint_count=0)
    admin = await staff_of(world.services.sessions, ADMIN_ID)
    async with unit_of_work(world.services.sessions) as session:
        person_id = (
            await session.exec(
                select(KeyPerson.id).where(KeyPerson.customer_id == cid).order_by(col(KeyPerson.id))
            )
        ).first()
    assert person_id is not None
    async with unit_of_work(world.services.sessions) as session:
        await session.exec(select(KeyPerson))
        export = await pipl.export_key_person(
            session,
            world.services.keyring,
            actor=admin,
            key_person_id=person_id,
            customer_id=cid,
            now=NOW,
        )
    document = export.document
    assert document["key_person"]["fields"]["kp_name"] == "王0" * 50
    assert document["key_person"]["fields"]["kp_phones"] == ["+8613900000000"]
    assert document["key_person"]["fields"]["kp_birthday"] == "1975-03-08"
    assert document["customer"] == {"id": cid, "customer_no": export.customer_no, "name": LONG_NAME}
    assert [h["action"] for h in document["history"]] == ["create"]
    assert document["history"][0]["changes"]["kp_phones"] == [None, ["+8613900000000"]]
    assert "visits" not in document and "王1" not in json.dumps(document, ensure_ascii=False)
    [entry] = await audit_entries(world.services.sessions, "pipl.access")
    assert (entry.entity, entry.entity_id) == ("key_person", person_id)
    # another customer's key person named in the request: not found
    other = await rich_customer(world, sales, people=0, visit_count=0, complaint_count=0)
    with pytest.raises(Refused):
        async with unit_of_work(world.services.sessions) as session:
            await pipl.export_key_person(
                session,
                world.services.keyring,
                actor=admin,
                key_person_id=person_id,
                customer_id=other,
                now=NOW,
            )


@pytest.mark.parametrize("who", ["salesperson", "manager", "deactivated admin"])
async def test_only_an_active_admin_may_export(world: World, who: str) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=1, visit_count=1, complaint_count=0)
    role = "admin" if who == "deactivated admin" else who
    person = await world.member(role, "East", "Zhou")
    actor = await staff_of(world.services.sessions, person)
    if who == "deactivated admin":
        async with unit_of_work(world.services.sessions) as session:
            row = await session.get(Staff, actor.id)
            assert row is not None
            row.active = False
            session.add(row)
        actor = await staff_of(world.services.sessions, person)
    async with unit_of_work(world.services.sessions) as session:
        with pytest.raises(Refused) as refused:
            await pipl.export_customer(
                session, world.services.keyring, actor=actor, customer_id=cid, now=NOW
            )
    assert refused.value.code == "not_allowed"
    denied = [
        e
        for e in await audit_entries(world.services.sessions, "access.denied")
        if e.actor_staff_id == actor.id
    ]
    assert [json.loads(e.detail or "{}")["purpose"] for e in denied] == ["pipl.access"]
    assert await audit_entries(world.services.sessions, "pipl.access") == []


async def test_a_destroyed_customers_export_says_so_and_holds_no_personal_data(
    world: World,
) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=2, visit_count=2, complaint_count=1)
    async with unit_of_work(world.services.sessions) as session:
        await erasure.erase_customer(session, world.services.keyring, customer_id=cid, now=NOW)
    export = await _export(world, None, cid)  # the operator, on the command line
    assert export.destroyed and export.document["destroyed"] is True
    text = json.dumps(export.document, ensure_ascii=False)
    for value in (LONG_NAME, "13812345678", FULL["tax_no"], "photo-0", "投诉0", "王0", "目的0"):
        assert value not in text
    assert export.document["customer"]["customer_no"] == export.customer_no
    assert set(export.document) == {
        "format",
        "subject",
        "produced_at",
        "produced_by",
        "destroyed",
        "customer",
    }


async def test_erasing_a_key_person_on_request(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=2, visit_count=0, complaint_count=0)
    admin = await staff_of(world.services.sessions, ADMIN_ID)
    async with unit_of_work(world.services.sessions) as session:
        person = (await session.exec(select(KeyPerson).where(KeyPerson.customer_id == cid))).first()
    assert person is not None and person.id is not None
    manager = await staff_of(world.services.sessions, await world.member("manager", "East"))
    async with unit_of_work(world.services.sessions) as session:
        with pytest.raises(Refused):
            await pipl.erase_key_person(
                session,
                world.services.keyring,
                actor=manager,
                customer_id=cid,
                key_person_id=person.id,
                version=person.version,
            )
    async with unit_of_work(world.services.sessions) as session:
        await pipl.erase_key_person(
            session,
            world.services.keyring,
            actor=admin,
            customer_id=cid,
            key_person_id=person.id,
            version=person.version,
        )
    async with unit_of_work(world.services.sessions) as session:
        assert await session.get(KeyPerson, person.id) is None
    [entry] = await audit_entries(world.services.sessions, "pipl.erasure")
    assert (entry.entity, entry.entity_id) == ("key_person", person.id)
    assert "王" not in (entry.detail or "")


async def test_a_pipl_destruction_request_lands_as_a_pending_destroy_review(world: World) -> None:
    """Erasing the customer is a destruction request (the archive flow's form files it)."""
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=0, visit_count=0, complaint_count=0)
    admin = await staff_of(world.services.sessions, ADMIN_ID)
    async with unit_of_work(world.services.sessions) as session:
        review = await life_cycle.request(
            session,
            actor=admin,
            customer_id=cid,
            kind="destroy",
            reason="PIPL erasure request by letter of 2026-11-20",
            now=NOW,
            pipl=True,
        )
    async with unit_of_work(world.services.sessions) as session:
        row = await session.get(Review, review.id)
        submitted = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "review.submit"))
        ).all()
    assert row is not None and (row.kind, row.status) == ("destroy", "pending")
    assert any(json.loads(e.detail or "{}").get("pipl") is True for e in submitted)
