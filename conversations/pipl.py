"""PIPL requests (个人信息保护法) in chat: an admin answers a customer's or key person's request
for access (everything held about them, as files) or erasure.

Reached from the customer card's "PIPL request" button (admins only) and `/pipl <number>`.
Buttons (every press re-loads the records and re-checks the admin in storage.pipl):
  pi:m:<customer>                     the menu: export, erase the customer, its key persons
  pi:x:<customer>                     export everything about the customer
  pi:k:<customer>:<person>            export everything about one key person
  pi:d:<customer>:<person>            ask before erasing a key person
  pi:e:<customer>:<person>:<version>  erase them, if they are still as they were when asked
  pi:n:<customer>                     keep them after all
Erasing the customer itself is a destruction request decided by a second person: its button
hands over to the archive flow's request form (`ar:p:<customer>`).

The export is two files, both UTF-8: a JSON document (every value, as a machine reads it, for
the data subject or another system) and a plain text version with the admin's labels, which
any phone or computer opens without a spreadsheet program and in which no cell can turn into a
formula. They are written under DATA_DIR/pipl, sent with protect_content and removed
afterwards, also when sending fails.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError

from bot.context import BotContext
from bot.i18n import Translator, has_message
from conversations import fit
from conversations.callback_data import PIPL, SEPARATOR
from conversations.keyboards import button
from conversations.messages import close_buttons
from storage import life_cycle, pipl
from storage.changes import ChangedMeanwhile
from storage.errors import NotFound, Refused
from storage.models import Customer, KeyPerson, RecordStatus, ReviewKind, Staff
from storage.permissions import can_answer_pipl_request

log = logging.getLogger(__name__)

PREFIX = PIPL.prefixes[0]
PEOPLE_PER_MESSAGE = 10  # two buttons each; many key persons come in several messages
DOCUMENT_LIMIT = 50 * 1024 * 1024  # what a bot may upload (Bot API sendDocument)
# how many ids each action's button carries
_ARITY = {"m": 1, "x": 1, "k": 2, "d": 2, "e": 3, "n": 1}
# the archive flow's PIPL destruction request (conversations/archive.py, buttons `ar`)
ERASURE_REQUEST = "ar"


def erasure_request_data(customer_id: int) -> str:
    """The archive flow's button that starts a PIPL destruction request for the customer."""
    return SEPARATOR.join((ERASURE_REQUEST, "p", str(customer_id)))


# ---------------------------------------------------------------------------------------------
# the files


def key_label(_: Translator, key: str) -> str:
    """A field's or part's name in the admin's language: `field.<key>`, else
    `pipl.key.<key>`, else the key itself."""
    for message in (f"field.{key}", f"pipl.key.{key}"):
        if has_message(message):
            return _(message)
    return key


# parts whose values are named by messages other than `choice.<field>.<value>`
_VALUE_MESSAGES = {
    "status": "card.status.{}",
    "review_kind": "review.kind.{}",
    "method": "choice.consent_method.{}",
}


def _choice_key(field: str, value: Any) -> str | None:
    for template in (_VALUE_MESSAGES.get(field), f"choice.{field}.{{}}"):
        if template is not None and has_message(key := template.format(value)):
            return key
    return None


