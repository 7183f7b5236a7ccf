"""Settings are checked before anything starts: one line per bad setting, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.settings import Settings, parse_quiet_hours
from storage.crypto import decode_master_key, new_master_key
from tests.auxil.settings_env import TOKEN, clean_settings_env


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment with a valid token, run from an empty folder (no .env)."""
    clean_settings_env(monkeypatch, tmp_path, DATA_DIR=str(tmp_path / "data"))
    return monkeypatch


def _refused(capsys: pytest.CaptureFixture[str]) -> tuple[list[str], str]:
    """Run `migrate`, expect exit code 2, return the stderr lines and stdout."""
    with pytest.raises(SystemExit) as stopped:
        main(["migrate"])
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    # one self-contained line per bad setting: "The bot cannot start: NAME: what to do"
    assert lines and all(line.startswith("The bot cannot start: ") for line in lines), lines
    return [f"  {line.removeprefix('The bot cannot start: ')}" for line in lines], captured.out


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("TELEGRAM_BOT_TOKEN", None, "required"),
        ("TELEGRAM_BOT_TOKEN", "changeme", "BotFather"),
        ("TELEGRAM_BOT_TOKEN", "", "BotFather"),
        ("TELEGRAM_BOT_TOKEN", "123456:short", "BotFather"),
        ("DEFAULT_LANGUAGE", "fr", "zh or en"),
        ("TIMEZONE", "Mars/Base", "IANA"),
        ("FOLLOWUP_HOUR", "25", "0 to 23"),
        ("FOLLOWUP_HOUR", "nine", "integer"),
        ("QUIET_HOURS", "abc", "21-8"),
        ("QUIET_HOURS", "8-8", "21-8"),
        ("ENCRYPTION_KEYS", "short", "base64"),
        ("ADMIN_TELEGRAM_IDS", "abc", "Telegram user ids"),
        ("ADMIN_TELEGRAM_IDS", "12, bob", "Telegram user ids"),
        ("FOLLOWUP_CYCLES", "A=7,B=14", "each class"),
        ("INVITE_TTL_HOURS", "0", "positive"),
        ("TELEGRAM_BASE_URL", "ftp://example.org", "http"),
        ("LOG_FORMAT", "xml", "plain or json"),
        ("METRICS_PORT", "70000", "1 to 65535"),
        ("METRICS_PORT", "nine", "1 to 65535"),
        ("WEBHOOK_PORT", "0", "1 to 65535"),
    ],
)
def test_bad_setting_stops_with_one_line_naming_it(
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    value: str | None,
    words: str,
) -> None:
    if value is None:
        env.delenv(name)
    else:
        env.setenv(name, value)
    lines, out = _refused(capsys)
    assert out == ""
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"  {name}: "), lines
    assert words in lines[0]
    assert TOKEN not in lines[0]
    assert not (tmp_path / "data").exists()  # stopped before touching any database


