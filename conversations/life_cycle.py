"""Asking for a customer's archiving (合作终止), reactivation or destruction (销毁) in chat.

A press on `ar:<action>:<customer id>` (the card's Archive / Reactivate / Destroy, a retention
reminder's Destroy, a PIPL erasure's request) is a claim: it is checked at once
(storage.life_cycle_offers, audited when refused), then a two-question flow of the runner asks
for the reason and for a confirmation that says what will happen; it survives restarts, and
Back, Cancel and stale buttons work as in every flow. Confirming files the request
(storage.life_cycle.request, which checks everything again) and queues the deciders' cards in
the same unit of work; the decision is the review flow's (conversations.review).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import InlineKeyboardButton, Update

from bot.context import BotContext
from bot.i18n import Translator, has_message
from conversations import fit, runner
from conversations import steps as s
from conversations.callback_data import LIFE_CYCLE
from conversations.keyboards import button
from conversations.steps import Flow, FlowEnv, Kind, Option, Step, Submitted
from storage import life_cycle, life_cycle_offers, outbox, permissions
from storage.errors import NotFound, Refused
from storage.models import Customer, RecordStatus, ReviewKind

log = logging.getLogger(__name__)
PREFIX = LIFE_CYCLE.prefixes[0]


# the button actions: `a`, `r`, `d` and `p` are the wire format other features send
ACTIONS: dict[str, tuple[str, bool]] = {
    "a": (ReviewKind.archive, False),
    "r": (ReviewKind.reactivate, False),
    "d": (ReviewKind.destroy, False),
    "p": (ReviewKind.destroy, True),  # on a PIPL erasure request: from any live status
}
ACTION_OF = {kind: action for action, (kind, pipl) in ACTIONS.items() if not pipl}


def request_data(kind: str, customer_id: int, *, pipl: bool = False) -> str:
    """The button that asks for `kind` on a customer (`ar:a:12`)."""
    return LIFE_CYCLE.data(PREFIX, "p" if pipl else ACTION_OF[kind], customer_id)


def request_buttons(
    _: Translator, customer_id: int, kinds: tuple[str, ...]
) -> list[InlineKeyboardButton]:
    """The card's row of request buttons, one per kind the viewer may ask for now."""
    return [
        button(_(f"life_cycle.button.{kind}"), request_data(kind, customer_id)) for kind in kinds
    ]


def _flow_name(kind: str, pipl: bool) -> str:
    return "pipl_erasure_request" if pipl else f"{kind}_request"


def refusal_text(_: Translator, refusal: Refused, kind: str, pipl: bool = False) -> str:
    """Why a request cannot be filed, in the requester's words."""
    code = refusal.code
    if code == "wrong_status":
        status = str(refusal.details.get("status") or "")
        key = f"life_cycle.refused.wrong_status.{'pipl' if pipl else kind}"
        return _(key, status=_(f"card.status.{status}") if status else "")
    for key in (f"life_cycle.refused.{code}.{kind}", f"life_cycle.refused.{code}"):
        if has_message(key):
            return _(key, limit=life_cycle.REASON_MAX)
    if has_message(f"refused.{code}"):
        return _(f"refused.{code}")
    return _("life_cycle.refused.other")


async def read_only(context: BotContext, customer_id: int) -> bool:
    """Whether a customer the member may see is archived: a card from before it was archived
    still carries Visit and Complaint; its flows must not start (storage refuses them too).
    Customers the member may not see are the flow's to refuse (and audit)."""
    async with context.reading() as session:
        customer = await session.get(Customer, customer_id)
    return (
        customer is not None
        and customer.status == RecordStatus.archived
        and permissions.can_view_customer(context.member, customer)
    )


