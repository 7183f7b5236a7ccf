"""An export's XLSX sheet, written by XlsxWriter in a process of its own.

XlsxWriter spends some ten microseconds of pure Python on every cell, which for 100,000
customers of twenty columns is most of the export, all under the one interpreter lock. So the
sheet is written by a child process (`python -c "...main()"`, importing nothing but this
module and XlsxWriter) while the export's own process reads, opens, masks and labels the next
rows: the two halves run on two cores at once. Rows go to the child as pickled pages down its
stdin (a pipe, so a slow child holds the parent back and neither side's memory grows); the
child writes them in constant-memory mode, closes the workbook at end of input and exits 0,
or prints why not to stderr and exits 1.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

import xlsxwriter

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SHEET_NAME_LIMIT = 31  # Excel's limit on a sheet's name
XLSX_DATE = "yyyy-mm-dd"
XLSX_DATETIME = "yyyy-mm-dd hh:mm"
ROWS_PER_MESSAGE = 500  # rows pickled to the child at a time


def neutralised(value: str) -> str:
    """A text a spreadsheet would run as a formula, made plain text (formula injection)."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


class XlsxSheet:
    """One worksheet in constant memory; text always as text (never a formula)."""

    def __init__(self, path: Path, title: str, widths: list[int]) -> None:
        self.book = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "strings_to_formulas": False,
                "strings_to_numbers": False,
                "strings_to_urls": False,
            },
        )
        self.sheet = self.book.add_worksheet(title[:SHEET_NAME_LIMIT])
        self.day = self.book.add_format({"num_format": XLSX_DATE})
        self.moment = self.book.add_format({"num_format": XLSX_DATETIME})
        self.bold = self.book.add_format({"bold": True})
        for index, width in enumerate(widths):
            self.sheet.set_column(index, index, width)
        self.sheet.freeze_panes(1, 0)
        self.next_row = 0

    def header(self, cells: list[str]) -> None:
        for index, text in enumerate(cells):
            self.sheet.write_string(0, index, neutralised(text), self.bold)
        self.next_row = 1

    def rows(self, rows: list[list[Any]]) -> None:
        # The innermost loop of a large export: XlsxWriter's undecorated writers (what
        # `write_string` and the others call once row and column are numbers, as here always)
        # save a call and an `int()` check per cell; the file written is the same.
        sheet = self.sheet
        string = getattr(sheet, "_write_string", sheet.write_string)
        moment = getattr(sheet, "_write_datetime", sheet.write_datetime)
        moment_format, day_format = self.moment, self.day
        row = self.next_row
        for cells in rows:
            for index, value in enumerate(cells):
                if value is None:
                    continue
                kind = type(value)
                if kind is str:  # the commonest cell first
                    string(row, index, "'" + value if value.startswith(FORMULA_STARTS) else value)
                elif isinstance(value, datetime):
                    moment(row, index, value, moment_format)
                elif isinstance(value, date):
                    moment(row, index, datetime.combine(value, time()), day_format)
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    sheet.write_number(row, index, value)
                else:
                    string(row, index, neutralised(str(value)))
            row += 1
        self.next_row = row

    def row(self, cells: list[Any]) -> None:
        self.rows([cells])

    def close(self) -> None:
        self.book.close()


class XlsxInChild:
    """The export's side of a sheet written by a child process (see the module's docstring)."""

    def __init__(self, path: Path, title: str, widths: list[int]) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from storage.spreadsheet import main; main()"],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdin is not None
        self.pipe: IO[bytes] = self.process.stdin
        self.pending: list[list[Any]] = []
        self._send((str(path), title, widths))

    def _send(self, message: Any) -> None:
        try:
            pickle.dump(message, self.pipe, protocol=pickle.HIGHEST_PROTOCOL)
        except BrokenPipeError:  # the child failed: say why
            self._finish()
            raise

    def header(self, cells: list[str]) -> None:
        self._send(cells)

    def row(self, cells: list[Any]) -> None:
        self.pending.append(cells)
        if len(self.pending) >= ROWS_PER_MESSAGE:
            self._send(self.pending)
            self.pending = []

    def close(self) -> None:
        """Send the last rows and wait for the workbook to be closed; an error if it was not."""
        if self.pending:
            self._send(self.pending)
            self.pending = []
        self._finish()

    def abort(self) -> None:
        """Stop the child without a finished file (the export failed)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()

    def _finish(self) -> None:
        _, error = self.process.communicate()
        if self.process.returncode != 0:
            raise RuntimeError(
                f"the XLSX writer failed ({self.process.returncode}): "
                f"{error.decode(errors='replace').strip()[-2000:]}"
            )


def main() -> None:
    """The child: a (path, title, widths) message, the header, then pages of rows until the
    end of input; then the workbook is closed."""
    source = sys.stdin.buffer
    path, title, widths = pickle.load(source)
    sheet = XlsxSheet(Path(path), title, widths)
    sheet.header(pickle.load(source))
    while True:
        try:
            rows = pickle.load(source)
        except EOFError:
            break
        sheet.rows(rows)
    sheet.close()
