"""A complaint's removal in chat: "Remove" on its card (`cx:<id>:rm`) asks for the reason, and
the request goes to a second person's review (storage.removals decides what may be asked and
what approval erases; conversations/review.py shows the card and takes the decision).

The reason is a one-question flow of the shared runner, so it survives a restart, has Back and
Cancel, and a prompt of an older draft is refused; every step re-checks the press in storage.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import InlineKeyboardButton, Update

from bot.context import BotContext
from bot.i18n import Translator, has_message
from conversations import fit, runner
from conversations import steps as s
from conversations.callback_data import COMPLAINT
from conversations.steps import Flow, FlowEnv, Kind, Step, Submitted
from storage import drafts, outbox, removals
from storage.errors import Refused
from storage.models import Complaint, Customer

ACTION = "rm"


def refusal_text(_: Translator, refusal: Refused) -> str:
    """Why a removal cannot be asked for, in the user's words."""
    key = f"removal.refused.{refusal.code}"
    if not has_message(key):
        key = "removal.refused.other"
    return _(key, limit=removals.REASON_MAX)


async def offer(context: BotContext, customer: Customer, complaint_id: int) -> list[Any]:
    """The "Remove" button row for a complaint's card, for those who may ask now (not while
    its resolution or a removal awaits a decision); else none."""
    if not removals.may_request(context.member, customer):
        return []
    async with context.reading() as session:
        if await removals.pending_of(session, complaint_id) is not None:
            return []
    _ = context._
    return [
        [
            InlineKeyboardButton(
                _("removal.button.remove"),
                callback_data=COMPLAINT.data("cx", complaint_id, ACTION),
            )
        ]
    ]


async def ask_reason(update: Update, context: BotContext, complaint_id: int) -> None:
    """Check the press now (refusals audited and committed), then ask why."""
    query = update.callback_query
    assert query is not None
    member = context.member
    services = context.services
    refusal: Refused | None = None
    async with context.unit_of_work() as session:
        try:
            await removals.requestable(session, actor=member, complaint_id=complaint_id)
        except Refused as error:
            refusal = error
        current = await drafts.load(
            session, services.keyring, member.id or 0, not_before=services.draft_cutoff()
        )
    if refusal is not None:
        await query.answer(fit.answer(refusal_text(context._, refusal)), show_alert=True)
        return
    if (
        current is not None
        and current.flow == FLOW.name
        and str(current.data.get("complaint_id")) == str(complaint_id)
    ):  # a second tap while the question is open
        await query.answer(context._("removal.reason_pending"), show_alert=True)
        return
    await query.answer()
    await runner.start(update, context, FLOW, initial={"complaint_id": str(complaint_id)})


async def _prepare(
    env: FlowEnv, session: AsyncSession, initial: dict[str, Any]
) -> dict[str, Any] | None:
    """Only someone who may ask for this complaint's removal now gets the question."""
    try:
        complaint_id = int(initial.get("complaint_id", ""))
        complaint, _customer = await removals.requestable(
            session, actor=env.staff, complaint_id=complaint_id
        )
    except (ValueError, Refused):
        return None
    return {"complaint_id": str(complaint_id), "_number": complaint.complaint_no}


def _number(env: FlowEnv, data: dict[str, Any]) -> dict[str, object]:
    return {"number": data.get("_number", ""), "limit": removals.REASON_MAX}


async def _submit(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    """File the request and queue the deciders' cards; a refusal (audited) is said instead."""
    now = env.services.clock()
    try:
        review = await removals.request(
            session,
            keyring=env.services.keyring,
            actor=env.staff,
            complaint_id=int(data["complaint_id"]),
            reason=data.get("removal_reason"),
            now=now,
        )
    except Refused as refusal:  # raised before any write: the audit entry is kept
        return Submitted(refusal_text(env._, refusal))
    assert review.id is not None
    await outbox.queue_review_cards(session, review_id=review.id, now=now)
    complaint = await session.get(Complaint, review.complaint_id)
    number = complaint.complaint_no if complaint is not None else ""
    return Submitted(env._("removal.requested", number=number))


FLOW = runner.register(
    Flow(
        name="complaint_remove",
        steps=(
            Step(
                "removal_reason",
                Kind.TEXT,
                required=True,
                parse=s.text(removals.REASON_MAX),
                prompt_values=_number,
                editable=False,
            ),
        ),
        submit=_submit,
        confirm=False,
        prepare=_prepare,
    )
)
