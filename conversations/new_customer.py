"""新建客户 (/new): every field of a customer record, one question at a time."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from conversations import duplicates
from conversations import steps as s
from conversations.callback_data import KEY_PERSONS
from conversations.runner import register
from conversations.steps import Flow, FlowEnv, Kind, Step, Submitted
from storage import checkin, customers, outbox, reviews
from storage.models import (
    CustomerClass,
    CustomerKind,
    CustomerSize,
    CustomerSource,
    DealStatus,
    Stage,
)
from storage.reminders import complete


def _company(data: dict[str, Any]) -> bool:
    return data.get("kind") == CustomerKind.company


def _finance(data: dict[str, Any]) -> bool:
    return data.get("finance") == "yes"


def _company_finance(data: dict[str, Any]) -> bool:
    return _company(data) and _finance(data)


def _consented(data: dict[str, Any]) -> bool:
    return data.get("consent_given") == "yes"


def followup_default(env: FlowEnv, data: dict[str, Any]) -> date:
    """Next follow-up when none is given: today plus the class's cycle."""
    cycle = env.services.settings.followup_cycles.get(data.get("customer_class") or "C", 30)
    return env.today + timedelta(days=cycle)


def _followup_default_text(env: FlowEnv, data: dict[str, Any]) -> str:
    return followup_default(env, data).isoformat()


def _followup_hint(env: FlowEnv, data: dict[str, Any]) -> dict[str, object]:
    return {"default": _followup_default_text(env, data)}


def _consent_default(env: FlowEnv, data: dict[str, Any]) -> str:
    return env._("common.no")


def shared_location(data: dict[str, Any]) -> dict[str, float] | None:
    """The location shared for the address, if the address is still the one it gave (typed
    over afterwards, the address no longer says where the customer is)."""
    found = data.get(SHARED_LOCATION)
    if not isinstance(found, dict):
        return None
    try:
        shared_text = s.place_text(float(found["latitude"]), float(found["longitude"]))
    except (KeyError, TypeError, ValueError):
        return None
    return found if data.get("address") == shared_text else None


# questions that only decide which others apply, or what happens next; no field of the record
GATES = frozenset({"finance", "then"})
# the location shared for the address (runner._place): latitude, longitude, accuracy; it
# becomes the customer's location (storage.checkin), which check-ins are measured from
SHARED_LOCATION = "address_location"
SAVE_NOW = "save"
ESSENTIALS = ("kind", "name", "phones", "customer_class", "stage", "source")

