"""What a customer's card offers of its later life, and the checks before a request is asked.

storage.life_cycle files a request (archive, reactivate, destroy) and checks everything again
when it does; the chat asks for a reason first, so it checks the same things before asking,
to refuse a forged or stale button at once instead of after the reason was typed: the same
`life_cycle.check` that `life_cycle.request` runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, customers, life_cycle
from storage.errors import NotFound, Refused
from storage.models import Customer, ReviewKind, Staff

# what the card offers, in its order
OFFERED = (ReviewKind.archive, ReviewKind.reactivate, ReviewKind.destroy)


@dataclass(frozen=True)
class Offers:
    """The requests the viewer may file now, and the life-cycle request already waiting."""

    kinds: tuple[str, ...] = ()
    pending: str | None = None  # the kind of a pending archive / reactivate / destroy review


def purpose(kind: str, pipl: bool = False) -> str:
    """The audit entries' name of the attempt (as life_cycle.request writes it)."""
    return "pipl_destroy_request" if pipl else f"{kind}_request"


async def record_refusal(
    session: AsyncSession, *, actor: Staff, customer_id: int, kind: str, pipl: bool, code: str
) -> None:
    """Audit a refused request of someone who may see the customer (a forged or stale button)."""
    await audit.record(
        session,
        action="access.denied" if code == "not_allowed" else "life_cycle.refused",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="customer",
        entity_id=customer_id,
        detail={"purpose": purpose(kind, pipl), "reason": code},
    )


async def check_request(
    session: AsyncSession, *, actor: Staff, customer_id: int, kind: str, pipl: bool = False
) -> Customer:
    """The customer, if `actor` may ask for `kind` on it now.

    Raises NotFound (a customer the actor may not see, audited) or what `life_cycle.check`
    raises (not_allowed audited here). Call it in a unit of work that commits after a refusal.
    """
    kind = ReviewKind(kind)
    if kind not in life_cycle.KINDS or (pipl and kind != ReviewKind.destroy):
        raise ValueError(f"{kind} is not a life-cycle request")
    customer = await customers.visible_customer(
        session, actor=actor, customer_id=customer_id, purpose=purpose(kind, pipl)
    )
    if customer is None:
        raise NotFound()
    try:
        await life_cycle.check(session, actor=actor, customer=customer, kind=kind, pipl=pipl)
    except Refused as refusal:
        if refusal.code == "not_allowed":
            await record_refusal(
                session,
                actor=actor,
                customer_id=customer_id,
                kind=kind,
                pipl=pipl,
                code="not_allowed",
            )
        raise
    return customer


async def offers(session: AsyncSession, *, actor: Staff, customer: Customer) -> Offers:
    """What the card of `customer` offers `actor`: Archive on an approved customer, Reactivate
    and Destroy on an archived one, to whoever may ask; nothing while a review is pending."""
    assert customer.id is not None
    pending = await life_cycle.pending_of(session, customer.id)
    if pending is not None:
        kind = pending.kind if pending.kind in life_cycle.KINDS else None
        return Offers((), kind)
    kinds = tuple(
        kind
        for kind in OFFERED
        if life_cycle.status_allows(customer, kind)
        and life_cycle.may_request(actor, customer, kind)
    )
    return Offers(kinds, None)
