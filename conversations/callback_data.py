"""Button data, which the client may forge: one codec per feature builds it, routes it, reads it.

Each feature owns a `ButtonCodec` below with its prefixes (`cv`, `cvl` ...). The codec builds
the data (`VISIT.data("cvl", 7, "p2")` → `cvl:7:p2`, refusing more than Telegram's 64 bytes),
gives bot/app.py's routing table its `pattern`, and parses a press into a `Press` whose fields a
handler reads with `id`, `ids` and `text`; no handler splits the data itself. The wire format is
the one buttons already in users' chats carry: the prefix and the fields joined by colons.

`"²".isdigit()` is true and `int("²")` then fails; `int("-1")` and `int(" 7")` pass; a 20-digit
id overflows SQLite and an 11-digit one PostgreSQL's INTEGER columns. Ids are read with
`parse_id`, and a handler answers anything it refuses as an expired button, never with an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from conversations.fit import DATA_BYTES

RECORD_ID_MAX = 2**31 - 1  # record ids are INTEGER columns (32 bits on PostgreSQL)
_ASCII_DIGITS = re.compile(r"[0-9]{1,10}")  # no sign, no space, no exponent, no '²' or '３'
SEPARATOR = ":"


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


@dataclass(frozen=True)
class Press:
    """A pressed button's data read back: its prefix and the fields after it (as sent)."""

    prefix: str
    fields: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.fields)

    def text(self, index: int) -> str | None:
        """Field `index` as it was sent, or None if there is no such field."""
        return self.fields[index] if 0 <= index < len(self.fields) else None

    def id(self, index: int, *, tag: str = "", maximum: int = RECORD_ID_MAX) -> int | None:
        """Field `index` as an id (after its `tag`, as the `p` of `p3`), or None."""
        text = self.text(index)
        if text is None or not text.startswith(tag):
            return None
        return parse_id(text[len(tag) :], maximum=maximum)

    def ids(self, start: int = 0) -> list[int] | None:
        """The fields from `start` on as ids, or None if any of them is not one."""
        return parse_ids(self.fields[start:])


@dataclass(frozen=True)
class ButtonCodec:
    """The button data of one feature: its prefixes, the routing pattern, building, parsing.

    `fields`, where set, splits the data into at most that many fields (the last one keeps any
    colons) and refuses fewer: a flow button always carries its token, action and argument.
    """

    feature: str
    prefixes: tuple[str, ...]
    fields: int | None = None

    @property
    def pattern(self) -> re.Pattern[str]:
        """What the routing table hands this feature: data that starts with one of its prefixes."""
        choices = "|".join(re.escape(p) for p in self.prefixes)
        return re.compile(rf"^(?:{choices}){SEPARATOR}")

    def data(self, prefix: str, *fields: object) -> str:
        """The button data for `prefix` and `fields`; a programming error if Telegram would
        refuse it (over 64 bytes) or it would not come back to this feature."""
        if prefix not in self.prefixes:
            raise ValueError(f"{prefix!r} is not a prefix of the {self.feature} buttons")
        data = SEPARATOR.join((prefix, *(str(f) for f in fields)))
        if len(data.encode("utf-8")) > DATA_BYTES:
            raise ValueError(f"button data over {DATA_BYTES} bytes: {data!r}")
        return data

    def parse(self, data: str | None) -> Press | None:
        """The press, or None if the data is not this feature's (or too short for it)."""
        prefix, separator, rest = (data or "").partition(SEPARATOR)
        if not separator or prefix not in self.prefixes:
            return None
        split = -1 if self.fields is None else self.fields - 1
        fields = tuple(rest.split(SEPARATOR, split))
        if self.fields is not None and len(fields) != self.fields:
            return None
        return Press(prefix, fields)


# One codec per feature; the prefixes are the wire format of buttons already sent: never reuse
# or rename one.
FLOW = ButtonCodec("flow", ("w",), fields=3)  # w:<token>:<action>:<argument>
LANGUAGE = ButtonCodec("language", ("lang",))  # lang:<code>
CARD = ButtonCodec("card", ("cu", "cr", "ch"))  # open, reveal, history
FIND = ButtonCodec("find", ("fp", "ff", "fk", "fv", "fx", "fr", "fq", "fm"))
VISIT = ButtonCodec("visit", ("cv", "cvl"))  # log a visit, list visits
COMPLAINT = ButtonCodec("complaint", ("cc", "ccl", "cx"))  # log, list, act on one
KEY_PERSONS = ButtonCodec("key persons", ("ck", "kp"))  # list, act on one
EDIT = ButtonCodec("edit", ("ce", "cm"))  # ce:<customer id>; cm:<id> completes the record
REVIEW = ButtonCodec("review", ("rv",))  # rv:<action>:<id>
REMINDERS = ButtonCodec("reminders", ("rm",))  # rm:<action>:<reminder id>[:<argument>]
REASSIGN = ButtonCodec("reassign", ("ra",))  # ra:<action>[:<argument>...] (在职继承)
STAFF = ButtonCodec("staff", ("sf",))  # sf:<action>:<staff or team id>[:…] (conversations/staff)
HANDOVER = ButtonCodec("handover", ("ho",))  # ho:<action>:<hand-over id>[:...] (handover.py)
# tl:<staff id>[:p<page> | :<team id>[:a|r]] (teams a manager leads), tl:g:<team id>:<1|0>
TEAMS_LED = ButtonCodec("teams led", ("tl",))
POOL = ButtonCodec("pool", ("pl",))  # pl:<action>[:<id>...] (conversations/pool.py)
# im:<action>:<import id>:<version>:<argument> (conversations/importing.py)
IMPORT = ButtonCodec("import", ("im",))
PIPL = ButtonCodec("pipl", ("pi",))  # pi:<action>:<customer id>[:<key person id>[:<version>]]
REPORT = ButtonCodec("report", ("rp",))  # rp:<action>:<team or c>[:...] (conversations/report.py)
STATS = ButtonCodec("stats", ("st",))  # st:r (refresh /stats)
EXPORT = ButtonCodec("export", ("xp",))  # xp:<action>[:<choice>[:<filter>]] (export.py)
# ar:<a|r|d|p>:<customer id>: archive, reactivate, destroy, destroy on a PIPL erasure request
LIFE_CYCLE = ButtonCodec("life cycle", ("ar",))
CHECKIN = ButtonCodec("check-in", ("ci",))  # ci:l:<customer id> set location, ci:o:<visit id>
TODAY = ButtonCodec("today", ("td",))  # td:r (the plan again), td:n (ask for a location)

CODECS = (
    FLOW,
    LANGUAGE,
    CARD,
    FIND,
    VISIT,
    COMPLAINT,
    KEY_PERSONS,
    EDIT,
    REVIEW,
    REMINDERS,
    REASSIGN,
    STAFF,
    HANDOVER,
    POOL,
    TEAMS_LED,
    IMPORT,
    PIPL,
    REPORT,
    STATS,
    EXPORT,
    LIFE_CYCLE,
    CHECKIN,
    TODAY,
)
