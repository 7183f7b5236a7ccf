"""Finding customers: recent ones, and by number, phone (blind index) or fuzzy name.

Everything here is limited to what the actor may see (storage.permissions).
"""

from __future__ import annotations

import re

from rapidfuzz import fuzz, process
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import validation
from storage.crypto import Keyring
from storage.models import BlindIndex, Customer, RecordStatus, Staff
from storage.permissions import customers_visible_to

NAME_CUTOFF = 60
_NUMBER = re.compile(r"^KH-\d{4}-\d{1,6}$", re.IGNORECASE)


def _live(actor: Staff) -> list:
    return [customers_visible_to(actor), col(Customer.status) != RecordStatus.destroyed]


async def recent_customers(
    session: AsyncSession, *, actor: Staff, limit: int = 6
) -> list[Customer]:
    """The actor's most recently touched customers, newest first."""
    query = (
        select(Customer)
        .where(*_live(actor))
        .order_by(col(Customer.updated_at).desc(), col(Customer.id).desc())
        .limit(limit)
    )
    return list((await session.exec(query)).all())


async def search_customers(
    session: AsyncSession, *, keyring: Keyring, actor: Staff, text: str, limit: int = 40
) -> list[Customer]:
    """Customers matching a number, a phone, or (fuzzily) a name or short name."""
    text = text.strip()
    if not text:
        return []
    if _NUMBER.match(text):
        query = select(Customer).where(*_live(actor), Customer.customer_no == text.upper())
        return list((await session.exec(query)).all())
    try:
        phone = validation.phone(text)
    except validation.Invalid:
        phone = None
    if phone is not None:
        digests = keyring.blind_indexes("phone", phone)
        query = (
            select(Customer)
            .join(BlindIndex, col(BlindIndex.customer_id) == Customer.id)
            .where(*_live(actor), col(BlindIndex.digest).in_(digests))
            .distinct()
            .limit(limit)
        )
        found = list((await session.exec(query)).all())
        if found:
            return found
    rows = (
        await session.exec(
            select(Customer.id, Customer.name, Customer.short_name).where(*_live(actor))
        )
    ).all()
    choices = {}
    for customer_id, name, short in rows:
        choices[customer_id] = f"{name} {short or ''}"
    matches = process.extract(
        text, choices, scorer=fuzz.WRatio, score_cutoff=NAME_CUTOFF, limit=limit
    )
    ids = [key for _match, _score, key in matches]
    if not ids:
        return []
    by_id = {
        c.id: c
        for c in (await session.exec(select(Customer).where(col(Customer.id).in_(ids)))).all()
    }
    return [by_id[i] for i in ids if i in by_id]
