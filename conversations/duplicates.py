"""Duplicate warnings while a customer is entered: same phone, same tax number, similar name.

What a warning may say is decided in `storage.customers.duplicates`: the number, name and owner
only of a customer the person may see, else only whom to ask. The same wording serves the
review card, where the manager sees the duplicates the submitter was warned about.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import Translator
from conversations.steps import FlowEnv
from storage import customers
from storage.customers import Duplicate


def warning(_: Translator, duplicate: Duplicate) -> str:
    """One duplicate in words: the customer, or that one exists and whom to ask."""
    if duplicate.shown:
        return _(
            f"duplicate.{duplicate.reason}",
            number=duplicate.customer_no,
            name=duplicate.name,
            owner=duplicate.owner_name,
        )
    ask = _(f"duplicate.ask.{duplicate.ask}", team=duplicate.team_name or "")
    return _(f"duplicate.hidden.{duplicate.reason}", ask=ask)


def warnings(_: Translator, found: Iterable[Duplicate]) -> list[str]:
    """Each different warning once (two hidden customers of one team read the same)."""
    return list(dict.fromkeys(warning(_, d) for d in found))


async def check(
    env: FlowEnv,
    session: AsyncSession,
    *,
    purpose: str,
    exclude: int | None = None,
    **query: Any,
) -> list[str]:
    """Look up duplicates for the person answering (counted, capped, audited) and word them."""
    found = await customers.duplicates(
        session,
        keyring=env.services.keyring,
        actor=env.staff,
        today=env.today,
        daily_limit=env.services.settings.DUPLICATE_CHECKS_PER_DAY,
        purpose=purpose,
        exclude=exclude,
        **query,
    )
    if found.capped:
        return [env._("duplicate.capped", limit=env.services.settings.DUPLICATE_CHECKS_PER_DAY)]
    return warnings(env._, found.duplicates)


async def by_name(env: FlowEnv, session: AsyncSession, value: Any, data: dict) -> list[str]:
    return await check(env, session, purpose="new", name=value)


async def by_phones(env: FlowEnv, session: AsyncSession, value: Any, data: dict) -> list[str]:
    phones = value if isinstance(value, list) else [value]
    return await check(env, session, purpose="new", phones=phones)


async def by_tax_number(env: FlowEnv, session: AsyncSession, value: Any, data: dict) -> list[str]:
    return await check(env, session, purpose="new", tax_no=value)
