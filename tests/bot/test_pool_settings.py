"""The team pool's settings (issue 10, item 4): its defaults, and bad values refused at start-up
with one line naming the setting, as every other setting is."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.settings import Settings, parse_pool_after
from storage.reminders import Rules
from tests.auxil.settings_env import clean_settings_env


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    clean_settings_env(monkeypatch, tmp_path, DATA_DIR=str(tmp_path / "data"))
    return monkeypatch


def test_the_pool_is_on_by_default_with_the_issues_limits(env: pytest.MonkeyPatch) -> None:
    """The tests' own `settings` fixture turns the pool off; the product's default is on."""
    settings = Settings()  # type: ignore[call-arg]
    assert settings.POOL_AFTER_DAYS == "A=30,B=45,C=60,D=90"
    assert settings.pool_after_days == {"A": 30, "B": 45, "C": 60, "D": 90}
    assert settings.POOL_WARNING_DAYS == 3
    assert settings.POOL_CLAIM_LIMIT == 10
    rules = Rules.from_settings(settings)
    assert rules.pool_after == {"A": 30, "B": 45, "C": 60, "D": 90}
    assert rules.pool_warning_days == 3


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("off", {}),
        ("OFF", {}),
        ("", {}),
        ("A=30", {"A": 30}),  # B, C and D are never pooled
        (" a = 7 , D=120 ", {"A": 7, "D": 120}),
        ("A=30,B=45,C=60,D=90,", {"A": 30, "B": 45, "C": 60, "D": 90}),
    ],
)
def test_pool_after_days_parses(raw: str, expected: dict[str, int]) -> None:
    assert parse_pool_after(raw) == expected


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("POOL_AFTER_DAYS", "A=30,E=10", "CLASS=days"),
        ("POOL_AFTER_DAYS", "A30", "CLASS=days"),
        ("POOL_AFTER_DAYS", "A=-3", "CLASS=days"),
        ("POOL_AFTER_DAYS", "A=0", "from 1 to 1095"),
        ("POOL_AFTER_DAYS", "A=5000", "from 1 to 1095"),
        ("POOL_AFTER_DAYS", "A=30,A=40", "twice"),
        ("POOL_AFTER_DAYS", "A=３０", "CLASS=days"),
        ("POOL_AFTER_DAYS", "never", "CLASS=days"),
        ("POOL_WARNING_DAYS", "0", "1 to 30"),
        ("POOL_WARNING_DAYS", "31", "1 to 30"),
        ("POOL_WARNING_DAYS", "three", "integer"),
        ("POOL_CLAIM_LIMIT", "-1", "0 (nobody claims)"),
        ("POOL_CLAIM_LIMIT", "10001", "0 (nobody claims)"),
    ],
)
def test_a_bad_pool_setting_stops_the_bot_with_one_line_naming_it(
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    words: str,
) -> None:
    env.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        main(["migrate"])
    assert stopped.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"The bot cannot start: {name}: "), line
    assert words in line, line


def test_zero_claims_is_a_valid_setting(env: pytest.MonkeyPatch) -> None:
    env.setenv("POOL_CLAIM_LIMIT", "0")
    env.setenv("POOL_AFTER_DAYS", "off")
    settings = Settings()  # type: ignore[call-arg]
    assert (settings.POOL_CLAIM_LIMIT, settings.pool_after_days) == (0, {})
