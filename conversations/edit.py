"""Editing a customer (修改客户档案): pick a field, give the new value, confirm.

The value questions are the Steps of /new (`new_customer.STEPS`), so every answer is checked
exactly as when the customer was entered. The flow's first question chooses the field; only that
field's question (and, for consent, its follow-ups) then applies. On a draft or rejected record
the change is written at once; on an approved one it becomes a pending change that a manager
decides on (storage.changes), and the approved values stand until then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.context import BotContext
from bot.i18n import Translator
from conversations import duplicates, fit, new_customer, runner
from conversations.callback_data import EDIT
from conversations.steps import Checker, Flow, FlowEnv, Kind, Option, Step, Submitted
from storage import changes, customers, outbox
from storage import fields as catalogue
from storage.errors import Refused
from storage.models import Customer

FIELD = "edit_field"
COMPLETE = "complete"  # completing a record: the fields it lacks, asked one after the other
SOURCE_STEPS = tuple(s for s in new_customer.STEPS if s.field not in new_customer.GATES)
BY_FIELD = {s.field: s for s in SOURCE_STEPS}
# changing one of these asks its follow-up questions again, as /new does
FOLLOW_UPS = {"consent_given": ("consent_method", "consent_on", "consent_note")}
# financial fields may be edited whenever they apply to the kind of customer
ASSUMED = {"finance": "yes"}
# duplicate checks of /new, redone here without the customer being edited
DUPLICATE_QUERIES = catalogue.duplicate_queries()
# answers that decide whether other fields apply (company-only fields, consent details)
DECIDING = frozenset({"kind", "consent_given"})
SHOWN_LIMIT = 80


# ---------------------------------------------------------------------------------------------
# the record as /new's conditions read it


def _record(data: dict[str, Any]) -> dict[str, Any]:
    """The customer's deciding values at the start, overridden by this edit's answers."""
    cleared = data.get("cleared", [])
    answers = {
        k: v for k, v in data.items() if k in BY_FIELD and (v not in (None, "", []) or k in cleared)
    }
    return {**ASSUMED, **data.get("context", {}), **answers}


def _cleared(data: dict[str, Any]) -> list[str]:
    """Filled fields that no longer apply after this edit (company-only, consent details)."""
    after = _record(data)
    filled = set(data.get("filled", []))
    return [s.field for s in SOURCE_STEPS if s.field in filled and not s.applies(after)]


def _masked(field: str, value: Any) -> Any:
    """A stored value as lists show it: sensitive values masked (SPEC section 4)."""
    return value if value is None else catalogue.mask(field, value)


def shown(_: Translator, field: str, value: Any) -> str:
    """How a value of `field` reads in a message (already masked if sensitive)."""
    step = BY_FIELD.get(field)
    if value is None or value == "" or value == []:
        return _("common.empty")
    if step is not None and step.kind == Kind.YES_NO:
        return _("common.yes" if value in (True, "yes") else "common.no")
    if step is not None and step.kind == Kind.CHOICE and step.choices:
        return _(f"choice.{field}.{value}")
    if step is not None and step.display is not None and not catalogue.is_sealed(field):
        value = step.display(value, _)
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return fit.clip(str(value), SHOWN_LIMIT)


# ---------------------------------------------------------------------------------------------
# the steps: which field, then /new's question for it


async def field_options(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> list[Option]:
    """Every field of the record that applies to it and has no change awaiting a decision."""
    record = {**ASSUMED, **data.get("context", {})}
    pending = set(data.get("pending_fields", []))
    return [
        Option(s.field, env._(f"field.{s.field}"), translate=False)
        for s in SOURCE_STEPS
        if s.applies(record) and s.field not in pending
    ]


def _field_prompt(env: FlowEnv, data: dict[str, Any]) -> dict[str, object]:
    _ = env._
    pending = data.get("pending_fields") or []
    waiting = ""
    if pending:
        waiting = _("edit.pending_fields", fields=", ".join(_(f"field.{f}") for f in pending))
    note = (
        "edit.note_review"
        if data.get("edit_mode") == changes.EditMode.propose
        else "edit.note_apply"
    )
    return {"customer": data.get("customer_label", ""), "note": _(note), "pending": waiting}


def _chosen(step: Step) -> Callable[[dict[str, Any]], bool]:
    """Asked only when its field (or the field it follows up) was chosen, and it applies;
    completing a record, when it is one of the fields it lacks (or follows one up)."""

    def when(data: dict[str, Any]) -> bool:
        if COMPLETE in data:
            lacking = data[COMPLETE]
            follows = any(step.field in FOLLOW_UPS.get(f, ()) for f in lacking)
            if step.field not in lacking and not follows:
                return False
            return step.applies(_record(data))
        chosen = data.get(FIELD)
        if chosen != step.field and step.field not in FOLLOW_UPS.get(chosen or "", ()):
            return False
        return step.applies(_record(data))

    return when


def _prompt(step: Step) -> Callable[[FlowEnv, dict[str, Any]], dict[str, object]]:
    """/new's prompt values, plus what the record holds now (masked if sensitive)."""

    def values(env: FlowEnv, data: dict[str, Any]) -> dict[str, object]:
        extra = step.prompt_values(env, _record(data)) if step.prompt_values else {}
        stored = shown(env._, step.field, data.get("current", {}).get(step.field))
        if "default" in extra:  # a skip keeps what the record holds, not /new's default
            extra["default"] = stored
        key = "edit.on_record" if step.required or step.default else "edit.on_record_optional"
        return {**extra, "current": env._(key, value=stored)}

    return values


