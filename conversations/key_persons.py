"""关键联系人: a customer's key persons, listed with masked phones; add, edit and remove them.

Buttons (every press re-checks the customer through `visible_customer`, and the person):
  ck:<customer>                    list them (the card's Key persons button)
  kp:add:<customer>                add one (also offered at the end of /new)
  kp:edit:<customer>:<person>      edit one: the flow opens at its summary with current values
  kp:del:<customer>:<person>       ask before removing
  kp:rm:<customer>:<person>:<ver>  remove, if it is still as it was when asked
  kp:keep:<customer>               keep it after all
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.context import BotContext
from bot.i18n import Translator
from conversations import fit, runner
from conversations import steps as s
from conversations.callback_data import KEY_PERSONS, PIPL
from conversations.keyboards import button
from conversations.messages import close_buttons
from conversations.steps import Flow, FlowEnv, Kind, Step, Submitted
from storage import customers, key_persons
from storage import fields as catalogue
from storage.errors import Refused
from storage.fields import Record
from storage.key_persons import FIELDS, INFLUENCE_LEVELS, KeyPersonRecord
from storage.models import Customer, KeyPersonRole
from storage.permissions import can_answer_pipl_request

NOTES_SHOWN = 60
PEOPLE_PER_MESSAGE = 10  # two buttons each: a list of many people comes in several messages
# how many ids each action's button carries
_ARITY = {"list": 1, "add": 1, "edit": 2, "del": 2, "rm": 3, "keep": 1}


def _label(customer: Customer) -> str:
    return f"{customer.name} · {customer.customer_no}"


# ---------------------------------------------------------------------------------------------
# the flow: add, or edit starting from the current values


def _customer_hint(env: FlowEnv, data: dict[str, Any]) -> dict[str, object]:
    return {"customer": data.get("customer_label", "")}


STEPS = (
    Step(
        "kp_name",
        required=True,
        parse=s.text(100),
        prompt_values=_customer_hint,
        contact="kp_phones",  # a shared contact gives the name and the phone at once
    ),
    Step("kp_title", parse=s.text(100)),
    Step("kp_role", Kind.CHOICE, choices=tuple(KeyPersonRole), columns=2),
    Step("kp_influence", Kind.CHOICE, choices=tuple(str(v) for v in INFLUENCE_LEVELS), columns=2),
    Step(
        "kp_phones",
        parse=s.phones,
        display=s.show_phones,
        example="example.phones",
        contact="kp_phones",
    ),
    Step("kp_birthday", parse=s.birthday, example="example.kp_birthday"),
    Step("kp_notes", parse=s.text(1000)),
)


async def prepare(
    env: FlowEnv, session: AsyncSession, initial: dict[str, Any]
) -> dict[str, Any] | None:
    """Check the customer (and person) named by the button; an edit starts from its values."""
    try:
        customer_id = int(initial["customer_id"])
        person_id = int(initial["key_person_id"]) if "key_person_id" in initial else None
    except (KeyError, TypeError, ValueError):
        return None
    customer = await customers.visible_customer(
        session, actor=env.staff, customer_id=customer_id, purpose="key_person"
    )
    if customer is None or not key_persons.may_change(env.staff, customer):
        return None
    data: dict[str, Any] = {"customer_id": str(customer_id), "customer_label": _label(customer)}
    if person_id is None:
        return data
    person = await key_persons.find_key_person(
        session,
        keyring=env.services.keyring,
        actor=env.staff,
        customer=customer,
        key_person_id=person_id,
        purpose="edit",
    )
    if person is None:
        return None
    # the summary shows its phones and birthday in clear: that is a view, and audited
    await key_persons.record_sensitive_view(session, actor=env.staff, person=person, purpose="edit")
    data.update(key_person_id=str(person.id), version=person.version)
    for name in FIELDS:
        value = person.values[name]
        data[name] = str(value) if name == "kp_influence" and value is not None else value
    return data


def _after_markup(_: Translator, customer_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [button(_("kp.button_add_another"), KEY_PERSONS.data("kp", "add", customer_id))],
            [button(_("kp.button_list"), KEY_PERSONS.data("ck", customer_id))],
        ]
    )


def refusal_text(_: Translator, refusal: Refused) -> str:
    """A refusal of storage.key_persons in the user's words."""
    if refusal.code in ("changed_meanwhile", "read_only"):
        return _(f"kp.{refusal.code}")
    if refusal.code == "not_found":
        return _("kp.gone")
    if refusal.code in ("not_allowed", "incomplete"):
        return _(f"refused.{refusal.code}")
    return _("refused.not_found")


