"""Running `python -m bot` inside a test, on the test's database and keys (the `cli_env`
fixture of tests/conftest.py sets the environment it reads)."""

from __future__ import annotations

import asyncio

from bot.cli import main


async def run_cli(*argv: str) -> int:
    """main() in a worker thread: it calls asyncio.run, which needs a loop of its own."""
    return await asyncio.to_thread(main, list(argv))
