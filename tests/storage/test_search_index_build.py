"""The compact name index: built once in the background, waited for, and kept in step.

The bot builds the index after polling starts (bot.app `_warm_up_search`); a search that
comes meanwhile must wait for that build, not start a second one (memory would double), and
answer as a search after it would. A failed build is logged and the next search builds it.
The compact columns must answer exactly as a fresh build does after any change.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from types import SimpleNamespace
from typing import Any

import pytest

from bot import app
from storage import search
from storage.db import SessionFactory, reading
from storage.search import Filters, _Columns, _NameIndex
from tests.storage.test_search import Company
from tests.storage.test_search import company as company


@pytest.fixture(autouse=True)
def fresh_indexes() -> None:
    search.forget_indexes()


def _index() -> _NameIndex:
    (index,) = search._INDEXES.values()
    return index


def _held_builds(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Builds that start, then wait for `release`; `started` is set when one begins."""
    started, release = asyncio.Event(), asyncio.Event()
    build = _NameIndex._build

    async def held(self: _NameIndex, session: Any) -> None:
        started.set()
        await release.wait()
        await build(self, session)

    monkeypatch.setattr(_NameIndex, "_build", held)
    return started, release


async def test_a_search_during_the_background_build_waits_for_it_and_answers(
    company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    await company.customer("li", "明远机械有限公司", short_name="明远")
    await company.customer("chen", "宁波明远贸易有限公司")
    started, release = _held_builds(monkeypatch)
    warm_up = asyncio.create_task(app._warm_up_search(SimpleNamespace(sessions=company.sessions)))  # type: ignore[arg-type]
    await started.wait()
    searches = [
        asyncio.create_task(company.find("boss", "明远")),
        asyncio.create_task(company.find("li", "明远")),
    ]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in searches)  # waiting for the build
    release.set()
    await warm_up
    everyone, mine = await asyncio.gather(*searches)
    assert everyone == ["明远机械有限公司", "宁波明远贸易有限公司"]
    assert mine == ["明远机械有限公司"]
    assert _index().builds == 1  # the searches did not build it again


