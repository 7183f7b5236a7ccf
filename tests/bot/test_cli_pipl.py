"""`python -m bot pipl-export`: the operator's PIPL access export, to a file beside its text
version, audited; never over an existing file; a destroyed customer's says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select

from storage import erasure
from storage.db import unit_of_work
from storage.models import KeyPerson
from tests.auxil.cli_helpers import run_cli
from tests.auxil.pipl_helpers import FULL, LONG_NAME, rich_customer
from tests.auxil.record_helpers import audit_entries
from tests.auxil.world import NOW, World


async def test_the_operator_exports_a_customer(
    world: World, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=3, visit_count=4, complaint_count=2)
    out = cli_env / "request.json"
    assert await run_cli("pipl-export", f"KH-2026-{cid:06d}", "--out", str(out)) == 0
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["customer"]["fields"]["name"] == LONG_NAME
    assert all(document["customer"]["fields"][k] == v for k, v in FULL.items())
    assert len(document["visits"]) == 4 and len(document["key_persons"]) == 3
    text = out.with_suffix(".txt").read_text(encoding="utf-8")
    assert "== 客户 ==" in text and "服务器管理员" in text  # DEFAULT_LANGUAGE, by the operator
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    printed = capsys.readouterr().out
    assert "visits 4" in printed and "personal data" in printed
    [entry] = await audit_entries(world.services.sessions, "pipl.access")
    assert entry.actor_staff_id is None and json.loads(entry.detail or "{}")["via"] == "cli"
    # never over an existing file
    assert await run_cli("pipl-export", f"KH-2026-{cid:06d}", "--out", str(out)) == 2
    assert "exists already" in capsys.readouterr().err
    assert len(await audit_entries(world.services.sessions, "pipl.access")) == 1


async def test_a_key_person_in_english_and_unknown_ones(
    world: World, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=1, visit_count=0, complaint_count=0)
    async with unit_of_work(world.services.sessions) as session:
        person = (await session.exec(select(KeyPerson))).one()
    number = f"KH-2026-{cid:06d}"
    out = cli_env / "person.json"
    argv = ("pipl-export", number, "--key-person", str(person.id), "--out", str(out))
    assert await run_cli(*argv, "--language", "en") == 0
    assert json.loads(out.read_text())["key_person"]["fields"]["kp_name"] == person.name
    assert "== Key person ==" in out.with_suffix(".txt").read_text()
    missing = cli_env / "missing.json"
    assert await run_cli("pipl-export", number, "--key-person", "9999", "--out", str(missing)) == 2
    assert await run_cli("pipl-export", "KH-2099-000001", "--out", str(missing)) == 2
    assert "no customer KH-2099-000001" in capsys.readouterr().err
    assert not missing.exists()


async def test_a_destroyed_customer(world: World, cli_env: Path) -> None:
    sales = await world.member("salesperson", "East", "Li")
    cid = await rich_customer(world, sales, people=1, visit_count=1, complaint_count=0)
    async with unit_of_work(world.services.sessions) as session:
        await erasure.erase_customer(session, world.services.keyring, customer_id=cid, now=NOW)
    out = cli_env / "gone.json"
    assert await run_cli("pipl-export", f"KH-2026-{cid:06d}", "--out", str(out)) == 0
    content = out.read_text(encoding="utf-8") + out.with_suffix(".txt").read_text(encoding="utf-8")
    assert json.loads(out.read_text())["destroyed"] is True
    assert LONG_NAME[:10] not in content and "13812345678" not in content
