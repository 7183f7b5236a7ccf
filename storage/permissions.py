"""Who may see and do what: SPEC section 4, one named predicate per row of its table.

Storage modules call these and raise `storage.errors.Refused`; handlers call the same ones only
to decide what to offer (buttons, questions, menu commands), never instead of the storage check.
Rows not built yet have their predicate anyway, so the table here is whole; their docstrings say
so. tests/storage/test_permissions.py holds the table itself, every role against every row.

"A manager of the team" is `manages_team` everywhere: SPEC section 10 lets a manager lead
several teams (their own `Staff.team_id` and the `TeamLead` rows, storage.team_leads), and
`teams_of` is the one place that knows it; `managers_of` says the same as WHERE clauses.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import and_, exists, false, inspect, or_, true
from sqlmodel import col

from storage.models import Customer, RecordStatus, Role, Staff, TeamLead

ALL_ROLES: tuple[str, ...] = (Role.salesperson, Role.manager, Role.admin)


class Scope(StrEnum):
    """How far a person's view of the customers reaches (the "view customers" row)."""

    nothing = "nothing"  # deactivated, or a manager without a team
    own = "own"
    team = "team"
    all = "all"


# ---------------------------------------------------------------------------------------------
# the columns: who someone is


class LedTeamsNotLoaded(RuntimeError):
    """A Staff whose led teams were never loaded (or were expired): answering from its
    `team_id` alone would quietly take a director's other teams away, so nothing answers."""


def teams_of(actor: Staff) -> frozenset[int]:
    """The teams a person works in: their own, and for a manager every team they lead besides
    (SPEC section 10: a sales director over several teams).

    The led teams are `Staff.team_leads`, which every load of a Staff brings along (a
    selectin relationship), so this stays synchronous. They count only while the person is a
    manager: a demoted manager's rows (storage.team_leads removes them) never widen a
    salesperson's or an admin's reach, whoever changed the role and however.
    """
    own = frozenset() if actor.team_id is None else frozenset({actor.team_id})
    if actor.role != Role.manager:
        return own
    if "team_leads" in inspect(actor).unloaded:
        raise LedTeamsNotLoaded(f"staff {actor.id}: led teams not loaded")
    return own | {lead.team_id for lead in actor.team_leads}


def _teams_of(actor: Staff) -> frozenset[int]:
    """`teams_of`, under the name the predicates below use."""
    return teams_of(actor)


def is_admin(actor: Staff) -> bool:
    """The "admin" column: an active admin, for whom every row says "all"."""
    return actor.active and actor.role == Role.admin


def _works_in(actor: Staff, role: str, team_id: int | None) -> bool:
    """An active person of this role in the team `team_id`."""
    return actor.active and actor.role == role and team_id in _teams_of(actor)


def manages_team(actor: Staff, team_id: int | None) -> bool:
    """The "manager" column for one team: an active manager of `team_id`."""
    return _works_in(actor, Role.manager, team_id)


def leads_team(actor: Staff, team_id: int | None) -> bool:
    """A manager of the team, or an admin: who acts for a team in most rows of the table."""
    return is_admin(actor) or manages_team(actor, team_id)


def _manager_or_admin(actor: Staff) -> bool:
    return actor.active and actor.role in (Role.manager, Role.admin)


def role_needs_team(role: str) -> bool:
    """Everyone but an admin works in a team: their customers are filed under it."""
    return role != Role.admin


# ---------------------------------------------------------------------------------------------
# create customers, log visits and complaints: own customers / team's customers / all


def can_create_customer(actor: Staff) -> bool:
    """Row "create customers": everyone active; non-admins need a team to file them under."""
    return actor.active and (actor.role == Role.admin or actor.team_id is not None)


def can_log_for(actor: Staff, customer: Customer) -> bool:
    """Row "log visits and complaints": for the customers the actor may see (row "view")."""
    return can_view_customer(actor, customer)


def can_handle_complaint(actor: Staff, *, handler_id: int | None, customer: Customer) -> bool:
    """Row "log ... complaints", working one on: its handler, a manager of the team, an admin."""
    return actor.active and (handler_id == actor.id or leads_team(actor, customer.team_id))


# ---------------------------------------------------------------------------------------------
# view customers: own / team's / all


def view_scope(actor: Staff) -> Scope:
    """Row "view customers": how far the actor's view reaches."""
    if not actor.active:
        return Scope.nothing
    if actor.role == Role.admin:
        return Scope.all
    if actor.role == Role.manager:
        return Scope.team if _teams_of(actor) else Scope.nothing
    return Scope.own


