"""SPEC section 4 as one table: every role against every row of it, in every scope.

The columns are the people: a salesperson of team A, a manager of team A ("the team"), a
manager of team B ("another team"), an admin (no team), a salesperson of team A who has been
deactivated, a sales director (manager of team B who leads team A besides: SPEC section 10),
and a manager of team B demoted to salesperson whose row for team A was left behind. The
scopes are whose record it is, seen from that person: `own` (they own or submitted it, in
their own team; the admin's has no team), `team` (a salesperson of team A's) and `other` (a
salesperson of team C's). `-` rows have no scope.

The storage modules and the handlers ask exactly these predicates (storage.permissions), so
this table is what the bot does; the flows' own tests show it through the bot's surface.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlmodel import col, select

from storage import permissions as p
from storage.db import SessionFactory, unit_of_work
from storage.models import Customer, Role, Staff, Team, TeamLead

TEAM_A, TEAM_B, TEAM_C = 1, 2, 3
PEOPLE = {
    "sales": Staff(id=1, telegram_id=101, display_name="S", role=Role.salesperson, team_id=TEAM_A),
    "manager": Staff(id=2, telegram_id=102, display_name="M", role=Role.manager, team_id=TEAM_A),
    "other_mgr": Staff(id=3, telegram_id=103, display_name="O", role=Role.manager, team_id=TEAM_B),
    "admin": Staff(id=4, telegram_id=104, display_name="A", role=Role.admin, team_id=None),
    "gone": Staff(
        id=5, telegram_id=105, display_name="G", role=Role.salesperson, team_id=TEAM_A, active=False
    ),
}
# a sales director: manager of team B who leads team A besides; and a former manager of team B,
# demoted to salesperson, whose row for team A was left behind (it must count for nothing)
PEOPLE["director"] = Staff(
    id=8,
    telegram_id=108,
    display_name="D",
    role=Role.manager,
    team_id=TEAM_B,
    team_leads=[TeamLead(staff_id=8, team_id=TEAM_A)],
)
PEOPLE["demoted"] = Staff(
    id=9,
    telegram_id=109,
    display_name="F",
    role=Role.salesperson,
    team_id=TEAM_B,
    team_leads=[TeamLead(staff_id=9, team_id=TEAM_A)],
)
TEAMMATE = Staff(id=6, telegram_id=106, display_name="T", role=Role.salesperson, team_id=TEAM_A)
OUTSIDER = Staff(id=7, telegram_id=107, display_name="X", role=Role.salesperson, team_id=TEAM_C)
COLUMNS = tuple(PEOPLE)

# One line per row of SPEC section 4 (and per scope): yes / no for each person, in COLUMNS order.
TABLE = """
row                                     scope  sales manager other_mgr admin gone  director demoted
create customers                        -      yes   yes     yes       yes   no    yes      yes
log visits and complaints               own    yes   yes     yes       yes   no    yes      yes
log visits and complaints               team   no    yes     no        yes   no    yes      no
log visits and complaints               other  no    no      no        yes   no    no       no
work on a complaint (not its handler)   own    no    yes     yes       yes   no    yes      no
work on a complaint (not its handler)   team   no    yes     no        yes   no    yes      no
work on a complaint (not its handler)   other  no    no      no        yes   no    no       no
work on a complaint (its handler)       other  yes   yes     yes       yes   no    yes      yes
view customers                          own    yes   yes     yes       yes   no    yes      yes
view customers                          team   no    yes     no        yes   no    yes      no
view customers                          other  no    no      no        yes   no    no       no
view customers in the team pool         own    no    yes     yes       yes   no    yes      no
view customers in the team pool         team   no    yes     no        yes   no    yes      no
view customers in the team pool         other  no    no      no        yes   no    no       no
edit customers (as view)                team   no    yes     no        yes   no    yes      no
view sensitive fields in clear          own    yes   yes     yes       yes   no    yes      yes
view sensitive fields in clear          team   no    yes     no        yes   no    yes      no
view sensitive fields in clear          other  no    no      no        yes   no    no       no
have reviews to decide                  -      no    yes     yes       yes   no    yes      no
approve / reject                        own    no    no      no        no    no    no       no
approve / reject                        team   no    yes     no        yes   no    yes      no
approve / reject                        other  no    no      no        yes   no    no       no
resubmit a rejected customer            own    yes   yes     yes       yes   no    yes      yes
resubmit a rejected customer            team   no    no      no        no    no    no       no
resubmit a rejected customer            other  no    no      no        no    no    no       no
re-assign, hand-over                    own    no    yes     yes       yes   no    yes      no
re-assign, hand-over                    team   no    yes     no        yes   no    yes      no
re-assign, hand-over                    other  no    no      no        yes   no    no       no
hand over a leaver's records            own    no    no      no        yes   no    no       no
hand over a leaver's records            team   no    no      no        yes   no    no       no
hand over a leaver's records            other  no    no      no        yes   no    no       no
export                                  own    yes   yes     yes       yes   no    yes      yes
export                                  team   no    yes     no        yes   no    yes      no
export                                  other  no    no      no        yes   no    no       no
export sensitive fields in clear        -      no    yes     yes       yes   no    yes      no
export offered at all (/export)         -      yes   yes     yes       yes   no    yes      yes
staff: change staff and teams           -      no    no      no        yes   no    no       no
staff: read                             own    no    yes     yes       yes   no    yes      no
staff: read                             team   no    yes     no        yes   no    yes      no
staff: read                             other  no    no      no        yes   no    no       no
invites: a salesperson                  own    no    yes     yes       yes   no    yes      no
invites: a salesperson                  team   no    yes     no        yes   no    yes      no
invites: a salesperson                  other  no    no      no        yes   no    no       no
invites: a manager                      own    no    no      no        yes   no    no       no
invites: a manager                      team   no    no      no        yes   no    no       no
invites: an admin                       -      no    no      no        yes   no    no       no
archive / destroy                       -      no    no      no        yes   no    no       no
PIPL requests: access and erasure       -      no    no      no        yes   no    no       no
ask for a complaint's removal           own    no    yes     yes       yes   no    yes      no
ask for a complaint's removal           team   no    yes     no        yes   no    yes      no
ask for a complaint's removal           other  no    no      no        yes   no    no       no
backup                                  -      no    no      no        yes   no    no       no
keys                                    -      no    no      no        yes   no    no       no
audit log                               -      no    no      no        yes   no    no       no
reminder samples (/testreminder)        -      no    no      no        yes   no    no       no
reassign a customer to a teammate       own    no    yes     no        yes   no    no       no
reassign a customer to a teammate       team   no    yes     no        yes   no    yes      no
reassign a customer to a teammate       other  no    no      no        yes   no    no       no
reassign a customer out of the team     team   no    no      no        yes   no    no       no
claim from the team pool                own    yes   no      no        no    no    no       yes
claim from the team pool                team   yes   no      no        no    no    no       no
claim from the team pool                other  no    no      no        no    no    no       no
assign from the team pool               own    no    yes     yes       yes   no    yes      no
assign from the team pool               team   no    yes     no        yes   no    yes      no
assign from the team pool               other  no    no      no        yes   no    no       no
see the team pool (/pool)               own    yes   yes     yes       yes   no    yes      yes
see the team pool (/pool)               team   yes   yes     no        yes   no    yes      no
see the team pool (/pool)               other  no    no      no        yes   no    no       no
import from a spreadsheet               own    no    yes     yes       yes   no    yes      no
import from a spreadsheet               team   no    yes     no        yes   no    yes      no
import from a spreadsheet               other  no    no      no        yes   no    no       no
import: offered (/import)               -      no    yes     yes       yes   no    yes      no
import: customers owned by              own    no    yes     yes       no    no    yes      no
import: customers owned by              team   no    yes     no        yes   no    yes      no
import: customers owned by              other  no    no      no        yes   no    no       no
reports: receive them (weekly summary)  -      no    yes     yes       yes   no    yes      no
reports                                 own    no    yes     yes       yes   no    yes      no
reports                                 team   no    yes     no        yes   no    yes      no
reports                                 other  no    no      no        yes   no    no       no
own /stats                              -      yes   yes     yes       yes   no    yes      yes
reports: the whole company              -      no    no      no        yes   no    no       no
set a customer's location               own    yes   yes     yes       yes   no    yes      yes
set a customer's location               team   no    yes     no        yes   no    yes      no
set a customer's location               other  no    no      no        yes   no    no       no
check out of one's own visit            own    yes   yes     yes       yes   no    yes      yes
check out of a teammate's visit         team   no    no      no        no    no    no       no
"""


def _customer(owner: Staff, number: int = 1) -> Customer:
    """A customer (or a submission: its owner submitted it) of `owner`, in their team."""
    customer = Customer(customer_no=f"KH-{number}", kind="company", name=f"c{number}")
    customer.owner_id, customer.team_id = owner.id or 0, owner.team_id
    customer.status = "approved"
    return customer


def _pooled(customer: Customer) -> Customer:
    """The same customer released into its team's pool (its last owner kept)."""
    pooled = Customer(customer_no=customer.customer_no, kind=customer.kind, name=customer.name)
    pooled.owner_id, pooled.team_id, pooled.status = customer.owner_id, customer.team_id, "approved"
    pooled.pooled_at = datetime(2026, 11, 1, tzinfo=UTC)
    return pooled