async def test_a_failed_build_is_logged_and_the_next_search_still_answers(
    company: Company, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await company.customer("li", "明远机械有限公司")
    build = _NameIndex._build
    failures = iter([RuntimeError("the database went away")])

    async def failing_once(self: _NameIndex, session: Any) -> None:
        await build(self, session)  # half done, then it fails
        if (failure := next(failures, None)) is not None:
            raise failure

    monkeypatch.setattr(_NameIndex, "_build", failing_once)
    with caplog.at_level(logging.ERROR):
        await app._warm_up_search(SimpleNamespace(sessions=company.sessions))  # type: ignore[arg-type]
    assert "building the name index at start failed" in caplog.text
    assert await company.find("li", "明远") == ["明远机械有限公司"]
    assert _index().builds == 2


async def _fresh(sessions: SessionFactory) -> _NameIndex:
    fresh = _NameIndex()
    async with reading(sessions) as session:
        await fresh.refresh(session)
    return fresh


def _by_id(columns: _Columns) -> dict[int, tuple[Any, ...]]:
    return {columns.ids[p]: columns.entry(p) for p in range(len(columns))}


def _same(patched: _NameIndex, fresh: _NameIndex) -> None:
    """Same rows, postings and owners/teams as a fresh build (postings compared as id sets)."""
    mine, theirs = patched.columns, fresh.columns
    assert _by_id(mine) == _by_id(theirs)

    def sets(columns: _Columns, postings: dict[Any, Any]) -> dict[Any, set[int]]:
        return {key: {columns.ids[p] for p in ps} for key, ps in postings.items() if len(ps)}

    assert sets(mine, mine.grams) == sets(theirs, theirs.grams)
    assert sets(mine, mine.by_owner) == sets(theirs, theirs.by_owner)
    assert sets(mine, mine.by_team) == sets(theirs, theirs.by_team)


async def test_after_changes_the_index_answers_as_a_fresh_build(company: Company) -> None:
    """Created, renamed, archived, destroyed and moved customers, patched in place."""
    names = ["明远机械有限公司", "宁波明远贸易有限公司", "杭州华泰电子有限公司", "Acme Trading Ltd"]
    made = [await company.customer("li", name) for name in names]
    made.append(await company.customer("chen", "华泰明远化工", short_name="华泰"))
    assert await company.find("boss", "明远")  # built
    await company.change(made[0], name="东方明远机械", short_name="东方")  # renamed
    await company.change(made[1], status="archived")
    await company.change(made[2], status="destroyed")
    west = company.people["chen"]
    await company.change(made[3], owner_id=west.id, team_id=west.team_id)  # moved
    await company.customer("wang", "明远新材料")  # created
    queries = ["明远", "华泰", "东方", "acme", "明", "明元机械", "化工"]
    answers = {
        (who, q): await company.find(who, q)
        for who in ("boss", "li", "zhou", "chen", "qian")
        for q in queries
    }
    filtered = await company.find("boss", "明远", filters=Filters(status="archived"))
    assert _index().builds == 1  # patched, not rebuilt
    assert "东方明远机械" in answers[("boss", "明远")]
    assert "杭州华泰电子有限公司" not in answers[("boss", "华泰")]
    assert answers[("chen", "acme")] == ["Acme Trading Ltd"]
    assert answers[("li", "acme")] == []
    assert filtered == ["宁波明远贸易有限公司"]
    _same(_index(), await _fresh(company.sessions))
    search.forget_indexes()  # a new process builds afresh: the same answers
    for (who, q), found in answers.items():
        assert await company.find(who, q) == found, (who, q)


def _rows(*names: tuple[int, str]) -> list[search._Row]:
    return [
        search._Row(cid, 7, 3, "approved", "A", None, None, None, name, "") for cid, name in names
    ]


def test_a_row_committed_late_with_a_lower_id_is_found_and_answers_as_in_order() -> None:
    """A row older than the newest one read (a late commit) is appended, then found by id."""
    first, second, third = _rows((1, "明远机械"), (2, "明远贸易"), (3, "华泰电子"))
    late = _Columns()
    for row in (first, third):
        late._append(row)
    late._patch(second)  # arrives by `updated_at` after id 3 was read
    late._patch(second._replace(name="明远新材料"))  # and is renamed: found, not added again
    ordered = _Columns()
    for row in (first, second._replace(name="明远新材料"), third):
        ordered._append(row)
    assert len(late) == 3 and late._position(2) == 2
    assert _by_id(late) == _by_id(ordered)
    for query in ("明远", "新材料", "华泰", "明"):
        assert late.match(query, None, Filters(), 10) == ordered.match(query, None, Filters(), 10)


async def test_names_replaced_many_times_are_found_and_kept_in_their_block(
    company: Company,
) -> None:
    customer = await company.customer("li", "明远机械有限公司")
    others = [await company.customer("li", f"华泰{n}号电子") for n in range(3)]
    for n in range(6):
        await company.change(customer, name=f"明远机械{n}号有限公司")
        assert await company.find("li", "明远") == [f"明远机械{n}号有限公司"]
    assert await company.find("li", "华泰") == [c.name for c in others]
    names = _index().columns.names
    assert sum(map(len, names.blocks)) == sum(
        len(n) + len(s) for n, s in map(names.get, range(len(names)))
    )
    _same(_index(), await _fresh(company.sessions))


def test_blocks_of_names_fill_and_replace_across_their_edges() -> None:
    """More rows than one block holds: every name read back as written, after replacing some."""
    columns = _Columns()
    size = search._Names.SIZE
    rows = _rows(*((cid, f"客户{cid}") for cid in range(1, 2 * size + 10)))
    for row in rows:
        columns._append(row)
    columns.names.seal()
    for cid in (1, size, size + 1, 2 * size + 9):
        columns._patch(rows[cid - 1]._replace(name=f"改名{cid}", short=f"简{cid}"))
    columns._patch(_rows((3 * size, "最后一个"))[0])  # appended after the replacements
    expected = {
        r.id: (f"改名{r.id}", f"简{r.id}")
        if r.id in (1, size, size + 1, 2 * size + 9)
        else (r.name, "")
        for r in rows
    }
    expected[3 * size] = ("最后一个", "")
    assert {columns.ids[p]: columns.names.get(p) for p in range(len(columns))} == expected


def test_a_filter_column_with_many_distinct_values_widens_its_codes() -> None:
    """Free-text regions: past 255 and 65,535 distinct values the codes take more bytes."""
    columns = _Columns()
    rows = _rows(*((cid, f"客户{cid}") for cid in range(1, 70_002)))
    columns.extend(row._replace(region=f"区{row.id}") for row in rows)
    assert columns.coded["region"].codes.typecode == "I"
    wanted = Filters(region="区69999")
    assert columns.match("客户", None, wanted, 5) == [69_999]
    assert columns.match("客户6999", None, Filters(region="区7"), 5) == []


def test_the_lock_serves_each_event_loop() -> None:
    """One process, two event loops one after the other (as tests run): each may wait on it."""
    index = _NameIndex()

    async def contended() -> None:
        async with index.lock:
            waiter = asyncio.create_task(index.lock.acquire())
            await asyncio.sleep(0)
            assert not waiter.done()
        await waiter
        index.lock.release()

    asyncio.run(contended())
    asyncio.run(contended())


async def test_many_new_customers_are_appended_not_rebuilt(
    company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import of many customers adds rows; only many changed rows rebuild the index."""
    monkeypatch.setattr(_NameIndex, "REBUILD_OVER", 2)
    await company.customer("li", "明远机械有限公司")
    assert await company.find("li", "明远") == ["明远机械有限公司"]
    for n in range(5):
        await company.customer("li", f"明远{n}号贸易")
    found = await company.find("li", "明远")
    assert sorted(found) == sorted(["明远机械有限公司", *(f"明远{n}号贸易" for n in range(5))])
    assert _index().builds == 1
    _same(_index(), await _fresh(company.sessions))


async def test_a_rebuild_drops_the_old_columns_first(
    company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory never holds two builds: while one fills its columns, the old ones are gone."""
    monkeypatch.setattr(_NameIndex, "REBUILD_OVER", 0)
    customer = await company.customer("li", "明远机械有限公司")
    assert await company.find("li", "明远") == ["明远机械有限公司"]
    old = weakref.ref(_index().columns)
    await company.change(customer, name="东方机械")
    extend = _Columns.extend
    seen: list[bool] = []

    def watched(self: _Columns, rows: Any) -> None:
        gc.collect()
        seen.append(old() is None and _index().columns is self)
        extend(self, rows)

    monkeypatch.setattr(_Columns, "extend", watched)
    assert await company.find("li", "东方") == ["东方机械"]
    assert seen == [True]
    assert _index().builds == 2