def customers_visible_to(actor: Staff) -> Any:
    """Row "view customers", as a WHERE clause limiting customers to those the actor may see."""
    scope = view_scope(actor)
    if scope == Scope.all:
        return true()
    if scope == Scope.team:
        teams = sorted(_teams_of(actor))
        if len(teams) == 1:
            return col(Customer.team_id) == teams[0]
        return col(Customer.team_id).in_(teams)
    if scope == Scope.own:  # a customer in the team pool is nobody's own (its last owner's neither)
        return and_(col(Customer.owner_id) == actor.id, col(Customer.pooled_at).is_(None))
    return false()


def can_view_customer(actor: Staff, customer: Customer) -> bool:
    """Row "view customers", for one customer."""
    scope = view_scope(actor)
    if scope == Scope.all:
        return True
    if scope == Scope.team:
        return customer.team_id is not None and customer.team_id in _teams_of(actor)
    return scope == Scope.own and customer.owner_id == actor.id and customer.pooled_at is None


def can_edit_customer(actor: Staff, customer: Customer) -> bool:
    """No row of its own: whoever may see a customer may edit it (approved ones via review)."""
    return can_view_customer(actor, customer)


def team_deciders_may_view(team_id: int | None, customer: Customer) -> bool:
    """What every decider of a team's reviews may see (its managers: the team's customers), for
    texts sent to all of them at once, such as a review's notice."""
    return team_id is not None and customer.team_id == team_id


# ---------------------------------------------------------------------------------------------
# view sensitive fields in clear: own / team's / all, each view audited


def can_reveal(actor: Staff, customer: Customer) -> bool:
    """Row "view sensitive fields in clear": whoever may see the customer; the caller audits."""
    return can_view_customer(actor, customer)


# ---------------------------------------------------------------------------------------------
# approve / reject: never / team's submissions, not their own / all, not their own


def is_decider(actor: Staff) -> bool:
    """Row "approve / reject": someone with reviews to decide at all (managers, admins)."""
    return _manager_or_admin(actor)


def decides_for_team(actor: Staff, team_id: int | None) -> bool:
    """Row "approve / reject", its scope: the team's submissions (admins: all). Whether the
    actor submitted it is `can_decide`'s second half, refused with its own reason."""
    return leads_team(actor, team_id)


def can_decide(actor: Staff, *, team_id: int | None, submitted_by: int | None) -> bool:
    """Row "approve / reject" whole: the team's submissions (admins: all), never one's own."""
    return decides_for_team(actor, team_id) and submitted_by != actor.id


def managers_of(team_id: int | Any | None, *, staff: Any = Staff) -> list[Any]:
    """Row "approve / reject", as WHERE clauses on Staff: the team's active managers, whether
    it is their own team or one they lead besides (`teams_of` as SQL). `team_id` may be a
    column (a join on the customer's team); `staff` an alias of Staff."""
    if team_id is None:
        return [false()]
    leads = exists().where(TeamLead.staff_id == staff.id, TeamLead.team_id == team_id)
    return [
        staff.role == Role.manager,
        or_(staff.team_id == team_id, leads),
        col(staff.active).is_(True),
    ]


def admins() -> list[Any]:
    """The "admin" column, as WHERE clauses on Staff: every active admin."""
    return [Staff.role == Role.admin, col(Staff.active).is_(True)]


def can_resubmit(actor: Staff, customer: Customer) -> bool:
    """A rejected customer goes back for review only by its owner (who corrects it), while
    they may still see it; the status is the caller's (storage.reviews.resubmit) to check."""
    return actor.active and customer.owner_id == actor.id and can_view_customer(actor, customer)


# ---------------------------------------------------------------------------------------------
# re-assign customers, hand-over: no / within team / all


def can_reassign(actor: Staff, team_id: int | None) -> bool:
    """Row "re-assign, hand-over": within the team for its managers, anywhere for admins.
    Complaints' handler and customers' owner (storage.reassign) both ask it."""
    return leads_team(actor, team_id)


def can_reassign_customer(actor: Staff, customer: Customer, to_staff: Staff) -> bool:
    """Row "re-assign, hand-over", for one customer and its new owner (在职继承): the actor may
    reassign in the customer's team and in the new owner's (a manager: teams they lead, so
    a customer leaves their teams only with an admin), and the new owner may be handed it."""
    return (
        can_reassign(actor, customer.team_id)
        and can_reassign(actor, to_staff.team_id)
        and can_be_handed_to(to_staff, to_staff.team_id)
    )


