"""Every text exists in Chinese and English, with the same placeholders, and none is hard-coded."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from bot import commands
from bot.i18n import LANGUAGES, catalog, pick_language, plurals, translate
from conversations.runner import FLOWS, static_options
from conversations.steps import Kind

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*ROOT.glob("bot/*.py"), *ROOT.glob("conversations/*.py")]
KEY = re.compile(r"^[a-z_]+(\.[A-Za-z0-9_]+)+$")
CJK = re.compile(r"[\u4e00-\u9fff]")


def literal_keys() -> set[str]:
    """Message keys written literally: `_("flow.cancelled")`, `translate(lang, "help.title")`."""
    keys: set[str] = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            position = {"_": 0, "translate": 1}.get(name)
            if position is None or len(node.args) <= position:
                continue
            argument = node.args[position]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                keys.add(argument.value)
    return {k for k in keys if KEY.match(k)}


def flow_keys() -> set[str]:
    """Keys the step machinery builds from each flow's steps."""
    keys: set[str] = set()
    for flow in FLOWS.values():
        keys.add(f"{flow.name}.title")
        for step in flow.steps:
            keys |= {f"{flow.name}.ask.{step.field}", f"field.{step.field}"}
            if step.kind == Kind.CHOICE and step.options is None:
                keys |= {option.label for option in static_options(step)}
            if step.kind == Kind.TEXT and step.parse is not None:
                keys.add(step.example or f"example.{step.field}")
    keys |= {f"command.{c}" for c in commands.MENU_COMMANDS}
    keys |= {f"lang.{code}" for code in LANGUAGES}
    keys |= {f"choice.role.{r}" for r in ("salesperson", "manager", "admin")}
    keys |= {f"access.{r}" for r in ("unregistered", "deactivated")}
    keys |= {
        f"join.{r}"
        for r in ("invite_invalid", "invite_used", "invite_expired", "already_registered")
    }
    keys |= {f"duplicate.{r}" for r in ("phone", "tax_no", "name")}
    keys |= {
        f"invalid.{code}"
        for code in (
            "empty",
            "too_long",
            "too_many",
            "phone",
            "email",
            "website",
            "tax_no_format",
            "tax_no_check",
            "date",
            "date_past",
            "date_future",
            "account_no",
        )
    }
    keys |= {f"refused.{code}" for code in ("not_allowed", "team_required", "incomplete")}
    return keys


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_catalogues_have_the_same_messages() -> None:
    zh, en = catalog("zh"), catalog("en")
    assert sorted(set(zh) - set(en)) == []
    assert sorted(set(en) - set(zh)) == []


def test_every_message_the_code_uses_is_translated() -> None:
    used = literal_keys() | flow_keys()
    assert len(used) > 150
    for language in LANGUAGES:
        missing = sorted(k for k in used if k not in catalog(language))
        assert missing == [], f"{language} lacks {missing}"


@pytest.mark.parametrize("key", sorted(catalog("zh")))
def test_placeholders_match_between_languages(key: str) -> None:
    assert placeholders(catalog("zh")[key]) == placeholders(catalog("en")[key])


def test_a_missing_translation_would_be_caught() -> None:
    assert "no.such.message" not in catalog("zh")
    assert translate("zh", "no.such.message") == "no.such.message"


def test_no_chinese_text_is_hard_coded_in_handlers_or_flows() -> None:
    offenders = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and CJK.search(node.value)
            ):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_send_calls_only_pass_translated_text() -> None:
    """Handlers hand `send_message` translated text, never an English string literal."""
    offenders = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", "") in ("send_message", "reply_text", "answer")
                and any(
                    isinstance(a, ast.Constant) and isinstance(a.value, str) and " " in a.value
                    for a in [*node.args, *(k.value for k in node.keywords)]
                )
            ):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize(
    ("stored", "telegram", "expected"),
    [
        ("en", "zh-hans", "en"),
        (None, "zh-hans", "zh"),
        (None, "en-GB", "en"),
        (None, "ru", "zh"),
        (None, None, "zh"),
    ],
)
def test_language_choice(stored: str | None, telegram: str | None, expected: str) -> None:
    assert pick_language(stored, telegram, "zh") == expected


def test_both_languages_have_the_same_plural_entries() -> None:
    zh, en = plurals("zh").forms, plurals("en").forms
    assert sorted(set(zh) ^ set(en)) == []
    for key in en:
        assert len(en[key]) == 2, key  # English: one, other
        assert len(zh[key]) == 1, key  # Chinese: one form
        assert {frozenset(placeholders(f)) for f in en[key]} == {
            frozenset(placeholders(f)) for f in zh[key]
        }, key


def test_every_unit_a_message_names_is_a_plural_entry() -> None:
    """`{days:unit.day}` in any message needs `unit.day` in both languages."""
    for language in LANGUAGES:
        named = {
            spec
            for text in catalog(language).values()
            for _, _, spec, _ in string.Formatter().parse(text)
            if spec and spec.startswith("unit.")
        }
        missing = sorted(named - set(plurals(language).forms))
        assert missing == [], f"{language} lacks {missing}"
