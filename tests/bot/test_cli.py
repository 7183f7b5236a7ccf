"""`python -m bot` operator commands: help, migrate, invite, new-key, rotate-keys, backup."""

from __future__ import annotations

import asyncio
import gc
import re
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select

from bot.cli import main
from storage import audit, customers, drafts, staff
from storage.crypto import Keyring, MasterKey, decode_master_key, new_master_key
from storage.db import SessionFactory, make_engine, unit_of_work
from storage.errors import Refused
from storage.models import DataKey, Invite, Role, Staff, Team
from tests.auxil.settings_env import clean_settings_env

COMMANDS = ("run", "migrate", "invite", "backup", "restore", "rotate-keys", "verify-audit")
LINK = re.compile(r"^https://t\.me/archive_bot\?start=([A-Za-z0-9_-]{20,})$")


def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> None:
    clean_settings_env(
        monkeypatch,
        tmp_path,
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path / "data"),
        BOT_USERNAME="archive_bot",
        ENCRYPTION_KEYS=new_master_key(),  # only `run` may generate a key file
    )


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, master_key_text: str
) -> Path:
    """The environment `python -m bot` reads, with the master key the test's sessions use (so
    both open the same audit MAC key)."""
    _clean_env(monkeypatch, tmp_path, database_url)
    monkeypatch.setenv("ENCRYPTION_KEYS", master_key_text)
    return tmp_path


async def cli(*argv: str) -> int:
    """Run main() in a worker thread: it calls asyncio.run, which needs a loop of its own."""
    return await asyncio.to_thread(main, list(argv))


# --- help, new-key (backup and restore: tests/bot/test_backup_cli.py) -----------------------


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    for command in (*COMMANDS, "new-key"):
        assert re.search(rf"^\s+{re.escape(command)}\s", out, re.MULTILINE), command


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["frobnicate"])
    assert stopped.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_new_key_prints_a_usable_master_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-key"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["new-key"]) == 0
    second = capsys.readouterr().out.strip()
    assert len(decode_master_key(first)) == 32
    assert len(decode_master_key(second)) == 32
    assert first != second
    assert Keyring([decode_master_key(first)]).current.kid


# --- migrate ---------------------------------------------------------------------------------


