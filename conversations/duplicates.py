"""Duplicate warnings while a customer is entered: same phone, same tax number, similar name."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from conversations.steps import FlowEnv
from storage import customers


async def _warn(env: FlowEnv, session: AsyncSession, **query: Any) -> list[str]:
    found = await customers.duplicates(
        session, keyring=env.services.keyring, actor=env.staff, **query
    )
    return [
        env._(f"duplicate.{d.reason}", number=d.customer_no, name=d.name, owner=d.owner_name)
        for d in found
    ]


async def by_name(env: FlowEnv, session: AsyncSession, value: Any, data: dict) -> list[str]:
    return await _warn(env, session, name=value)


async def by_phones(env: FlowEnv, session: AsyncSession, value: Any, data: dict) -> list[str]:
    return await _warn(env, session, phones=value if isinstance(value, list) else [value])


async def by_tax_number(env: FlowEnv, session: AsyncSession, value: Any, data: dict) -> list[str]:
    return await _warn(env, session, tax_no=value)
