"""Verified check-in: where a customer is, how far a visit was from it, check-in and check-out.

A customer's location (latitude, longitude) comes from its first on-site visit with a shared
location, or is set on its card. It is sealed with the customer's data key like its phones
(SPEC section 5: a person's home is personal data, and a company's is treated the same so no
code path asks which kind it is), so destroying the customer (its key erased) erases the
location too, and the PIPL export opens it.

An on-site visit with a shared location farther than the radius (`CHECKIN_RADIUS_M`) from the
customer's location is saved but flagged; the distance is stored either way. Distances are
great-circle (haversine) metres on a spherical Earth: under 0.5 % off anywhere, far below a
phone's GPS error at the radii that matter.

A visit logged "now" with a shared location is checked in at the moment the location was
shared; its salesperson checks out once, the same local day, and the duration is shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, customers, permissions, vault
from storage.crypto import DecryptionError, Keyring
from storage.errors import NotFound, Refused
from storage.models import ChangeRecord, Customer, DataKey, RecordStatus, Staff, Visit, VisitKind
from storage.types import jsonable

EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG)
DEFAULT_RADIUS_M = 500
LOCATION_TABLE = "customer_locations"  # the binding of the sealed location, apart from the blob
NEARBY_LIMIT = 5


@dataclass(frozen=True)
class Place:
    """A point on Earth in degrees."""

    latitude: float
    longitude: float

    @classmethod
    def of(cls, value: Any) -> Place | None:
        """A place from a shared location ({latitude, longitude, ...}) if it is one on Earth."""
        if not isinstance(value, dict):
            return None
        try:
            latitude, longitude = float(value["latitude"]), float(value["longitude"])
        except (KeyError, TypeError, ValueError):
            return None
        if not (math.isfinite(latitude) and math.isfinite(longitude)):
            return None
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            return None
        return cls(latitude, longitude)


def distance_m(a: Place, b: Place) -> float:
    """Great-circle metres between two places (haversine; exact at the poles and across the
    antimeridian, where a naive difference of longitudes is 360 degrees off)."""
    phi1, phi2 = math.radians(a.latitude), math.radians(b.latitude)
    d_phi = phi2 - phi1
    d_lambda = math.radians(b.longitude - a.longitude)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, max(0.0, h))))


def seal_location(key: bytes, place: Place, *, customer_id: int) -> bytes:
    return vault.seal(
        key,
        {"latitude": place.latitude, "longitude": place.longitude},
        table=LOCATION_TABLE,
        row_id=customer_id,
    )


def open_location(key: bytes, token: bytes | None, *, customer_id: int) -> Place | None:
    """The sealed location, or None if there is none (or it no longer opens)."""
    if token is None:
        return None
    try:
        return Place.of(vault.unseal(key, token, table=LOCATION_TABLE, row_id=customer_id))
    except DecryptionError:
        return None


async def customer_location(
    session: AsyncSession, keyring: Keyring, customer: Customer
) -> Place | None:
    """Where the customer is, if known (None too once its data key was erased)."""
    if customer.location_sealed is None or customer.id is None:
        return None
    try:
        key = await vault.data_key(session, keyring, customer.id)
    except DecryptionError:
        return None
    return open_location(key, customer.location_sealed, customer_id=customer.id)


async def has_location(session: AsyncSession, customer_id: int) -> bool:
    """Whether the customer has a location (a clear fact: whether, not where)."""
    token = (
        await session.exec(select(Customer.location_sealed).where(Customer.id == customer_id))
    ).first()
    return token is not None


def _rounded(place: Place | None) -> list[float] | None:
    return None if place is None else [round(place.latitude, 6), round(place.longitude, 6)]


async def _place_customer(
    session: AsyncSession,
    *,
    key: bytes,
    actor: Staff,
    customer: Customer,
    place: Place,
    before: Place | None,
    source: str,
    now: datetime,
) -> None:
    """Write the location with its history line (sealed) and audit entry (no coordinates)."""
    assert customer.id is not None
    customer.location_sealed = seal_location(key, place, customer_id=customer.id)
    customer.location_set_at = now
    await vault.add_change(
        session,
        key,
        vault.customer_change(customer.id, action="location", changed_by=actor.id, changed_at=now),
        {"location": [_rounded(before), _rounded(place)]},
    )
    await audit.record(
        session,
        action="customer.location",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="customer",
        entity_id=customer.id,
        detail={"source": source, "replaced": before is not None},
    )


async def set_customer_location(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer_id: int,
    location: Any,
    now: datetime,
) -> Customer:
    """Set (or move) the customer's location from a shared one, on its card.

    Raises NotFound (audited) for a customer the actor may not see, Refused("archived") for a
    read-only one, Refused("not_allowed") if they may not edit it, Refused("incomplete") for a
    location that is not one on Earth.
    """
    customer = await customers.visible_customer(
        session, actor=actor, customer_id=customer_id, purpose="checkin.location"
    )
    if customer is None:
        raise NotFound()
    if customer.status == RecordStatus.archived:
        raise Refused("archived")
    if not permissions.can_set_customer_location(actor, customer):
        raise Refused("not_allowed")
    place = Place.of(location)
    if place is None:
        raise Refused("incomplete")
    await session.refresh(customer, with_for_update=True)  # a concurrent visit waits
    assert customer.id is not None
    key = await vault.data_key(session, keyring, customer.id)
    before = open_location(key, customer.location_sealed, customer_id=customer.id)
    await _place_customer(
        session,
        key=key,
        actor=actor,
        customer=customer,
        place=place,
        before=before,
        source="card",
        now=now,
    )
    customer.version += 1
    customer.updated_at = now
    session.add(customer)
    await session.flush()
    return customer


async def place_new_customer(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer: Customer,
    location: Any,
    now: datetime,
) -> bool:
    """Give a customer just entered the location shared for its address (/new), so its first
    on-site visit is already checked against it. False (nothing stored) for a location that is
    not one on Earth or a customer that already has one."""
    place = Place.of(location)
    if place is None or customer.id is None or customer.location_sealed is not None:
        return False
    key = await vault.data_key(session, keyring, customer.id)
    await _place_customer(
        session,
        key=key,
        actor=actor,
        customer=customer,
        place=place,
        before=None,
        source="address",
        now=now,
    )
    session.add(customer)
    await session.flush()
    return True


@dataclass(frozen=True)
class Verdict:
    """What a visit's location says against its customer's: metres (None: nothing to compare)
    and whether that is past the radius; `placed` when the visit gave the customer its place."""

    distance_m: float | None = None
    flagged: bool = False
    placed: bool = False


async def verify_visit(
    session: AsyncSession,
    *,
    key: bytes,
    actor: Staff,
    customer: Customer,
    kind: str,
    location: tuple[float, float, float | None] | None,
    radius_m: int,
    now: datetime,
) -> Verdict:
    """Compare an on-site visit's shared location with the customer's; the first such visit
    of a customer without one gives it its location (with history and audit). In the caller's
    transaction, the customer's row already taken for update."""
    if kind != VisitKind.on_site or location is None:
        return Verdict()
    assert customer.id is not None
    here = Place(location[0], location[1])
    there = open_location(key, customer.location_sealed, customer_id=customer.id)
    if there is None:
        await _place_customer(
            session,
            key=key,
            actor=actor,
            customer=customer,
            place=here,
            before=None,
            source="visit",
            now=now,
        )
        return Verdict(distance_m=0.0, placed=True)
    distance = distance_m(here, there)
    return Verdict(distance_m=round(distance, 1), flagged=distance > radius_m)


