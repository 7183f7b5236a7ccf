"""Benchmark: how many interactions (messages and button presses a user sends, the command
included) a customer and a visit take, played through the real handlers on the fake Telegram.

The player reads the draft's current question from the database and answers it from a script
(field → answer); a question the script has no answer for is skipped ("skip the rest" once no
later answer is wanted), the summary is submitted, and "save now / continue" is answered as the
script says. So the same script runs on any version of the flow's step order.

    .venv/bin/python -m tests.bench.interactions
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from storage import staff as staff_store
from storage.db import unit_of_work
from storage.models import Staff
from tests.auxil.fake_telegram import Person
from tests.auxil.flow_helpers import draft_of
from tests.bench.wizard_steps import BenchBot, start_bench_bot

# questions a user cannot skip in one version or another: never "skipped with the rest"
REQUIRED = frozenset(
    {
        "kind",
        "name",
        "customer_class",
        "stage",
        "source",
        "deal_status",
        "finance",
        "consent_given",
        "consent_method",
        "consent_on",
        "customer_id",
        "visit_kind",
        "then",
    }
)


@dataclass
class Script:
    """What the user answers: field → ("send" | "press", text)."""

    command: str
    answers: dict[str, tuple[str, str]]
    save_now: bool = False  # at "save now, complete later?": save (else continue)
    used: set[str] = field(default_factory=set)

    def wanted_later(self) -> bool:
        return any(f not in self.used and f not in REQUIRED for f in self.answers)


MINIMAL_CUSTOMER = Script(
    "/new",
    {
        "kind": ("press", "企业"),
        "name": ("send", "杭州明远机械有限公司"),
        "phones": ("send", "13812345678"),
        "customer_class": ("press", "B 重要"),
        "stage": ("press", "黄苹果"),
        "source": ("press", "拜访"),
        # required before issue 13; defaults since
        "deal_status": ("press", "未成交"),
        "finance": ("press", "否"),
        "consent_given": ("press", "否"),
    },
    save_now=True,
)

FULL_CUSTOMER = Script(
    "/new",
    {
        "kind": ("press", "企业"),
        "name": ("send", "宁波华泰电子有限公司"),
        "short_name": ("send", "华泰"),
        "industry": ("send", "电子"),
        "region": ("send", "浙江 宁波"),
        "address": ("send", "宁波市鄞州区 1 号"),
        "parent_org": ("send", "华泰集团"),
        "size": ("press", "50-200"),
        "profile": ("send", "主营电子元件"),
        "source": ("press", "展会"),
        "phones": ("send", "13912345678"),
        "email": ("send", "sales@huatai.example.cn"),
        "website": ("send", "www.huatai.example.cn"),
        "wechat": ("send", "huatai_2026"),
        "customer_class": ("press", "A 战略"),
        "stage": ("press", "红苹果"),
        "deal_status": ("press", "首次成交"),
        "credit_status": ("send", "良好"),
        "trade_notes": ("send", "2025 年采购 3 批"),
        "legal_representative": ("send", "王建国"),
        "finance": ("press", "是"),
        "invoice_title": ("send", "宁波华泰电子有限公司"),
        "tax_no": ("send", "91350100M000100Y43"),
        "bank": ("send", "工商银行宁波分行"),
        "account_no": ("send", "6222 0202 0011 2233 445"),
        "billing_address": ("send", "宁波市鄞州区 1 号"),
        "billing_phone": ("send", "0574-87654322"),
        "consent_given": ("press", "是"),
        "consent_method": ("press", "书面"),
        "consent_on": ("send", "2026-11-20"),
        "consent_note": ("send", "现场签署告知书"),
        "next_followup_on": ("send", "2026-12-01"),
    },
)

MINIMAL_VISIT = Script(
    "/visit",
    {
        "customer_id": ("press", "明远"),
        "visit_kind": ("press", "上门拜访"),
    },
)


async def play(person: Person, bench: BenchBot, script: Script) -> int:
    """Play `script` to the end; the number of interactions it took."""
    sessions = bench.services.sessions
    count = 1
    await person.send(script.command)
    for _ in range(200):
        draft = await draft_of(sessions, person.id)
        if draft is None:
            return count
        count += 1
        if draft.mode == "summary":
            await person.press("提交")
            continue
        step = draft.step or ""
        if step == "then":  # save now, complete later / continue
            await person.press("现在保存" if script.save_now else "继续填写")
            continue
        answer = script.answers.get(step) if step not in script.used else None
        if answer is not None:
            script.used.add(step)
            how, text = answer
            await (person.send(text) if how == "send" else person.press(text))
        elif step == "location":
            await person.send("跳过 »")  # the location keyboard's Skip
        elif step == "stage_change":
            await person.press("不变")
        elif not script.wanted_later() and _has_button(person, "跳过其余"):
            await person.press("跳过其余")
        else:
            await person.press("跳过")
    raise AssertionError(f"{script.command} did not finish: {person.last_text()}")


def _has_button(person: Person, label: str) -> bool:
    markup = person.last_message().get("reply_markup") or {}
    rows = markup.get("inline_keyboard") or []
    return any(label in button.get("text", "") for row in rows for button in row)


async def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        bench = await start_bench_bot(Path(workdir))
        async with unit_of_work(bench.services.sessions) as session:
            team = await staff_store.get_or_create_team(session, "Bench", actor=None)
            session.add(
                Staff(telegram_id=1, display_name="Bench", role="salesperson", team_id=team.id)
            )
        person = Person(bench.app, bench.telegram, 1)
        figures = {}
        for name, script in (
            ("minimal customer (kind, name, phone, class, stage, source)", MINIMAL_CUSTOMER),
            ("full customer (company, every field, finance and consent)", FULL_CUSTOMER),
            ("minimal visit (customer, kind; the rest skipped)", MINIMAL_VISIT),
        ):
            figures[name] = await play(person, bench, script)
            assert "KH-" in person.last_text() or "拜访" in person.last_text(), person.last_text()
        await bench.close()
    for name, count in figures.items():
        print(f"{name}: {count} interactions")


if __name__ == "__main__":
    asyncio.run(main())
