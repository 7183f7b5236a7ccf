"""Kill -9 right after a submit's commit, restart, count: every follow-up arrives (item 7).

The real `python -m bot run` against the fake Bot API. The fake holds the bot's sendMessage
calls once Submit is pressed, so the bot is killed with the notice and the confirmation on their
way (after the commit that queued them). Then either the held messages never reached Telegram
(most runs) or Telegram had them and the bot never heard back; the bot is started again and we
count what the manager and the salesperson got.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from storage.models import Customer, Reminder
from tests.e2e.fake_bot_api import JSON, FakeBotApi
from tests.e2e.harness import BotProcess
from tests.e2e.support import (
    LINK,
    WAIT,
    Person,
    assert_audit_intact,
    bot_settings,
    read_rows,
    run_async,
    run_cli,
    stop_cleanly,
)

LI_ID, CHEN_ID = 720_001, 720_002
RUNS = 8
TELEGRAM_HAD_IT = {3, 7}  # runs where the held messages reached Telegram before the kill
CONFIRMATION = "submitted for review as"
CARD = "🔔 Review · new customer"


@pytest.fixture
def bot_env(api: FakeBotApi, database_url: str, tmp_path: Path) -> dict[str, str]:
    env = bot_settings(api, database_url, tmp_path, language="en")
    env.update(REMINDER_POLL_SECONDS="1", OUTBOX_LEASE_SECONDS="5")
    return env


def join(api: FakeBotApi, bot: BotProcess, env: dict[str, str], role: str, user: JSON) -> Person:
    made = run_cli(env, "invite", "--role", role, "--team", "East")
    assert made.returncode == 0, made.stderr
    link = LINK.fullmatch(made.stdout.strip())
    assert link, made.stdout
    person = Person(api, bot, user)
    person.say(f"/start {link[1]}", expect="Welcome,")
    return person


def to_summary(li: Person, name: str) -> None:
    """/new with the required answers only, up to the summary card."""
    li.say("/new", expect="Is the customer a company or an individual?")
    li.tap("Company", expect="What is the customer's full name?")
    li.say(name, expect="Phone numbers?")
    li.tap("Skip the remaining optional questions", expect="Customer class?")
    li.tap("B important", expect="Which pipeline stage")
    li.tap("Yellow apple", expect="How did we get this customer?")
    li.tap("Visit", expect="The essentials are in")
    li.tap("Continue", expect="New customer: please check")


def count(api: FakeBotApi, chat_id: int, text: str, name: str) -> int:
    """Messages (sent, not edits) to the chat containing both `text` and the customer's name."""
    return sum(
        1
        for m in api.sent_messages(chat_id)
        if text in (m.get("text") or "") and name in (m.get("text") or "")
    )


def wait_for_count(
    api: FakeBotApi, chat_id: int, text: str, name: str, expected: int, bot: BotProcess
) -> None:
    """Wait until the chat got `expected` messages with `text` and `name`."""
    deadline, timeout = time.monotonic() + WAIT, WAIT
    while count(api, chat_id, text, name) < expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s\n\nbot log:\n{bot.log_text()}")
        time.sleep(0.1)


def kill(bot: BotProcess) -> None:
    """kill -9: no shutdown, no goodbye."""
    assert bot.proc is not None
    bot.proc.kill()
    bot.proc.wait()
    bot.stop()  # closes the log


def test_kill_9_right_after_submit_loses_no_follow_up(
    api: FakeBotApi, bot: BotProcess, bot_env: dict[str, str], database_url: str
) -> None:
    bot.start()
    bot.wait_until_polling(api, timeout=60)
    li = join(api, bot, bot_env, "salesperson", api.user(LI_ID, "Li Lei", language_code="en"))
    chen = join(api, bot, bot_env, "manager", api.user(CHEN_ID, "Chen Jing", language_code="en"))

    # the normal path first: one card, one confirmation, and nothing again later
    to_summary(li, "Normal Path Trading")
    mark = api.last_seq()
    li.tap("✅ Submit", expect=CONFIRMATION)
    chen.reply(CARD, after=mark)

    results: list[tuple[int, int, bool]] = []
    for run in range(RUNS):
        name = f"Kill Test {run} Trading"
        to_summary(li, name)
        summary = li.newest_with_button("✅ Submit")
        api.hold("sendMessage")
        api.press_button(li.user, summary, FakeBotApi.button_data(summary, "Submit"))
        api.wait_held(2, timeout=WAIT)  # the confirmation and the card, both on their way
        kill(bot)
        api.release(drop=run not in TELEGRAM_HAD_IT)
        bot.start()
        bot.wait_until_polling(api, timeout=60)
        # after the lease (5 s) the new process sends what the killed one had claimed; where
        # Telegram had the first copy, that is a second one
        expected = 2 if run in TELEGRAM_HAD_IT else 1
        wait_for_count(api, CHEN_ID, CARD, name, expected, bot)
        wait_for_count(api, LI_ID, CONFIRMATION, name, expected, bot)
        time.sleep(1.5)  # a poll or two more: nothing else comes
        results.append(
            (
                count(api, CHEN_ID, CARD, name),
                count(api, LI_ID, CONFIRMATION, name),
                run in TELEGRAM_HAD_IT,
            )
        )

    arrived = sum(1 for card, told, _ in results if card >= 1 and told >= 1)
    print(f"follow-ups after kill -9: {arrived} of {RUNS} runs had both; per run {results}")
    assert arrived == RUNS, results
    for card, told, telegram_had_it in results:
        if not telegram_had_it:  # never reached Telegram: sent after the restart, once
            assert (card, told) == (1, 1), results
        else:  # Telegram had them, the bot never heard: sent again once (at least once)
            assert (card, told) == (2, 2), results

    assert count(api, CHEN_ID, CARD, "Normal Path Trading") == 1
    assert count(api, LI_ID, CONFIRMATION, "Normal Path Trading") == 1
    stop_cleanly(bot)
    customers, rows = run_async(read_rows(database_url, Customer, Reminder))
    assert len(customers) == RUNS + 1 and {c.status for c in customers} == {"pending"}
    follow_ups = [r for r in rows if r.kind in ("review_card", "confirmation")]
    assert len(follow_ups) == 2 * (RUNS + 1)
    assert {r.status for r in follow_ups} == {"sent"}, [
        (r.id, r.kind, r.status, r.attempts, r.sent_at, r.next_attempt_at, r.created_at)
        for r in follow_ups
    ]
    assert_audit_intact(bot_env)
