"""Translations: gettext catalogues (.po, read with Babel), zh and en side by side.

Message ids are stable keys (`new.ask.name`), not English sentences, so the English text can be
edited like any other translation. The .po files are read at start-up; no compiled .mo files
are needed or committed.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LANGUAGES = ("zh", "en")
LOCALE_DIR = Path(__file__).parent / "locale"
log = logging.getLogger(__name__)


@cache
def catalog(language: str) -> dict[str, str]:
    """All messages of one language, id → text, from every .po file of that language.

    Each feature keeps its messages in a file of its own (messages.po, visits.po, ...);
    the same id in two files is an error, so a feature cannot silently override another.
    """
    messages: dict[str, str] = {}
    for path in sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as handle:
            po = read_po(handle, locale=language)
        for message in po:
            if not message.id or not message.string:
                continue
            key = str(message.id)
            if key in messages:
                raise ValueError(f"message {key} is defined twice ({path.name})")
            messages[key] = str(message.string)
    return messages


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
    return text.format(**values) if values else text


def has_message(key: str) -> bool:
    return all(key in catalog(code) for code in LANGUAGES)


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
