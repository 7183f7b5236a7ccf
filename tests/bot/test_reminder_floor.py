"""Reminder rendering stands on the floor of shared handler tools (issue 9, item 3): it imports no
flow, the sender renders with it instead of with a flow, and no import hides inside a function to
dodge a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOOR = (
    "conversations.fit",
    "conversations.messages",
    "conversations.callback_data",
    "conversations.keyboards",  # the shared pager (issue 13: "show all" pages)
)


def _imports(path: Path) -> tuple[set[str], list[tuple[str, int]]]:
    """The modules a file imports at its top, and (function, line) of any import inside one."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module)
            top.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            top.update(alias.name for alias in node.names)
    hidden = [
        (function.name, inner.lineno)
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for inner in ast.walk(function)
        if isinstance(inner, ast.Import | ast.ImportFrom)
    ]
    return top, hidden


def test_rendering_a_reminder_loads_no_flow() -> None:
    probe = (
        "import sys, bot.reminder_text\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('conversations.'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(done.stdout.split())
    assert loaded <= set(FLOOR), f"flows loaded by the rendering: {sorted(loaded - set(FLOOR))}"


def test_the_sender_renders_with_the_floor_not_with_the_reminders_flow() -> None:
    top, _ = _imports(ROOT / "bot" / "sender.py")
    assert "bot.reminder_text" in top
    assert not any(m.startswith("conversations.reminders") for m in top)


@pytest.mark.parametrize(
    "path", ["conversations/reminders.py", "bot/reminder_text.py", "bot/sender.py"]
)
def test_no_import_hides_inside_a_function(path: str) -> None:
    _, hidden = _imports(ROOT / path)
    assert hidden == []


def test_the_reminders_flow_does_not_reach_up_to_the_scheduler() -> None:
    top, _ = _imports(ROOT / "conversations" / "reminders.py")
    assert not any(m.startswith(("bot.scheduler", "bot.sender", "bot.app")) for m in top)