# ---------------------------------------------------------------------------------------------
# the button


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `ar:<action>:<customer id>`: check the claim, then ask for the reason."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _ = context._
    press = LIFE_CYCLE.parse(query.data)
    action = press.text(0) if press is not None and len(press) == 2 else None
    customer_id = press.id(1) if press is not None and action in ACTIONS else None
    if action is None or customer_id is None:
        await query.answer(_("button.expired"), show_alert=True)
        return
    kind, pipl = ACTIONS[action]
    if update.effective_chat is None or update.effective_chat.type != "private":
        await query.answer(_("life_cycle.private_only"), show_alert=True)
        return
    refusal: Refused | None = None
    async with context.unit_of_work() as session:  # commits the audit entry of a refusal
        try:
            await life_cycle_offers.check_request(
                session, actor=context.member, customer_id=customer_id, kind=kind, pipl=pipl
            )
        except Refused as refused:
            refusal = refused
    if isinstance(refusal, NotFound):
        await query.answer(_("refused.not_found"), show_alert=True)
        return
    if refusal is not None:
        await query.answer(fit.answer(refusal_text(_, refusal, kind, pipl)), show_alert=True)
        return
    await query.answer()
    initial = {"customer_id": str(customer_id)}
    await runner.start(update, context, FLOWS[(kind, pipl)], initial=initial)


# ---------------------------------------------------------------------------------------------
# the flow: the reason, then the confirmation


def _prepare(kind: str, pipl: bool) -> Any:
    async def prepare(
        env: FlowEnv, session: AsyncSession, initial: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The customer must still be one the user may ask this for (a stale card, a forged
        start); the refusal itself was told by the button."""
        try:
            customer_id = int(initial.get("customer_id", ""))
            customer = await life_cycle_offers.check_request(
                session, actor=env.staff, customer_id=customer_id, kind=kind, pipl=pipl
            )
        except (ValueError, Refused):
            return None
        name = fit.clip(customer.name or "", 60)
        return {
            "customer_id": str(customer_id),
            "subject": " · ".join(p for p in (customer.customer_no, name) if p),
        }

    return prepare


def _prompt(env: FlowEnv, data: dict[str, Any]) -> dict[str, object]:
    return {
        "subject": data.get("subject", ""),
        "limit": life_cycle.REASON_MAX,
        "reason": data.get("request_reason") or "",
    }


def _confirm_options(kind: str, pipl: bool) -> Any:
    async def options(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> list[Option]:
        return [Option("yes", f"{_flow_name(kind, pipl)}.confirm")]

    return options


def _submit(kind: str, pipl: bool) -> Any:
    async def submit(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
        """File the request and queue the deciders' cards; a refusal keeps its audit entry."""
        _ = env._
        customer_id = int(data["customer_id"])
        now = env.services.clock()
        try:
            review = await life_cycle.request(
                session,
                actor=env.staff,
                customer_id=customer_id,
                kind=kind,
                reason=data.get("request_reason"),
                now=now,
                pipl=pipl,
            )
        except NotFound:  # audited by the request
            return Submitted(_("refused.not_found"))
        except Refused as refusal:  # raised before any write
            await life_cycle_offers.record_refusal(
                session,
                actor=env.staff,
                customer_id=customer_id,
                kind=kind,
                pipl=pipl,
                code=refusal.code,
            )
            return Submitted(refusal_text(_, refusal, kind, pipl))
        assert review.id is not None
        await outbox.queue_review_cards(session, review_id=review.id, now=now)
        subject = data.get("subject") or ""
        return Submitted(_(f"{_flow_name(kind, pipl)}.filed", subject=subject))

    return submit


def _flow(kind: str, pipl: bool) -> Flow:
    return runner.register(
        Flow(
            name=_flow_name(kind, pipl),
            steps=(
                Step(
                    "request_reason",
                    Kind.TEXT,
                    required=True,
                    parse=s.text(life_cycle.REASON_MAX),
                    prompt_values=_prompt,
                    example="example.request_reason",
                ),
                Step(
                    "request_confirm",
                    Kind.CHOICE,
                    required=True,
                    options=_confirm_options(kind, pipl),
                    prompt_values=_prompt,
                    columns=1,
                    editable=False,
                ),
            ),
            submit=_submit(kind, pipl),
            confirm=False,
            prepare=_prepare(kind, pipl),
        )
    )


FLOWS: dict[tuple[str, bool], Flow] = {
    (kind, pipl): _flow(kind, pipl) for kind, pipl in ACTIONS.values()
}
