"""Bad settings end in one line naming the setting and what to do, exit code 2 (issue 8.11).

Each case runs the real `python -m bot <command>` as a subprocess and checks the whole output:
exactly one line, `The bot cannot start: SETTING: ...`, no traceback and never the token.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from storage import audit, customers, drafts
from storage.crypto import Keyring, MasterKey, decode_master_key, new_master_key
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.models import AuditKey, BlindIndex, DataKey, Draft, Role, Staff, Team
from tests.e2e.fake_bot_api import FakeBotApi
from tests.e2e.harness import BotProcess
from tests.e2e.support import TOKEN, read_rows, run_async, run_cli, stop_cleanly

REFUSED = "The bot cannot start: "
ALL_COMMANDS = [
    ["run"],
    ["migrate"],
    ["invite", "--role", "admin"],
    ["rotate-keys"],
    ["verify-audit"],
]
OTHER_TOKEN = "654321:ANOTHER-token-abcdefghijklmnopqrstu"


def one_line(env: dict[str, str], *argv: str, secrets: tuple[str, ...] = ()) -> str:
    """Run the command; it must stop with exit code 2 and one line; return what follows the
    prefix."""
    result = run_cli(env, *argv)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    for secret in (TOKEN, OTHER_TOKEN, *secrets):
        assert secret not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith(REFUSED), output
    return lines[0].removeprefix(REFUSED)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """A bot's environment with keys set, so each test breaks exactly one thing."""
    return {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": f"http://127.0.0.1:{closed_port()}/bot",
        "BOT_USERNAME": "archive_test_bot",
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": database_url,
        "ENCRYPTION_KEYS": new_master_key(),
    }


# --- the database ----------------------------------------------------------------------------


@pytest.mark.parametrize("argv", ALL_COMMANDS, ids=lambda a: a[0])
def test_a_database_url_that_is_not_a_url(env: dict[str, str], argv: list[str]) -> None:
    env["DATABASE_URL"] = "garbage"
    line = one_line(env, *argv)
    assert line.startswith("DATABASE_URL: must be a sqlite:///"), line
    assert "garbage" not in line


@pytest.mark.parametrize("argv", ALL_COMMANDS, ids=lambda a: a[0])
def test_an_unreachable_postgresql(env: dict[str, str], argv: list[str]) -> None:
    env["DATABASE_URL"] = f"postgresql://archive:hunter2-secret@127.0.0.1:{closed_port()}/x"
    line = one_line(env, *argv, secrets=("hunter2-secret",))
    assert line.startswith("DATABASE_URL: cannot connect to postgresql://archive:***@127.0.0.1"), (
        line
    )
    assert "connection refused" in line and "running" in line


# --- the data folder -------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["run"], ["migrate"]], ids=lambda a: a[0])
@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_a_data_dir_that_cannot_be_a_folder(
    env: dict[str, str], tmp_path: Path, argv: list[str], where: str
) -> None:
    """DATA_DIR holds the default SQLite file and the key file; root may write anywhere, so a
    file in place of the folder is how it fails here."""
    blocker = tmp_path / "occupied"
    blocker.write_text("not a folder")
    env["DATA_DIR"] = str(blocker if where == "a file" else blocker / "data")
    del env["DATABASE_URL"], env["ENCRYPTION_KEYS"]
    line = one_line(env, *argv)
    assert line.startswith(f"DATA_DIR: {'' if where == 'a file' else 'cannot create '}"), line
    assert ("is a file" if where == "a file" else "not a directory") in line
    assert "set DATA_DIR to a folder" in line
    assert blocker.read_text() == "not a folder"


