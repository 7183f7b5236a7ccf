"""The image runs what the systemd unit runs and what the end-to-end tests start natively, as a
user who is not root, from a build context that holds no secret (issue 15, item 2)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
import typing
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from pydantic import SecretStr

from bot.settings import Settings
from tests.deploy.files import (
    COMPOSE,
    DOCKERFILE,
    DOCKERIGNORE,
    ROOT,
    dev_tool,
    dockerfile_stages,
    exec_form,
    final_stage,
    service_section,
    unit_environment,
    unit_exec_start,
)
from tests.e2e.harness import BotProcess

# any name a secret would go by, beside the settings declared SecretStr and the database URL
SECRETISH = re.compile(r"TOKEN|SECRET|PASSW|KEY|CREDENTIAL", re.I)


def _secret_settings() -> set[str]:
    """The settings bot/settings.py declares secret (SecretStr), and DATABASE_URL (a password)."""
    secret = {
        name
        for name, info in Settings.model_fields.items()
        if info.annotation is SecretStr or SecretStr in typing.get_args(info.annotation)
    }
    return secret | {"DATABASE_URL"}


def baked_secrets(dockerfile: Path = DOCKERFILE) -> tuple[int, list[str]]:
    """How many ENV/ARG names the Dockerfile sets in all its stages, and those that are (or
    look like) a secret or hold a bot token."""
    preamble, stages = dockerfile_stages(dockerfile)
    assigned: dict[str, str] = {}
    for stage in stages:
        assigned |= stage.env()
    for kind, value in preamble + [i for stage in stages for i in stage.instructions]:
        if kind == "ARG":
            name, _, default = value.partition("=")
            assigned[name.strip()] = default
    secret = _secret_settings()
    token = re.compile(r"\d{3,}:[A-Za-z0-9_-]{20,}")
    found = [
        name
        for name, value in assigned.items()
        if name in secret or SECRETISH.search(name) or token.search(value)
    ]
    return len(assigned), found


def test_the_container_command_is_the_units_exec_start_and_the_e2e_tests_command() -> None:
    stage = final_stage()
    [cmd] = stage.values("CMD")
    assert stage.values("ENTRYPOINT") == []  # nothing in front of the command
    assert exec_form(cmd) == unit_exec_start()
    # the end-to-end tests run `<the venv's python> -m bot run` as a subprocess
    assert exec_form(cmd)[1:] == BotProcess(env={}).argv[1:] == ["-m", "bot", "run"]


def test_it_runs_in_the_units_working_directory_with_the_units_environment() -> None:
    stage = final_stage()
    [working_directory] = service_section()["WorkingDirectory"]
    assert stage.values("WORKDIR")[-1] == working_directory
    env = stage.env()
    for name, value in unit_environment().items():
        assert env.get(name) == value, name
    # `python` (the compose health check, `docker compose exec bot python -m bot ...`) is the
    # very interpreter of ExecStart
    assert env["PATH"].split(":")[0] == str(Path(unit_exec_start()[0]).parent)


def test_the_user_is_the_units_unprivileged_user_made_in_the_image() -> None:
    stage = final_stage()
    user = stage.values("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid not in ("0", "root") and gid not in ("0", "root")
    # the id belongs to the user the unit runs as, created in this stage with that id
    [name] = service_section()["User"]
    made = " ".join(stage.values("RUN"))
    assert re.search(rf"useradd [^&]*--uid {uid} [^&]*\b{re.escape(name)}\b", made), made
    # nothing after USER runs as root again
    after = [kind for kind, _ in stage.instructions[stage.instructions.index(("USER", user)) :]]
    assert "RUN" not in after


def test_no_env_or_arg_in_any_stage_names_or_carries_a_secret() -> None:
    assert {"TELEGRAM_BOT_TOKEN", "ENCRYPTION_KEYS", "WEBHOOK_SECRET"} <= _secret_settings()
    read, found = baked_secrets()
    assert read >= 4 and found == []


def test_the_images_python_is_the_one_the_project_declares() -> None:
    _, stages = dockerfile_stages()
    # the venv is built in the first stage and copied into the last: one image for both
    assert len({stage.base for stage in stages}) == 1 and len(stages) >= 2
    match = re.fullmatch(r"python:(\d+\.\d+)-slim-\w+", stages[-1].base)
    assert match, stages[-1].base
    image_python = Version(match[1])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert image_python in SpecifierSet(project["project"]["requires-python"])
    # and the version the code is linted for (ruff's target-version, py311)
    target = project["tool"]["ruff"]["target-version"]
    assert target == f"py{image_python.major}{image_python.minor}"


def test_the_postgresql_client_for_backups_matches_the_compose_server() -> None:
    made = " ".join(final_stage().values("RUN"))
    [client] = re.findall(r"postgresql-client-(\d+)", made)
    [server] = re.findall(r"image:\s*postgres:(\d+)", COMPOSE.read_text(encoding="utf-8"))
    assert int(client) >= int(server)


def _context_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _copied_sources() -> list[str]:
    """Every source of a COPY/ADD from the build context (not `--from=` another stage)."""
    sources = []
    for stage in dockerfile_stages()[1]:
        for kind, value in stage.instructions:
            words = value.split()
            if kind in ("COPY", "ADD") and not any(w.startswith("--from=") for w in words):
                sources += [w for w in words[:-1] if not w.startswith("--")]
    return sources


def test_every_file_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    sources = _copied_sources()
    assert {"pyproject.toml", "bot", "storage", "conversations"} <= set(sources)
    context = exclude_paths(str(ROOT), _context_patterns(), dockerfile="deploy/Dockerfile")
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source in context, f"{source} is copied but .dockerignore leaves it out"
    # the packages setuptools installs are all copied (pyproject's packages.find include)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {pattern.rstrip("*") for pattern in packages} <= set(sources)


def test_the_build_context_keeps_the_venv_git_databases_keys_and_env_files_out(
    tmp_path: Path,
) -> None:
    for folder in ("bot", "storage", "conversations"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.pyc"))
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        shutil.copy(ROOT / name, tmp_path / name)
    planted = [
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "deploy/.env",
        "bot/.env",
        "data/archive.db",
        "data/archive.db-wal",
        "data/encryption.key",
        "data/erasures.log",
        "data/backups/backup-20261122T190000Z.tar",
        "storage/archive.db",
        "storage/encryption.key",
        "bot/__pycache__/app.cpython-311.pyc",
        "tests/e2e/harness.py",
    ]
    for path in planted:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("must not reach the image")
    context = exclude_paths(str(tmp_path), _context_patterns(), dockerfile="deploy/Dockerfile")
    assert not context & set(planted), sorted(context & set(planted))
    assert not [path for path in context if path.startswith((".venv", ".git", "data", "tests"))]
    assert {"pyproject.toml", "bot/__main__.py", "storage/migrations/env.py"} <= context
    assert "bot/locale/zh/LC_MESSAGES/messages.po" in context


def test_hadolint_passes_the_dockerfile() -> None:
    done = subprocess.run(
        [str(dev_tool("hadolint")), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_refuses_an_image_that_runs_as_root(tmp_path: Path) -> None:
    """The lint is on: the same Dockerfile with USER root at the end fails it (DL3002)."""
    rooted = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text(encoding="utf-8")
    rooted.write_text(text.replace("\nCMD ", "\nUSER root\nCMD "), encoding="utf-8")
    done = subprocess.run(
        [str(dev_tool("hadolint")), "--no-color", str(rooted)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "DL3002" in done.stdout


@pytest.mark.parametrize(
    "secret",
    [
        "ENV TELEGRAM_BOT_TOKEN=x",
        "ARG WEBHOOK_SECRET",
        "ENV PGPASSWORD=x",
        "ENV EXTRA=123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    ],
)
def test_the_secret_check_catches_a_baked_secret(tmp_path: Path, secret: str) -> None:
    """The secret test above can fail: each of these ENV/ARG lines is caught."""
    baked = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text(encoding="utf-8")
    baked.write_text(text.replace("\nUSER ", f"\n{secret}\nUSER "), encoding="utf-8")
    _, found = baked_secrets(baked)
    assert len(found) == 1
