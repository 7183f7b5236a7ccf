"""导入 (/import): a spreadsheet of customers, checked as /new checks them, dry run first.

/import sends the template (conversations/spreadsheet, columns from the catalogue) and opens the
person's import (storage.imports); the filled file sent back as a document is downloaded, read
and checked row by row (conversations/import_rows), and a dry run is reported: counts, the
rejected rows as an XLSX with their reasons, and buttons to choose the owner and confirm. The
confirmation fetches the file again (nothing personal is kept meanwhile; the checksum must
match), checks it again against the archive as it is now, and writes every accepted row or none.
Button data is a claim: each press re-reads the import, its version and the owner's permission.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from telegram import InlineKeyboardMarkup, InputFile, Message, Update
from telegram.error import BadRequest, TelegramError

from bot.context import BotContext
from bot.i18n import Translator, translate
from conversations import fit, import_rows, keyboards, runner, spreadsheet
from conversations.callback_data import IMPORT
from conversations.import_rows import Checked
from conversations.keyboards import button
from conversations.messages import close_buttons
from conversations.spreadsheet import BadFile
from conversations.steps import FlowEnv, Kind
from storage import audit, drafts, imports, outbox, permissions
from storage.errors import Refused
from storage.imports import AcceptedRow
from storage.models import Import, ImportStatus, Staff

log = logging.getLogger(__name__)
OWNERS_PER_PAGE = 8
REASON_KINDS = ("required", "invalid", "choice", "not_applicable", "owner", "in_file", "duplicate")


def _env(context: BotContext) -> FlowEnv:
    return FlowEnv(context.services, context.member, context._, context.today)


def _file_name(_: Translator, key: str) -> str:
    return f"{_(key)}.xlsx"


def template_file(_: Translator) -> bytes:
    headers = [import_rows.header_label(_, c) for c in import_rows.COLUMNS]
    choices = {
        index: import_rows.choice_labels(_, column)
        for index, column in enumerate(import_rows.COLUMNS, start=1)
        if column in import_rows.STEPS
        and import_rows.STEPS[column].kind in (Kind.CHOICE, Kind.YES_NO)
    }
    return spreadsheet.template(
        headers,
        import_rows.example(_),
        choices,
        sheet_title=_("import.sheet.customers"),
        lists_title=_("import.sheet.lists"),
    )


async def import_command(update: Update, context: BotContext) -> None:
    """Send the template and wait for the filled file (managers and admins)."""
    _ = context._
    member = context.member
    if not permissions.imports_at_all(member):
        await context.bot.send_message(context.chat_id, _("refused.not_allowed"))
        return
    async with context.reading() as session:
        owners = await imports.owner_choices(session, actor=member)
    if not owners:
        await context.bot.send_message(context.chat_id, _("import.no_owners"))
        return
    async with context.unit_of_work() as session:
        await imports.await_file(session, actor=member, now=context.services.clock())
    data = await asyncio.to_thread(template_file, _)
    await context.bot.send_document(
        context.chat_id,
        InputFile(data, filename=_file_name(_, "import.file.template")),
        caption=fit.caption(
            _("import.template", rows=spreadsheet.MAX_ROWS, mb=spreadsheet.MAX_FILE_BYTES >> 20)
        ),
    )


# ---------------------------------------------------------------------------------------------
# the file


async def _wants_media(context: BotContext) -> bool:
    """Whether the member's flow is collecting attachments (a visit's documents are its own)."""
    services = context.services
    async with context.reading() as session:
        state = await drafts.load(
            session, services.keyring, context.member.id or 0, not_before=services.draft_cutoff()
        )
    if state is None:
        return False
    flow = runner.FLOWS.get(state.flow)
    step = flow.step(state.step) if flow is not None else None
    return step is not None and step.kind == Kind.MEDIA


async def on_document(update: Update, context: BotContext) -> None:
    """A document: the open import's file, else whatever the member's flow makes of it."""
    message = update.effective_message
    if message is None or message.document is None or await _wants_media(context):
        await _not_ours(update, context)
        return
    async with context.reading() as session:
        opened = await imports.open_import(
            session, actor=context.member, now=context.services.clock()
        )
    if opened is None or opened.id is None:
        await _not_ours(update, context)
        return
    await _dry_run(context, opened.id, message)


async def _not_ours(update: Update, context: BotContext) -> None:
    if not await runner.on_other(update, context):
        await context.bot.send_message(context.chat_id, context._("fallback.text"))


async def _download(context: BotContext, file_id: str, size: int | None) -> bytes:
    """The file from Telegram, refused by its size before any byte is fetched."""
    if size is not None and size > spreadsheet.MAX_FILE_BYTES:
        raise BadFile("too_big")
    try:
        found = await context.bot.get_file(file_id)
        if found.file_size is not None and found.file_size > spreadsheet.MAX_FILE_BYTES:
            raise BadFile("too_big")
        data = bytes(await found.download_as_bytearray())
    except BadRequest as error:
        if "too big" in str(error).lower():
            raise BadFile("too_big") from error
        raise BadFile("unreadable") from error
    if len(data) > spreadsheet.MAX_FILE_BYTES:
        raise BadFile("too_big")
    return data


def _bad_file_text(_: Translator, error: BadFile) -> str:
    return _(
        f"import.bad.{error.code}",
        rows=spreadsheet.MAX_ROWS,
        mb=spreadsheet.MAX_FILE_BYTES >> 20,
        limit=error.limit or 0,
        required=", ".join(import_rows.header_label(_, c) for c in import_rows.REQUIRED_COLUMNS),
    )


async def _read(context: BotContext, data: bytes) -> tuple[Any, Any]:
    """Read and check the rows in a thread: 10,000 rows of parsing never block the loop."""
    env = _env(context)

    def work() -> Any:
        return import_rows.read_rows(env, spreadsheet.read(data))

    return await asyncio.to_thread(work)


async def _dry_run(context: BotContext, import_id: int, message: Message) -> None:
    _ = context._
    document = message.document
    assert document is not None
    try:
        data = await _download(context, document.file_id, document.file_size)
        await context.bot.send_message(context.chat_id, _("import.checking"))
        read = await _read(context, data)
        env = _env(context)
        async with context.unit_of_work() as session:  # counted first, as /new's look-ups
            await import_rows.count_look_up(session, env)
        async with context.reading() as session:  # no write lock held while 10,000 rows check
            checked = await import_rows.check(session, env, read)
        async with context.unit_of_work() as session:
            await audit.record_many(session, checked.audited)
            version = await imports.record_check(
                session,
                actor=context.member,
                import_id=import_id,
                file_id=document.file_id,
                file_size=len(data),
                checksum=hashlib.sha256(data).hexdigest(),
                rows=len(checked.results),
                accepted=len(checked.accepted),
                rejected=len(checked.rejected),
                accepted_digest=checked.digest(),
                now=context.services.clock(),
            )
    except BadFile as error:
        await context.bot.send_message(context.chat_id, fit.message(_bad_file_text(_, error)))
        return
    except Refused:
        await context.bot.send_message(context.chat_id, _("import.stale"))
        return
    await _report(context, import_id, version, checked)


async def _report(
    context: BotContext, import_id: int, version: int, checked: Checked, *, again: bool = False
) -> None:
    """The dry run: counts, the rejected rows as a file, and the owner buttons."""
    _ = context._
    lines = [_("import.report.again")] if again else []
    lines.append(
        _(
            "import.report",
            rows=len(checked.results),
            accepted=len(checked.accepted),
            rejected=len(checked.rejected),
        )
    )
    reasons = checked.by_reason()
    lines += [f"• {_(f'import.count.{k}')}: {reasons[k]}" for k in REASON_KINDS if reasons[k]]
    if checked.rejected:
        data = await asyncio.to_thread(_rejected_file, _, checked)
        await context.bot.send_document(
            context.chat_id,
            InputFile(data, filename=_file_name(_, "import.file.rejected")),
            caption=fit.caption(_("import.rejected_caption", rejected=len(checked.rejected))),
            protect_content=True,
        )
    if not checked.accepted:
        lines.append(_("import.report.nothing"))
        await context.bot.send_message(context.chat_id, fit.message("\n".join(lines)))
        return
    lines.append(_("import.report.choose_owner"))
    markup = await _owners_markup(context, import_id, version, checked.all_owned, page=0)
    await context.bot.send_message(
        context.chat_id, fit.message("\n".join(lines)), reply_markup=markup
    )


def _rejected_file(_: Translator, checked: Checked) -> bytes:
    """The rejected rows under the file's own headers, each with its row number and reasons
    in the user's language first (so it can be fixed and sent again)."""
    width = len(checked.headers)

    def rows() -> Any:
        for result in checked.rejected:
            cells = list(result.texts[:width]) + [""] * (width - len(result.texts))
            reasons = "; ".join(sentence for _kind, sentence in result.reasons)
            yield [str(result.row), reasons, *cells]

    columns = [_("import.column.row"), _("import.column.reason"), *checked.headers]
    return spreadsheet.rows_file(columns, rows(), sheet_title=_("import.sheet.rejected"))


