"""A populated SQLite file made once and kept between benchmark runs (populating a million
customers takes minutes); each run gets a fresh copy, since the bot writes to it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path


def fresh_copy(cached: Path, copy: Path, populate: Callable[[str], None]) -> str:
    """The URL of `copy`, a copy of `cached`; `populate(url)` fills `cached` first if it is
    missing (into a partial file renamed when done, so an interrupted fill is never used)."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    if not cached.exists():
        partial = cached.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        populate(f"sqlite:///{partial}")
        partial.rename(cached)
    shutil.copyfile(cached, copy)
    return f"sqlite:///{copy}"