def test_a_sqlite_file_in_a_folder_that_cannot_be_made(env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "occupied"
    blocker.write_text("")
    env["DATABASE_URL"] = f"sqlite:///{blocker}/sub/archive.db"
    line = one_line(env, "migrate")
    assert line.startswith("DATABASE_URL: cannot create the folder"), line


# --- the Bot API -----------------------------------------------------------------------------


def test_an_unreachable_bot_api(env: dict[str, str]) -> None:
    line = one_line(env, "run")
    assert line.startswith("TELEGRAM_BASE_URL: cannot reach the Bot API at http://127.0.0.1:")
    assert "/bot (" in line and "TELEGRAM_BASE_URL" in line.partition(";")[2]


def test_invite_without_bot_username_and_no_bot_api(env: dict[str, str]) -> None:
    del env["BOT_USERNAME"]
    line = one_line(env, "invite", "--role", "admin")
    assert line.startswith("TELEGRAM_BASE_URL: cannot reach") and line.endswith("set BOT_USERNAME")


def test_a_token_telegram_rejects_is_named_but_never_shown(
    api: FakeBotApi, env: dict[str, str]
) -> None:
    """The fake answers 401 Unauthorized; PTB's own message would print the whole token."""
    env["TELEGRAM_BASE_URL"] = api.base_url
    env["TELEGRAM_BOT_TOKEN"] = OTHER_TOKEN
    line = one_line(env, "run")
    assert line.startswith("TELEGRAM_BOT_TOKEN: the Bot API at "), line
    assert "(Unauthorized)" in line and "@BotFather" in line
    assert OTHER_TOKEN.split(":")[1] not in line


# --- the master keys -------------------------------------------------------------------------


async def _seed(database_url: str, keyring: Keyring) -> int:
    """A customer with a phone and a draft, sealed under `keyring`; returns the sealed rows."""
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    audit.use_keyring(sessions, keyring)
    try:
        async with unit_of_work(sessions) as session:
            team = Team(name="East")
            session.add(team)
            await session.flush()
            seller = Staff(telegram_id=1, display_name="Li", role=Role.salesperson, team_id=team.id)
            session.add(seller)
            await session.flush()
            await customers.create_customer(
                session,
                keyring=keyring,
                actor=seller,
                values={"kind": "company", "name": "Mingyuan", "phones": ["+8613812345678"]},
            )
            await drafts.save(
                session, keyring, seller.id or 0, drafts.DraftState("new_customer", "name")
            )
    finally:
        await engine.dispose()
    rows = await read_rows(database_url, DataKey, BlindIndex, AuditKey, Draft)
    return sum(len(table) for table in rows)


def first_start(
    api: FakeBotApi, env: dict[str, str], database_url: str, tmp_path: Path
) -> tuple[str, int]:
    """A first `run` without ENCRYPTION_KEYS makes the key file; data is then sealed under it."""
    del env["ENCRYPTION_KEYS"]
    env["TELEGRAM_BASE_URL"] = api.base_url
    bot = BotProcess(env, log_dir=tmp_path)
    try:
        bot.start().wait_until_polling(api)
    finally:
        log = stop_cleanly(bot)
    assert "generated a key into" in log
    old = (Path(env["DATA_DIR"]) / "encryption.key").read_text().strip()
    return old, run_async(_seed(database_url, Keyring([decode_master_key(old)])))


def test_encryption_keys_set_after_a_first_start_without_them(
    api: FakeBotApi, env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    old, sealed = first_start(api, env, database_url, tmp_path)
    old_kid = MasterKey.from_bytes(decode_master_key(old)).kid
    new = new_master_key()
    env["ENCRYPTION_KEYS"] = new

    for argv in (["run"], ["rotate-keys"]):
        line = one_line(env, *argv, secrets=(old, new))
        assert line.startswith(f"ENCRYPTION_KEYS: {sealed} stored records ("), line
        assert f"master key id {old_kid}" in line
        assert "encryption.key holds it: add that key to ENCRYPTION_KEYS" in line
        assert "rotate-keys" in line

    # doing what the line says: both keys, rotate, then the new key alone
    env["ENCRYPTION_KEYS"] = f"{new},{old}"
    rotated = run_cli(env, "rotate-keys")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "older master keys may now be removed" in rotated.stdout
    env["ENCRYPTION_KEYS"] = new
    bot = BotProcess(env, log_dir=tmp_path)
    try:
        bot.start().wait_until_polling(api)
    finally:
        log = stop_cleanly(bot)
    assert new not in log and old not in log


def test_a_lost_key_file_is_not_replaced_beside_encrypted_data(
    api: FakeBotApi, env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    _, sealed = first_start(api, env, database_url, tmp_path)
    key_file = Path(env["DATA_DIR"]) / "encryption.key"
    key_file.unlink()
    line = one_line(env, "run")
    assert line.startswith("ENCRYPTION_KEYS: is not set and there is no key file"), line
    assert f"but {sealed} stored records are encrypted" in line
    assert not key_file.exists()


@pytest.mark.parametrize("command", ["verify-audit", "rotate-keys"])
def test_commands_run_elsewhere_do_not_make_a_key_file(
    env: dict[str, str], tmp_path: Path, command: str
) -> None:
    """Only `run` creates a key file; elsewhere a missing one is named, and nothing is made."""
    del env["ENCRYPTION_KEYS"], env["DATABASE_URL"]
    env["DATA_DIR"] = str(tmp_path / "elsewhere" / "data")
    line = one_line(env, command)
    assert line.startswith("ENCRYPTION_KEYS: is not set and there is no key file "), line
    assert "DATA_DIR" in line
    assert not (tmp_path / "elsewhere").exists()


def test_bot_api_base_url_for_invite_stays_clean(api: FakeBotApi, bot_env: dict[str, str]) -> None:
    """A good start still works: invite learns the username from the fake Bot API."""
    del bot_env["BOT_USERNAME"]
    bot_env["ENCRYPTION_KEYS"] = new_master_key()  # an invite is audited: the log is keyed
    made = run_cli(bot_env, "invite", "--role", "admin")
    assert made.returncode == 0, made.stderr
    assert "https://t.me/archive_test_bot?start=" in made.stdout
    assert TOKEN not in made.stdout + made.stderr
