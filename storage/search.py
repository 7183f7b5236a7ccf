"""Finding customers: recent ones, and by number, phone (blind index) or name, with filters.

Everything here is limited to what the actor may see (storage.permissions). Names are matched
in an in-process index (one per database, refreshed from `updated_at` and the highest id before
each search) so a search over 100,000 customers scores a few hundred candidates instead of
loading every name. The index only proposes ids: the rows returned are always read again
through SQL with the visibility clause and the filters, so a stale index can at worst miss a
customer renamed a moment ago, never show one the actor may not see.
"""

from __future__ import annotations

import heapq
import math
import operator
import re
import sys
from array import array
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from rapidfuzz import fuzz, utils
from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import validation
from storage.crypto import Keyring
from storage.models import BlindIndex, Customer, RecordStatus, Staff
from storage.permissions import Scope, customers_visible_to, teams_of, view_scope

NAME_CUTOFF = 60  # rapidfuzz WRatio score a fuzzy match needs
SMALL_SCOPE = 2_000  # a scope this small is scored whole, without the bigram pre-filter
MAX_CANDIDATES = 2_000  # most candidates the pre-filter hands to rapidfuzz
COMMON_SHARE = 0.2  # a bigram in more than this share of names does not narrow anything
REFRESH_MARGIN = timedelta(minutes=2)  # re-read rows this close to the newest change
BUILD_SLICE = 20_000  # rows read at a time when the index is built
MAX_DATABASES = 8  # name indexes kept in one process (tests open many databases)
NUMBER_PREFIX = "KH"
_FULL_NUMBER = re.compile(
    rf"^(?:{NUMBER_PREFIX}-?)?(\d{{4}})-(\d{{1,9}})$|^{NUMBER_PREFIX}-?(\d{{4}})(\d{{1,9}})$"
)
_SERIAL = re.compile(r"^\d{1,9}$")


# ---------------------------------------------------------------------------------------------
# filters


@dataclass(frozen=True)
class Filters:
    """What /find narrows a list by; None means any. Values are the stored column values."""

    customer_class: str | None = None
    stage: str | None = None
    industry: str | None = None
    region: str | None = None
    status: str | None = None

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def active(self) -> dict[str, str]:
        return {k: v for k in self.kinds() if (v := getattr(self, k)) is not None}

    def with_value(self, kind: str, value: str | None) -> Filters:
        if kind not in self.kinds():
            raise ValueError(kind)
        return replace(self, **{kind: value})

    def clauses(self) -> list[Any]:
        """SQL conditions for the active filters."""
        return [getattr(Customer, kind) == value for kind, value in self.active().items()]


NO_FILTERS = Filters()


def _live(actor: Staff) -> list[Any]:
    return [customers_visible_to(actor), col(Customer.status) != RecordStatus.destroyed]


# ---------------------------------------------------------------------------------------------
# the in-process name index


class _Entry(NamedTuple):
    """What the index keeps of one customer: who may see it, its filters, its names.

    A tuple of plain values, so the garbage collector stops tracking it: 100,000 tracked
    objects would make every full collection (and so a search now and then) slower.
    """

    id: int
    owner_id: int
    team_id: int | None
    status: str
    customer_class: str
    stage: str | None
    industry: str | None
    region: str | None
    name: str  # lower-cased, punctuation removed (rapidfuzz's default_process)
    short: str

    def grams(self) -> set[str]:
        return _grams(self.name) | _grams(self.short)


_COLUMNS = (
    Customer.id,
    Customer.owner_id,
    Customer.team_id,
    Customer.status,
    Customer.customer_class,
    Customer.stage,
    Customer.industry,
    Customer.region,
    Customer.name,
    Customer.short_name,
)


def _shared(value: str | None) -> str | None:
    """One string object per distinct value: 100,000 rows repeat the same few classes."""
    return None if value is None else sys.intern(value)


def _entry(row: Any) -> _Entry:
    cid, owner, team, status, cls, stage, industry, region, name, short = row
    return _Entry(
        cid,
        owner,
        team,
        _shared(status) or "",
        _shared(cls) or "",
        _shared(stage),
        _shared(industry),
        _shared(region),
        utils.default_process(name or ""),
        utils.default_process(short or ""),
    )


