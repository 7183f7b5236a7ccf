"""The typed context every handler gets: services, the staff member and their language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from telegram import Update
from telegram.ext import Application, CallbackContext, ExtBot

from bot.i18n import Translator
from bot.settings import Settings
from storage import audit, erasure_ledger
from storage.crypto import Keyring
from storage.db import SessionFactory, reading, unit_of_work
from storage.erasure_ledger import Ledger
from storage.models import Staff

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from contextlib import AbstractAsyncContextManager

    from sqlmodel.ext.asyncio.session import AsyncSession

# bot_data key of the process's outbox delivery (installed by bot.scheduler): what a handler
# calls right after a commit that queued outbox messages (storage.outbox)
OUTBOX_DELIVERY = "outbox_delivery"
# bot_data key of the process's reminder delivery for one person (installed by bot.scheduler):
# /testreminder sends its samples with it
REMINDER_DELIVERY = "reminder_delivery"

# bot_data key of the process's command-menu refresh (installed by bot.menus): what a handler
# calls after a change of someone's role, state or language has committed
MENU_REFRESH = "menu_refresh"

LANGUAGE_KEY = "language"  # in user_data: the language the gate chose for this user


def chat_id_of(update: Update) -> int:
    """The chat an update came from (a flow started for a group press is given the presser's
    private chat as its update, so the flow machinery reads the update, not the context)."""
    assert update.effective_chat is not None
    return update.effective_chat.id


@dataclass
class Services:
    """What handlers need from outside Telegram; built once per process."""

    settings: Settings
    sessions: SessionFactory
    keyring: Keyring
    clock: Callable[[], datetime]
    bot_username: str = ""

    def __post_init__(self) -> None:
        # every session of this process signs its audit entries with the keyring's MAC key
        audit.use_keyring(self.sessions, self.keyring)
        # and records its erasures where a restored backup cannot undo them
        erasure_ledger.use(self.sessions, Ledger(self.settings.erasure_ledger, self.keyring))

    async def dispose(self) -> None:
        """Close the database connections (commands that run once, tests)."""
        engine = self.sessions.kw.get("bind")
        if engine is not None:
            await engine.dispose()

    def today(self, timezone: str | None = None) -> date:
        return self.clock().astimezone(ZoneInfo(timezone or self.settings.TIMEZONE)).date()

    def draft_cutoff(self) -> datetime:
        """Drafts last saved before this have expired (they hold personal data: not kept long)."""
        return self.clock() - timedelta(days=self.settings.DRAFT_EXPIRY_DAYS)

    @property
    def invite_ttl(self) -> timedelta:
        return timedelta(hours=self.settings.INVITE_TTL_HOURS)


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """CallbackContext with the services and the member the gate recognised for this update."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        chat_id: int | None = None,
        user_id: int | None = None,
    ) -> None:
        super().__init__(application=application, chat_id=chat_id, user_id=user_id)
        self.staff: Staff | None = None
        self.language: str = "zh"

    def use_language(self, language: str) -> None:
        """Speak `language` to this user; kept in user_data too, because PTB gives the error
        handler a fresh context of its own and it must answer in the same language."""
        self.language = language
        if self.user_data is not None:
            self.user_data[LANGUAGE_KEY] = language

    @property
    def services(self) -> Services:
        return self.bot_data["services"]

    @property
    def _(self) -> Translator:
        return Translator(self.language)

    async def send_queued(self, ids: Sequence[int]) -> None:
        """Deliver the outbox messages a unit of work queued, now that it has committed;
        without a delivery installed (or if it fails) the scheduler's next poll sends them."""
        deliver: Callable[[Sequence[int]], Awaitable[object]] | None = self.bot_data.get(
            OUTBOX_DELIVERY
        )
        if ids and deliver is not None:
            await deliver(ids)

    async def refresh_menu(self, telegram_id: int) -> None:
        """Set a person's command menu from their committed record (bot.menus); without a
        refresh installed, the gate and the menu sync bring it up to date later."""
        refresh: Callable[[int], Awaitable[None]] | None = self.bot_data.get(MENU_REFRESH)
        if refresh is not None:
            await refresh(telegram_id)

    async def deliver_due_to(self, recipient_id: int) -> int | None:
        """Send what is due for one person now, through the process's sender; how many
        reminders went out, or None without a delivery installed (the next poll sends them)."""
        deliver: Callable[[int], Awaitable[int]] | None = self.bot_data.get(REMINDER_DELIVERY)
        return await deliver(recipient_id) if deliver is not None else None

    @property
    def member(self) -> Staff:
        """The registered member; the gate guarantees one for every handler after it."""
        if self.staff is None:
            raise RuntimeError("handler reached without a recognised member")
        return self.staff

    @property
    def chat_id(self) -> int:
        """The chat the update came from, where the answer goes (`chat_id_of` the update)."""
        if self._chat_id is None:
            raise RuntimeError("handler reached without a chat")
        return self._chat_id

    @property
    def zone(self) -> ZoneInfo:
        """The member's time zone (the bot's when they chose none)."""
        return ZoneInfo(self.member.timezone or self.services.settings.TIMEZONE)

    @property
    def today(self) -> date:
        """Today in the member's time zone."""
        return self.services.today(self.member.timezone)

    def unit_of_work(self) -> AbstractAsyncContextManager[AsyncSession]:
        """One transaction for one user action: committed at the end, rolled back on error."""
        return unit_of_work(self.services.sessions)

    def reading(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session that only reads (it never commits)."""
        return reading(self.services.sessions)