def flag_away(distance: float | None, radius_m: int) -> bool:
    """Whether a distance would flag an on-site visit (for the flow's early warning)."""
    return distance is not None and distance > radius_m


async def distance_from_customer(
    session: AsyncSession, *, keyring: Keyring, actor: Staff, customer_id: int, location: Any
) -> float | None:
    """Metres from a visible customer's location to a shared one; None if either is unknown."""
    customer = await customers.visible_customer(
        session, actor=actor, customer_id=customer_id, purpose="checkin.distance"
    )
    place = Place.of(location)
    if customer is None or place is None:
        return None
    there = await customer_location(session, keyring, customer)
    return None if there is None else distance_m(place, there)


# ---------------------------------------------------------------------------------------------
# check-out


async def check_out(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    visit_id: int,
    now: datetime,
    timezone: str,
) -> Visit:
    """Record the end of a checked-in visit: once, by who made it, on the day it began.

    Raises NotFound (audited) for a visit the actor may not see, Refused with `not_yours`,
    `not_checked_in`, `checked_out` (also when another press was first) or `too_late` (the
    check-in was on an earlier local day).
    """
    visit = await session.get(Visit, visit_id)
    customer = None
    if visit is not None:
        customer = await customers.visible_customer(
            session, actor=actor, customer_id=visit.customer_id, purpose="checkin.check_out"
        )
    else:
        await audit.record(
            session,
            action="access.denied",
            actor_staff_id=actor.id,
            actor_telegram_id=actor.telegram_id,
            entity="visit",
            entity_id=visit_id,
            detail={"purpose": "checkin.check_out", "exists": False},
        )
    if visit is None or customer is None:
        raise NotFound()
    if not permissions.can_check_out(actor, salesperson_id=visit.salesperson_id, customer=customer):
        raise Refused("not_yours")
    if visit.checked_in_at is None:
        raise Refused("not_checked_in")
    if visit.checked_out_at is not None:
        raise Refused("checked_out")
    tz = ZoneInfo(timezone)
    if visit.checked_in_at.astimezone(tz).date() != now.astimezone(tz).date():
        raise Refused("too_late")
    ended = max(now, visit.checked_in_at)
    result = await session.exec(
        update(Visit)
        .where(col(Visit.id) == visit_id, col(Visit.checked_out_at).is_(None))
        .values(checked_out_at=ended, updated_at=now, version=Visit.version + 1)
    )
    if result.rowcount != 1:  # the other of two presses at once
        raise Refused("checked_out")
    key = await vault.data_key(session, keyring, visit.customer_id)
    await vault.add_change(
        session,
        key,
        ChangeRecord(
            entity="visit",
            entity_id=visit_id,
            customer_id=visit.customer_id,
            action="check_out",
            changed_by=actor.id,
            changed_at=now,
        ),
        {"checked_out_at": [None, jsonable(ended)]},
    )
    await audit.record(
        session,
        action="visit.check_out",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="visit",
        entity_id=visit_id,
        detail={"customer_id": visit.customer_id, "minutes": minutes(visit.checked_in_at, ended)},
    )
    await session.refresh(visit)
    return visit