async def test_migrate_creates_the_schema(
    cli_env: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("migrate") == 0
    assert "up to date" in capsys.readouterr().out
    assert await cli("migrate") == 0  # idempotent
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert tables == set(SQLModel.metadata.tables) | {"alembic_version"}


async def test_migrate_uses_the_sqlite_file_under_data_dir_by_default(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL")
    assert await cli("migrate") == 0
    assert (cli_env / "data" / "archive.db").stat().st_size > 0


# --- invite ----------------------------------------------------------------------------------


async def test_invite_prints_a_one_time_link(
    cli_env: Path, session_factory: SessionFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("invite", "--role", "salesperson", "--team", "East") == 0
    captured = capsys.readouterr()
    match = LINK.match(captured.out.strip())
    assert match, captured.out
    token = match[1]
    assert "salesperson" in captured.err and "East" in captured.err

    async with session_factory() as session:
        invite = (await session.exec(select(Invite))).one()
        team = (await session.exec(select(Team))).one()
    assert team.name == "East"
    assert (invite.role, invite.team_id, invite.used_at) == ("salesperson", team.id, None)
    assert invite.token_hash == staff.token_hash(token) and token not in invite.token_hash

    async with unit_of_work(session_factory) as session:
        member = await staff.redeem_invite(
            session, token=token, telegram_id=555001, display_name="Wang Fang", language="zh"
        )
    assert (member.role, member.team_id, member.display_name) == (
        Role.salesperson,
        team.id,
        "Wang Fang",
    )
    with pytest.raises(Refused) as refused:
        async with unit_of_work(session_factory) as session:
            await staff.redeem_invite(
                session, token=token, telegram_id=555002, display_name="Li Lei", language=None
            )
    assert refused.value.code == "invite_used"

    async with session_factory() as session:
        members = (await session.exec(select(Staff))).all()
        invite = (await session.exec(select(Invite))).one()
        assert (await audit.verify_chain(session)).ok
    assert [m.telegram_id for m in members] == [555001]
    assert invite.used_by == members[0].id and invite.used_at is not None


async def test_invite_reuses_an_existing_team(
    cli_env: Path, session_factory: SessionFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("invite", "--role", "salesperson", "--team", "East") == 0
    assert await cli("invite", "--role", "manager", "--team", "East") == 0
    tokens = [LINK.match(line)[1] for line in capsys.readouterr().out.split()]  # type: ignore[index]
    assert len(set(tokens)) == 2
    async with session_factory() as session:
        assert len((await session.exec(select(Team))).all()) == 1
        assert sorted(i.role for i in (await session.exec(select(Invite))).all()) == [
            "manager",
            "salesperson",
        ]


async def test_admin_invite_needs_no_team(
    cli_env: Path, session_factory: SessionFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("invite", "--role", "admin") == 0
    assert LINK.match(capsys.readouterr().out.strip())
    async with session_factory() as session:
        invite = (await session.exec(select(Invite))).one()
    assert (invite.role, invite.team_id) == ("admin", None)


async def test_invite_for_salesperson_without_team_fails(
    cli_env: Path, session_factory: SessionFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("invite", "--role", "salesperson") == 2
    captured = capsys.readouterr()
    assert "--team" in captured.err
    assert "t.me" not in captured.out
    async with session_factory() as session:
        assert (await session.exec(select(Invite))).all() == []


# --- rotate-keys -----------------------------------------------------------------------------


async def test_rotate_keys_moves_data_off_the_old_key(
    cli_env: Path,
    session_factory: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    master_key_text: str,
) -> None:
    old_text, new_text = master_key_text, new_master_key()  # the sessions' key is the old one
    old, new = decode_master_key(old_text), decode_master_key(new_text)
    old_kid, new_kid = MasterKey.from_bytes(old).kid, MasterKey.from_bytes(new).kid
    before = Keyring([old])
    async with unit_of_work(session_factory) as session:
        team = Team(name="East")
        session.add(team)
        await session.flush()
        seller = Staff(telegram_id=1001, display_name="s", role=Role.salesperson, team_id=team.id)
        session.add(seller)
        await session.flush()
    made = []
    for name, phone in [("One", "+8613812345678"), ("Two", "+8613900001111")]:
        async with unit_of_work(session_factory) as session:
            made.append(
                await customers.create_customer(
                    session,
                    keyring=before,
                    actor=seller,
                    values={"kind": "company", "name": name, "phones": [phone]},
                )
            )
    async with unit_of_work(session_factory) as session:
        await drafts.save(
            session,
            before,
            seller.id or 0,
            drafts.DraftState("new_customer", "name", data={"a": 1}),
        )

    monkeypatch.setenv("ENCRYPTION_KEYS", f"{new_text},{old_text}")
    assert await cli("rotate-keys") == 0
    out = capsys.readouterr().out
    assert "re-wrapped 2 data keys" in out and "re-sealed 1 drafts" in out
    assert "0 data keys still on old master keys" in out
    assert "may now be removed" in out

    async with session_factory() as session:
        kek_ids = [k.kek_id for k in (await session.exec(select(DataKey))).all()]
        assert kek_ids == [new_kid, new_kid] and old_kid not in kek_ids
        after = Keyring([new])
        for customer, phone in zip(made, ["+8613812345678", "+8613900001111"], strict=True):
            assert await customers.sealed_fields(session, after, customer) == {"phones": [phone]}
        draft = await drafts.load(session, after, seller.id or 0, not_before=None)
        assert draft is not None and draft.data == {"a": 1}

    # with only the new key configured, a second run has nothing left to do
    monkeypatch.setenv("ENCRYPTION_KEYS", new_text)
    assert await cli("rotate-keys") == 0
    assert "re-wrapped 0 data keys" in capsys.readouterr().out


# --- resources -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["verify-audit"], ["rotate-keys"], ["invite", "--role", "admin"]],
    ids=["verify-audit", "rotate-keys", "invite"],
)
async def test_cli_closes_its_database_connections(
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database_url: str,
    engine: AsyncEngine,
) -> None:
    _clean_env(monkeypatch, tmp_path, database_url)  # no disposing shim here
    unclosed: list[str] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda u: unclosed.append(f"{u.exc_type.__name__}: {u.exc_value}")
    )
    assert await cli(*argv) == 0
    for _ in range(3):
        gc.collect()
    assert unclosed == []
