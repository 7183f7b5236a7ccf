"""A salesperson's field work, end to end: the real `python -m bot run` against the fake Bot API.

Li joins with an invite printed on the command line, enters a customer quickly, logs an on-site
visit with the location Telegram shares and a photo, then registers the customer's complaint.
After the bot stops, the database is read with the project's own code: the visit, its
attachment, the customer's new dates and the complaint with its number and due time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.models import Attachment, Complaint, Customer, Staff, Visit
from tests.e2e.fake_bot_api import JSON, FakeBotApi
from tests.e2e.harness import BotProcess
from tests.e2e.support import (
    LINK,
    Person,
    assert_audit_intact,
    assert_no_apologies,
    bot_settings,
    read_rows,
    run_async,
    run_cli,
    shanghai_today,
    stop_cleanly,
)

LI_ID = 700_101
CUSTOMER = "Ningbo Haitian Plastics Co., Ltd."


@pytest.fixture
def bot_env(api: FakeBotApi, database_url: str, tmp_path: Path) -> dict[str, str]:
    """No admin; Chinese by default (Li's Telegram app is English: that must win)."""
    return bot_settings(api, database_url, tmp_path, admin=False)


def share_location(person: Person, latitude: float, longitude: float, expect: str) -> JSON:
    """Share a location through Telegram's location button; return the next reply."""
    mark = person.api.last_seq()
    person.api.send_location(person.user, latitude, longitude, horizontal_accuracy=15.0)
    return person.reply(expect, after=mark)


def send_photo(person: Person, expect: str) -> JSON:
    mark = person.api.last_seq()
    person.api.send_photo(person.user)
    return person.reply(expect, after=mark)


def test_salesperson_logs_a_visit_with_location_and_photo_and_a_complaint(
    api: FakeBotApi, bot: BotProcess, bot_env: dict[str, str], database_url: str
) -> None:
    # the first start makes the key file the (audited) command-line invite needs
    bot.start()
    bot.wait_until_polling(api, timeout=60)
    invite = run_cli(bot_env, "invite", "--role", "salesperson", "--team", "East")
    assert invite.returncode == 0, invite.stderr
    match = LINK.fullmatch(invite.stdout.strip())
    assert match, invite.stdout
    li = Person(api, bot, api.user(LI_ID, "Li Lei", language_code="en"))
    li.say(f"/start {match[1]}", expect="Welcome, Li Lei! Your role: Salesperson.")

    # A customer, quickly: only the required questions.
    li.say("/new", expect="Is the customer a company or an individual?")
    li.tap("Company", expect="What is the customer's full name?")
    li.say(CUSTOMER, expect="Phone numbers?")
    li.tap("Skip the remaining optional questions", expect="Customer class?")
    li.tap("B important", expect="Which pipeline stage is the customer in?")
    li.tap("Yellow apple", expect="How did we get this customer?")
    li.tap("Visit", expect="The essentials are in")
    li.tap("Save now", expect="submitted for review as")

    # The visit: on site, now, where Li stands, with a photo of the machine hall.
    days = {shanghai_today()}
    li.say("/visit", expect="Which customer did you visit?")
    li.tap(CUSTOMER, expect="How did you meet the customer?")
    li.tap("On site", expect="When was the visit?")
    located = li.tap("Skip »", expect="Share your location with the button below")
    keyboard = located["reply_markup"]["keyboard"]
    assert keyboard[0][0] == {"text": "📍 Send my location", "request_location": True}
    share_location(li, 29.86821, 121.54399, expect="What was the purpose of the visit?")
    li.say("Present the new injection moulding line", expect="What did you discuss?")
    li.tap("Skip »", expect="What does the customer need")
    li.say("Wants delivery within 30 days", expect="What came of it")
    li.tap("Skip »", expect="Has the customer's pipeline stage changed?")
    li.tap("No change", expect="Next follow-up date? If you skip:")
    li.tap("Skip »", expect="Any photos, documents or voice notes?")
    send_photo(li, expect="Got attachment 1.")
    summary = li.tap("✅ Done", expect="Visit: please check")
    for line in (
        f"• Customer: {CUSTOMER} · KH-",
        "• Kind of visit: 🏢 On site",
        "• Time of visit: now (default)",
        "• Location: 29.86821, 121.54399",
        "• Attachments:",
    ):
        assert line in summary["text"], summary["text"]
    li.tap("✅ Submit", expect="Visit logged")
    days.add(shanghai_today())

    # The customer's complaint, from the same chat.
    li.say("/complaint", expect="Which customer is complaining?")
    li.tap(CUSTOMER, expect="How did the complaint reach us?")
    li.tap("During a visit", expect="What is the complaint about?")
    li.tap("Delivery", expect="How severe is it?")
    li.tap("High", expect="What is the customer complaining about?")
    li.say("Two moulds arrived damaged", expect="Complaint: please check")
    year = datetime.now(UTC).year
    done = li.tap("✅ Submit", expect="Complaint registered as")
    assert f"Complaint registered as TS-{year}-000001." in done["text"], done["text"]
    assert "Handler: Li Lei." in done["text"]

    assert_no_apologies(li)
    stop_cleanly(bot)

    [li_staff], [customer], [visit], [attachment], [complaint] = run_async(
        read_rows(database_url, Staff, Customer, Visit, Attachment, Complaint)
    )
    assert (visit.customer_id, visit.salesperson_id) == (customer.id, li_staff.id)
    assert visit.kind == "on_site"
    assert (visit.latitude, visit.longitude, visit.accuracy_m) == (29.86821, 121.54399, 15.0)
    assert visit.purpose == "Present the new injection moulding line"
    assert visit.needs_feedback == "Wants delivery within 30 days"
    assert visit.discussion is None and visit.stage_change is None
    assert (attachment.visit_id, attachment.kind) == (visit.id, "photo")
    assert re.fullmatch(r"fake-photo-\d+", attachment.file_id), attachment.file_id
    assert customer.last_visit_on in days
    assert customer.next_followup_on in {d + timedelta(days=14) for d in days}  # class B
    assert customer.stage == "yellow"
    assert complaint.complaint_no == f"TS-{year}-000001"
    assert (complaint.customer_id, complaint.handler_id) == (customer.id, li_staff.id)
    assert (complaint.channel, complaint.type, complaint.severity) == ("visit", "delivery", "high")
    assert complaint.status == "open"
    assert complaint.due_at - complaint.received_at == timedelta(hours=72)

    assert_audit_intact(bot_env)
