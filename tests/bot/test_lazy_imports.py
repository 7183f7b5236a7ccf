"""The bot starts without its heavy, rarely used libraries; they load at first use.

openpyxl (with numpy and Pillow), matplotlib and pypinyin together are over 100 MB of the
process and most of a second of its start; a bot that only searches and records never needs
them. A fresh interpreter is used so that other tests' imports do not count.
"""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.harness import REPO_ROOT

HEAVY = ("openpyxl", "matplotlib", "pypinyin", "numpy", "PIL", "alembic")


def test_importing_the_bot_loads_none_of_the_heavy_libraries() -> None:
    probe = (
        "import sys, bot.app, bot.cli, bot.preflight\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_the_spreadsheet_library_loads_at_the_first_file() -> None:
    probe = (
        "import sys\n"
        "from conversations import spreadsheet\n"
        "assert 'openpyxl' not in sys.modules\n"
        "data = spreadsheet.rows_file(['a'], iter([['=1+1']]), sheet_title='t')\n"
        "sheet = spreadsheet.read(data)\n"
        "print('openpyxl' in sys.modules, sheet.headers[0], sheet.rows)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert shown == 'True a ((2, ("\'=1+1",)),)'