# The essentials first (a record saved after them is valid: the rest have defaults), then
# "save now, complete later" or go on. A section's `when`s read only earlier sections' answers,
# so its count never changes while it is asked.
STEPS = (
    Step("kind", Kind.CHOICE, required=True, choices=tuple(CustomerKind), section="essentials"),
    Step("name", required=True, parse=s.text(100), check=duplicates.by_name, section="essentials"),
    Step(
        "phones",
        parse=s.phones,
        check=duplicates.by_phones,
        display=s.show_phones,
        section="essentials",
        contact="phones",
    ),
    Step(
        "customer_class",
        Kind.CHOICE,
        required=True,
        choices=tuple(CustomerClass),
        columns=1,
        section="essentials",
    ),
    Step(
        "stage", Kind.CHOICE, required=True, choices=tuple(Stage), columns=1, section="essentials"
    ),
    Step(
        "source",
        Kind.CHOICE,
        required=True,
        choices=tuple(CustomerSource),
        columns=3,
        section="essentials",
    ),
    Step(
        "then",
        Kind.CHOICE,
        required=True,
        choices=(SAVE_NOW, "more"),
        columns=1,
        counted=False,
        editable=False,
        finishes=SAVE_NOW,
    ),
    Step("short_name", parse=s.text(30), section="details"),
    Step("industry", parse=s.text(50), section="details"),
    Step("region", parse=s.text(50), section="details"),
    Step("address", parse=s.text(200), section="details", place=True),
    Step("parent_org", parse=s.text(100), when=_company, section="details"),
    Step("size", Kind.CHOICE, choices=tuple(CustomerSize), when=_company, section="details"),
    Step("profile", parse=s.text(1000), section="details"),
    Step("email", parse=s.email, section="details"),
    Step("website", parse=s.website, when=_company, section="details"),
    Step("wechat", parse=s.text(50), section="details"),
    Step(
        "deal_status",
        Kind.CHOICE,
        choices=tuple(DealStatus),
        section="details",
        default=lambda env, data: env._("choice.deal_status.none"),
    ),
    Step("credit_status", parse=s.text(100), section="details"),
    Step("trade_notes", parse=s.text(1000), section="details"),
    Step("legal_representative", parse=s.text(50), when=_company, section="details"),
    Step(
        "next_followup_on",
        parse=s.future_date,
        example="example.date",
        prompt_values=_followup_hint,
        default=_followup_default_text,
        section="details",
    ),
    Step("finance", Kind.YES_NO, section="details", default=_consent_default),
    Step("consent_given", Kind.YES_NO, section="details", default=_consent_default),
    Step("invoice_title", parse=s.text(100), when=_company_finance, section="finance"),
    Step(
        "tax_no",
        parse=s.tax_number,
        when=_company_finance,
        check=duplicates.by_tax_number,
        section="finance",
    ),
    Step("bank", parse=s.text(100), when=_finance, section="finance"),
    Step("account_no", parse=s.bank_account, when=_finance, section="finance"),
    Step("billing_address", parse=s.text(200), when=_finance, section="finance"),
    Step(
        "billing_phone",
        parse=s.phone,
        when=_finance,
        check=duplicates.by_phones,
        display=s.show_phones,
        section="finance",
        contact="billing_phone",
    ),
    Step(
        "consent_method",
        Kind.CHOICE,
        required=True,
        when=_consented,
        choices=("verbal", "written", "electronic"),
        columns=3,
        section="consent",
    ),
    Step(
        "consent_on",
        required=True,
        parse=s.past_date,
        when=_consented,
        example="example.past_date",
        section="consent",
    ),
    Step("consent_note", parse=s.text(200), when=_consented, section="consent"),
)


def _add_key_person(env: FlowEnv, customer_id: int) -> InlineKeyboardMarkup:
    """Offer to add the new customer's key persons right away (conversations.key_persons)."""
    button = InlineKeyboardButton(
        env._("kp.button_add"), callback_data=KEY_PERSONS.data("kp", "add", customer_id)
    )
    return InlineKeyboardMarkup([[button]])


def values_of(env: FlowEnv, data: dict[str, Any]) -> customers.CustomerCreate:
    """The record's values from the answers (the gates dropped, the defaults filled in): what
    /new submits, and what each row of /import becomes (conversations/import_rows)."""
    return customers.CustomerCreate(
        {
            **{
                k: v
                for k, v in data.items()
                if not k.startswith("_") and k not in GATES and k != SHARED_LOCATION
            },
            "consent_given": data.get("consent_given") == "yes",
            "deal_status": data.get("deal_status") or DealStatus.none,
            "next_followup_on": data.get("next_followup_on") or _followup_default_text(env, data),
        }
    )


async def submit(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    """Save the customer as pending review and say its number."""
    values = values_of(env, data)
    customer = await customers.create_customer(
        session, keyring=env.services.keyring, actor=env.staff, values=values
    )
    shared = shared_location(data)
    if shared is not None:  # the place shared for the address: check-ins are measured from it
        await checkin.place_new_customer(
            session,
            keyring=env.services.keyring,
            actor=env.staff,
            customer=customer,
            location=shared,
            now=env.services.clock(),
        )
    pending = await reviews.pending_review_of(session, customer_id=customer.id or 0)
    if pending is not None and pending.id is not None:  # the managers' notice, with the record
        await outbox.queue_review_cards(session, review_id=pending.id, now=env.services.clock())
    text = env._("new.saved", number=customer.customer_no, name=customer.name)
    if data.get("then") == SAVE_NOW:  # the owner is reminded to complete it
        await complete.saved_with_essentials(session, actor=env.staff, customer_id=customer.id or 0)
        text += "\n\n" + env._("entry.saved_incomplete")
    return Submitted(text, _add_key_person(env, customer.id or 0))


FLOW = register(Flow(name="new", steps=STEPS, submit=submit))
