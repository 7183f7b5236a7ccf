"""The names of each team's customers, cored once and kept in process for duplicate checks.

/new's similar-name warning compares a name with every name of the team; coring 20,000 names
on every check took 80 ms. Here a team's names are cored once, on its first check, and kept
in step with the database before each check: new rows by id, changed ones by `updated_at`
(re-read from a margin before the newest change seen, so a transaction that committed a
little after stamping an older time is still picked up, and for a margin's time after each
change even if nothing newer came), as storage.search's index does. The cache only proposes
ids: storage.customers re-reads them in SQL (team, not destroyed, name still similar), so a
stale entry can never warn about a customer that is no longer alike.

Memory is bounded: least-recently-checked teams are dropped beyond MAX_NAMES names in all.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Customer, RecordStatus
from storage.names import TeamNames
from storage.types import utcnow

REFRESH_MARGIN = timedelta(minutes=2)  # re-read rows this close to the newest change
MAX_NAMES = 200_000  # names kept in all (about 50 MB at ~260 bytes each); the team checked stays
MAX_DATABASES = 8  # databases kept in one process (tests open many)

_COLUMNS = (
    Customer.id,
    Customer.team_id,
    Customer.status,
    Customer.name,
    Customer.short_name,
    Customer.updated_at,
)


class _Names:
    """Every cached team of one database, and how far the database has been read."""

    def __init__(self) -> None:
        self.teams: OrderedDict[int | None, TeamNames] = OrderedDict()
        self.max_id = 0
        self.max_updated: datetime | None = None
        self.settled = False  # no commit can still arrive from before the newest change seen
        self.seen: dict[int, datetime] = {}  # rows changed within the margin, as applied

    def _apply(self, row: Any) -> None:
        cid, team_id, status, name, short, updated = row
        if self.seen.get(cid) == updated:
            return  # re-read within the margin, unchanged
        self.seen[cid] = updated
        for key, team in self.teams.items():
            if key != team_id or status == RecordStatus.destroyed:
                team.drop(cid)
        team = self.teams.get(team_id)
        if team is not None and status != RecordStatus.destroyed:
            team.put(cid, (name, short))

    async def _load(self, session: AsyncSession, team_id: int | None) -> TeamNames:
        rows = await session.exec(
            select(Customer.id, Customer.name, Customer.short_name)
            .where(Customer.team_id == team_id, col(Customer.status) != RecordStatus.destroyed)
            .order_by(col(Customer.id))
        )
        team = TeamNames()
        for cid, name, short in rows.all():
            team.put(cid, (name, short))  # ascending ids: each put appends
        return team

    async def refresh(self, session: AsyncSession) -> None:
        """Apply the rows added or changed since the last refresh."""
        stamp = select(
            select(func.max(Customer.id)).scalar_subquery(),
            select(func.max(Customer.updated_at)).scalar_subquery(),
        )
        max_id, max_updated = (await session.exec(stamp)).one()
        max_id = max_id or 0
        if max_id == self.max_id and max_updated == self.max_updated and self.settled:
            return
        went_back = max_id < self.max_id or (
            self.max_updated is not None
            and max_updated is not None
            and max_updated < self.max_updated
        )
        if self.max_updated is None or max_updated is None or went_back:
            self.teams.clear()  # first use, or another database now: teams load afresh
            self.seen.clear()
        else:
            since = self.max_updated - REFRESH_MARGIN
            changed = await session.exec(
                select(*_COLUMNS).where(
                    or_(col(Customer.id) > self.max_id, col(Customer.updated_at) >= since)
                )
            )
            for row in changed.all():
                self._apply(row)
            self.seen = {c: u for c, u in self.seen.items() if u >= since}
        self.max_id, self.max_updated = max_id, max_updated
        self.settled = max_updated is None or utcnow() > max_updated + REFRESH_MARGIN

    async def team(self, session: AsyncSession, team_id: int | None) -> TeamNames:
        await self.refresh(session)
        team = self.teams.get(team_id)
        if team is None:
            team = self.teams[team_id] = await self._load(session, team_id)
            self.seen.clear()  # rows another check applied meanwhile reach this team next time
            self.settled = False
        self.teams.move_to_end(team_id)
        total = sum(len(t) for t in self.teams.values())
        while total > MAX_NAMES and len(self.teams) > 1:
            _key, dropped = self.teams.popitem(last=False)
            total -= len(dropped)
        return team


_DATABASES: OrderedDict[str, _Names] = OrderedDict()


async def team_names(session: AsyncSession, team_id: int | None) -> TeamNames:
    """The up-to-date names of a team's customers (not destroyed), of the session's database."""
    key = session.get_bind().url.render_as_string(hide_password=True)
    names = _DATABASES.get(key)
    if names is None:
        names = _DATABASES[key] = _Names()
        while len(_DATABASES) > MAX_DATABASES:
            _DATABASES.popitem(last=False)
    _DATABASES.move_to_end(key)
    return await names.team(session, team_id)


def forget() -> None:
    """Drop every cached team (tests that rewrite rows behind the cache's back)."""
    _DATABASES.clear()