def _grams(text: str) -> set[str]:
    """Character bigrams within words, plus pairs one character apart (`a\tc` for `abc`).

    Bigrams are selective for Chinese names and Latin ones alike; the gapped pairs let a
    three-character query with a wrong middle character (a homophone picked by the input
    method: 明元泰 for 明远泰) still share something with the name it means.
    """
    grams = set(map(operator.add, text, text[1:]))
    grams.update(map("\t".join, zip(text, text[2:], strict=False)))
    if " " in text:
        grams = {g for g in grams if " " not in g}
    return grams or ({text} if text and " " not in text else set())


def _ids(values: Iterable[int] = ()) -> array[int]:
    """A compact list of ids (8 bytes each, where a set spends about 40)."""
    return array("q", values)


def _posting(postings: dict[Any, array[int]], key: Any) -> array[int]:
    """The ids under `key`, created empty on first use."""
    ids = postings.get(key)
    if ids is None:
        ids = postings[key] = _ids()
    return ids


def _drop(ids: array[int] | None, cid: int) -> None:
    if ids is not None and cid in ids:
        ids.remove(cid)


class _NameIndex:
    """Names and visibility columns of every customer of one database, with bigram postings.

    Postings are arrays rather than sets: at 100,000 customers that is ~15 MB instead of
    ~60 MB. Removing an id from an array is linear, so only rows whose names, owner or team
    really changed touch them, and a refresh that sees many changed rows rebuilds instead.
    """

    REBUILD_OVER = 2_000  # changed rows beyond which rebuilding is cheaper than patching

    def __init__(self) -> None:
        self.entries: dict[int, _Entry] = {}
        self.grams: dict[str, array[int]] = {}
        self.by_owner: dict[int, array[int]] = {}
        self.by_team: dict[int | None, array[int]] = {}
        self.max_id = 0
        self.max_updated: datetime | None = None

    async def _build(self, session: AsyncSession) -> None:
        """Read every customer again, a slice of ids at a time (to keep the peak low)."""
        entries: dict[int, _Entry] = {}
        grams: defaultdict[str, list[int]] = defaultdict(list)
        owners: defaultdict[int, list[int]] = defaultdict(list)
        teams: defaultdict[int | None, list[int]] = defaultdict(list)
        last = 0
        while True:
            query = (
                select(*_COLUMNS)
                .where(col(Customer.id) > last)
                .order_by(col(Customer.id))
                .limit(BUILD_SLICE)
            )
            rows = (await session.exec(query)).all()
            for row in rows:
                entry = entries[row[0]] = _entry(row)
                cid = entry.id
                for gram in entry.grams():
                    grams[gram].append(cid)
                owners[entry.owner_id].append(cid)
                teams[entry.team_id].append(cid)
            if len(rows) < BUILD_SLICE:
                break
            last = rows[-1][0]
        self.entries = entries
        self.grams = {g: _ids(ids) for g, ids in grams.items()}
        self.by_owner = {o: _ids(ids) for o, ids in owners.items()}
        self.by_team = {t: _ids(ids) for t, ids in teams.items()}

    def _patch(self, entry: _Entry) -> None:
        """Put one new or changed row in, touching only the postings that differ."""
        old = self.entries.get(entry.id)
        self.entries[entry.id] = entry
        before = old.grams() if old is not None else set()
        after = entry.grams()
        for gram in before - after:
            _drop(self.grams.get(gram), entry.id)
        for gram in after - before:
            _posting(self.grams, gram).append(entry.id)
        if old is None or old.owner_id != entry.owner_id:
            if old is not None:
                _drop(self.by_owner.get(old.owner_id), entry.id)
            _posting(self.by_owner, entry.owner_id).append(entry.id)
        if old is None or old.team_id != entry.team_id:
            if old is not None:
                _drop(self.by_team.get(old.team_id), entry.id)
            _posting(self.by_team, entry.team_id).append(entry.id)

    async def refresh(self, session: AsyncSession) -> None:
        """Bring the index up to date: new rows by id, changed rows by `updated_at`.

        Rows are re-read from a margin before the newest change seen, so a transaction that
        committed a little after stamping an older `updated_at` is still picked up.
        """
        # two scalar subqueries: each max() alone is one step down its index
        stamp = select(
            select(func.max(Customer.id)).scalar_subquery(),
            select(func.max(Customer.updated_at)).scalar_subquery(),
        )
        max_id, max_updated = (await session.exec(stamp)).one()
        max_id = max_id or 0
        if max_id == self.max_id and max_updated == self.max_updated:
            return
        went_back = max_id < self.max_id or (
            self.max_updated is not None
            and max_updated is not None
            and max_updated < self.max_updated
        )
        if self.max_updated is None or went_back:  # first use, or another database now
            await self._build(session)
        else:
            since = self.max_updated - REFRESH_MARGIN
            changed = (
                await session.exec(
                    select(*_COLUMNS).where(
                        or_(col(Customer.id) > self.max_id, col(Customer.updated_at) >= since)
                    )
                )
            ).all()
            if len(changed) > self.REBUILD_OVER:
                await self._build(session)
            else:
                for row in changed:
                    self._patch(_entry(row))
        self.max_id, self.max_updated = max_id, max_updated

    def scope(self, actor: Staff) -> set[int] | None:
        """Ids the actor may see (None: all), mirroring `customers_visible_to`."""
        scope = view_scope(actor)
        if scope == Scope.all:
            return None
        if scope == Scope.team:  # every team a manager leads
            return set().union(*(self.by_team.get(t, ()) for t in teams_of(actor)))
        if scope == Scope.own:
            return set(self.by_owner.get(actor.id or 0, ()))
        return set()

    def _candidates(self, query: str, scope: set[int] | None) -> Iterable[int]:
        """Ids sharing enough bigrams with the query to be worth scoring (one typo allowed)."""
        common = max(50, int(len(self.entries) * COMMON_SHARE))
        postings = sorted((self.grams.get(g, _ids()) for g in _grams(query)), key=len)
        selective = [p for p in postings if len(p) <= common] or postings[:1]
        counts: Counter[int] = Counter()
        for posting in selective:
            counts.update(posting if scope is None else scope.intersection(posting))
        # one wrong character spoils up to four grams; longer queries may have two
        need = max(1, min(len(selective) - 4, math.ceil(len(selective) * 0.3)))
        kept = [(n, cid) for cid, n in counts.items() if n >= need]
        if len(kept) > MAX_CANDIDATES:
            kept = heapq.nlargest(MAX_CANDIDATES, kept)
        return (cid for _n, cid in kept)

    def match(self, text: str, scope: set[int] | None, filters: Filters, limit: int) -> list[int]:
        """Ids whose name or short name starts with, contains, or fuzzily matches `text`."""
        query = utils.default_process(text)
        if not query:
            return []
        if len(query) < 2 or (scope is not None and len(scope) <= SMALL_SCOPE):
            pool: Iterable[int] = self.entries if scope is None else scope
        else:
            pool = self._candidates(query, scope)
        fuzzy = len(query) >= 2
        wanted = tuple(filters.active().items())
        ranked: list[tuple[int, float, int, int]] = []
        for cid in pool:
            entry = self.entries.get(cid)
            if entry is None or entry.status == RecordStatus.destroyed:
                continue
            if wanted and any(getattr(entry, kind) != value for kind, value in wanted):
                continue
            if entry.name.startswith(query) or entry.short.startswith(query):
                ranked.append((0, 0.0, len(entry.name), cid))
            elif query in entry.name or query in entry.short:
                ranked.append((1, 0.0, len(entry.name), cid))
            elif fuzzy:
                score = max(
                    fuzz.WRatio(query, entry.name, score_cutoff=NAME_CUTOFF),
                    fuzz.WRatio(query, entry.short, score_cutoff=NAME_CUTOFF) if entry.short else 0,
                )
                if score:
                    ranked.append((2, -score, len(entry.name), cid))
        return [cid for *_rank, cid in heapq.nsmallest(limit, ranked)]