def can_hand_over(actor: Staff, team_ids: frozenset[int] | set[int]) -> bool:
    """Row "re-assign, hand-over", for a leaver's or mover's records (离职/调岗交接): it goes
    with changing staff, so admins only, and only where they may re-assign (every team)."""
    return can_manage_staff(actor) and all(can_reassign(actor, team) for team in team_ids)


def can_be_handed_to(staff: Staff, team_id: int | None) -> bool:
    """Row "re-assign, hand-over", its other end: an active non-admin member of the team."""
    return (
        staff.active
        and staff.role != Role.admin
        and team_id is not None
        and staff.team_id == team_id
    )


def handed_to_clauses(team_id: int) -> list[Any]:
    """`can_be_handed_to` as WHERE clauses on Staff."""
    return [
        Staff.team_id == team_id,
        col(Staff.active).is_(True),
        col(Staff.role).in_([Role.salesperson, Role.manager]),
    ]


# ---------------------------------------------------------------------------------------------
# export (XLSX/CSV): own, sensitive fields masked / team's / all. Not built yet.


def can_export(actor: Staff, customer: Customer) -> bool:
    """Row "export": exactly the customers the actor may see (SPEC section 11); the rows of an
    export are limited by `customers_visible_to`, this predicate's WHERE clause."""
    return can_view_customer(actor, customer)


def can_export_any(actor: Staff) -> bool:
    """Row "export": whether /export is offered at all (someone who sees some customers)."""
    return view_scope(actor) != Scope.nothing


def can_export_in_clear(actor: Staff) -> bool:
    """Row "export": sensitive columns in clear only for managers and admins who ask (SPEC
    section 11, audited with the columns); a salesperson's export is masked."""
    return _manager_or_admin(actor)


# ---------------------------------------------------------------------------------------------
# staff, invites, archive/destroy, backup, keys, audit log: no / invites salespeople into own
# teams, staff of own teams read-only / all


def can_manage_staff(actor: Staff) -> bool:
    """Row "staff": changing staff and teams (deactivate, create a team) is for admins."""
    return is_admin(actor)


def can_view_staff(actor: Staff, team_id: int | None) -> bool:
    """Row "staff": managers read their own teams' staff, admins all. Not built yet."""
    return leads_team(actor, team_id)


def roles_inviteable_by(actor: Staff | None) -> list[str]:
    """Row "invites": admins invite anyone, managers salespeople only; the command line (actor
    None) is the server's operator: anyone.

    A manager who could invite managers could approve their own submissions through a second
    account, so manager and admin invitations are for admins.
    """
    if actor is None:
        return list(ALL_ROLES)
    if is_admin(actor):
        return list(ALL_ROLES)
    if actor.active and actor.role == Role.manager:
        return [Role.salesperson]
    return []


def can_invite(actor: Staff, *, role: str, team_id: int | None) -> bool:
    """Row "invites": whether `actor` may invite someone with `role` into `team_id`; managers
    only into their own teams."""
    if role not in roles_inviteable_by(actor):
        return False
    return is_admin(actor) or manages_team(actor, team_id)


def can_archive_or_destroy(actor: Staff) -> bool:
    """Row "archive/destroy", its admin column: all of it (the command line, retention)."""
    return is_admin(actor)


def can_request_archive(actor: Staff, customer: Customer) -> bool:
    """Row "archive/destroy", archiving and reactivating (issue 11 widens the row): its owner,
    a manager of its team or an admin asks; a second person decides (storage.life_cycle)."""
    if not can_view_customer(actor, customer):
        return False
    return customer.owner_id == actor.id or leads_team(actor, customer.team_id)


def can_request_destruction(actor: Staff, customer: Customer) -> bool:
    """Row "archive/destroy", destruction: a manager of its team or an admin asks; a second
    person decides (storage.life_cycle)."""
    return leads_team(actor, customer.team_id)


def can_answer_pipl_request(actor: Staff) -> bool:
    """Row "archive/destroy", PIPL requests (个人信息保护法, issue 11): an access export of
    everything held about a customer or key person, and starting its erasure, are for admins
    (storage.pipl); the customer's destruction still needs a second person's approval."""
    return is_admin(actor)


def can_request_complaint_removal(actor: Staff, customer: Customer) -> bool:
    """Row "archive/destroy", a complaint's own removal (entered by mistake, a duplicate, an
    erasure request): a manager of its customer's team or an admin asks; a second person
    decides (storage.removals)."""
    return leads_team(actor, customer.team_id)