def _default(step: Step) -> Callable[[FlowEnv, dict[str, Any]], str]:
    """What a skipped answer stands for: the value the record keeps (Skip never erases)."""
    return lambda env, data: shown(env._, step.field, data.get("current", {}).get(step.field))


def has_value(data: dict[str, Any], field: str) -> bool:
    """Whether the record holds a value of `field` (Clear is offered only then)."""
    found, asked = catalogue.spec(field), BY_FIELD.get(field)
    if found is None or found.required or asked is None or asked.default is not None:
        return False  # a required field is changed, never cleared; a defaulted one never empty
    return data.get("current", {}).get(field) not in (None, "", [])


def _check(step: Step) -> Checker | None:
    """/new's duplicate warning (leaving out the customer itself), and what an answer clears."""
    query = DUPLICATE_QUERIES.get(step.field)
    if query is None and step.field not in DECIDING:
        return None

    async def check(env: FlowEnv, session: AsyncSession, value: Any, data: dict) -> list[str]:
        _ = env._
        warnings: list[str] = []
        if query is not None:
            asked = {query: value if query != "phones" or isinstance(value, list) else [value]}
            warnings += await duplicates.check(
                env, session, purpose="edit", exclude=int(data["customer_id"]), **asked
            )
        cleared = _cleared(data)
        if cleared:
            labels = ", ".join(_(f"field.{f}") for f in cleared)
            warnings.append(_("edit.will_clear", fields=labels))
        return warnings

    return check


def _value_step(step: Step) -> Step:
    return replace(
        step,
        when=_chosen(step),
        prompt_values=_prompt(step),
        default=_default(step),
        check=_check(step),
    )


STEPS = (
    Step(
        FIELD,
        Kind.CHOICE,
        required=True,
        options=field_options,
        prompt_values=_field_prompt,
        columns=3,
        page_size=40,
        counted=False,
        when=lambda data: COMPLETE not in data,
    ),
    *(_value_step(s) for s in SOURCE_STEPS),
)


# ---------------------------------------------------------------------------------------------
# start, submit


async def prepare(
    env: FlowEnv, session: AsyncSession, initial: dict[str, Any]
) -> dict[str, Any] | None:
    """Check the customer named by the button and note what the questions need to know."""
    try:
        customer_id = int(initial["customer_id"])
    except (KeyError, TypeError, ValueError):
        return None
    customer = await customers.visible_customer(
        session, actor=env.staff, customer_id=customer_id, purpose="edit"
    )
    if customer is None:
        return None
    try:
        mode = changes.edit_mode(customer)
    except Refused:
        return None
    values = await changes.current_values(session, keyring=env.services.keyring, customer=customer)
    pending: set[str] = set()
    if mode == changes.EditMode.propose:
        pending = await changes.pending_change_fields(
            session, keyring=env.services.keyring, customer=customer
        )
    lacking: dict[str, Any] = {}
    if initial.get(COMPLETE):
        record = {**ASSUMED, **_context_of(values)}
        lacking[COMPLETE] = [
            s.field
            for s in SOURCE_STEPS
            if s.applies(record)
            and s.field not in pending
            and s.field in catalogue.completion_fields()
            and values.get(s.field) in (None, "", [], False)
        ]
        if not lacking[COMPLETE]:  # completed meanwhile (another device): a plain edit
            lacking = {}
    return {
        **lacking,
        "customer_id": str(customer_id),
        "version": customer.version,
        "edit_mode": mode.value,
        "customer_label": _label(customer),
        "context": _context_of(values),
        "current": {f: _masked(f, v) for f, v in values.items()},
        "filled": sorted(f for f, v in values.items() if v is not None),
        "pending_fields": sorted(pending),
    }


def _context_of(values: dict[str, Any]) -> dict[str, Any]:
    """The record's answers that decide which questions apply, as /new's conditions read them."""
    return {
        "kind": values["kind"],
        "consent_given": "yes" if values["consent_given"] else "no",
        "customer_class": values["customer_class"],
    }


def _label(customer: Customer) -> str:
    return f"{customer.name} · {customer.customer_no}"


