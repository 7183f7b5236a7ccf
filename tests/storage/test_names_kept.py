"""Kept team names (storage.names.TeamNames) answer exactly as a NameIndex built afresh."""

from __future__ import annotations

import random

from storage import names
from tests.bench.duplicate_names import asked_names, company_name


def _fresh(rows: dict[int, tuple[str, str | None]]) -> names.NameIndex:
    index = names.NameIndex()
    for cid in sorted(rows):
        name, short = rows[cid]
        index.add(cid, name)
        if short:
            index.add(cid, short)
    return index


def test_kept_names_patched_in_any_order_answer_as_a_fresh_index() -> None:
    rng = random.Random(14)
    rows = {
        cid: (company_name(rng), rng.choice([None, "华信科技", "Acme", "N44X 贸易"]))
        for cid in range(1, 3001)
    }
    kept = names.TeamNames()
    for cid in rng.sample(sorted(rows), len(rows)):  # out of id order, as changes come
        kept.put(cid, rows[cid])
    for cid in rng.sample(sorted(rows), 300):  # renamed, destroyed or moved away
        if rng.random() < 0.5:
            rows[cid] = (company_name(rng), None)
            kept.put(cid, rows[cid])
        else:
            del rows[cid]
            kept.drop(cid)
    assert len(kept) == sum(1 + bool(short) for _name, short in rows.values())
    fresh = _fresh(rows)
    asked = asked_names([name for name, _short in rows.values()], 400, rng)
    asked += ["华信科技有限公司", "华新科技", "N44X 贸易", "N0X 贸易", "acme co ltd", "深圳市"]
    for name in asked:
        assert kept.similar_to(name) == fresh.similar_to(name), name
        assert kept.similar_to(name, limit=5) == fresh.similar_to(name, limit=5), name


def test_pinyin_is_read_only_when_first_needed() -> None:
    """Importing storage.names must not load pypinyin's table (about 2 s at the bot's start)."""
    import subprocess
    import sys

    code = "import sys, storage.names; print('pypinyin.pinyin_dict' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert names.sound("华信") == "hua xin"
