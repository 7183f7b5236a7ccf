"""deploy/compose.yaml as Docker Compose resolves it for an operator who followed the README:
PostgreSQL and the bot with health checks, the bot waiting for a healthy database, named
volumes for the data folder (keys), the backups and the database, and every secret taken from
deploy/.env, none written into the file (issue 15, item 2)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.settings import Settings
from tests.auxil.settings_env import clean_settings_env
from tests.deploy.files import (
    ROOT,
    compose_config,
    final_stage,
    operator_copy,
    service_section,
    unit_exec_start,
)

# what the operator puts into deploy/.env; each value is one the compose file must pass on
SECRETS = {
    "TELEGRAM_BOT_TOKEN": "123456789:AAHk-operator-token-0123456789abcdef",
    "ENCRYPTION_KEYS": "zl2qXAqN5z3V9Ooo0Jq8H0TUSN7A2mK6Qz0bL1vHq5A=",
    "WEBHOOK_SECRET": "operator-webhook-secret-0123456789",
    "POSTGRES_PASSWORD": "operator_Pass-0123456789",
}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = operator_copy(
        tmp_path_factory.mktemp("operator"), [f"{k}={v}" for k, v in SECRETS.items()]
    )
    done = compose_config(project, "--format", "json")
    assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)
    resolved["project"] = str(project)
    return resolved


def _volume_at(service: dict[str, Any], target: str) -> str:
    [mount] = [m for m in service["volumes"] if m["target"] == target]
    assert mount["type"] == "volume", f"{target} is not a named volume"
    return str(mount["source"])


def test_the_bot_has_the_health_subcommand_as_its_health_check(config: dict[str, Any]) -> None:
    bot = config["services"]["bot"]
    assert bot["healthcheck"]["test"] == ["CMD", "python", "-m", "bot", "health"]
    # `python` there is ExecStart's interpreter: the image puts the venv first on PATH
    venv_bin = str(Path(unit_exec_start()[0]).parent)
    assert final_stage().env()["PATH"].split(":")[0] == venv_bin
    # and the container runs the image's command (the unit's ExecStart), not one of its own
    assert bot["command"] is None and bot["entrypoint"] is None


def test_postgresql_has_pg_isready_and_the_bot_waits_for_it_healthy(
    config: dict[str, Any],
) -> None:
    db = config["services"]["db"]
    test = db["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert f"--username={db['environment']['POSTGRES_USER']}" in test
    assert f"--dbname={db['environment']['POSTGRES_DB']}" in test
    assert config["services"]["bot"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_the_bot_reaches_the_compose_database_with_the_operators_password(
    config: dict[str, Any],
) -> None:
    db, bot = config["services"]["db"], config["services"]["bot"]
    url = make_url(bot["environment"]["DATABASE_URL"])
    assert url.drivername == "postgresql" and url.host == "db" and url.port == 5432
    assert url.username == db["environment"]["POSTGRES_USER"]
    assert url.database == db["environment"]["POSTGRES_DB"]
    assert url.password == db["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]


def test_data_backups_and_database_are_separate_named_volumes_where_the_bot_writes(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings the bot reads inside the container put the key file and the erasure
    ledger in the `data` volume and the backups in the `backups` volume, so backups can be
    copied off without the keys."""
    bot, db = config["services"]["bot"], config["services"]["db"]
    clean_settings_env(monkeypatch, Path(config["project"]), **bot["environment"])
    settings = Settings()  # type: ignore[call-arg]
    data = _volume_at(bot, str(settings.DATA_DIR))
    backups = _volume_at(bot, str(settings.backup_dir))
    assert settings.key_file.parent == settings.erasure_ledger.parent == settings.DATA_DIR
    # the image's own DATA_DIR (the unit's) is that same volume
    assert final_stage().env()["DATA_DIR"] == str(settings.DATA_DIR)
    pgdata = _volume_at(db, "/var/lib/postgresql/data")
    assert len({data, backups, pgdata}) == 3
    assert {data, backups, pgdata} <= set(config["volumes"])
    assert settings.database_url.startswith("postgresql://")


def test_every_secret_comes_from_the_operators_env_file(config: dict[str, Any]) -> None:
    env = config["services"]["bot"]["environment"]
    for name, value in SECRETS.items():
        assert env[name] == value, f"compose.yaml overrides {name}"
    text = (ROOT / "deploy" / "compose.yaml").read_text(encoding="utf-8")
    for value in SECRETS.values():
        assert value not in text


def test_it_builds_the_repositorys_dockerfile_and_stops_as_gently_as_the_unit(
    config: dict[str, Any],
) -> None:
    bot = config["services"]["bot"]
    assert Path(bot["build"]["context"]) == Path(config["project"])  # the repository root
    assert (ROOT / bot["build"]["dockerfile"]).is_file()
    [timeout] = service_section()["TimeoutStopSec"]
    assert bot["stop_grace_period"] == timeout
    assert bot["read_only"] is True and bot["cap_drop"] == ["ALL"]


def test_without_a_postgres_password_compose_refuses_and_says_where_to_set_it(
    tmp_path: Path,
) -> None:
    project = operator_copy(tmp_path, [f"TELEGRAM_BOT_TOKEN={SECRETS['TELEGRAM_BOT_TOKEN']}"])
    done = compose_config(project, "--quiet")
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr and "deploy/.env" in done.stderr


def test_without_deploy_env_compose_refuses_even_with_the_password_given(tmp_path: Path) -> None:
    env = {"POSTGRES_PASSWORD": SECRETS["POSTGRES_PASSWORD"]}
    done = compose_config(operator_copy(tmp_path, None), "--quiet", env=env)
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" not in done.stderr
    assert "env file" in done.stderr and "deploy/.env" in done.stderr


def _readme_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Run with Docker Compose", 1)[1].split("\n## ", 1)[0]


def test_the_readmes_commands_use_real_subcommands_and_the_volumes_paths(
    config: dict[str, Any],
) -> None:
    from bot.cli import build_parser

    section = _readme_section()
    [subparsers] = [
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    used = set(re.findall(r"\bbot python -m bot ([a-z-]+)", section))
    assert {"invite", "backup", "restore", "new-key"} <= used
    assert used <= set(subparsers.choices), used - set(subparsers.choices)
    mounts = [m["target"] for m in config["services"]["bot"]["volumes"]]
    paths = set(re.findall(r"bot:(/[\w/.-]+)|(/var/lib/[\w/.-]+)", section))
    for path in {a or b for a, b in paths}:
        assert any(path == m or path.startswith(m + "/") for m in mounts), path
    assert "deploy/compose.yaml" in section and "cp deploy/example.env deploy/.env" in section
