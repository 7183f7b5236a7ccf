"""Who may see and do what (SPEC section 4), as query clauses and checks on records."""

from __future__ import annotations

from typing import Any

from sqlalchemy import false, true
from sqlmodel import col

from storage.models import Customer, Role, Staff


def customers_visible_to(actor: Staff) -> Any:
    """A WHERE clause limiting customers to those the actor may see."""
    if not actor.active:
        return false()
    if actor.role == Role.admin:
        return true()
    if actor.role == Role.manager:
        return col(Customer.team_id) == actor.team_id if actor.team_id else false()
    return col(Customer.owner_id) == actor.id


def can_view_customer(actor: Staff, customer: Customer) -> bool:
    if not actor.active:
        return False
    if actor.role == Role.admin:
        return True
    if actor.role == Role.manager:
        return actor.team_id is not None and customer.team_id == actor.team_id
    return customer.owner_id == actor.id


def team_deciders_may_view(team_id: int | None, customer: Customer) -> bool:
    """What every decider of a team's reviews may see (its managers: the team's customers), for
    texts sent to all of them at once, such as a review's notice."""
    return team_id is not None and customer.team_id == team_id


def can_create_customer(actor: Staff) -> bool:
    """Everyone active may enter customers; non-admins need a team to file them under."""
    return actor.active and (actor.role == Role.admin or actor.team_id is not None)


def roles_inviteable_by(actor: Staff) -> list[str]:
    """Admins invite anyone; managers invite salespeople only (SPEC section 4).

    A manager who could invite managers could approve their own submissions through a second
    account, so manager and admin invitations are for admins.
    """
    if not actor.active:
        return []
    if actor.role == Role.admin:
        return [Role.salesperson, Role.manager, Role.admin]
    if actor.role == Role.manager:
        return [Role.salesperson]
    return []


def can_invite(actor: Staff, *, role: str, team_id: int | None) -> bool:
    """Whether `actor` may invite someone with `role` into `team_id`; managers: their own team."""
    if role not in roles_inviteable_by(actor):
        return False
    return actor.role == Role.admin or (actor.team_id is not None and team_id == actor.team_id)