def minutes(start: datetime | None, end: datetime | None) -> int | None:
    """Whole minutes of a visit from check-in to check-out (None until both are known)."""
    if start is None or end is None:
        return None
    return max(0, int((end - start) / timedelta(minutes=1)))


def checkin_history(visit: Visit) -> dict[str, list[Any]]:
    """The check-in part of a visit's history line."""
    return {
        "checked_in_at": [None, jsonable(visit.checked_in_at)],
        "checkin_distance_m": [None, visit.checkin_distance_m],
        "checkin_flagged": [None, visit.checkin_flagged],
    }


# ---------------------------------------------------------------------------------------------
# nearby customers (/today)


@dataclass(frozen=True)
class Nearby:
    customer_id: int
    customer_no: str
    name: str
    distance_m: float


async def nearby(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    location: Any,
    limit: int = NEARBY_LIMIT,
) -> list[Nearby]:
    """The `limit` customers nearest to a shared location among those the actor sees (SPEC
    section 4's view row) that have a location and are neither archived nor destroyed."""
    here = Place.of(location)
    if here is None or not actor.active:
        return []
    rows = (
        await session.exec(
            select(
                Customer.id,
                Customer.customer_no,
                Customer.name,
                Customer.location_sealed,
                DataKey.kek_id,
                DataKey.wrapped,
            )
            .join(DataKey, col(DataKey.customer_id) == col(Customer.id))
            .where(
                permissions.customers_visible_to(actor),
                col(Customer.location_sealed).is_not(None),
                col(Customer.status).not_in([RecordStatus.archived, RecordStatus.destroyed]),
            )
        )
    ).all()
    found: list[Nearby] = []
    for customer_id, number, name, token, kek_id, wrapped in rows:
        if customer_id is None or wrapped is None:
            continue
        try:
            key = keyring.unwrap(kek_id, wrapped, customer_id=customer_id)
        except DecryptionError:
            continue
        there = open_location(key, token, customer_id=customer_id)
        if there is not None:
            found.append(Nearby(customer_id, number, name, distance_m(here, there)))
    found.sort(key=lambda n: (n.distance_m, n.customer_id))
    return found[:limit]