def _record(scope: str, actor: Staff) -> Customer:
    """The customer (or submission) of that scope, seen from `actor`."""
    return _customer({"own": actor, "-": actor, "team": TEAMMATE, "other": OUTSIDER}[scope])


Check = Callable[[Staff, Customer], bool]
ACTIONS: dict[str, Check] = {
    "create customers": lambda a, c: p.can_create_customer(a),
    "log visits and complaints": p.can_log_for,
    "work on a complaint (not its handler)": lambda a, c: p.can_handle_complaint(
        a, handler_id=OUTSIDER.id, customer=c
    ),
    "work on a complaint (its handler)": lambda a, c: p.can_handle_complaint(
        a, handler_id=a.id, customer=c
    ),
    "view customers": p.can_view_customer,
    # its last owner (`own`) no longer sees it: a pooled customer is nobody's own
    "view customers in the team pool": lambda a, c: p.can_view_customer(a, _pooled(c)),
    "edit customers (as view)": p.can_edit_customer,
    "view sensitive fields in clear": p.can_reveal,
    "have reviews to decide": lambda a, c: p.is_decider(a),
    "approve / reject": lambda a, c: p.can_decide(a, team_id=c.team_id, submitted_by=c.owner_id),
    # only its owner sends a rejected customer back, never a manager on their behalf
    "resubmit a rejected customer": p.can_resubmit,
    "re-assign, hand-over": lambda a, c: p.can_reassign(a, c.team_id),
    "hand over a leaver's records": lambda a, c: p.can_hand_over(a, {c.team_id or 0}),
    "export": p.can_export,
    "export sensitive fields in clear": lambda a, c: p.can_export_in_clear(a),
    "export offered at all (/export)": lambda a, c: p.can_export_any(a),
    "staff: change staff and teams": lambda a, c: p.can_manage_staff(a),
    "staff: read": lambda a, c: p.can_view_staff(a, c.team_id),
    "invites: a salesperson": lambda a, c: p.can_invite(a, role="salesperson", team_id=c.team_id),
    "invites: a manager": lambda a, c: p.can_invite(a, role="manager", team_id=c.team_id),
    "invites: an admin": lambda a, c: p.can_invite(a, role=Role.admin, team_id=None),
    "archive / destroy": lambda a, c: p.can_archive_or_destroy(a),
    "PIPL requests: access and erasure": lambda a, c: p.can_answer_pipl_request(a),
    "ask for a complaint's removal": p.can_request_complaint_removal,
    "backup": lambda a, c: p.can_back_up(a),
    "keys": lambda a, c: p.can_manage_keys(a),
    "audit log": lambda a, c: p.can_read_audit_log(a),
    "reminder samples (/testreminder)": lambda a, c: p.can_send_samples(a),
    "reassign a customer to a teammate": lambda a, c: p.can_reassign_customer(
        a, c, TEAMMATE if c.team_id == TEAM_A else OUTSIDER
    ),
    "reassign a customer out of the team": lambda a, c: p.can_reassign_customer(a, c, OUTSIDER),
    "claim from the team pool": lambda a, c: p.can_claim_from_pool(a, c.team_id),
    "assign from the team pool": lambda a, c: p.can_assign_from_pool(a, c.team_id),
    "see the team pool (/pool)": lambda a, c: p.can_see_pool(a, c.team_id),
    "import from a spreadsheet": lambda a, c: p.can_import(a, c.team_id),
    "import: offered (/import)": lambda a, c: p.imports_at_all(a),
    # the owner is the record's: the actor (own; an admin owns no team's customers), a teammate
    # of team A, an outsider of team C
    "import: customers owned by": lambda a, c: p.can_import_for(
        a, {TEAMMATE.id: TEAMMATE, OUTSIDER.id: OUTSIDER}.get(c.owner_id, a)
    ),
    "reports: receive them (weekly summary)": lambda a, c: p.receives_reports(a),
    "reports": lambda a, c: p.can_see_reports(a, c.team_id),
    "own /stats": lambda a, c: p.can_see_own_stats(a),
    "reports: the whole company": lambda a, c: p.can_see_company_reports(a),
    "set a customer's location": p.can_set_customer_location,
    "check out of one's own visit": lambda a, c: p.can_check_out(
        a, salesperson_id=a.id or 0, customer=c
    ),
    "check out of a teammate's visit": lambda a, c: p.can_check_out(
        a, salesperson_id=TEAMMATE.id or 0, customer=c
    ),
}


