"""Translations: gettext catalogues (.po, read with Babel), zh and en side by side.

Message ids are stable keys (`new.ask.name`), not English sentences, so the English text can be
edited like any other translation. The .po files are read at start-up; no compiled .mo files
are needed or committed.

Counts with a unit noun use gettext plural entries (`msgid` + `msgid_plural`, `msgstr[0..n]`,
the language's Plural-Forms rule: English 1 day / 3 days, Chinese one form). Code asks for them
with `translate_plural` (`_.plural("unit.day", 3)`), and any message may show a number with its
unit by naming the plural entry as the placeholder's format: `"overdue by {days:unit.day}"`
reads "overdue by 1 day" or "overdue by 3 days".
"""

from __future__ import annotations

import gettext
import logging
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

LANGUAGES = ("zh", "en")
LOCALE_DIR = Path(__file__).parent / "locale"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plurals:
    """One language's plural entries (id → its forms) and the rule picking a form for n."""

    forms: Mapping[str, tuple[str, ...]]
    rule: Callable[[int], int]

    def text(self, key: str, n: int) -> str | None:
        forms = self.forms.get(key)
        if not forms:
            return None
        return forms[min(self.rule(abs(n)), len(forms) - 1)]


@cache
def _read(language: str) -> tuple[dict[str, str], Plurals]:
    """Every .po file of one language: plain messages and plural entries.

    Each feature keeps its messages in a file of its own (messages.po, visits.po, ...);
    the same id in two files is an error, so a feature cannot silently override another.
    """
    messages: dict[str, str] = {}
    forms: dict[str, tuple[str, ...]] = {}
    rule: Callable[[int], int] | None = None
    for path in sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as handle:
            po = read_po(handle, locale=language)
        if rule is None:
            rule = gettext.c2py(po.plural_expr)
        for message in po:
            if not message.id or not any(
                message.string if message.pluralizable else [message.string]
            ):
                continue
            key = str(message.id[0] if message.pluralizable else message.id)
            if key in messages or key in forms:
                raise ValueError(f"message {key} is defined twice ({path.name})")
            if message.pluralizable:
                forms[key] = tuple(str(form) for form in message.string)
            else:
                messages[key] = str(message.string)
    return messages, Plurals(forms, rule or (lambda n: 0))


def catalog(language: str) -> dict[str, str]:
    """All plain messages of one language, id → text."""
    return _read(language)[0]


def plurals(language: str) -> Plurals:
    """All plural entries of one language."""
    return _read(language)[1]


class _UnitFormatter(string.Formatter):
    """`{days:unit.day}`: the number with its unit noun in the right plural form."""

    def __init__(self, language: str) -> None:
        super().__init__()
        self.language = language

    def format_field(self, value: Any, format_spec: str) -> Any:
        if not format_spec.startswith("unit."):
            return super().format_field(value, format_spec)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return translate_plural(self.language, format_spec, value)
        # a number already written out ("1,234"): the plural noun, the number as given
        return translate_plural(self.language, format_spec, 2, count=value)


def _format(language: str, text: str, values: Mapping[str, object]) -> str:
    if ":unit." in text:
        return _UnitFormatter(language).vformat(text, (), dict(values))
    return text.format(**values)


def translate(language: str, key: str, /, **values: object) -> str:
    """The text of `key` in `language`, formatted with `values`.

    A missing translation falls back to the other language and is logged; the test suite makes
    sure that never happens.
    """
    text = catalog(language).get(key)
    if text is None:
        log.error("missing translation %s for %s", key, language)
        other = next(code for code in LANGUAGES if code != language)
        text = catalog(other).get(key, key)
    return _format(language, text, values) if values else text


def translate_plural(language: str, key: str, n: int, /, **values: object) -> str:
    """The plural entry `key` in the form for `n` ("1 day", "3 days"), formatted with `values`
    and `count=n`; a missing entry falls back to the other language and is logged."""
    text = plurals(language).text(key, n)
    if text is None:
        log.error("missing plural translation %s for %s", key, language)
        other = next(code for code in LANGUAGES if code != language)
        text = plurals(other).text(key, n) or key
    return _format(language, text, {"count": n} | values)


def duration(language: str, hours: int) -> str:
    """A span given in hours as people say it: whole days in days ("7 days", "7 天"), else
    hours ("36 hours")."""
    if hours and hours % 24 == 0:
        return translate_plural(language, "unit.day", hours // 24)
    return translate_plural(language, "unit.hour", hours)


def has_message(key: str) -> bool:
    return all(key in catalog(code) or key in plurals(code).forms for code in LANGUAGES)


def pick_language(stored: str | None, telegram_code: str | None, default: str) -> str:
    """The user's chosen language, else their Telegram app's, else the configured default."""
    if stored in LANGUAGES:
        return stored
    if telegram_code:
        base = telegram_code.lower().split("-")[0]
        if base in LANGUAGES:
            return base
    return default


class Translator:
    """`_` bound to one language, handed to code that talks to one user."""

    def __init__(self, language: str) -> None:
        self.language = language

    def __call__(self, key: str, /, **values: object) -> str:
        return translate(self.language, key, **values)

    def plural(self, key: str, n: int, /, **values: object) -> str:
        return translate_plural(self.language, key, n, **values)

    def duration(self, hours: int) -> str:
        return duration(self.language, hours)