def can_back_up(actor: Staff) -> bool:
    """Row "backup": admins (today backups are the operator's, on the command line)."""
    return is_admin(actor)


def can_manage_keys(actor: Staff) -> bool:
    """Row "keys": admins (today key rotation is the operator's, on the command line)."""
    return is_admin(actor)


def can_read_audit_log(actor: Staff) -> bool:
    """Row "audit log": admins (they get the audit log's head to compare, /testreminder too)."""
    return is_admin(actor)


def can_send_samples(actor: Staff) -> bool:
    """Row "staff, ... keys" (running the bot): a sample of every reminder is for admins."""
    return is_admin(actor)


# ---------------------------------------------------------------------------------------------
# claim from the team pool (公海): own team's pool, up to a limit / assign from own teams' pool /
# all. The pool's customers are listed to its claimants without sensitive columns
# (storage.pool); they are no one's own until claimed (`customers_visible_to`).


def can_claim_from_pool(actor: Staff, team_id: int | None) -> bool:
    """Row "claim from the team pool": a salesperson of the team (the limit is storage.pool's)."""
    return _works_in(actor, Role.salesperson, team_id)


def can_assign_from_pool(actor: Staff, team_id: int | None) -> bool:
    """Row "claim from the team pool": managers assign from their teams' pool, admins from
    any."""
    return leads_team(actor, team_id)


def can_be_assigned_from_pool(staff: Staff, team_id: int | None) -> bool:
    """Row "claim from the team pool", its other end: an active salesperson of the team."""
    return staff.active and staff.role == Role.salesperson and staff.team_id == team_id


def can_see_pool(actor: Staff, team_id: int | None) -> bool:
    """Row "claim from the team pool": whoever may claim from it or assign from it."""
    return can_claim_from_pool(actor, team_id) or can_assign_from_pool(actor, team_id)


def sees_some_pool(actor: Staff) -> bool:
    """Whether /pool is offered: salespeople with a team, managers and admins (a manager's
    teams are `can_see_pool`'s to decide, team by team)."""
    return (
        is_admin(actor)
        or (actor.active and actor.role == Role.manager)
        or (can_claim_from_pool(actor, actor.team_id))
    )


# ---------------------------------------------------------------------------------------------
# import from a spreadsheet, reports: no (own /stats only) / own teams / all


def can_import(actor: Staff, team_id: int | None) -> bool:
    """Row "import": into the managers' own teams, admins any (conversations/importing)."""
    return leads_team(actor, team_id)


def imports_at_all(actor: Staff) -> bool:
    """Row "import": whether /import is offered: managers and admins (their teams are
    `can_import`'s to decide)."""
    return _manager_or_admin(actor)


def can_import_for(actor: Staff, owner: Staff) -> bool:
    """Row "import", its other end: an imported customer's owner is an active non-admin member
    of a team the importer may import into (its team is the owner's)."""
    return can_import(actor, owner.team_id) and can_be_handed_to(owner, owner.team_id)


def receives_reports(actor: Staff) -> bool:
    """Row "reports": who gets reports at all (the weekly summary): managers and admins."""
    return _manager_or_admin(actor)


def can_see_reports(actor: Staff, team_id: int | None) -> bool:
    """Row "reports": a team's numbers for its managers, everyone's for admins. Only the weekly
    summary's text (storage.reminders) and /report's charts (storage.reports) ask it."""
    return leads_team(actor, team_id)


def can_see_own_stats(actor: Staff) -> bool:
    """Row "reports", salesperson column: their own /stats (anyone active has a week of their
    own)."""
    return actor.active


def can_see_company_reports(actor: Staff) -> bool:
    """Row "reports", admin column: the whole company's report, every team together."""
    return is_admin(actor)


# ---------------------------------------------------------------------------------------------
# verified check-in (storage.checkin)


def can_set_customer_location(actor: Staff, customer: Customer) -> bool:
    """Row "create customers ... log visits", as editing the card: the owner, the team's
    managers, admins; an archived record is read-only."""
    return can_edit_customer(actor, customer) and customer.status != RecordStatus.archived


def can_check_out(actor: Staff, *, salesperson_id: int, customer: Customer) -> bool:
    """Only who made the visit checks out of it, and only while they still see its customer."""
    return actor.active and actor.id == salesperson_id and can_view_customer(actor, customer)
