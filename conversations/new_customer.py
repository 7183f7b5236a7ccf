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
from storage import customers, outbox, reviews
from storage.models import (
    CustomerClass,
    CustomerKind,
    CustomerSize,
    CustomerSource,
    DealStatus,
    Stage,
)


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


# questions that only decide which others apply; they are no field of the record
GATES = frozenset({"finance"})

STEPS = (
    Step("kind", Kind.CHOICE, required=True, choices=tuple(CustomerKind)),
    Step("name", required=True, parse=s.text(100), check=duplicates.by_name),
    Step("short_name", parse=s.text(30)),
    Step("industry", parse=s.text(50)),
    Step("region", parse=s.text(50)),
    Step("address", parse=s.text(200)),
    Step("parent_org", parse=s.text(100), when=_company),
    Step("size", Kind.CHOICE, choices=tuple(CustomerSize), when=_company),
    Step("profile", parse=s.text(1000)),
    Step("source", Kind.CHOICE, required=True, choices=tuple(CustomerSource), columns=3),
    Step("phones", parse=s.phones, check=duplicates.by_phones, display=s.show_phones),
    Step("email", parse=s.email),
    Step("website", parse=s.website, when=_company),
    Step("wechat", parse=s.text(50)),
    Step("customer_class", Kind.CHOICE, required=True, choices=tuple(CustomerClass), columns=1),
    Step("stage", Kind.CHOICE, required=True, choices=tuple(Stage), columns=1),
    Step("deal_status", Kind.CHOICE, required=True, choices=tuple(DealStatus)),
    Step("credit_status", parse=s.text(100)),
    Step("trade_notes", parse=s.text(1000)),
    Step("legal_representative", parse=s.text(50), when=_company),
    Step("finance", Kind.YES_NO, required=True),
    Step("invoice_title", parse=s.text(100), when=_company_finance),
    Step(
        "tax_no",
        parse=s.tax_number,
        when=_company_finance,
        check=duplicates.by_tax_number,
    ),
    Step("bank", parse=s.text(100), when=_finance),
    Step("account_no", parse=s.bank_account, when=_finance),
    Step("billing_address", parse=s.text(200), when=_finance),
    Step(
        "billing_phone",
        parse=s.phone,
        when=_finance,
        check=duplicates.by_phones,
        display=s.show_phones,
    ),
    Step("consent_given", Kind.YES_NO, required=True),
    Step(
        "consent_method",
        Kind.CHOICE,
        required=True,
        when=_consented,
        choices=("verbal", "written", "electronic"),
        columns=3,
    ),
    Step(
        "consent_on", required=True, parse=s.past_date, when=_consented, example="example.past_date"
    ),
    Step("consent_note", parse=s.text(200), when=_consented),
    Step(
        "next_followup_on",
        parse=s.future_date,
        example="example.date",
        prompt_values=_followup_hint,
        default=_followup_default_text,
    ),
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
            **{k: v for k, v in data.items() if not k.startswith("_") and k not in GATES},
            "consent_given": data.get("consent_given") == "yes",
            "next_followup_on": data.get("next_followup_on") or _followup_default_text(env, data),
        }
    )


async def submit(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    """Save the customer as pending review and say its number."""
    values = values_of(env, data)
    customer = await customers.create_customer(
        session, keyring=env.services.keyring, actor=env.staff, values=values
    )
    pending = await reviews.pending_review_of(session, customer_id=customer.id or 0)
    if pending is not None and pending.id is not None:  # the managers' notice, with the record
        await outbox.queue_review_cards(session, review_id=pending.id, now=env.services.clock())
    return Submitted(
        env._("new.saved", number=customer.customer_no, name=customer.name),
        _add_key_person(env, customer.id or 0),
    )


FLOW = register(Flow(name="new", steps=STEPS, submit=submit))