def _new_values(env: FlowEnv, data: dict[str, Any]) -> dict[str, Any]:
    """The chosen field (and its follow-ups) in stored form, plus the fields it clears."""
    values: dict[str, Any] = {}
    cleared = set(data.get("cleared", []))
    for step in FLOW.applicable(data):
        if step.field == FIELD:
            continue
        value = data.get(step.field)
        if value in (None, "", []) and step.field not in cleared:
            continue  # skipped: the record keeps its value
        if step.field == "consent_given":
            value = value == "yes"
        values[step.field] = value
    for name in _cleared(data):
        values.setdefault(name, None)
    return values


def _again(_: Translator, customer_id: int | str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(_("edit.button_again"), callback_data=EDIT.data("ce", customer_id))]]
    )


def refusal_text(_: Translator, refusal: Refused) -> str:
    """A refusal of storage.changes in the user's words."""
    if refusal.code == "change_pending":
        fields = refusal.details.get("fields")
        names = ", ".join(_(f"field.{f}") for f in fields) if isinstance(fields, list) else ""
        return _("edit.change_pending", fields=names)
    if refusal.code in ("under_review", "read_only", "changed_meanwhile"):
        return _(f"edit.{refusal.code}")
    if refusal.code in ("not_allowed", "incomplete"):
        return _(f"refused.{refusal.code}")
    return _("refused.not_found")


def _change_lines(_: Translator, diff: dict[str, list[Any]]) -> str:
    return "\n".join(
        _(
            "edit.change_line",
            field=_(f"field.{name}"),
            old=shown(_, name, _masked(name, old)),
            new=shown(_, name, _masked(name, new)),
        )
        for name, (old, new) in diff.items()
    )


async def submit(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> Submitted:
    """Write the change (draft, rejected) or file it for approval (approved)."""
    _ = env._
    customer_id = int(data["customer_id"])
    customer = await customers.visible_customer(
        session, actor=env.staff, customer_id=customer_id, purpose="edit"
    )
    if customer is None:  # moved to someone else meanwhile; the refusal is audited
        return Submitted(_("refused.not_found"))
    try:
        result = await changes.edit_customer(
            session,
            keyring=env.services.keyring,
            actor=env.staff,
            customer=customer,
            version=int(data["version"]),
            values=_new_values(env, data),
        )
    except Refused as refusal:  # raised before anything was written
        again = refusal.code == "changed_meanwhile"
        return Submitted(refusal_text(_, refusal), _again(_, customer_id) if again else None)
    label = _label(customer)
    if not result.changes:
        return Submitted(_("edit.unchanged"), _again(_, customer_id))
    lines = _change_lines(_, result.changes)
    if result.mode == changes.EditMode.apply:
        return Submitted(_("edit.applied", customer=label, changes=lines), _again(_, customer_id))
    if result.review_id is not None:  # the managers' notice, with the proposed change
        await outbox.queue_review_cards(
            session, review_id=result.review_id, now=env.services.clock()
        )
    return Submitted(_("edit.proposed", customer=label, changes=lines), _again(_, customer_id))


FLOW = runner.register(
    Flow(
        name="edit",
        steps=STEPS,
        submit=submit,
        prepare=prepare,
        skip_keeps=True,
        has_value=has_value,
    )
)


# ---------------------------------------------------------------------------------------------
# the Edit button of the customer card


def _press(data: str) -> tuple[int, bool] | None:
    """(customer id, whether to complete the record) of an Edit or Complete button."""
    press = EDIT.parse(data)
    if press is None or len(press) != 1 or (customer_id := press.id(0)) is None:
        return None
    return customer_id, press.prefix == "cm"


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `ce:<customer id>`: checks the customer and its state, then asks which field;
    `cm:<customer id>` (Complete this record) asks the fields it lacks, one after the other."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _ = context._
    pressed = _press(query.data)
    if pressed is None:
        await query.answer(_("button.expired"), show_alert=True)
        return
    customer_id, complete = pressed
    if update.effective_chat is None or update.effective_chat.type != "private":
        await query.answer(_("edit.private_only"), show_alert=True)
        return
    async with context.unit_of_work() as session:
        customer = await customers.visible_customer(
            session, actor=context.member, customer_id=customer_id, purpose="edit"
        )
        refusal: Refused | None = None
        if customer is not None:
            try:
                changes.edit_mode(customer)
            except Refused as refused:
                refusal = refused
    if customer is None:
        await query.answer(_("refused.not_found"), show_alert=True)
        return
    if refusal is not None:
        await query.answer(refusal_text(_, refusal), show_alert=True)
        return
    await query.answer()
    initial: dict[str, Any] = {"customer_id": customer_id}
    if complete:
        initial[COMPLETE] = True
    await runner.start(update, context, FLOW, initial=initial)
