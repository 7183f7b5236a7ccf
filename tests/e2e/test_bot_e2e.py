"""A salesperson's day, end to end: the real `python -m bot run` against the fake Bot API.

Invite links (command line and /invite in chat), a stranger refused, joining, entering a new
customer with a restart of the bot half-way through, submitting it, and finally the database
as the project's own code reads it (and the raw SQLite file, which must not hold the phone).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.i18n import translate
from storage.models import Customer
from tests.conftest import IS_POSTGRES
from tests.e2e.fake_bot_api import JSON, FakeBotApi
from tests.e2e.harness import BotProcess
from tests.e2e.support import (
    ADMIN_ID,
    LINK,
    Person,
    assert_audit_intact,
    assert_no_apologies,
    read_rows,
    run_async,
    run_cli,
    shanghai_today,
    stop_cleanly,
)

LI_ID, WANG_ID, STRANGER_ID = 700_001, 700_002, 700_003

CUSTOMER = "Hangzhou Mingyuan Machinery Co., Ltd."
PHONE = "13812345678"
EMAIL = "sales@mingyuan.example.com"
ADDRESS = "100 Wensan Road, Xihu District"


def position(message: JSON) -> tuple[int, int]:
    """Where a question stands: (11, 28) from its "📝 New customer · 11 of 28" line."""
    found = re.search(r"📝 .* (\d+) of (\d+)", message["text"])
    assert found, f"not a question: {message['text']!r}"
    return int(found[1]), int(found[2])


def sqlite_bytes(database_url: str) -> bytes:
    """The database file plus any WAL/journal next to it: everything SQLite keeps on disk."""
    path = Path(make_url(database_url).database or "")
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


# ---------------------------------------------------------------------------------------------
# The day


def test_salesperson_enters_a_customer_across_a_restart(
    api: FakeBotApi, bot: BotProcess, bot_env: dict[str, str], database_url: str
) -> None:
    # The bot's first start makes its key file; before it, a command-line invite (audited, so
    # it needs the keys) is refused in one line.
    early = run_cli(bot_env, "invite", "--role", "salesperson", "--team", "East")
    assert early.returncode == 2 and "ENCRYPTION_KEYS" in early.stderr, early.stderr
    bot.start()
    bot.wait_until_polling(api, timeout=60)

    # The operator prints an invite link for Li on the server.
    invite = run_cli(bot_env, "invite", "--role", "salesperson", "--team", "East")
    assert invite.returncode == 0, invite.stderr
    match = LINK.fullmatch(invite.stdout.strip())
    assert match, f"no invite link on stdout: {invite.stdout!r} (stderr: {invite.stderr!r})"
    li_token = match[1]

    li = Person(api, bot, api.user(LI_ID, "Li Lei", language_code="en"))
    wang = Person(api, bot, api.user(WANG_ID, "Wang Fang", language_code="en"))
    stranger = Person(api, bot, api.user(STRANGER_ID, "Nobody", language_code="en"))
    admin = Person(api, bot, api.user(ADMIN_ID, "Boss", language_code="en"))

    # The configured admin makes a link in chat, and Wang joins with it.
    admin.say("/invite", expect="Which role will they have?")
    admin.tap("Salesperson", expect="Which team will they join?")
    made = admin.tap("East", expect="Invite link for a Salesperson")
    link = LINK.search(made["text"])
    assert link, made["text"]
    wang.say(f"/start {link[1]}", expect="Welcome, Wang Fang! Your role: Salesperson.")

    # A stranger gets one polite refusal, from the catalogue.
    refusal = stranger.say("hello", expect="registered staff only")
    assert refusal["text"] == translate("en", "access.unregistered")

    # Li joins with the operator's link.
    mark = api.last_seq()
    li.say(f"/start {li_token}", expect="Welcome, Li Lei! Your role: Salesperson.")
    li.reply("Here is what you can do:", after=mark)

    # Li enters a new customer...
    li.say("/new", expect="Is the customer a company or an individual?")
    li.tap("Company", expect="What is the customer's full name?")
    # the essentials first (issue 13): the phones right after the name
    phones_question = li.say(CUSTOMER, expect="Phone numbers?")

    # ...mistypes the phone, is told why, and asked the same question again...
    again = li.say("12345", expect="That is not a valid phone number.")
    assert "Phone numbers?" in again["text"], again["text"]
    assert position(again) == position(phones_question)
    class_question = li.say(PHONE, expect="Customer class?")

    # ...while the bot is restarted (a deploy). Nothing is lost.
    assert bot.stop() == 0, f"bot did not stop cleanly:\n{bot.log_text()}"
    bot.start()
    bot.wait_until_polling(api, timeout=60)

    stage_question = li.tap("B important", expect="Which pipeline stage is the customer in?")
    assert position(stage_question) == (position(class_question)[0] + 1, 6)
    li.tap("Yellow apple", expect="How did we get this customer?")
    li.tap("Visit", expect="The essentials are in")
    li.tap("Continue", expect="Short name?")
    li.say("Mingyuan", expect="Which industry?")
    li.tap("Skip »", expect="Region (province/city)?")
    li.say("Zhejiang, Hangzhou", expect="Street address?")
    li.say(ADDRESS, expect="Parent organisation")
    li.tap("Skip »", expect="How large is the company?")
    li.tap("50-200", expect="A short profile")
    li.tap("Skip »", expect="E-mail address?")
    li.say(EMAIL, expect="Website?")
    li.tap("Skip »", expect="WeChat or QQ id?")
    li.tap("Skip »", expect="Deal status?")
    li.tap("No deal yet", expect="Credit status?")
    li.tap("Skip »", expect="Notes on past trade?")
    li.tap("Skip »", expect="Legal representative")
    li.tap("Skip »", expect="Next follow-up date?")
    li.tap("Skip »", expect="Enter financial data")
    li.tap("No", expect="did they agree?")
    li.tap("Yes", expect="How did they agree?")
    li.tap("In writing", expect="On which date did they agree?")
    li.say("2026-01-05", expect="Any note about the consent?")
    summary = li.tap("Skip »", expect="New customer: please check")
    assert "New customer: please check" in summary["text"], summary["text"]

    card = summary["text"]
    for line in (
        f"• Name: {CUSTOMER}",  # entered before the restart
        "• Phones: 138 1234 5678",  # entered before the restart, shown for people
        f"• E-mail: {EMAIL}",  # entered after it
        "• Kind: Company",
        "• Source: Visit",
        "• Class: B important",
        "• Deal status: No deal yet",
        "• Financial data: No",
        "• Consent: Yes",
        "• Consent given: In writing",
        "• Consent date: 2026-01-05",
    ):
        assert line in card, f"{line!r} not on the summary card:\n{card}"

    year = datetime.now(UTC).year
    days_before = shanghai_today()
    done = li.tap("✅ Submit", expect="submitted for review as")
    submit_days = {days_before, shanghai_today()}
    assert f"submitted for review as KH-{year}-000001" in done["text"], done["text"]
    assert CUSTOMER in done["text"]

    # The whole day: one refusal for the stranger, no apology for an error to anyone.
    assert [m["text"] for m in stranger.messages()] == [refusal["text"]]
    assert_no_apologies(li, wang, admin)

    log = stop_cleanly(bot)
    assert PHONE not in log, "the phone number leaked into the log"

    # The record as the project's own code reads it.
    [customers] = run_async(read_rows(database_url, Customer))
    assert len(customers) == 1, customers
    customer = customers[0]
    assert (customer.name, customer.status) == (CUSTOMER, "pending")
    assert customer.customer_no == f"KH-{year}-000001"
    assert (customer.kind, customer.source, customer.customer_class) == ("company", "visit", "B")
    assert customer.consent_given is True
    # next follow-up was skipped: today plus class B's cycle (FOLLOWUP_CYCLES B=14)
    assert customer.next_followup_on in {d + timedelta(days=14) for d in submit_days}
    if not IS_POSTGRES:
        raw = sqlite_bytes(database_url)
        assert CUSTOMER.encode() in raw  # we are looking at the right file
        for secret in (PHONE, EMAIL, ADDRESS):
            assert secret.encode() not in raw, f"{secret!r} stored in clear"

    assert_audit_intact(bot_env)
