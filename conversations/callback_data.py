"""Reading ids out of button data, which the client may forge: one parser for every handler.

`"²".isdigit()` is true and `int("²")` then fails; `int("-1")` and `int(" 7")` pass; a 20-digit
id overflows SQLite and an 11-digit one PostgreSQL's INTEGER columns. A handler reads each id
with `parse_id` and answers anything it refuses as an expired button, never with an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

RECORD_ID_MAX = 2**31 - 1  # record ids are INTEGER columns (32 bits on PostgreSQL)
_ASCII_DIGITS = re.compile(r"[0-9]{1,10}")  # no sign, no space, no exponent, no '²' or '３'


def parse_id(text: str | None, *, maximum: int = RECORD_ID_MAX) -> int | None:
    """A whole number of ASCII digits from 0 to `maximum`, or None for anything else."""
    if text is None or _ASCII_DIGITS.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= maximum else None


def parse_ids(texts: Sequence[str], *, maximum: int = RECORD_ID_MAX) -> list[int] | None:
    """Every text as an id, or None if any of them is not one."""
    ids = [parse_id(text, maximum=maximum) for text in texts]
    return None if any(i is None for i in ids) else [i for i in ids if i is not None]
