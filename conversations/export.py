"""/export: choose what (customers, visits, complaints, key persons), the format, /find's filters,
an owner and a period; get the file as a protected document (SPEC section 11).

The whole choice travels in the buttons as one short code (`Choice`), so the menu keeps no
state and survives a restart; being a claim, every press reads it again strictly and
re-checks it: an industry or region (sent as /find's short hashes) and an owner are only taken
if they are among the ones the presser may see, a status never "destroyed", and the clear
export only for managers and admins (`can_export_in_clear`), behind a warning. Buttons:
`xp:m:<choice>` shows the menu, `xp:f:<choice>:<filter>` a filter's values, `xp:w:<choice>` the
warning before a clear export, `xp:g:<choice>` and `xp:y:<choice>` export masked or in clear,
`xp:q` closes.

The export runs as a task of its own, so the bot keeps answering meanwhile; one at a time per
person (a second is refused politely). Its progress message is edited as pages are written, at
most once every `EDIT_INTERVAL` seconds and at least at every tenth; the file is sent with
`protect_content`, then removed from disk, on failure too.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import TelegramError

from bot.context import BotContext
from bot.i18n import Translator
from conversations import fit
from conversations.callback_data import EXPORT
from conversations.find import CHOICES, KINDS, kind_label, value_code, value_label
from conversations.keyboards import button, rows_of
from conversations.messages import close_buttons, edit_quietly
from storage import cards, exports
from storage.errors import Refused
from storage.exports import Column, ExportFormat, ExportKind, ExportRequest, Period
from storage.models import CustomerClass, RecordStatus, Staff, Stage
from storage.permissions import Scope, can_export_any, can_export_in_clear, view_scope
from storage.search import NO_FILTERS, Filters

log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.0  # seconds between progress edits at least (Telegram's edit rate)
PAGE_ROWS = exports.PAGE  # rows written between two looks at the progress
FILE_LIMIT = 50 * 1024 * 1024  # what a bot may upload (Telegram's limit)
RUNNING = "exports.running"  # bot_data: staff id → the export task under way
FREE_VALUES_SHOWN = 20
FREE_VALUES_LOOKUP = 500
ANY = "-"

KIND_CODES = {
    "c": ExportKind.customers,
    "v": ExportKind.visits,
    "x": ExportKind.complaints,
    "k": ExportKind.key_persons,
}
FORMAT_CODES = {"x": ExportFormat.xlsx, "c": ExportFormat.csv}
PERIODS = ("a", "m", "l", "q", "y", "p")  # all, this month, last month, 90 days, this/last year
STAGE_CODES = {"r": Stage.red, "y": Stage.yellow, "g": Stage.green, "o": Stage.rotten}
STATUS_CODES = {
    "d": RecordStatus.draft,
    "p": RecordStatus.pending,
    "a": RecordStatus.approved,
    "j": RecordStatus.rejected,
    "v": RecordStatus.archived,
}
CLASS_CODES = {c.value: c.value for c in CustomerClass}
_HEX = frozenset("0123456789abcdef")


# ---------------------------------------------------------------------------------------------
# the choice, as the buttons carry it


@dataclass(frozen=True)
class Choice:
    """What the menu shows: kind, format, period, class, stage, status, industry and region
    (as hashes) and owner, each `-` / empty for any."""

    kind: str = "c"
    fmt: str = "x"
    period: str = "a"
    cls: str = ANY
    stage: str = ANY
    status: str = ANY
    industry: str = ""
    region: str = ""
    owner: int | None = None

    def code(self) -> str:
        head = f"{self.kind}{self.fmt}{self.period}{self.cls}{self.stage}{self.status}"
        return f"{head}.{self.industry}.{self.region}.{self.owner or ''}"

    @classmethod
    def parse(cls, text: str | None) -> Choice | None:
        """The choice a button carries, or None for anything a menu never made."""
        parts = (text or "").split(".")
        if len(parts) != 4 or len(parts[0]) != 6:
            return None
        head, industry, region, owner = parts
        kind, fmt, period, klass, stage, status = head
        if (
            kind not in KIND_CODES
            or fmt not in FORMAT_CODES
            or period not in PERIODS
            or (klass != ANY and klass not in CLASS_CODES)
            or (stage != ANY and stage not in STAGE_CODES)
            or (status != ANY and status not in STATUS_CODES)
            or not all(_is_hash(v) for v in (industry, region))
            or (
                owner
                and (
                    not owner.isascii() or not owner.isdigit() or len(owner) > 10 or int(owner) == 0
                )
            )
        ):
            return None
        return cls(
            kind, fmt, period, klass, stage, status, industry, region, int(owner) if owner else None
        )

    @property
    def export_kind(self) -> ExportKind:
        return KIND_CODES[self.kind]

    @property
    def format(self) -> ExportFormat:
        return FORMAT_CODES[self.fmt]

    def cleared(self) -> Choice:
        return Choice(kind=self.kind, fmt=self.fmt)

    def with_filter(self, code: str, value: str) -> Choice:
        """The choice with filter `code` (KINDS' letters, `o` owner, `p` period) set."""
        field = {
            "c": "cls",
            "s": "stage",
            "i": "industry",
            "r": "region",
            "t": "status",
            "p": "period",
        }.get(code)
        if code == "o":
            return replace(self, owner=int(value) if value != ANY else None)
        assert field is not None
        empty = "" if field in ("industry", "region") else ANY
        return replace(self, **{field: empty if value == ANY else value})


def _is_hash(value: str) -> bool:
    return value == "" or (len(value) == 8 and set(value) <= _HEX)


def _data(action: str, choice: Choice, *extra: object) -> str:
    return EXPORT.data("xp", action, choice.code(), *extra)


# ---------------------------------------------------------------------------------------------
# from the choice to what storage exports (re-checked on every press)


def period_of(code: str, today: date, zone: ZoneInfo) -> Period:
    """A period's calendar days, as the reader counts them."""
    if code == "m":
        return Period.of_days(today.replace(day=1), today, zone)
    if code == "l":
        last = today.replace(day=1) - timedelta(days=1)
        return Period.of_days(last.replace(day=1), last, zone)
    if code == "q":
        return Period.of_days(today - timedelta(days=89), today, zone)
    if code == "y":
        return Period.of_days(today.replace(month=1, day=1), today, zone)
    if code == "p":
        last = today.replace(month=1, day=1) - timedelta(days=1)
        return Period.of_days(last.replace(month=1, day=1), last, zone)
    return exports.ALL_TIME


async def _free_values(context: BotContext, column: str, limit: int) -> list[str]:
    async with context.reading() as session:
        return await cards.filter_values(session, actor=context.member, kind=column, limit=limit)


async def _owners(context: BotContext, limit: int) -> list[tuple[int, str]]:
    async with context.reading() as session:
        return await exports.owner_choices(session, actor=context.member, limit=limit)


def offers_owner(member: Staff) -> bool:
    """A salesperson's exports are their own customers: no owner to choose."""
    return view_scope(member) in (Scope.team, Scope.all)


@dataclass(frozen=True)
class Resolved:
    """A choice read back: the filters as stored values, and the owner's name."""

    filters: Filters
    owner_name: str | None


async def resolve(context: BotContext, choice: Choice) -> Resolved | None:
    """The choice's filters, or None if a value is not one the member is offered (any more)."""
    filters = NO_FILTERS
    if choice.cls != ANY:
        filters = filters.with_value("customer_class", CLASS_CODES[choice.cls])
    if choice.stage != ANY:
        filters = filters.with_value("stage", STAGE_CODES[choice.stage])
    if choice.status != ANY:
        filters = filters.with_value("status", STATUS_CODES[choice.status])
    for column, code in (("industry", choice.industry), ("region", choice.region)):
        if code:
            values = await _free_values(context, column, FREE_VALUES_LOOKUP)
            value = next((v for v in values if value_code(v) == code), None)
            if value is None:
                return None
            filters = filters.with_value(column, value)
    owner_name = None
    if choice.owner is not None:
        if not offers_owner(context.member):
            return None
        owner_name = dict(await _owners(context, exports.OWNERS_LOOKUP)).get(choice.owner)
        if owner_name is None:
            return None
    return Resolved(filters, owner_name)


def request_of(
    context: BotContext, choice: Choice, resolved: Resolved, clear: bool
) -> ExportRequest:
    return ExportRequest(
        kind=choice.export_kind,
        format=choice.format,
        filters=resolved.filters,
        owner_id=choice.owner,
        period=period_of(choice.period, context.today, context.zone),
        clear=clear,
    )


# ---------------------------------------------------------------------------------------------
# the menu


def _summary(_: Translator, choice: Choice, resolved: Resolved) -> str:
    parts = [value_label(_, k, v) for k, v in resolved.filters.active().items()]
    if resolved.owner_name:
        parts.append(_("export.owner_is", name=fit.clip(resolved.owner_name, 40)))
    return " · ".join(parts) or _("find.filters_none")


def menu_text(_: Translator, choice: Choice, resolved: Resolved, member: Staff) -> str:
    lines = [
        _("export.title"),
        _("export.what", what=_(f"export.kind.{choice.export_kind}")),
        _("export.format", format=choice.format.upper()),
        _("export.filters", filters=_summary(_, choice, resolved)),
        _("export.period", period=_(f"export.period.{choice.period}")),
        _(f"export.period_applies.{choice.export_kind}"),
    ]
    if exports.sensitive_columns(choice.export_kind):
        lines.append(
            _("export.masked_note_clear")
            if can_export_in_clear(member)
            else _("export.masked_note")
        )
    return fit.message("\n".join(lines))


def _mark(selected: bool, text: str) -> str:
    return f"✓ {text}" if selected else text


def menu_markup(
    _: Translator, choice: Choice, resolved: Resolved, member: Staff
) -> InlineKeyboardMarkup:
    kinds = [
        button(
            _mark(choice.kind == code, _(f"export.kind.{kind}")),
            _data("m", replace(choice, kind=code)),
        )
        for code, kind in KIND_CODES.items()
    ]
    formats = [
        button(_mark(choice.fmt == code, fmt.upper()), _data("m", replace(choice, fmt=code)))
        for code, fmt in FORMAT_CODES.items()
    ]
    active = resolved.filters.active()
    filters = []
    for code, column in KINDS.items():
        current = active.get(column)
        shown = value_label(_, column, current) if current else _("find.any")
        filters.append(button(f"{kind_label(_, column)}: {shown}", _data("f", choice, code)))
    if offers_owner(member):
        shown = fit.clip(resolved.owner_name, 20) if resolved.owner_name else _("find.any")
        filters.append(button(f"{_('export.column.owner')}: {shown}", _data("f", choice, "o")))
    filters.append(
        button(
            f"{_('export.period_button')}: {_(f'export.period.{choice.period}')}",
            _data("f", choice, "p"),
        )
    )
    rows = [*rows_of(kinds, 2), formats, *rows_of(filters, 2)]
    go = [button(_("export.button.go"), _data("g", choice))]
    if can_export_in_clear(member) and exports.sensitive_columns(choice.export_kind):
        go.append(button(_("export.button.clear"), _data("w", choice)))
    rows.append(go)
    rows.append(
        [
            button(_("find.button.clear"), _data("m", choice.cleared())),
            button(_("find.button.close"), EXPORT.data("xp", "q")),
        ]
    )
    return InlineKeyboardMarkup(rows)


async def values_view(
    context: BotContext, choice: Choice, code: str
) -> tuple[str, InlineKeyboardMarkup] | None:
    """A filter's values as buttons, or None for a filter the member is not offered."""
    _ = context._
    if code == "p":
        buttons = [
            button(
                _mark(choice.period == p, _(f"export.period.{p}")),
                _data("m", replace(choice, period=p)),
            )
            for p in PERIODS
        ]
        rows = rows_of(buttons, 2)
        rows.append([button(_("find.button.back"), _data("m", choice))])
        return _("export.choose_period"), InlineKeyboardMarkup(rows)
    if code == "o":
        if not offers_owner(context.member):
            return None
        owners = await _owners(context, FREE_VALUES_SHOWN)
        buttons = [
            button(fit.label(name, 40), _data("m", choice.with_filter("o", str(staff_id))))
            for staff_id, name in owners
        ]
        title = _("find.choose_value", kind=_("export.column.owner"))
    else:
        column = KINDS.get(code)
        if column is None:
            return None
        if column in CHOICES:
            reverse = {
                "customer_class": CLASS_CODES,
                "stage": STAGE_CODES,
                "status": STATUS_CODES,
            }[column]
            by_value = {v: k for k, v in reverse.items()}
            pairs = [(value, by_value[value]) for value in CHOICES[column]]
        else:
            values = await _free_values(context, column, FREE_VALUES_SHOWN)
            pairs = [(v, value_code(v)) for v in values]
        buttons = [
            button(value_label(_, column, value), _data("m", choice.with_filter(code, sent)))
            for value, sent in pairs
        ]
        title = _("find.choose_value", kind=kind_label(_, column))
    rows = rows_of(buttons, 2)
    rows.append(
        [
            button(_("find.any"), _data("m", choice.with_filter(code, ANY))),
            button(_("find.button.back"), _data("m", choice)),
        ]
    )
    return title, InlineKeyboardMarkup(rows)


# ---------------------------------------------------------------------------------------------
# commands and buttons


async def export_command(update: Update, context: BotContext) -> None:
    """Offer the export menu: customers as XLSX, masked, with no filters to begin with."""
    _ = context._
    if not can_export_any(context.member):
        await context.bot.send_message(context.chat_id, _("export.not_allowed"))
        return
    choice = Choice()
    resolved = Resolved(NO_FILTERS, None)
    await context.bot.send_message(
        context.chat_id,
        menu_text(_, choice, resolved, context.member),
        reply_markup=menu_markup(_, choice, resolved, context.member),
    )


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `xp:` buttons: the menu, a filter's values, the warning, the export itself."""
    query = update.callback_query
    assert query is not None
    _ = context._
    press = EXPORT.parse(query.data)
    action = press.text(0) if press is not None else None
    if press is None or action is None:
        await query.answer(_("button.expired"), show_alert=True)
        return
    if action == "q" and len(press) == 1:
        await query.answer()
        await close_buttons(query.message)
        return
    choice = Choice.parse(press.text(1))
    if choice is None or action not in ("m", "f", "w", "g", "y"):
        await query.answer(_("button.expired"), show_alert=True)
        return
    if not can_export_any(context.member):
        await query.answer(_("export.not_allowed"), show_alert=True)
        return
    resolved = await resolve(context, choice)
    if resolved is None:  # a value no longer offered, or never: a stale or hand-made button
        await query.answer(_("button.expired"), show_alert=True)
        return
    if action == "m" and len(press) == 2:
        await query.answer()
        await edit_quietly(
            query.message,
            menu_text(_, choice, resolved, context.member),
            menu_markup(_, choice, resolved, context.member),
        )
    elif action == "f" and len(press) == 3:
        view = await values_view(context, choice, press.text(2) or "")
        if view is None:
            await query.answer(_("button.expired"), show_alert=True)
            return
        await query.answer()
        await edit_quietly(query.message, *view)
    elif action == "w" and len(press) == 2:
        await _warn(query, context, choice)
    elif action in ("g", "y") and len(press) == 2:
        await _start(update, query, context, choice, resolved, clear=action == "y")
    else:
        await query.answer(_("button.expired"), show_alert=True)


async def _warn(query: CallbackQuery, context: BotContext, choice: Choice) -> None:
    """Say what a clear export means before offering it."""
    _ = context._
    if not can_export_in_clear(context.member):
        await query.answer(_("export.clear_not_allowed"), show_alert=True)
        return
    columns = [_(c.label) for c in exports.COLUMNS[choice.export_kind] if c.sensitive]
    text = _("export.clear_warning", columns=fit.clip(", ".join(columns), 1500))
    markup = InlineKeyboardMarkup(
        [
            [button(_("export.button.clear_yes"), _data("y", choice))],
            [button(_("find.button.back"), _data("m", choice))],
        ]
    )
    await query.answer()
    await edit_quietly(query.message, fit.message(text), markup)


def _running(context: BotContext) -> dict[int, asyncio.Task[Any]]:
    return context.bot_data.setdefault(RUNNING, {})


async def _start(
    update: Update,
    query: CallbackQuery,
    context: BotContext,
    choice: Choice,
    resolved: Resolved,
    *,
    clear: bool,
) -> None:
    """Start the export as a task of its own; one at a time per person."""
    _ = context._
    member = context.member
    if clear and not can_export_in_clear(member):
        await query.answer(_("export.clear_not_allowed"), show_alert=True)
        return
    running = _running(context)
    staff_id = member.id or 0
    current = running.get(staff_id)
    if current is not None and not current.done():
        await query.answer(_("export.busy"), show_alert=True)
        return
    request = request_of(context, choice, resolved, clear)
    await query.answer()
    message = query.message if isinstance(query.message, Message) else None
    job = _Export(context, member, request, message)
    running[staff_id] = context.application.create_task(job.run(), update=update)


async def wait_for_exports(bot_data: dict[Any, Any]) -> None:
    """Wait until every export under way has finished (tests, shutdown)."""
    tasks = list(bot_data.get(RUNNING, {}).values())
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------------------------------------
# the export under way


class _Labels:
    """Headers and choice values in the reader's language, each looked up once."""

    def __init__(self, _: Translator) -> None:
        self._ = _
        self.cache: dict[tuple[str, Any], str] = {}

    def header(self, column: Column) -> str:
        return self._(column.label)

    def value(self, column: Column, value: Any) -> str:
        key = (column.name, value)
        found = self.cache.get(key)
        if found is None:
            found = self.cache[key] = self._label(column, value)
        return found

    def _label(self, column: Column, value: Any) -> str:
        _ = self._
        if column.cell == exports.Cell.status:
            return _(f"card.status.{value}")
        if column.cell == exports.Cell.complaint_status:
            return _(f"complaint.status.{value}")
        if column.cell == exports.Cell.yes_no or isinstance(value, bool):
            return _("export.yes") if value else _("export.no")
        return _(f"choice.{column.name}.{value}")


class _Export:
    """One export: progress message, file, audit entry, document, clean-up."""

    def __init__(
        self,
        context: BotContext,
        member: Staff,
        request: ExportRequest,
        message: Message | None,
    ) -> None:
        self.context, self.member, self.request = context, member, request
        self.message = message
        self._ = context._
        self.chat_id = context.chat_id
        self.last_edit = 0.0
        self.shown_tenth = -1

    def _what(self) -> str:
        return self._(f"export.kind.{self.request.kind}")

    async def _show(self, text: str) -> None:
        if self.message is None:
            self.message = await self.context.bot.send_message(self.chat_id, text)
            return
        await edit_quietly(self.message, fit.message(text))

    async def progress(self, written: int, total: int) -> None:
        """Edit the progress message at a new tenth, if the last edit is old enough."""
        tenth = min(10, written * 10 // max(total, 1))
        now = time.monotonic()
        if tenth <= self.shown_tenth or now - self.last_edit < EDIT_INTERVAL:
            return
        self.shown_tenth, self.last_edit = tenth, now
        percent = min(100, written * 100 // max(total, 1))
        await self._show(
            self._(
                "export.progress",
                what=self._what(),
                percent=percent,
                written=f"{written:,}",
                total=f"{total:,}",
            )
        )

    def _path(self) -> Path:
        folder = self.context.services.settings.DATA_DIR / "exports"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder / f"{secrets.token_hex(8)}.{self.request.format}"

    async def run(self) -> None:
        _ = self._
        services = self.context.services
        path: Path | None = None
        try:
            await self._show(_("export.started", what=self._what()))
            path = self._path()
            result = await exports.write_export(
                services.sessions,
                keyring=services.keyring,
                actor=self.member,
                request=self.request,
                path=path,
                labels=_Labels(_),
                zone=self.context.zone,
                title=self._what(),
                progress=self.progress,
                page=PAGE_ROWS,
            )
            if result.path is None:
                await self._show(_("export.empty", what=self._what()))
                return
            size = result.path.stat().st_size
            if size > FILE_LIMIT:
                await self._show(_("export.too_big", rows=f"{result.rows:,}"))
                return
            await exports.record_export(
                services.sessions, actor=self.member, request=self.request, result=result
            )
            data = await asyncio.to_thread(result.path.read_bytes)
            day = self.context.today.isoformat()
            caption = _(
                "export.caption_clear" if self.request.clear else "export.caption",
                what=self._what(),
                rows=f"{result.rows:,}",
                zone=self.context.zone.key,
            )
            await self.context.bot.send_document(
                self.chat_id,
                document=data,
                filename=f"{self.request.kind}-{day}.{self.request.format}",
                caption=fit.caption(caption),
                protect_content=True,
            )
            await self._show(_("export.done", what=self._what(), rows=f"{result.rows:,}"))
        except Refused as refused:
            await self._show(_(refused.code))
        except (TelegramError, OSError) as error:
            log.warning("export failed: %s", type(error).__name__)
            await self._show_failure()
        finally:
            exports.discard(path)

    async def _show_failure(self) -> None:
        try:
            await self._show(self._("export.failed"))
        except TelegramError:
            log.warning("could not tell about a failed export")