def text_value(_: Translator, field: str, value: Any) -> str:
    """A value in full, as people read it: choices translated, lists joined, nothing cut."""
    if value is None or value == "" or value == []:
        return _("common.empty")
    if isinstance(value, bool):
        return _("common.yes" if value else "common.no")
    if isinstance(value, list):
        return ", ".join(text_value(_, field, v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    choice = _choice_key(field, value)
    if choice is not None:
        return f"{_(choice)} ({value})"
    return str(value)


def _pairs(_: Translator, values: dict[str, Any], indent: str = "") -> list[str]:
    return [f"{indent}{key_label(_, k)}: {text_value(_, k, v)}" for k, v in values.items()]


def _record_lines(_: Translator, record: dict[str, Any], indent: str = "  ") -> list[str]:
    lines = []
    for key, value in record.items():
        if key == "fields" and isinstance(value, dict):
            lines += _pairs(_, value, indent)
        elif key == "attachments" and isinstance(value, list):
            lines.append(f"{indent}{key_label(_, key)}: {len(value)}")
            for item in value:
                kind = text_value(_, "attachment_kind", item.get("attachment_kind"))
                lines.append(f"{indent}  • {kind} · {item.get('file_id')}")
        elif key == "changes" and isinstance(value, dict):
            lines.append(f"{indent}{key_label(_, key)}:")
            for field, pair in value.items():
                if isinstance(pair, list) and len(pair) == 2:
                    old, new = (text_value(_, field, v) for v in pair)
                    lines.append(f"{indent}  • {key_label(_, field)}: {old} → {new}")
                else:
                    lines.append(f"{indent}  • {key_label(_, field)}: {text_value(_, field, pair)}")
        else:
            lines.append(f"{indent}{key_label(_, key)}: {text_value(_, key, value)}")
    return lines


def _section(_: Translator, key: str, items: list[dict[str, Any]]) -> list[str]:
    lines = ["", f"== {_(f'pipl.file.section.{key}', count=len(items))} =="]
    if not items:
        lines.append(_("pipl.file.none"))
    for number, item in enumerate(items, start=1):
        lines.append(f"-- {number} --")
        lines += _record_lines(_, item)
    return lines


def text_document(_: Translator, export: pipl.AccessExport, zone: ZoneInfo) -> str:
    """The export as people read it, labelled in the admin's language."""
    document = export.document
    produced = datetime.fromisoformat(document["produced_at"]).astimezone(zone)
    who = document.get("produced_by") or _("pipl.file.operator")
    title_key = (
        "pipl.file.title.key_person"
        if export.subject == pipl.SUBJECT_KEY_PERSON
        else "pipl.file.title.customer"
    )
    lines = [
        _(title_key, number=export.customer_no),
        _("pipl.file.produced", when=produced.strftime("%Y-%m-%d %H:%M"), name=who),
    ]
    if export.destroyed:
        lines += ["", _("pipl.file.destroyed", number=export.customer_no)]
        lines += _record_lines(_, document["customer"], "")
        return "\n".join(lines) + "\n"
    if export.subject == pipl.SUBJECT_KEY_PERSON:
        lines += ["", f"== {_('pipl.file.section.key_person')} =="]
        lines += _record_lines(_, document["key_person"], "")
        lines += ["", f"== {_('pipl.file.section.customer')} =="]
        lines += _record_lines(_, document["customer"], "")
    else:
        lines += ["", f"== {_('pipl.file.section.customer')} =="]
        lines += _record_lines(_, document["customer"], "")
        lines += ["", f"== {_('pipl.file.section.consent')} =="]
        lines += _pairs(_, document["consent"])
        if not document["consent"]["given"]:
            lines.append(_("pipl.card.no_consent"))
        for part in ("key_persons", "visits", "complaints", "reviews"):
            lines += _section(_, part, document[part])
    lines += _section(_, "history", document["history"])
    lines += _section(_, "reads", document["reads"])
    return "\n".join(lines) + "\n"


def file_stem(export: pipl.AccessExport) -> str:
    moment = datetime.fromisoformat(export.document["produced_at"]).strftime("%Y%m%d-%H%M%S")
    person = f"-kp{export.key_person_id}" if export.key_person_id is not None else ""
    return f"pipl-{export.customer_no}{person}-{moment}"


def write_files(
    _: Translator, export: pipl.AccessExport, directory: Path, zone: ZoneInfo
) -> tuple[Path, Path]:
    """The JSON document and its text version, written into `directory` (UTF-8 both)."""
    stem = file_stem(export)
    data = directory / f"{stem}.json"
    text = directory / f"{stem}.txt"
    data.write_text(
        json.dumps(export.document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    text.write_text(text_document(_, export, zone), encoding="utf-8")
    return data, text


@contextmanager
def export_folder(data_dir: Path) -> Iterator[Path]:
    """A folder of its own under DATA_DIR/pipl for one export, removed afterwards whatever
    happens: the files hold every personal value of the subject."""
    base = data_dir / "pipl"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="export-", dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the menu


def _parse(data: str | None) -> tuple[str, list[int]] | None:
    """`pi:x:7` → ("x", [7]); `pi:e:7:3:2` → ("e", [7, 3, 2]); None if malformed."""
    press = PIPL.parse(data)
    if press is None or len(press) < 2:
        return None
    action = press.fields[0]
    ids = press.ids(1)
    if ids is None or _ARITY.get(action) != len(ids):
        return None
    return action, ids


def _title(customer: Customer) -> str:
    return f"{customer.customer_no} · {customer.name}"


def _person_buttons(
    _: Translator, customer_id: int, person_id: int, name: str
) -> list[InlineKeyboardButton]:
    export = fit.label(_("pipl.button.export_person", name=name))
    erase = fit.label(_("pipl.button.erase_person", name=name))
    return [
        button(export, data("k", customer_id, person_id)),
        button(erase, data("d", customer_id, person_id)),
    ]


def data(action: str, *ids: int) -> str:
    return PIPL.data(PREFIX, action, *ids)


def menu_messages(
    _: Translator,
    customer: Customer,
    people: list[tuple[int, str]],
    *,
    may_request_erasure: bool,
) -> list[tuple[str, InlineKeyboardMarkup]]:
    """The PIPL menu: what can be done for the customer, then its key persons, in as many
    messages as the key persons need."""
    assert customer.id is not None
    cid = customer.id
    if customer.status == RecordStatus.destroyed:
        text = fit.message(_("pipl.menu.destroyed", number=customer.customer_no))
        return [(text, InlineKeyboardMarkup([[button(_("pipl.button.export"), data("x", cid))]]))]
    lines: list[fit.Line] = [
        fit.Slot(_title(customer), lambda shown: _("pipl.menu.title", customer=shown)),
        _("pipl.menu.intro"),
    ]
    if not customer.consent_given:
        lines.append(_("pipl.card.no_consent"))
    rows = [[button(_("pipl.button.export"), data("x", cid))]]
    if may_request_erasure:
        rows.append([button(_("pipl.button.erase_customer"), erasure_request_data(cid))])
    else:
        lines.append(_("pipl.menu.no_erasure_request"))
    if people:
        lines += ["", _("pipl.menu.people", count=len(people))]
    groups = [people[i : i + PEOPLE_PER_MESSAGE] for i in range(0, len(people), PEOPLE_PER_MESSAGE)]
    first = groups[0] if groups else []
    rows += [_person_buttons(_, cid, pid, name) for pid, name in first]
    messages = [(fit.compose(lines), InlineKeyboardMarkup(rows))]
    for index, group in enumerate(groups[1:], start=2):
        text = _("pipl.menu.people_continued", page=index, pages=len(groups))
        markup = InlineKeyboardMarkup([_person_buttons(_, cid, pid, n) for pid, n in group])
        messages.append((text, markup))
    return messages


async def _menu(context: BotContext, chat_id: int, customer_id: int) -> bool:
    """Send the menu for the customer; False if refused or not found (refusals audited)."""
    _ = context._
    actor = context.member
    try:
        async with context.unit_of_work() as session:
            try:
                await pipl.check(session, actor, "customer", customer_id)
            except Refused:
                refused = True
            else:
                refused = False
        if refused:
            return False
        async with context.reading() as session:
            customer = await session.get(Customer, customer_id)
            if customer is None:
                return False
            rows = await session.exec(
                select(KeyPerson.id, KeyPerson.name)
                .where(KeyPerson.customer_id == customer_id)
                .order_by(col(KeyPerson.id))
            )
            people = [(pid, name) for pid, name in rows.all() if pid is not None]
            may_erase = (
                customer.status != RecordStatus.destroyed
                and life_cycle.may_request(actor, customer, ReviewKind.destroy)
                and life_cycle.status_allows(customer, ReviewKind.destroy, pipl=True)
                and await life_cycle.pending_of(session, customer_id) is None
            )
    except NotFound:
        return False
    for text, markup in menu_messages(_, customer, people, may_request_erasure=may_erase):
        await context.bot.send_message(chat_id, text, reply_markup=markup)
    return True


async def pipl_command(update: Update, context: BotContext) -> None:
    """`/pipl KH-2026-000123`: the PIPL menu of that customer (admins; others are refused
    and audited, before learning whether the number exists)."""
    _ = context._
    args = context.args or []
    async with context.reading() as session:
        customer = await pipl.customer_by_number(session, args[0]) if len(args) == 1 else None
    found = customer.id if customer is not None else None
    if not can_answer_pipl_request(context.member):
        async with context.unit_of_work() as session:
            with suppress(Refused):  # audited
                await pipl.check(session, context.member, "customer", found)
        await context.bot.send_message(context.chat_id, _("pipl.refused"))
        return
    if len(args) != 1:
        await context.bot.send_message(context.chat_id, _("pipl.usage"))
        return
    if found is None:
        await context.bot.send_message(
            context.chat_id, fit.message(_("pipl.no_such_customer", number=args[0][:40]))
        )
        return
    if not await _menu(context, context.chat_id, found):
        await context.bot.send_message(context.chat_id, _("pipl.refused"))


# ---------------------------------------------------------------------------------------------
# buttons


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `pi:` presses; each one is checked again in storage."""
    query = update.callback_query
    assert query is not None
    _ = context._
    parsed = _parse(query.data)
    if parsed is None:
        await query.answer(_("button.expired"), show_alert=True)
        return
    action, ids = parsed
    customer_id = ids[0]
    chat_id = query.from_user.id  # what it sends is for the admin alone: their private chat
    if action == "n":
        await query.answer(_("pipl.kept"))
        await close_buttons(query.message, _("pipl.kept"))
        return
    if action == "m":
        if not await _menu(context, chat_id, customer_id):
            await query.answer(_("pipl.refused"), show_alert=True)
            return
        await query.answer()
        return
    if action in ("x", "k"):
        await _export(query, context, chat_id, customer_id, ids[1] if action == "k" else None)
        return
    if action == "d":
        await _ask_erasure(query, context, chat_id, customer_id, ids[1])
        return
    await _erase(query, context, customer_id, ids[1], ids[2])


async def _export(
    query: CallbackQuery,
    context: BotContext,
    chat_id: int,
    customer_id: int,
    person_id: int | None,
) -> None:
    _ = context._
    services = context.services
    try:
        async with context.unit_of_work() as session:
            try:
                if person_id is None:
                    export = await pipl.export_customer(
                        session,
                        services.keyring,
                        actor=context.member,
                        customer_id=customer_id,
                        now=services.clock(),
                    )
                else:
                    export = await pipl.export_key_person(
                        session,
                        services.keyring,
                        actor=context.member,
                        key_person_id=person_id,
                        customer_id=customer_id,
                        now=services.clock(),
                    )
            except NotFound:
                raise
            except Refused as refusal:
                failed: Refused | None = refusal  # its audit entry is committed
            else:
                failed = None
    except NotFound:
        await query.answer(_("button.expired"), show_alert=True)
        return
    if failed is not None:
        await query.answer(_("pipl.refused"), show_alert=True)
        return
    await query.answer(_("pipl.export.preparing"))
    await send_export(context, chat_id, export)


async def send_export(context: BotContext, chat_id: int, export: pipl.AccessExport) -> None:
    """Write the files, send them as protected documents, remove them whatever happens."""
    _ = context._
    with export_folder(context.services.settings.DATA_DIR) as folder:
        paths = write_files(_, export, folder, context.zone)
        if sum(p.stat().st_size for p in paths) > DOCUMENT_LIMIT:
            await context.bot.send_message(
                chat_id, _("pipl.export.too_large", number=export.customer_no)
            )
            return
        key = "pipl.export.caption_destroyed" if export.destroyed else "pipl.export.caption"
        counts = export.counts()
        caption = fit.caption(
            _(
                key,
                number=export.customer_no,
                visits=counts.get("visits", 0),
                complaints=counts.get("complaints", 0),
                people=counts.get("key_persons", 0),
                history=counts.get("history", 0),
                reads=counts.get("reads", 0),
            )
        )
        try:
            for index, path in enumerate(paths):
                await context.bot.send_document(
                    chat_id,
                    document=path.read_bytes(),
                    filename=path.name,
                    caption=caption if index == 0 else None,
                    protect_content=True,
                )
        except TelegramError as error:
            log.warning("a PIPL export could not be sent: %s", type(error).__name__)
            with suppress(TelegramError):
                await context.bot.send_message(chat_id, _("pipl.export.failed"))


# ---------------------------------------------------------------------------------------------
# erasing a key person


async def _ask_erasure(
    query: CallbackQuery, context: BotContext, chat_id: int, customer_id: int, person_id: int
) -> None:
    """Ask before erasing; the confirmation names the version it was asked about."""
    _ = context._
    actor: Staff = context.member
    async with context.unit_of_work() as session:
        try:
            await pipl.check(session, actor, "key_person", person_id)
        except Refused:
            refused = True
        else:
            refused = False
    if refused:
        await query.answer(_("pipl.refused"), show_alert=True)
        return
    async with context.reading() as session:
        customer = await session.get(Customer, customer_id)
        person = await session.get(KeyPerson, person_id)
    if (
        customer is None
        or person is None
        or person.customer_id != customer_id
        or customer.status == RecordStatus.destroyed
    ):
        await query.answer(_("pipl.gone"), show_alert=True)
        return
    await query.answer()
    version = person.version
    markup = InlineKeyboardMarkup(
        [
            [
                button(_("pipl.button.erase_confirm"), data("e", customer_id, person_id, version)),
                button(_("pipl.button.keep"), data("n", customer_id)),
            ]
        ]
    )
    await context.bot.send_message(
        chat_id,
        fit.message(_("pipl.erase.confirm", name=person.name, customer=_title(customer))),
        reply_markup=markup,
    )


async def _erase(
    query: CallbackQuery, context: BotContext, customer_id: int, person_id: int, version: int
) -> None:
    _ = context._
    services = context.services
    outcome: str | None = None
    name = ""
    try:
        async with context.unit_of_work() as session:
            try:
                removed = await pipl.erase_key_person(
                    session,
                    services.keyring,
                    actor=context.member,
                    customer_id=customer_id,
                    key_person_id=person_id,
                    version=version,
                )
                name = removed.name
            except ChangedMeanwhile:
                raise
            except NotFound:
                outcome = "gone"
            except Refused as refusal:  # audited: keep the entry
                outcome = "read_only" if refusal.code == "read_only" else "refused"
    except ChangedMeanwhile:
        outcome = "changed"
    if outcome is not None:
        await query.answer(_(f"pipl.erase.{outcome}"), show_alert=True)
        await close_buttons(query.message)
        return
    await query.answer()
    await close_buttons(query.message, _("pipl.erase.done", name=name))