async def _owners_markup(
    context: BotContext, import_id: int, version: int, all_owned: bool, *, page: int
) -> InlineKeyboardMarkup:
    _ = context._
    async with context.reading() as session:
        owners = await imports.owner_choices(session, actor=context.member)
    pages = max(1, -(-len(owners) // OWNERS_PER_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = owners[page * OWNERS_PER_PAGE : (page + 1) * OWNERS_PER_PAGE]
    rows: list[keyboards.Row] = []
    if all_owned:
        rows.append(
            [button(_("import.button.file_owners"), IMPORT.data("im", "o", import_id, version, 0))]
        )
    rows += keyboards.rows_of(
        [
            button(fit.label(s.display_name), IMPORT.data("im", "o", import_id, version, s.id))
            for s in shown
        ],
        2,
    )
    # a page button carries the page and whether "owners from the file" is offered
    pager = keyboards.pager(
        page,
        pages,
        lambda p: IMPORT.data("im", "p", import_id, version, p * 2 + int(all_owned)),
        counter=True,
    )
    rows = keyboards.with_pager(rows, pager)
    rows.append([button(_("import.button.cancel"), IMPORT.data("im", "x", import_id, version, 0))])
    return InlineKeyboardMarkup(rows)


# ---------------------------------------------------------------------------------------------
# the buttons


async def _current(context: BotContext, import_id: int, version: int) -> Import | None:
    """The presser's own import, still checked in this version; None for anything else."""
    async with context.reading() as session:
        try:
            found = await imports.own_import(session, actor=context.member, import_id=import_id)
        except Refused:
            return None
    if found.status != ImportStatus.checked or found.version != version:
        return None
    return found


async def _chosen_owner(context: BotContext, owner_id: int) -> Staff | None:
    async with context.reading() as session:
        owners = await imports.owner_choices(session, actor=context.member)
    return next((s for s in owners if s.id == owner_id), None)


async def on_button(update: Update, context: BotContext) -> None:
    query = update.callback_query
    assert query is not None
    _ = context._
    press = IMPORT.parse(query.data)
    action = press.text(0) if press is not None else None
    import_id = press.id(1) if press is not None else None
    version = press.id(2) if press is not None else None
    argument = press.id(3) if press is not None else None
    if press is None or len(press) != 4 or None in (import_id, version, argument):
        await query.answer(_("button.expired"), show_alert=True)
        return
    assert import_id is not None and version is not None and argument is not None
    found = await _current(context, import_id, version)
    if found is None:
        await query.answer(_("import.stale"), show_alert=True)
        return
    if action == "p":
        await query.answer()
        markup = await _owners_markup(
            context, import_id, version, bool(argument % 2), page=argument // 2
        )
        await _edit_markup(query.message, markup)
        return
    if action == "x":
        async with context.unit_of_work() as session:
            await imports.cancel(
                session, actor=context.member, import_id=import_id, version=version
            )
        await query.answer()
        await close_buttons(query.message, _("import.cancelled"))
        return
    owner = None
    if argument != 0:
        owner = await _chosen_owner(context, argument)
        if owner is None:  # forged, or no longer one the presser may give customers to
            await query.answer(_("refused.not_allowed"), show_alert=True)
            return
    if action == "o":
        await query.answer()
        await _ask_confirmation(context, query.message, found, owner)
        return
    if action in ("a", "r"):
        approve = action == "a"
        if approve and not permissions.is_admin(context.member):
            await query.answer(_("refused.not_allowed"), show_alert=True)
            return
        await query.answer()
        await close_buttons(query.message, _("import.importing"))
        await _confirm(context, found, owner, approve)
        return
    await query.answer(_("button.expired"), show_alert=True)


async def _edit_markup(message: object, markup: InlineKeyboardMarkup) -> None:
    if isinstance(message, Message):
        try:
            await message.edit_reply_markup(markup)
        except BadRequest as error:
            if "not modified" not in str(error).lower():
                raise


async def _ask_confirmation(
    context: BotContext, message: object, found: Import, owner: Staff | None
) -> None:
    _ = context._
    assert found.id is not None
    owner_text = owner.display_name if owner is not None else _("import.owner.file")
    text = _("import.confirm", accepted=found.accepted, owner=owner_text)
    arg = owner.id if owner is not None else 0
    rows = []
    if permissions.is_admin(context.member):
        rows.append(
            [
                button(
                    _("import.button.approve"), IMPORT.data("im", "a", found.id, found.version, arg)
                )
            ]
        )
        rows.append(
            [
                button(
                    _("import.button.review"), IMPORT.data("im", "r", found.id, found.version, arg)
                )
            ]
        )
    else:
        rows.append(
            [
                button(
                    _("import.button.submit"), IMPORT.data("im", "r", found.id, found.version, arg)
                )
            ]
        )
    rows.append(
        [button(_("import.button.cancel"), IMPORT.data("im", "x", found.id, found.version, 0))]
    )
    await close_buttons(message)
    await context.bot.send_message(
        context.chat_id, fit.message(text), reply_markup=InlineKeyboardMarkup(rows)
    )


async def _confirm(context: BotContext, found: Import, owner: Staff | None, approve: bool) -> None:
    """Fetch the file again, check it against the archive as it is now, write all or nothing."""
    _ = context._
    assert found.id is not None and found.file_id is not None
    try:
        data = await _download(context, found.file_id, found.file_size)
        if hashlib.sha256(data).hexdigest() != found.checksum:
            raise BadFile("changed")
        read = await _read(context, data)
    except BadFile as error:
        await context.bot.send_message(context.chat_id, fit.message(_bad_file_text(_, error)))
        return
    except TelegramError:
        log.warning("import %s: the file could not be fetched again", found.id)
        await context.bot.send_message(context.chat_id, _("import.bad.unreadable"))
        return
    env = _env(context)
    async with context.reading() as session:
        checked = await import_rows.check(session, env, read, default_owner=owner)
    if checked.digest() != found.accepted_digest or any(r.owner is None for r in checked.accepted):
        await _changed_meanwhile(context, found, checked)
        return
    rows = [
        AcceptedRow(r.row, r.values, r.owner, r.matches)
        for r in checked.accepted
        if r.values is not None and r.owner is not None
    ]
    try:
        async with context.unit_of_work() as session:
            done = await imports.confirm(
                session,
                keyring=context.services.keyring,
                actor=context.member,
                import_id=found.id,
                version=found.version,
                rows=rows,
                approve=approve,
                now=context.services.clock(),
            )
            await _queue_notices(context, session, done)
            queued = outbox.queued_in(session)
    except Refused as refusal:
        key = "import.already" if refusal.code == "already_imported" else "import.stale"
        if refusal.code == "not_allowed":
            key = "refused.not_allowed"
        await context.bot.send_message(context.chat_id, _(key))
        return
    await context.send_queued(queued)
    key = "import.done.approved" if done.approved else "import.done.pending"
    await context.bot.send_message(
        context.chat_id,
        fit.message(_(key, count=done.customers, first=done.first_number, last=done.last_number)),
    )


async def _changed_meanwhile(context: BotContext, found: Import, checked: Checked) -> None:
    """The re-check accepts other rows than the dry run did: nothing is written; a new report
    (with new buttons) replaces the old one."""
    assert found.id is not None and found.file_id is not None
    try:
        async with context.unit_of_work() as session:
            version = await imports.record_check(
                session,
                actor=context.member,
                import_id=found.id,
                file_id=found.file_id,
                file_size=found.file_size or 0,
                checksum=found.checksum or "",
                rows=len(checked.results),
                accepted=len(checked.accepted),
                rejected=len(checked.rejected),
                accepted_digest=imports.digest_of(
                    [(r.row, r.file_owner.id if r.file_owner else None) for r in checked.accepted]
                ),
                now=context.services.clock(),
            )
    except Refused:
        await context.bot.send_message(context.chat_id, context._("import.stale"))
        return
    await _report(context, found.id, version, checked, again=True)


async def _queue_notices(context: BotContext, session: Any, done: imports.Imported) -> None:
    """One notice per decider and team through the outbox (one card per customer would be
    thousands of messages): the customers wait in their /review queue."""
    importer = context.member.display_name
    for group in done.deciders:
        for person in group.people:
            text = translate(
                person.language or context.services.settings.DEFAULT_LANGUAGE,
                "import.notice",
                importer=importer,
                count=group.customers,
                team=group.team_name or "",
            )
            await outbox.queue_confirmation(
                session,
                keyring=context.services.keyring,
                recipient=person,
                text=fit.message(text),
                markup=None,
                now=context.services.clock(),
            )
