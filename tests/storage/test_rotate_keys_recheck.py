"""`rotate-keys` says an old key may go only when nothing stored uses it any more (issue 8)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from storage import customers
from storage.crypto import Keyring, MasterKey, decode_master_key, new_master_key
from storage.db import SessionFactory, unit_of_work
from storage.erasure_ledger import Entry, Erased, Ledger
from storage.models import Role, Staff, Team
from tests.auxil.settings_env import clean_settings_env


async def seed(session_factory: SessionFactory, keyring: Keyring) -> None:
    async with unit_of_work(session_factory) as session:
        team = Team(name="East")
        session.add(team)
        await session.flush()
        seller = Staff(telegram_id=1001, display_name="s", role=Role.salesperson, team_id=team.id)
        session.add(seller)
        await session.flush()
        await customers.create_customer(
            session,
            keyring=keyring,
            actor=seller,
            values={"kind": "company", "name": "One", "phones": ["+8613812345678"]},
        )


async def test_rotate_keys_keeps_the_old_key_while_blind_indexes_still_use_it(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database_url: str,
    session_factory: SessionFactory,
    capsys: pytest.CaptureFixture[str],
    master_key_text: str,
) -> None:
    # the old key is the tests' own, under which the session factory also keys the audit log
    old_text, new_text = master_key_text, new_master_key()
    old_kid = MasterKey.from_bytes(decode_master_key(old_text)).kid
    await seed(session_factory, Keyring([decode_master_key(old_text)]))
    clean_settings_env(
        monkeypatch,
        tmp_path,
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path / "data"),
        ENCRYPTION_KEYS=f"{new_text},{old_text}",
    )

    async def left_behind(*args: Any, **kwargs: Any) -> None:
        """A re-index that did not happen (a crash, a bug): the digests stay on the old key."""

    monkeypatch.setattr(customers, "reindex", left_behind)
    assert await asyncio.to_thread(main, ["rotate-keys"]) == 1
    out = capsys.readouterr().out
    assert "0 data keys still on old master keys" in out  # the data keys did move
    assert "may now be removed" not in out
    assert f"blind indexes) still use older master key id {old_kid}" in out
    assert "run rotate-keys again" in out

    monkeypatch.undo()
    clean_settings_env(
        monkeypatch,
        tmp_path,
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path / "data"),
        ENCRYPTION_KEYS=f"{new_text},{old_text}",
    )
    assert await asyncio.to_thread(main, ["rotate-keys"]) == 0
    assert "older master keys may now be removed" in capsys.readouterr().out


async def test_rotate_keys_rewraps_the_erasure_ledger_so_the_old_key_may_go(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database_url: str,
    session_factory: SessionFactory,
    capsys: pytest.CaptureFixture[str],
    master_key_text: str,
) -> None:
    """The ledger's MAC key is wrapped by a master key: rotate-keys wraps it again, and once the
    old key is dropped the ledger still verifies (the bot would refuse to start otherwise)."""
    old_text, new_text = master_key_text, new_master_key()
    await seed(session_factory, Keyring([decode_master_key(old_text)]))
    data = tmp_path / "data"
    ledger = Ledger(data / "erasures.log", Keyring([decode_master_key(old_text)]))
    ledger.append([Entry.of(Erased.key_person, 7, 1, None, datetime(2026, 12, 1, tzinfo=UTC))])
    head = ledger.head()
    settings = {"DATABASE_URL": database_url, "DATA_DIR": str(data)}
    clean_settings_env(monkeypatch, tmp_path, **settings, ENCRYPTION_KEYS=f"{new_text},{old_text}")
    assert await asyncio.to_thread(main, ["rotate-keys"]) == 0
    out = capsys.readouterr().out
    assert "re-wrapped the erasure ledger's key" in out and "may now be removed" in out

    monkeypatch.undo()
    clean_settings_env(monkeypatch, tmp_path, **settings, ENCRYPTION_KEYS=new_text)
    assert await asyncio.to_thread(main, ["erasures"]) == 0
    assert f"head: 1:{head.mac}" in capsys.readouterr().out
