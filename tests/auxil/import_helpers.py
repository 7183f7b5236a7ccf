"""Spreadsheets for /import tests: a filled file as a person would make it, and reading back
what the bot sent."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook, load_workbook

from bot.i18n import Translator
from conversations import import_rows
from tests.auxil.fake_telegram import Person, buttons

# a customer that passes every check of /new, by column, in Chinese labels
GOOD = {
    "kind": "企业",
    "source": "展会",
    "customer_class": "B 重要客户",
    "stage": "黄苹果",
    "deal_status": "未成交",
    "consent_given": "否",
}
NAMES = (
    "杭州明远机械有限公司",
    "宁波海天塑料制品厂",
    "温州正泰电器股份",
    "绍兴纺织印染集团",
    "嘉兴光伏新能源科技",
    "湖州竹木家具工坊",
    "金华五金工具城",
    "台州汽车配件贸易",
    "丽水生态农业合作社",
    "舟山远洋渔业公司",
)


def header_row(language: str = "zh", columns: tuple[str, ...] = import_rows.COLUMNS) -> list[str]:
    _ = Translator(language)
    return [import_rows.header_label(_, c) for c in columns]


def workbook(
    rows: list[dict[str, Any]],
    *,
    language: str = "zh",
    headers: list[str] | None = None,
    columns: tuple[str, ...] = import_rows.COLUMNS,
) -> bytes:
    """An XLSX with the template's headers and `rows` (by column; values as typed: a text that
    starts with = stays text, as a cell typed with a leading apostrophe)."""
    book = Workbook()
    sheet = book.active
    sheet.append(headers or header_row(language, columns))
    for row in rows:
        sheet.append([row.get(c) for c in columns])
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            if isinstance(cell.value, str):
                cell.data_type = "s"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def row(name: str, phone: str | None = None, **values: Any) -> dict[str, Any]:
    return {**GOOD, "name": name, **({"phones": phone} if phone else {}), **values}


def read_sheet(content: bytes, index: int = 0) -> list[list[Any]]:
    book = load_workbook(io.BytesIO(content))
    sheet = book.worksheets[index]
    return [list(r) for r in sheet.iter_rows(values_only=True)]


def documents_to(person: Person) -> list[dict[str, Any]]:
    return [
        {"chat_id": person.id, "name": u.filename, "content": u.content, "params": u.params}
        for u in person.telegram.documents_to(person.id)
    ]


def last_document(person: Person) -> dict[str, Any]:
    sent = documents_to(person)
    assert sent, "the bot sent no document"
    return sent[-1]


def data_of(message: dict[str, Any], label: str) -> str:
    for text, data in buttons(message):
        if label in text:
            return data
    raise AssertionError(f"no button {label!r} in {buttons(message)}")