def _cases() -> list[tuple[str, str, str, bool]]:
    lines = [line for line in TABLE.strip().splitlines()[1:] if line.strip()]
    cases = []
    for line in lines:
        *words, scope = line.split()[: -len(COLUMNS)]
        answers = line.split()[-len(COLUMNS) :]
        assert set(answers) <= {"yes", "no"}, line
        for person, answer in zip(COLUMNS, answers, strict=True):
            cases.append((" ".join(words), scope, person, answer == "yes"))
    return cases


CASES = _cases()


@pytest.mark.parametrize(
    ("row", "scope", "person", "allowed"), CASES, ids=[f"{r}|{s}|{p}" for r, s, p, _ in CASES]
)
def test_spec_section_4(row: str, scope: str, person: str, allowed: bool) -> None:
    actor = PEOPLE[person]
    assert ACTIONS[row](actor, _record(scope, actor)) is allowed


def test_the_table_is_whole() -> None:
    """Every action is in the table, and every row of the table has an action."""
    assert {row for row, *_ in CASES} == set(ACTIONS)


def test_what_the_menu_offers_follows_the_predicates() -> None:
    """The /help list asks the same predicates: review, invite and samples as the table says."""
    from bot.commands import commands_for

    offered = {person: set(commands_for(actor)) for person, actor in PEOPLE.items()}
    assert "review" not in offered["sales"] and "invite" not in offered["sales"]
    assert {"review", "invite"} <= offered["manager"] and "testreminder" not in offered["manager"]
    assert {"review", "invite", "testreminder"} <= offered["admin"]


