"""`python -m bot health`: exit 0 when the bot could serve, else 1 and one line saying why.

A container's HEALTHCHECK runs it, so it is run here as a real process against a real database:
healthy, no database, a schema behind the code, keys that do not open the data. It never creates
the database or a key file, and never prints a key, the token or a password.
"""

from __future__ import annotations

import socket
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from storage.crypto import new_master_key
from storage.db import make_engine
from storage.schema_head import head_revision
from tests.e2e.support import TOKEN, run_async, run_cli

OLDER = "0015_staff_changes"  # a revision before the head


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def set_revision(database_url: str, revision: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
            )
    finally:
        await engine.dispose()


def health(env: dict[str, str]) -> tuple[int, str]:
    """Exit code and the output (one line, on stdout when healthy, stderr otherwise)."""
    done = run_cli(env, "health")
    output = done.stdout + done.stderr
    assert len(output.splitlines()) == 1, output
    assert (done.stdout if done.returncode == 0 else done.stderr) == output
    return done.returncode, output.strip()


def assert_no_secrets(output: str, *secrets: str) -> None:
    for secret in (TOKEN, TOKEN.split(":")[1], *secrets):
        assert secret not in output, output


def test_health_is_ok_only_with_a_database_at_head_and_keys_that_open_it(
    database_url: str, tmp_path: Path
) -> None:
    key, other_key = new_master_key(), new_master_key()
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "ENCRYPTION_KEYS": key,
        "BOT_USERNAME": "archive_test_bot",
    }
    code, line = health(env)  # nothing made yet
    assert code == 1
    if make_url(database_url).get_backend_name() == "sqlite":
        assert line.startswith("unhealthy: database: DATABASE_URL: there is no database file")
        assert not Path(make_url(database_url).database or "").exists()  # not created by it
    else:
        assert line.startswith("unhealthy: schema: the database has no schema yet")

    invite = run_cli(env, "invite", "--role", "admin")  # migrates, and audits under `key`
    assert invite.returncode == 0, invite.stderr
    code, line = health(env)
    assert code == 0, line
    assert line.startswith("healthy: database ")
    assert f"schema at head {head_revision()}" in line and "open the stored data" in line
    assert_no_secrets(line, key)

    code, line = health({**env, "ENCRYPTION_KEYS": other_key})  # a key that opens nothing
    assert code == 1
    assert line.startswith("unhealthy: keys: ENCRYPTION_KEYS: ")
    assert "does not hold" in line
    assert_no_secrets(line, key, other_key)

    no_keys = {k: v for k, v in env.items() if k != "ENCRYPTION_KEYS"}
    code, line = health(no_keys)  # and no key file in DATA_DIR either
    assert code == 1 and line.startswith("unhealthy: keys: ENCRYPTION_KEYS: is not set"), line
    assert not (tmp_path / "data" / "encryption.key").exists()

    # the code was upgraded, the database not yet migrated (only its stamp is set back here)
    run_async(set_revision(database_url, OLDER))
    code, line = health(env)
    assert code == 1
    assert line.startswith(f"unhealthy: schema: the database is at revision {OLDER}, not at head")
    assert "python -m bot migrate" in line

    run_async(set_revision(database_url, head_revision() or ""))  # as `migrate` leaves it
    assert health(env)[0] == 0


def test_health_names_a_database_that_does_not_answer_without_its_password(
    tmp_path: Path,
) -> None:
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "DATABASE_URL": f"postgresql://archive:s3cret-Passw0rd@127.0.0.1:{free_port()}/archive",
        "DATA_DIR": str(tmp_path / "data"),
        "ENCRYPTION_KEYS": new_master_key(),
    }
    code, line = health(env)
    assert code == 1
    assert line.startswith("unhealthy: database: DATABASE_URL: cannot connect to"), line
    assert_no_secrets(line, "s3cret-Passw0rd", env["ENCRYPTION_KEYS"])


def test_health_refuses_bad_settings_like_every_command(tmp_path: Path) -> None:
    done = run_cli(
        {"TELEGRAM_BOT_TOKEN": TOKEN, "DATA_DIR": str(tmp_path), "LOG_FORMAT": "xml"}, "health"
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "The bot cannot start: LOG_FORMAT: must be plain or json (one JSON object per line)"
    )