async def submit(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    """Add the key person, or save the changes to the one being edited."""
    _ = env._
    customer_id = int(data["customer_id"])
    customer = await customers.visible_customer(
        session, actor=env.staff, customer_id=customer_id, purpose="key_person"
    )
    if customer is None:  # moved to someone else meanwhile; the refusal is audited
        return Submitted(_("refused.not_found"))
    values = {name: data.get(name) for name in FIELDS}
    markup = _after_markup(_, customer_id)
    keyring = env.services.keyring
    try:  # storage refuses before writing anything
        if data.get("key_person_id"):
            diff = await key_persons.update_key_person(
                session,
                keyring=keyring,
                actor=env.staff,
                customer=customer,
                key_person_id=int(data["key_person_id"]),
                version=int(data["version"]),
                values=values,
            )
            key = "kp.updated" if diff else "kp.unchanged"
        else:
            await key_persons.add_key_person(
                session, keyring=keyring, actor=env.staff, customer=customer, values=values
            )
            key = "kp.added"
    except Refused as refusal:
        return Submitted(refusal_text(_, refusal), markup)
    return Submitted(_(key, name=values["kp_name"], customer=_label(customer)), markup)


FLOW = runner.register(Flow(name="keyperson", steps=STEPS, submit=submit, prepare=prepare))


# ---------------------------------------------------------------------------------------------
# the list and its buttons


def _person_lines(_: Translator, number: int, person: KeyPersonRecord) -> list[fit.Line]:
    values = person.values
    head: list[fit.Piece] = [f"{number}. {person.name}"]
    if values["kp_title"]:
        head += [" · ", fit.Slot(str(values["kp_title"]))]
    if values["kp_role"]:
        head.append(" · " + _(f"choice.kp_role.{values['kp_role']}"))
    if values["kp_influence"] is not None:
        head.append(" · " + _(f"choice.kp_influence.{values['kp_influence']}"))
    lines: list[fit.Line] = [head]
    if values["kp_phones"]:
        masked = ", ".join(catalogue.mask("kp_phones", values["kp_phones"], Record.key_person))
        lines.append(_("kp.line_phones", phones=masked))
    if values["kp_birthday"]:
        lines.append(_("kp.line_birthday"))  # the date itself is sensitive: only that it is known
    if values["kp_notes"]:
        notes = fit.clip(str(values["kp_notes"]), NOTES_SHOWN)
        lines.append(fit.Slot(notes, lambda shown: _("kp.line_notes", notes=shown)))
    return lines


def _person_buttons(
    _: Translator, cid: int | None, person: KeyPersonRecord
) -> list[InlineKeyboardButton]:
    return [
        InlineKeyboardButton(
            fit.label(_("kp.button_edit", name=person.name)),
            callback_data=KEY_PERSONS.data("kp", "edit", cid, person.id),
        ),
        InlineKeyboardButton(
            fit.label(_("kp.button_remove", name=person.name)),
            callback_data=KEY_PERSONS.data("kp", "del", cid, person.id),
        ),
    ]


def render_list(
    _: Translator, customer: Customer, people: list[KeyPersonRecord], changeable: bool
) -> list[tuple[str, InlineKeyboardMarkup | None]]:
    """The customer's key persons (phones masked) with Add / Edit / Remove buttons, as one
    message, or several of PEOPLE_PER_MESSAGE each when there are many (the first has the
    title and Add, the last the read-only note)."""
    groups = [people[i : i + PEOPLE_PER_MESSAGE] for i in range(0, len(people), PEOPLE_PER_MESSAGE)]
    pages: list[tuple[str, InlineKeyboardMarkup | None]] = []
    cid = customer.id
    for index, group in enumerate(groups or [[]]):
        first = index * PEOPLE_PER_MESSAGE + 1
        lines: list[fit.Line] = []
        if index == 0:
            lines.append(fit.Slot(_label(customer), lambda name: _("kp.list_title", customer=name)))
            if not people:
                lines.append(_("kp.none"))
        else:
            lines.append(_("kp.list_continued", page=index + 1, pages=len(groups)))
        for number, person in enumerate(group, start=first):
            lines += _person_lines(_, number, person)
        if not changeable and index == len(groups) - 1:
            lines += ["", _("kp.read_only_note")]
        rows: list[list[InlineKeyboardButton]] = []
        if changeable:
            if index == 0:
                rows.append([button(_("kp.button_add"), KEY_PERSONS.data("kp", "add", cid))])
            rows += [_person_buttons(_, cid, person) for person in group]
        pages.append((fit.compose(lines), InlineKeyboardMarkup(rows) if rows else None))
    return pages


def _parse(data: str) -> tuple[str, list[int]] | None:
    """`ck:7` → ("list", [7]); `kp:rm:7:3:2` → ("rm", [7, 3, 2]); None if malformed."""
    press = KEY_PERSONS.parse(data)
    if press is None:
        return None
    start = 0 if press.prefix == "ck" else 1
    action = "list" if press.prefix == "ck" else press.fields[0]
    parsed = press.ids(start)
    if _ARITY.get(action) != len(press) - start or parsed is None:
        return None
    return action, parsed


async def _checked(
    context: BotContext, customer_id: int, person_id: int | None, purpose: str
) -> tuple[Customer | None, KeyPersonRecord | None, bool]:
    """The customer (None if not visible), the person (None if gone or not the customer's),
    and whether key persons may change; refusals are audited and committed here."""
    async with context.unit_of_work() as session:
        customer = await customers.visible_customer(
            session, actor=context.member, customer_id=customer_id, purpose=purpose
        )
        if customer is None:
            return None, None, False
        person = None
        if person_id is not None:
            person = await key_persons.find_key_person(
                session,
                keyring=context.services.keyring,
                actor=context.member,
                customer=customer,
                key_person_id=person_id,
                purpose=purpose,
            )
        return customer, person, key_persons.may_change(context.member, customer)


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `ck:` (a customer's key persons) and `kp:` (one key person's actions)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _ = context._
    parsed = _parse(query.data)
    if parsed is None:
        await query.answer(_("button.expired"), show_alert=True)
        return
    if update.effective_chat is None or update.effective_chat.type != "private":
        await query.answer(_("kp.private_only"), show_alert=True)
        return
    action, ids = parsed
    customer_id = ids[0]
    person_id = ids[1] if len(ids) > 1 else None
    if action == "keep":
        await query.answer(_("kp.kept"))
        await close_buttons(query.message, _("kp.kept"))
        return
    if action == "list":
        await _send_list(update, context, query, customer_id)
        return
    customer, person, changeable = await _checked(context, customer_id, person_id, f"kp_{action}")
    if customer is None:
        await query.answer(_("refused.not_found"), show_alert=True)
        return
    if not changeable:
        await query.answer(_("kp.read_only"), show_alert=True)
        return
    if person_id is not None and person is None:
        await query.answer(_("kp.gone"), show_alert=True)
        return
    if action == "add":
        await query.answer()
        await runner.start(update, context, FLOW, initial={"customer_id": customer_id})
    elif action == "edit":
        await query.answer()
        await runner.start(
            update, context, FLOW, initial={"customer_id": customer_id, "key_person_id": person_id}
        )
    elif action == "del":
        assert person is not None
        await _ask_removal(update, context, query, customer, person)
    else:
        await _remove(update, context, query, customer_id, person_id or 0, ids[2])


async def _send_list(
    update: Update, context: BotContext, query: CallbackQuery, customer_id: int
) -> None:
    """Send the customer's key persons with their buttons."""
    _ = context._
    people: list[KeyPersonRecord] = []
    changeable = False
    async with context.reading() as session:
        customer = await customers.visible_customer(
            session, actor=context.member, customer_id=customer_id, purpose="key_persons"
        )
        if customer is not None:
            people = await key_persons.key_persons_of(
                session, keyring=context.services.keyring, actor=context.member, customer=customer
            )
            changeable = key_persons.may_change(context.member, customer)
    if customer is None:
        await query.answer(_("refused.not_found"), show_alert=True)
        return
    await query.answer()
    pages = render_list(_, customer, people, changeable)
    if can_answer_pipl_request(context.member):  # an admin answers a key person's PIPL request
        text, markup = pages[0]
        rows = [*(markup.inline_keyboard if markup else ()), [pipl_button(_, customer_id)]]
        pages[0] = (text, InlineKeyboardMarkup(rows))
    for text, markup in pages:
        await context.bot.send_message(context.chat_id, text, reply_markup=markup)


def pipl_button(_: Translator, customer_id: int) -> InlineKeyboardButton:
    """The PIPL menu of the customer, with an export and an erasure per key person."""
    return button(_("pipl.button.people"), PIPL.data("pi", "m", customer_id))


async def _ask_removal(
    update: Update,
    context: BotContext,
    query: CallbackQuery,
    customer: Customer,
    person: KeyPersonRecord,
) -> None:
    """Ask before removing; the confirmation names the version it was asked about."""
    _ = context._
    await query.answer()
    markup = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    _("kp.button_remove_confirm"),
                    callback_data=KEY_PERSONS.data(
                        "kp", "rm", customer.id, person.id, person.version
                    ),
                ),
                button(_("kp.button_keep"), KEY_PERSONS.data("kp", "keep", customer.id)),
            ]
        ]
    )
    await context.bot.send_message(
        context.chat_id,
        fit.message(_("kp.confirm_remove", name=person.name, customer=_label(customer))),
        reply_markup=markup,
    )


async def _remove(
    update: Update,
    context: BotContext,
    query: CallbackQuery,
    customer_id: int,
    person_id: int,
    version: int,
) -> None:
    """Remove the key person, then show the list as it is now."""
    _ = context._
    try:
        async with context.unit_of_work() as session:
            customer = await customers.visible_customer(
                session, actor=context.member, customer_id=customer_id, purpose="kp_rm"
            )
            if customer is None:
                raise Refused("not_allowed")
            removed = await key_persons.remove_key_person(
                session,
                keyring=context.services.keyring,
                actor=context.member,
                customer=customer,
                key_person_id=person_id,
                version=version,
            )
            people = await key_persons.key_persons_of(
                session, keyring=context.services.keyring, actor=context.member, customer=customer
            )
    except Refused as refusal:  # raced with another change since the check above
        text = _("button.expired") if refusal.code == "not_found" else refusal_text(_, refusal)
        await query.answer(text, show_alert=True)
        await close_buttons(query.message)
        return
    await query.answer()
    await close_buttons(query.message, _("kp.removed", name=removed.name))
    for text, markup in render_list(_, customer, people, True):
        await context.bot.send_message(context.chat_id, text, reply_markup=markup)