_INDEXES: OrderedDict[str, _NameIndex] = OrderedDict()


async def _name_index(session: AsyncSession) -> _NameIndex:
    """The up-to-date name index of the session's database."""
    key = session.get_bind().url.render_as_string(hide_password=True)
    index = _INDEXES.get(key)
    if index is None:
        index = _INDEXES[key] = _NameIndex()
        while len(_INDEXES) > MAX_DATABASES:
            _INDEXES.popitem(last=False)
    _INDEXES.move_to_end(key)
    await index.refresh(session)
    return index


async def warm_up(session: AsyncSession) -> None:
    """Build the name index now (at start-up), not during someone's first search."""
    await _name_index(session)


def forget_indexes() -> None:
    """Drop every in-process name index (tests that rewrite rows behind the index's back)."""
    _INDEXES.clear()


# ---------------------------------------------------------------------------------------------
# searches


async def recent_customers(
    session: AsyncSession, *, actor: Staff, limit: int = 6
) -> list[Customer]:
    """The actor's most recently touched customers, newest first."""
    query = (
        select(Customer)
        .where(*_live(actor), col(Customer.status) != RecordStatus.archived)
        .order_by(col(Customer.updated_at).desc(), col(Customer.id).desc())
        .limit(limit)
    )
    return list((await session.exec(query)).all())


