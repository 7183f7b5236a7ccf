"""Finding customers: recent ones, and by number, phone (blind index) or name, with filters.

Everything here is limited to what the actor may see (storage.permissions). Names are matched
in an in-process index (one per database, refreshed from `updated_at` and the highest id before
each search) so a search over 100,000 customers scores a few hundred candidates instead of
loading every name. The index is kept as columns (about 150 bytes a customer, see `_Columns`),
built by the bot in the background after polling starts; a search that comes before the build
is done waits for it (one build at a time, behind the index's lock). The index only proposes
ids: the rows returned are always read again through SQL with the visibility clause and the
filters, so a stale index can at worst miss a customer renamed a moment ago, never show one the
actor may not see.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import math
import operator
import re
from array import array
from collections import Counter, OrderedDict
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
BUILD_SLICE = 5_000  # rows read at a time when the index is built (a lower peak)
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


class _Row(NamedTuple):
    """One customer as the index reads it (only while building or patching, never kept)."""

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
_CODED = ("status", "customer_class", "stage", "industry", "region")  # few distinct values


def _row(row: Any) -> _Row:
    cid, owner, team, status, cls, stage, industry, region, name, short = row
    return _Row(
        cid,
        owner,
        team,
        status or "",
        cls or "",
        stage,
        industry,
        region,
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


def _positions(values: Iterable[int] = ()) -> array[int]:
    """A compact list of row positions (4 bytes each, where a set of ints spends about 40)."""
    return array("I", values)


def _add(postings: dict[Any, array[int]], key: Any, position: int) -> None:
    ids = postings.get(key)
    if ids is None:
        postings[key] = _positions((position,))
    else:
        ids.append(position)


def _drop(positions: array[int] | None, position: int) -> None:
    if positions is not None and position in positions:
        positions.remove(position)


class _Codes:
    """One filter column as one byte per row, coding its few distinct values."""

    def __init__(self) -> None:
        self.values: list[str | None] = []
        self.code_of: dict[str | None, int] = {}
        self.codes = array("B")

    def code(self, value: str | None) -> int:
        code = self.code_of.get(value)
        if code is None:
            wider = {255: "H", 65_535: "I"}.get(len(self.values))
            if wider is not None:  # more distinct values than the codes' width holds
                self.codes = array(wider, self.codes)
            code = self.code_of[value] = len(self.values)
            self.values.append(value)
        return code

    def set(self, position: int, value: str | None) -> None:
        code = self.code_of.get(value)
        if code is None:
            code = self.code(value)
        if position == len(self.codes):
            self.codes.append(code)
        else:
            self.codes[position] = code


class _Names:
    """Every row's name and short name, kept in blocks of `SIZE` rows as one string each.

    One string per block instead of two per customer: a Python string costs 50-70 bytes
    beside its characters, and a million customers have two million names.
    """

    SIZE = 256

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.starts = array("I")  # where the row's name begins in its block
        self.lengths = array("I")  # the name's length; the short name runs to the next start
        self.ends = array("I")  # where the row's short name ends in its block
        self._open: list[str] = []  # the last block's rows while it fills, name + short

    def __len__(self) -> int:
        return len(self.starts)

    def get(self, position: int) -> tuple[str, str]:
        unsealed = len(self._open) - (len(self.starts) - position)
        if unsealed >= 0 and len(self.blocks[-1]) < self.ends[-1]:  # appended, not yet joined
            both = self._open[unsealed]
            return both[: self.lengths[position]], both[self.lengths[position] :]
        block = self.blocks[position // self.SIZE]
        start, split, end = (
            self.starts[position],
            self.starts[position] + self.lengths[position],
            self.ends[position],
        )
        return block[start:split], block[split:end]

    def append(self, name: str, short: str) -> None:
        position = len(self.starts)
        if position % self.SIZE == 0:
            self._open = []
            self.blocks.append("")  # joined when full, or by `seal`
        start = self.ends[-1] if position % self.SIZE else 0
        self._open.append(name + short)
        self.starts.append(start)
        self.lengths.append(len(name))
        self.ends.append(start + len(name) + len(short))
        if len(self._open) == self.SIZE:  # the block is full: join it once
            self.blocks[-1] = "".join(self._open)
            self._open = []

    def seal(self) -> None:
        """Join the last, partly filled block (after appending and before reading)."""
        if self._open:
            self.blocks[-1] = "".join(self._open)

    def replace(self, position: int, name: str, short: str) -> None:
        """A changed row's names: its block is written again (a few hundred rows)."""
        first = position - position % self.SIZE
        rows = [self.get(p) for p in range(first, min(first + self.SIZE, len(self)))]
        rows[position - first] = (name, short)
        start = 0
        for offset, (row_name, row_short) in enumerate(rows):
            self.starts[first + offset] = start
            self.lengths[first + offset] = len(row_name)
            start += len(row_name) + len(row_short)
            self.ends[first + offset] = start
        joined = [n + s for n, s in rows]
        self.blocks[first // self.SIZE] = "".join(joined)
        if first // self.SIZE == len(self.blocks) - 1 and len(rows) < self.SIZE:
            self._open = joined


class _Columns:
    """Names and visibility columns of every customer of one database, with bigram postings.

    Kept as columns, not one object per customer: ids, owners and teams in 4-byte arrays, the
    filter columns one byte each, the names in blocks of one string (`_Names`), and postings
    of 4-byte row positions. Row positions only grow: a customer keeps its position for the
    life of these columns.
    """

    def __init__(self) -> None:
        self.ids = array("I")
        self.owners = array("I")
        self.teams = array("I")  # 0: no team (team ids start at 1)
        self.coded = {kind: _Codes() for kind in _CODED}
        self.names = _Names()
        self.grams: dict[str, array[int]] = {}
        self.by_owner: dict[int, array[int]] = {}
        self.by_team: dict[int, array[int]] = {}
        self.top = 0  # the highest id held

    def __len__(self) -> int:
        return len(self.ids)

    def entry(self, position: int) -> tuple[Any, ...]:
        """What the index holds of one row, as plain values (to compare two indexes)."""
        coded = tuple(self.coded[kind].values[self.coded[kind].codes[position]] for kind in _CODED)
        names = self.names.get(position)
        return (self.ids[position], self.owners[position], self.teams[position], *coded, *names)

    def _append(self, row: _Row) -> None:
        self.extend((row,))

    def extend(self, rows: Iterable[_Row]) -> None:
        """Append new rows (the build's hot loop: a million rows go through here)."""
        ids, owners, teams, names, grams = self.ids, self.owners, self.teams, self.names, self.grams
        by_owner, by_team = self.by_owner, self.by_team
        coded = [(kind, self.coded[kind]) for kind in _CODED]
        position = len(ids)
        for row in rows:
            ids.append(row.id)
            owners.append(row.owner_id)
            team = row.team_id or 0
            teams.append(team)
            for kind, codes in coded:
                codes.set(position, getattr(row, kind))
            names.append(row.name, row.short)
            for gram in _grams(row.name) | _grams(row.short) if row.short else _grams(row.name):
                posting = grams.get(gram)
                if posting is None:
                    grams[gram] = array("I", (position,))
                else:
                    posting.append(position)
            _add(by_owner, row.owner_id, position)
            _add(by_team, team, position)
            if row.id > self.top:
                self.top = row.id
            position += 1

    def _position(self, cid: int) -> int | None:
        """The row position of an id held, or None (ids are in order but for late commits)."""
        if cid > self.top:
            return None
        position = bisect.bisect_left(self.ids, cid)
        if position < len(self.ids) and self.ids[position] == cid:
            return position
        try:  # a row committed after a higher id was read sits out of order
            return self.ids.index(cid)
        except ValueError:
            return None

    def _patch(self, row: _Row) -> None:
        """Put one new or changed row in, touching only the postings that differ."""
        position = self._position(row.id)
        if position is None:
            self._append(row)
            self.names.seal()
            return
        old_name, old_short = self.names.get(position)
        before = _grams(old_name) | _grams(old_short)
        after = _grams(row.name) | _grams(row.short)
        for gram in before - after:
            _drop(self.grams.get(gram), position)
        for gram in after - before:
            _add(self.grams, gram, position)
        if (old_name, old_short) != (row.name, row.short):
            self.names.replace(position, row.name, row.short)
        if self.owners[position] != row.owner_id:
            _drop(self.by_owner.get(self.owners[position]), position)
            _add(self.by_owner, row.owner_id, position)
            self.owners[position] = row.owner_id
        if self.teams[position] != (row.team_id or 0):
            _drop(self.by_team.get(self.teams[position]), position)
            _add(self.by_team, row.team_id or 0, position)
            self.teams[position] = row.team_id or 0
        for kind in _CODED:
            self.coded[kind].set(position, getattr(row, kind))

    def scope(self, actor: Staff) -> set[int] | None:
        """Row positions the actor may see (None: all), mirroring `customers_visible_to`."""
        scope = view_scope(actor)
        if scope == Scope.all:
            return None
        if scope == Scope.team:  # every team a manager leads
            return set().union(*(self.by_team.get(t or 0, ()) for t in teams_of(actor)))
        if scope == Scope.own:
            return set(self.by_owner.get(actor.id or 0, ()))
        return set()

    def _candidates(self, query: str, scope: set[int] | None) -> Iterable[int]:
        """Positions sharing enough bigrams with the query to be scored (one typo allowed)."""
        common = max(50, int(len(self) * COMMON_SHARE))
        postings = sorted((self.grams.get(g, _positions()) for g in _grams(query)), key=len)
        selective = [p for p in postings if len(p) <= common] or postings[:1]
        counts: Counter[int] = Counter()
        for posting in selective:
            counts.update(posting if scope is None else scope.intersection(posting))
        # one wrong character spoils up to four grams; longer queries may have two
        need = max(1, min(len(selective) - 4, math.ceil(len(selective) * 0.3)))
        ids = self.ids
        kept = [(n, ids[p], p) for p, n in counts.items() if n >= need]
        if len(kept) > MAX_CANDIDATES:  # the most grams shared, then the highest ids
            kept = heapq.nlargest(MAX_CANDIDATES, kept)
        return (p for _n, _cid, p in kept)

    def match(self, text: str, scope: set[int] | None, filters: Filters, limit: int) -> list[int]:
        """Ids whose name or short name starts with, contains, or fuzzily matches `text`."""
        query = utils.default_process(text)
        if not query:
            return []
        if len(query) < 2 or (scope is not None and len(scope) <= SMALL_SCOPE):
            pool: Iterable[int] = range(len(self)) if scope is None else scope
        else:
            pool = self._candidates(query, scope)
        fuzzy = len(query) >= 2
        wanted: list[tuple[array[int], int]] = []
        for kind, value in filters.active().items():
            code = self.coded[kind].code_of.get(value)
            if code is None:  # no customer holds that value
                return []
            wanted.append((self.coded[kind].codes, code))
        statuses = self.coded["status"]
        destroyed = statuses.code_of.get(RecordStatus.destroyed.value)
        status_codes = statuses.codes
        ids, names = self.ids, self.names
        # `_Names.get` inlined: this loop runs for every candidate (up to 2,000 a search)
        blocks, starts, lengths, ends, size = (
            names.blocks,
            names.starts,
            names.lengths,
            names.ends,
            names.SIZE,
        )
        joined = len(names) - len(names._open)  # rows from here on are not joined yet
        ranked: list[tuple[int, float, int, int]] = []
        for position in pool:
            if status_codes[position] == destroyed:
                continue
            if wanted and any(codes[position] != code for codes, code in wanted):
                continue
            if position < joined:
                start = starts[position]
                split = start + lengths[position]
                end = ends[position]
                block = blocks[position // size]
            else:
                name, short = names.get(position)
                block, start, split = name + short, 0, len(name)
                end = split + len(short)
            # looked at inside the block: no string is made unless the name is scored
            if block.startswith(query, start, split) or block.startswith(query, split, end):
                ranked.append((0, 0.0, split - start, ids[position]))
            elif block.find(query, start, split) >= 0 or block.find(query, split, end) >= 0:
                ranked.append((1, 0.0, split - start, ids[position]))
            elif fuzzy:
                name = block[start:split]
                score = max(
                    fuzz.WRatio(query, name, score_cutoff=NAME_CUTOFF),
                    fuzz.WRatio(query, block[split:end], score_cutoff=NAME_CUTOFF)
                    if end > split
                    else 0,
                )
                if score:
                    ranked.append((2, -score, split - start, ids[position]))
        return [cid for *_rank, cid in heapq.nsmallest(limit, ranked)]


class _NameIndex:
    """The name index of one database: its columns, and when they were last brought up to date.

    `lock` lets one search (or the start-up build) bring the index up to date at a time: a
    search arriving during the build waits for it instead of building a second one, so memory
    never holds two builds.
    """

    REBUILD_OVER = 2_000  # changed rows beyond which rebuilding is cheaper than patching

    def __init__(self) -> None:
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self.builds = 0  # how many times the index was read whole
        self.columns = _Columns()
        self.max_id = 0
        self.max_updated: datetime | None = None

    @property
    def lock(self) -> asyncio.Lock:
        """The lock of the running event loop (a process running several loops, as tests do,
        gets one per loop: an asyncio lock cannot be waited on from another loop)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    async def _build(self, session: AsyncSession) -> None:
        """Read every customer again, a slice of ids at a time (to keep the peak low)."""
        self.builds += 1
        # the old columns go first, so memory never holds two: searches wait on the lock
        # meanwhile, and a failed build leaves the index empty and marked to build again
        self.columns = columns = _Columns()
        self.max_id, self.max_updated = 0, None
        last = 0
        while True:
            query = (
                select(*_COLUMNS)
                .where(col(Customer.id) > last)
                .order_by(col(Customer.id))
                .limit(BUILD_SLICE)
            )
            rows = (await session.exec(query)).all()
            columns.extend(map(_row, rows))
            if len(rows) < BUILD_SLICE:
                break
            last = rows[-1][0]
            del rows
        columns.names.seal()
        self.columns = columns

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
            columns = self.columns
            held: list[_Row] = []
            new: list[_Row] = []
            for row in map(_row, changed):
                (new if columns._position(row.id) is None else held).append(row)
            del changed
            if len(held) > self.REBUILD_OVER:  # new rows (an import) are only appended
                del columns, held, new  # nothing may keep the old columns alive
                await self._build(session)
            else:
                for row in held:
                    columns._patch(row)
                columns.extend(new)
                columns.names.seal()
        self.max_id, self.max_updated = max_id, max_updated


_INDEXES: OrderedDict[str, _NameIndex] = OrderedDict()


async def _name_index(session: AsyncSession) -> _Columns:
    """The up-to-date name index of the session's database."""
    key = session.get_bind().url.render_as_string(hide_password=True)
    index = _INDEXES.get(key)
    if index is None:
        index = _INDEXES[key] = _NameIndex()
        while len(_INDEXES) > MAX_DATABASES:
            _INDEXES.popitem(last=False)
    _INDEXES.move_to_end(key)
    async with index.lock:  # a search during a build waits for it rather than building too
        await index.refresh(session)
    return index.columns


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
