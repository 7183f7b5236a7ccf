"""A manager's review day, end to end: the real `python -m bot run` against the fake Bot API.

A salesperson and a manager join with invite links from the command line; the salesperson
enters a customer and the manager approves it from the card the bot sends; the salesperson then
proposes a change, which the manager rejects with a reason. Finally the database as the
project's own code reads it, and the audit chain.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from storage.models import Customer, Review
from tests.e2e.fake_bot_api import JSON, FakeBotApi
from tests.e2e.harness import BotProcess
from tests.e2e.support import (
    LINK,
    WAIT,
    Person,
    assert_audit_intact,
    assert_no_apologies,
    bot_settings,
    read_rows,
    run_async,
    run_cli,
    stop_cleanly,
)

LI_ID, CHEN_ID = 710_001, 710_002
CUSTOMER = "Ningbo Haitian Plastics Co., Ltd."
PHONE = "13812345678"
REASON = "Not enough evidence for a strategic account yet"


def join(api: FakeBotApi, bot: BotProcess, env: dict[str, str], role: str, user: JSON) -> Person:
    """An invite printed on the server, opened in Telegram."""
    made = run_cli(env, "invite", "--role", role, "--team", "East")
    assert made.returncode == 0, made.stderr
    link = LINK.fullmatch(made.stdout.strip())
    assert link, made.stdout
    person = Person(api, bot, user)
    person.say(f"/start {link[1]}", expect="Welcome,")
    return person


def edited(person: Person, expect: str, after: int) -> JSON:
    """The next edit of one of the bot's messages to this person that shows `expect`."""

    def wanted(event: JSON) -> bool:
        return event["event"] == "edited" and expect in (event.get("text") or "")

    try:
        return person.api.wait_for_message(person.chat_id, wanted, timeout=WAIT, after=after)
    except AssertionError as error:
        raise AssertionError(f"no edit showing {expect!r}: {error}\n\n{person.log}") from None


@pytest.fixture
def bot_env(api: FakeBotApi, database_url: str, tmp_path: Path) -> dict[str, str]:
    return bot_settings(api, database_url, tmp_path, language="en")


def test_a_manager_approves_a_new_customer_and_rejects_a_change(
    api: FakeBotApi, bot: BotProcess, bot_env: dict[str, str], database_url: str
) -> None:
    bot.start()
    bot.wait_until_polling(api, timeout=60)
    li = join(api, bot, bot_env, "salesperson", api.user(LI_ID, "Li Lei", language_code="en"))
    chen = join(api, bot, bot_env, "manager", api.user(CHEN_ID, "Chen Jing", language_code="en"))

    # Li enters a customer with a phone number and submits it.
    li.say("/new", expect="Is the customer a company or an individual?")
    li.tap("Company", expect="What is the customer's full name?")
    li.say(CUSTOMER, expect="Phone numbers?")
    li.say(PHONE, expect="Customer class?")
    li.tap("B important", expect="Which pipeline stage")
    li.tap("Yellow apple", expect="How did we get this customer?")
    li.tap("Visit", expect="The essentials are in")
    mark = api.last_seq()
    li.tap("Save now", expect="submitted for review as")

    # Chen gets the card at once: what, who, the key fields with the phone masked.
    card = chen.reply("🔔 Review · new customer", after=mark)
    assert f"{CUSTOMER}" in card["text"] and "Submitted by Li Lei (East)" in card["text"]
    assert "• Phones: 138****5678" in card["text"] and PHONE not in card["text"]
    assert FakeBotApi.button_texts(card) == ["✅ Approve", "❌ Reject", "🔎 Open"]

    # He approves it; the card shows the decision, Li is told.
    mark = api.last_seq()
    api.press_button(chen.user, card, FakeBotApi.button_data(card, "Approve"))
    decided = edited(chen, "✅ Approved by Chen Jing", after=mark)
    assert not FakeBotApi.button_texts(decided)
    li.reply("was approved by Chen Jing and is now an official record", after=mark)
    # a second press on the old card decides nothing more
    since = time.monotonic()
    api.press_button(chen.user, card, FakeBotApi.button_data(card, "Approve"))
    answer = api.wait_for_call("answerCallbackQuery", timeout=WAIT, since=since)
    assert "already approved by Chen Jing" in answer.get("text", ""), answer

    # Li proposes a change of class (the customer card's Edit button carries `ce:<id>`).
    [customer], _reviews = run_async(read_rows(database_url, Customer, Review))
    assert customer.status == "approved"
    told = li.messages()[-1]
    mark = api.last_seq()
    api.press_button(li.user, told, f"ce:{customer.id}")
    li.reply("Which field of", after=mark)
    li.tap("Class", expect="Customer class?")
    li.tap("A strategic", expect="Edit customer")
    mark = api.last_seq()
    li.tap("✅ Submit", expect="Change sent for a manager's approval")

    # Chen gets the change card with before and after, and rejects it with a reason.
    change = chen.reply("🔔 Review · change to a customer", after=mark)
    assert "• Class: B important → A strategic" in change["text"], change["text"]
    chen.tap("❌ Reject", expect="Why are you rejecting")
    mark = api.last_seq()
    chen.say(REASON, expect="Rejected. The submitter will see your reason.")
    card_now = edited(chen, "❌ Rejected by Chen Jing", after=mark)
    assert f"Reason: {REASON}" in card_now["text"]
    rejected = li.reply("was rejected by Chen Jing; the approved values stand.", after=mark)
    assert f"Reason: {REASON}" in rejected["text"]
    assert FakeBotApi.button_texts(rejected) == ["✏️ Edit again"]

    assert_no_apologies(li, chen)
    log = stop_cleanly(bot)
    assert PHONE not in log, "the phone number leaked into the log"

    [customer], reviews = run_async(read_rows(database_url, Customer, Review))
    assert (customer.status, customer.customer_class) == ("approved", "B")
    assert [(r.kind, r.status) for r in reviews] == [
        ("customer_new", "approved"),
        ("customer_change", "rejected"),
    ]
    assert reviews[1].reason == REASON
    assert reviews[0].decided_by == reviews[1].decided_by is not None

    assert_audit_intact(bot_env)