async def _visible(
    session: AsyncSession, actor: Staff, ids: list[int], filters: Filters
) -> list[Customer]:
    """The customers with these ids the actor may see and the filters admit, in that order."""
    if not ids:
        return []
    query = select(Customer).where(col(Customer.id).in_(ids), *_live(actor), *filters.clauses())
    by_id = {c.id: c for c in (await session.exec(query)).all()}
    return [by_id[i] for i in ids if i in by_id]


def _full_number(text: str) -> str | None:
    """The customer number typed in full (`KH-2026-000123`, `kh2026123`, `2026-123`), if so."""
    typed = re.sub(r"\s+", "", text).upper()
    full = _FULL_NUMBER.match(typed)
    if full is None:
        return None
    year, serial = (full[1], full[2]) if full[1] else (full[3], full[4])
    return f"{NUMBER_PREFIX}-{year}-{int(serial):06d}"


async def _exact(
    session: AsyncSession, actor: Staff, filters: Filters, condition: Any, limit: int
) -> list[Customer]:
    """Customers meeting an exact condition (a number, a phone), newest first, in one query."""
    query = (
        select(Customer)
        .where(condition, *_live(actor), *filters.clauses())
        .order_by(col(Customer.id).desc())
        .limit(limit)
    )
    return list((await session.exec(query)).all())


def _numbered(numbers: list[str]) -> Any:
    return col(Customer.customer_no).in_(numbers)


def _with_phone(keyring: Keyring, phone: str) -> Any:
    """Customers with this phone, theirs or a key person's, through the blind index."""
    digests = keyring.blind_indexes("phone", phone)
    return col(Customer.id).in_(
        select(BlindIndex.customer_id).where(
            BlindIndex.kind == "phone", col(BlindIndex.digest).in_(digests)
        )
    )


async def _by_numbers(session: AsyncSession, numbers: list[str]) -> list[int]:
    query = select(Customer.id).where(_numbered(numbers))
    return sorted((await session.exec(query)).all(), reverse=True)


async def _by_serial(session: AsyncSession, serial: int) -> list[int]:
    """Ids of customers whose number ends in this serial, in any year numbers were issued."""
    first, last = (
        await session.exec(select(func.min(Customer.customer_no), func.max(Customer.customer_no)))
    ).one()
    years = sorted({_year(first), _year(last)} - {None})
    if not years or serial <= 0:
        return []
    return await _by_numbers(
        session, [f"{NUMBER_PREFIX}-{y}-{serial:06d}" for y in range(years[0], years[-1] + 1)]
    )


def _year(number: str | None) -> int | None:
    parts = (number or "").split("-")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


async def search_customers(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    text: str,
    limit: int = 40,
    filters: Filters | None = None,
) -> list[Customer]:
    """Customers matching a number, a phone, or (fuzzily) a name or short name, best first.

    A full customer number or phone number finds exactly that record (or nothing); a few
    digits may be a number's serial or a short phone, so those are tried before names.
    """
    text = text.strip()
    filters = filters or NO_FILTERS
    if not text:
        return []
    number = _full_number(text)
    if number is not None:
        return await _exact(session, actor, filters, _numbered([number]), limit)
    try:
        phone: str | None = validation.phone(text)
    except validation.Invalid:
        phone = None
    serial = _SERIAL.match(text) is not None
    if phone is not None and not serial:
        return await _exact(session, actor, filters, _with_phone(keyring, phone), limit)
    ids = await _by_serial(session, int(text)) if serial else []
    if phone is not None:
        found = await _exact(session, actor, filters, _with_phone(keyring, phone), limit)
        ids += [c.id for c in found if c.id is not None and c.id not in ids]
    index = await _name_index(session)
    named = index.match(text, index.scope(actor), filters, limit + len(ids))
    ids += [i for i in named if i not in ids]
    return (await _visible(session, actor, ids, filters))[:limit]