async def test_the_query_clause_agrees_with_the_check(session_factory: SessionFactory) -> None:
    """`customers_visible_to` (lists, search) selects exactly what `can_view_customer` allows."""
    async with unit_of_work(session_factory) as session:
        for team_id in (TEAM_A, TEAM_B, TEAM_C):
            session.add(Team(id=team_id, name=f"team {team_id}"))
        await session.flush()
        for staff in (*PEOPLE.values(), TEAMMATE, OUTSIDER):
            session.add(staff.model_copy())
        await session.flush()
        owners = (*PEOPLE.values(), TEAMMATE, OUTSIDER)
        for number, owner in enumerate(owners, start=1):
            session.add(_customer(owner, number))
            session.add(_pooled(_customer(owner, 100 + number)))  # and one in the pool
    async with unit_of_work(session_factory) as session:
        everyone = list((await session.exec(select(Customer))).all())
        for person, actor in PEOPLE.items():
            listed = await session.exec(
                select(Customer.id).where(p.customers_visible_to(actor)).order_by(col(Customer.id))
            )
            expected = [c.id for c in everyone if p.can_view_customer(actor, c)]
            assert sorted(listed.all()) == sorted(expected), person


def test_only_an_active_salesperson_of_the_team_is_assigned_from_its_pool() -> None:
    """The other end of "assign from the team pool": a manager assigns to the team's
    salespeople, never to another team's, a manager, an admin or someone deactivated."""
    assert p.can_be_assigned_from_pool(PEOPLE["sales"], TEAM_A)
    assert p.can_be_assigned_from_pool(TEAMMATE, TEAM_A)
    assert not p.can_be_assigned_from_pool(OUTSIDER, TEAM_A)
    assert not p.can_be_assigned_from_pool(PEOPLE["manager"], TEAM_A)
    assert not p.can_be_assigned_from_pool(PEOPLE["admin"], TEAM_A)
    assert not p.can_be_assigned_from_pool(PEOPLE["gone"], TEAM_A)


async def test_managers_of_finds_the_managers_leading_a_team_however_they_lead_it(
    session_factory: SessionFactory,
) -> None:
    """`managers_of` (review routing, escalations) says in SQL what `manages_team` says: the
    team's own managers and those leading it besides, never a demoted manager's old row."""
    async with unit_of_work(session_factory) as session:
        for team_id in (TEAM_A, TEAM_B, TEAM_C):
            session.add(Team(id=team_id, name=f"team {team_id}"))
        await session.flush()
        for staff in PEOPLE.values():
            session.add(
                Staff(
                    **staff.model_dump(exclude={"team_leads"}),
                    team_leads=[
                        TeamLead(staff_id=staff.id or 0, team_id=t.team_id)
                        for t in staff.team_leads
                    ],
                )
            )
    async with unit_of_work(session_factory) as session:
        loaded = {s.id: s for s in (await session.exec(select(Staff))).all()}
        for team_id in (TEAM_A, TEAM_B, TEAM_C, None):
            found = await session.exec(
                select(Staff.id).where(*p.managers_of(team_id)).order_by(col(Staff.id))
            )
            expected = [i for i, s in sorted(loaded.items()) if p.manages_team(s, team_id)]
            assert list(found.all()) == expected, team_id
        assert p.teams_of(loaded[8]) == {TEAM_A, TEAM_B}  # loaded by a select: rows came along
        assert p.teams_of(loaded[9]) == {TEAM_B}
        director = await session.get(Staff, 8)
        assert director is not None and p.manages_team(director, TEAM_A)
        session.expire(director, ["team_leads"])  # never answer from team_id alone
        with pytest.raises(p.LedTeamsNotLoaded):
            p.teams_of(director)