def test_webhook_url_without_secret(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("WEBHOOK_URL", "https://bot.example.org/hook")
    lines, _ = _refused(capsys)
    assert len(lines) == 1
    assert "WEBHOOK_SECRET" in lines[0] and "WEBHOOK_URL" in lines[0]


def test_webhook_secret_too_short_is_not_echoed(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("WEBHOOK_URL", "https://bot.example.org/hook")
    env.setenv("WEBHOOK_SECRET", "hunter2hunter")
    lines, out = _refused(capsys)
    assert "WEBHOOK_SECRET" in lines[0]
    assert "hunter2hunter" not in "\n".join(lines) + out


def test_webhook_url_must_be_https(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("WEBHOOK_URL", "http://bot.example.org/hook")
    env.setenv("WEBHOOK_SECRET", "s" * 32)
    lines, _ = _refused(capsys)
    assert len(lines) == 1 and "WEBHOOK_URL" in lines[0] and "https://" in lines[0]


def test_every_bad_setting_is_listed_at_once(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.delenv("TELEGRAM_BOT_TOKEN")
    env.setenv("DEFAULT_LANGUAGE", "fr")
    env.setenv("FOLLOWUP_HOUR", "25")
    env.setenv("TIMEZONE", "Mars/Base")
    lines, _ = _refused(capsys)
    names = sorted(line.strip().split(":")[0] for line in lines)
    assert names == ["DEFAULT_LANGUAGE", "FOLLOWUP_HOUR", "TELEGRAM_BOT_TOKEN", "TIMEZONE"]


@pytest.mark.parametrize(
    "secret",
    ["999999:THIS-IS-A-REAL-LOOKING-SECRET-TOKEN", "999999:short-secret", "changeme"],
)
def test_token_value_never_appears_in_the_errors(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], secret: str
) -> None:
    env.setenv("TELEGRAM_BOT_TOKEN", secret)
    env.setenv("FOLLOWUP_HOUR", "25")  # something is wrong in every case
    lines, out = _refused(capsys)
    assert any(line.startswith("  FOLLOWUP_HOUR:") for line in lines)
    text = "\n".join(lines) + out
    assert secret not in text
    assert secret.split(":")[-1] not in text


def test_encryption_key_values_never_appear_in_the_errors(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = new_master_key()
    env.setenv("ENCRYPTION_KEYS", f"{good},{good[:20]}")
    lines, out = _refused(capsys)
    assert len(lines) == 1 and lines[0].startswith("  ENCRYPTION_KEYS: ")
    assert good[:20] not in "\n".join(lines) + out


def test_dotenv_in_the_working_folder_is_read(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("DEFAULT_LANGUAGE=fr\n", encoding="utf-8")
    lines, _ = _refused(capsys)
    assert lines == ["  DEFAULT_LANGUAGE: must be zh or en"]


# --- valid values ----------------------------------------------------------------------------


def test_defaults(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings()  # type: ignore[call-arg]
    assert settings.TELEGRAM_BOT_TOKEN.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())
    assert settings.DEFAULT_LANGUAGE == "zh"
    assert settings.TIMEZONE == "Asia/Shanghai"
    assert settings.quiet_hours == (21, 8)
    assert settings.ADMIN_TELEGRAM_IDS == []
    assert settings.ENCRYPTION_KEYS is None
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'archive.db'}"
    assert settings.key_file == tmp_path / "data" / "encryption.key"
    assert settings.followup_cycles == {"A": 7, "B": 14, "C": 30, "D": 60}
    assert settings.complaint_due_hours == {"critical": 24, "high": 72, "medium": 168, "low": 336}


def test_valid_values_parse(env: pytest.MonkeyPatch) -> None:
    keys = f"{new_master_key()}, {new_master_key()}"
    env.setenv("TELEGRAM_BOT_TOKEN", f"  {TOKEN}  ")
    env.setenv("QUIET_HOURS", "")
    env.setenv("ADMIN_TELEGRAM_IDS", "1, 2")
    env.setenv("DEFAULT_LANGUAGE", "en")
    env.setenv("TIMEZONE", "Europe/Paris")
    env.setenv("FOLLOWUP_HOUR", "0")
    env.setenv("ENCRYPTION_KEYS", keys)
    env.setenv("WEBHOOK_URL", "https://bot.example.org/hook")
    env.setenv("WEBHOOK_SECRET", "s3cr3t_" + "x" * 20)
    env.setenv("DATABASE_URL", "postgresql://u@h/db")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.TELEGRAM_BOT_TOKEN.get_secret_value() == TOKEN  # stripped
    assert settings.QUIET_HOURS == "" and settings.quiet_hours is None
    assert settings.ADMIN_TELEGRAM_IDS == [1, 2]
    assert (settings.DEFAULT_LANGUAGE, settings.TIMEZONE, settings.FOLLOWUP_HOUR) == (
        "en",
        "Europe/Paris",
        0,
    )
    assert settings.ENCRYPTION_KEYS is not None
    assert [decode_master_key(k) for k in settings.ENCRYPTION_KEYS.get_secret_value().split(",")]
    assert settings.database_url == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1, 2", [1, 2]), ("1,2", [1, 2]), ("42", [42]), ("", []), (" 7 8 ", [7, 8])],
)
def test_admin_ids(env: pytest.MonkeyPatch, raw: str, expected: list[int]) -> None:
    env.setenv("ADMIN_TELEGRAM_IDS", raw)
    settings = Settings()  # type: ignore[call-arg]
    assert list(settings.ADMIN_TELEGRAM_IDS) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("21-8", (21, 8)),
        (" 22-6 ", (22, 6)),
        ("0-23", (0, 23)),
        ("9-9", None),
        ("24-8", None),
        ("21:00-8:00", None),
        ("abc", None),
    ],
)
def test_parse_quiet_hours(raw: str, expected: tuple[int, int] | None) -> None:
    assert parse_quiet_hours(raw) == expected


def test_blank_encryption_keys_mean_the_key_file(env: pytest.MonkeyPatch) -> None:
    env.setenv("ENCRYPTION_KEYS", "  ")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.ENCRYPTION_KEYS is None


def test_webhook_secret_is_listed_with_the_other_bad_settings(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FOLLOWUP_HOUR", "25")
    env.setenv("WEBHOOK_URL", "https://bot.example.org/hook")
    lines, _ = _refused(capsys)
    assert any(line.startswith("  FOLLOWUP_HOUR:") for line in lines)
    assert any("WEBHOOK_SECRET" in line for line in lines), lines


def test_operations_settings(env: pytest.MonkeyPatch) -> None:
    settings = Settings()  # type: ignore[call-arg]
    assert (settings.LOG_FORMAT, settings.METRICS_PORT, settings.METRICS_LISTEN) == (
        "plain",
        None,
        "127.0.0.1",
    )
    env.setenv("LOG_FORMAT", " JSON ")
    env.setenv("METRICS_PORT", "9464")
    assert (Settings().LOG_FORMAT, Settings().METRICS_PORT) == ("json", 9464)  # type: ignore[call-arg]
    env.setenv("METRICS_PORT", "off")
    assert Settings().METRICS_PORT is None  # type: ignore[call-arg]
