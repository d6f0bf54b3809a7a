"""Tariffs: creating and versioning them, assigning them, and finding the one in force.

Rules:
- An edit never changes a version: it adds the next one. Sessions keep the version in force when
  they started (`charging_transaction.tariff_version_id`, frozen by the worker from the durable
  start event as of the start), so a receipt printed a year later shows the same prices.
- Most specific wins: a connector's own assignment, else its station's, its location's, its
  organisation's. One active assignment per scope: assigning another ends the previous one.
- Money is the organisation's currency; windows are read in the station's location time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit import service as audit
from api.audit.service import Actor
from api.auth.roles import Permission
from api.billing import codec, pricing, timeline
from api.billing import repository as repo
from api.billing.tariffs import Tariff
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.events import Event, TransactionStarted
from schema.models import ChargingStation, Connector, Location, Organization, Transaction
from schema.plan_models import MembershipPlan
from schema.tariff_models import StoredTariff, TariffAssignment, TariffVersion
from schema.timeutil import utcnow

TRANSACTION = Transaction.__table__  # type: ignore[attr-defined]
ASSIGNMENT = TariffAssignment.__table__  # type: ignore[attr-defined]
MAX_NAME = 80
# Estimates are for one session: a day of charging and a day parked is already absurd.
MAX_ESTIMATE_MINUTES = 24 * 60
MAX_ESTIMATE_KWH = 1_000


@dataclass(frozen=True, slots=True)
class InForce:
    """The tariff version that prices a connector's sessions, ready to price with."""

    tariff_id: int
    name: str
    version_id: int
    version: int
    tariff: Tariff
    # The driver's membership at the station's organisation, if any.
    membership: Membership | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    subscription_id: int
    plan_id: int
    plan_name: str
    included_wh: int
    discount_basis_points: int
    period_start: datetime

    def benefits(self, used_wh: int) -> pricing.Benefits:
        return pricing.Benefits(
            self.plan_name,
            free_wh=max(0, self.included_wh - used_wh),
            discount_basis_points=self.discount_basis_points,
        )


# -- finding the tariff in force ---------------------------------------------------------------


def _most_specific(
    candidates: list[Row[Any]],
    station_id: int,
    connector_id: int,
    location_id: int | None,
    plan_id: int | None = None,
) -> Row[Any] | None:
    """A member's plan tariffs first (the most specific of them), then the general ones:
    connector, station, location, organisation; among equals the newest assignment."""

    def rank(a: Row[Any]) -> int:
        if a.station_id is not None:
            if a.station_id != station_id:
                return -1
            if a.connector_id is None:
                return 2
            return 3 if a.connector_id == connector_id else -1
        if a.location_id is not None:
            return 1 if a.location_id == location_id else -1
        return 0

    usable = [a for a in candidates if a.plan_id is None or a.plan_id == plan_id]
    best = max(usable, key=lambda a: (a.plan_id is not None, rank(a), a.id), default=None)
    if best is None or rank(best) < 0:
        general = [a for a in usable if a.plan_id is None and rank(a) >= 0]
        best = max(general, key=lambda a: (rank(a), a.id), default=None)
    return best


async def in_force(
    conn: AsyncConnection,
    connectors: list[tuple[int, int]],
    at: datetime | None = None,
    *,
    user_id: int | None = None,
) -> dict[tuple[int, int], InForce | None]:
    """For each (station, connector): the tariff version in force at `at` (None: now) for the
    driver `user_id` (members of a plan get its tariffs; anonymous: the general ones)."""
    stations = await repo.station_context(conn, {s for s, _ in connectors})
    orgs = {r.organization_id for r in stations.values() if r.organization_id is not None}
    assignments = await repo.assignments_in_force(conn, orgs, at)
    members = await repo.member_subscriptions(conn, user_id, orgs)
    chosen: dict[tuple[int, int], Row[Any] | None] = {}
    for station_id, connector_id in connectors:
        ctx = stations.get(station_id)
        if ctx is None or ctx.organization_id is None:
            chosen[(station_id, connector_id)] = None
            continue
        own = [a for a in assignments if a.organization_id == ctx.organization_id]
        member = members.get(ctx.organization_id)
        chosen[(station_id, connector_id)] = _most_specific(
            own, station_id, connector_id, ctx.location_id, None if member is None else member.plan_id
        )
    versions = await repo.versions_in_force(conn, {a.tariff_id for a in chosen.values() if a is not None}, at)
    result: dict[tuple[int, int], InForce | None] = {}
    for key, a in chosen.items():
        version = None if a is None else versions.get(a.tariff_id)
        if a is None or version is None:
            result[key] = None
            continue
        ctx = stations[key[0]]
        result[key] = InForce(
            tariff_id=a.tariff_id,
            name=a.tariff_name,
            version_id=version.id,
            version=version.version,
            tariff=codec.from_json(
                version.definition, currency=ctx.currency, time_zone=ctx.time_zone or "UTC"
            ),
            membership=_membership(members.get(ctx.organization_id)),
        )
    return result


def _membership(row: Row[Any] | None) -> Membership | None:
    if row is None:
        return None
    month = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return Membership(
        subscription_id=row.id,
        plan_id=row.plan_id,
        plan_name=row.plan_name,
        included_wh=row.included_wh,
        discount_basis_points=row.discount_basis_points,
        period_start=row.current_period_start or month,
    )


async def of_session(conn: AsyncConnection, transaction_id: int) -> InForce | None:
    """The session's frozen version; before the worker froze it, the one in force at its start."""
    tx = (
        await conn.execute(
            select(
                TRANSACTION.c.station_id,
                TRANSACTION.c.connector_id,
                TRANSACTION.c.started_at,
                TRANSACTION.c.created_at,
                TRANSACTION.c.tariff_version_id,
                TRANSACTION.c.user_id,
            ).where(TRANSACTION.c.id == transaction_id)
        )
    ).first()
    if tx is None:
        return None
    if tx.tariff_version_id is None:
        at = _as_of(tx.started_at, tx.created_at)
        return (await in_force(conn, [(tx.station_id, tx.connector_id)], at, user_id=tx.user_id))[
            (tx.station_id, tx.connector_id)
        ]
    version = await repo.version_by_id(conn, tx.tariff_version_id)
    ctx = (await repo.station_context(conn, [tx.station_id])).get(tx.station_id)
    if version is None or ctx is None:
        return None
    members = await repo.member_subscriptions(conn, tx.user_id, [ctx.organization_id])
    return InForce(
        tariff_id=version.tariff_id,
        name=version.tariff_name,
        version_id=version.id,
        version=version.version,
        tariff=codec.from_json(version.definition, currency=ctx.currency, time_zone=ctx.time_zone or "UTC"),
        membership=_membership(members.get(ctx.organization_id)),
    )


def _as_of(started_at: datetime, recorded_at: datetime) -> datetime:
    """The station's start time, unless its clock is ahead of ChargeNet's (then when ChargeNet
    recorded the start): a station's wrong clock must not pick tomorrow's prices."""
    return min(started_at, recorded_at)


async def freeze_on_start(conn: AsyncConnection, event: Event) -> None:
    """Worker handler of TransactionStarted: the session keeps the version in force at its
    start. Idempotent: a session that has one keeps it."""
    assert isinstance(event, TransactionStarted)
    user_id = (
        await conn.execute(select(TRANSACTION.c.user_id).where(TRANSACTION.c.id == event.transaction_id))
    ).scalar()
    key = (event.station_id, event.connector_id)
    found = (await in_force(conn, [key], _as_of(event.started_at, event.at), user_id=user_id))[key]
    if found is None:
        return
    await conn.execute(
        update(TRANSACTION)
        .where(TRANSACTION.c.id == event.transaction_id, TRANSACTION.c.tariff_version_id.is_(None))
        .values(tariff_version_id=found.version_id)
    )


async def session_price(
    conn: AsyncConnection, transaction_id: int, *, now: datetime | None = None
) -> pricing.Price | None:
    """What the session costs (so far, for an active one) with its frozen tariff; None when no
    tariff applies to it."""
    found = await of_session(conn, transaction_id)
    if found is None:
        return None
    tl = await timeline.of_session(conn, transaction_id, now=now)
    if tl is None:
        return None
    benefits = None if found.membership is None else await member_benefits(conn, found.membership)
    return pricing.plan(found.tariff).price(tl, benefits)


async def member_benefits(conn: AsyncConnection, m: Membership) -> pricing.Benefits:
    """The plan's benefits with what is left of this period's included energy."""
    return m.benefits(await repo.used_wh(conn, m.subscription_id, m.period_start, lock=False))


def estimate(
    tariff: Tariff,
    *,
    energy_wh: int,
    charging_minutes: float,
    idle_minutes: float,
    start_at: datetime | None,
    benefits: pricing.Benefits | None = None,
) -> pricing.Price:
    """What a session of this size would cost, starting at `start_at` (now by default): energy
    delivered evenly while charging, then the car parked for `idle_minutes`."""
    if not 0 <= energy_wh <= MAX_ESTIMATE_KWH * 1000:
        raise InvalidInput(f"energy is 0–{MAX_ESTIMATE_KWH} kWh")
    if not 0 <= charging_minutes <= MAX_ESTIMATE_MINUTES or not 0 <= idle_minutes <= MAX_ESTIMATE_MINUTES:
        raise InvalidInput(f"minutes are 0–{MAX_ESTIMATE_MINUTES}")
    start = start_at or utcnow()
    charged = start + timedelta(minutes=charging_minutes)
    timeline = pricing.Timeline(
        started_at=start,
        ended_at=charged + timedelta(minutes=idle_minutes),
        readings=((start, 0), (charged, energy_wh)),
        charging_ended_at=charged,
    )
    return pricing.price(tariff, timeline, benefits)


# -- operator changes -------------------------------------------------------------------------


def _same(column: Any, value: int | None) -> Any:
    return column.is_(None) if value is None else column == value


def _check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidInput(f"name: 1–{MAX_NAME} characters")
    return name


async def _currency(s: AsyncSession, organization_id: int) -> str:
    org = await s.get(Organization, organization_id)
    if org is None:
        raise NotFound("no such organisation")
    return org.currency


def _normalised(definition: Tariff) -> dict[str, Any]:
    return codec.to_json(definition)


def _can(actor: Actor, organization_id: int) -> None:
    if not actor.principal.can(Permission.BILLING_MANAGE, organization_id):
        raise Forbidden("requires billing:manage at this organisation")


async def create_tariff(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    *,
    organization_id: int,
    name: str,
    definition: dict[str, Any],
) -> StoredTariff:
    _can(actor, organization_id)
    name = _check_name(name)
    async with db() as s:
        currency = await _currency(s, organization_id)
        tariff = codec.from_json(definition, currency=currency, time_zone="UTC")  # validates
        taken = await s.exec(
            select(StoredTariff.id).where(  # type: ignore[call-overload]
                StoredTariff.organization_id == organization_id, StoredTariff.name == name
            )
        )
        if taken.first() is not None:
            raise InvalidInput(f"a tariff named {name!r} exists already")
        row = StoredTariff(organization_id=organization_id, name=name)
        s.add(row)
        await s.flush()
        s.add(TariffVersion(tariff_id=row.id or 0, version=1, definition=_normalised(tariff)))
        s.add(
            audit.entry(
                actor,
                action="tariff.create",
                result="OK",
                organization_id=organization_id,
                target_type="tariff",
                target_id=row.id,
                detail={"name": name},
            )
        )
        await s.commit()
        return row


async def _owned(s: AsyncSession, actor: Actor, tariff_id: int) -> StoredTariff:
    found = await repo.tariffs_by_ids(s, actor.principal, [tariff_id], Permission.BILLING_READ)
    if tariff_id not in found:
        raise NotFound("no such tariff")
    locking = (await s.connection()).dialect.name == "postgresql"  # serialises version numbers
    row = await s.get(StoredTariff, tariff_id, with_for_update=locking)
    assert row is not None
    _can(actor, row.organization_id)
    return row


async def new_version(
    db: async_sessionmaker[AsyncSession], actor: Actor, *, tariff_id: int, definition: dict[str, Any]
) -> TariffVersion:
    """The tariff's next version; sessions already started keep theirs."""
    async with db() as s:
        row = await _owned(s, actor, tariff_id)
        if row.archived_at is not None:
            raise InvalidInput("the tariff is archived")
        tariff = codec.from_json(
            definition, currency=await _currency(s, row.organization_id), time_zone="UTC"
        )
        number = await repo.next_version(await s.connection(), tariff_id)
        version = TariffVersion(tariff_id=tariff_id, version=number, definition=_normalised(tariff))
        s.add(version)
        s.add(
            audit.entry(
                actor,
                action="tariff.version",
                result="OK",
                organization_id=row.organization_id,
                target_type="tariff",
                target_id=tariff_id,
                detail={"version": number},
            )
        )
        await s.commit()
        return version


async def archive_tariff(
    db: async_sessionmaker[AsyncSession], actor: Actor, *, tariff_id: int
) -> StoredTariff:
    """No new session gets it (its assignments stop applying); past sessions keep it."""
    async with db() as s:
        row = await _owned(s, actor, tariff_id)
        if row.archived_at is None:
            row.archived_at = utcnow()
            s.add(row)
            s.add(
                audit.entry(
                    actor,
                    action="tariff.archive",
                    result="OK",
                    organization_id=row.organization_id,
                    target_type="tariff",
                    target_id=tariff_id,
                )
            )
            await s.commit()
        return row


async def assign_tariff(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    *,
    tariff_id: int,
    location_id: int | None,
    station_id: int | None,
    connector_id: int | None,
    plan_id: int | None = None,
) -> TariffAssignment:
    if location_id is not None and station_id is not None:
        raise InvalidInput("name a location or a station (with an optional connector), not both")
    if connector_id is not None and station_id is None:
        raise InvalidInput("a connector is named with its station")
    async with db() as s:
        row = await _owned(s, actor, tariff_id)
        if row.archived_at is not None:
            raise InvalidInput("the tariff is archived")
        org = row.organization_id
        if location_id is not None:
            location = await s.get(Location, location_id)
            if location is None or location.organization_id != org:
                raise NotFound("no such location in the tariff's organisation")
        if station_id is not None:
            station = await s.get(ChargingStation, station_id)
            if station is None or station.organization_id != org:
                raise NotFound("no such station in the tariff's organisation")
            if connector_id is not None:
                plug = select(Connector.id).where(  # type: ignore[call-overload]
                    Connector.station_id == station_id, Connector.connector_id == connector_id
                )
                if (await s.exec(plug)).first() is None:
                    raise NotFound(f"the station has no connector {connector_id}")
        if plan_id is not None:
            plan = await s.get(MembershipPlan, plan_id)
            if plan is None or plan.organization_id != org:
                raise NotFound("no such plan in the tariff's organisation")
        now = utcnow()
        a = ASSIGNMENT.c
        await (await s.connection()).execute(
            update(ASSIGNMENT)
            .where(
                a.organization_id == org,
                _same(a.location_id, location_id),
                _same(a.station_id, station_id),
                _same(a.connector_id, connector_id),
                _same(a.plan_id, plan_id),
                a.removed_at.is_(None),
            )
            .values(removed_at=now)
        )
        assignment = TariffAssignment(
            organization_id=org,
            tariff_id=tariff_id,
            location_id=location_id,
            station_id=station_id,
            connector_id=connector_id,
            plan_id=plan_id,
            created_at=now,
        )
        s.add(assignment)
        s.add(
            audit.entry(
                actor,
                action="tariff.assign",
                result="OK",
                organization_id=org,
                target_type="tariff",
                target_id=tariff_id,
                detail={"location_id": location_id, "station_id": station_id, "connector_id": connector_id},
            )
        )
        await s.commit()
        return assignment


async def unassign_tariff(
    db: async_sessionmaker[AsyncSession], actor: Actor, *, assignment_id: int
) -> TariffAssignment:
    async with db() as s:
        found = await s.get(TariffAssignment, assignment_id)
        if found is None or not actor.principal.can(Permission.BILLING_READ, found.organization_id):
            raise NotFound("no such tariff assignment")
        _can(actor, found.organization_id)
        if found.removed_at is None:
            found.removed_at = utcnow()
            s.add(found)
            s.add(
                audit.entry(
                    actor,
                    action="tariff.unassign",
                    result="OK",
                    organization_id=found.organization_id,
                    target_type="tariff",
                    target_id=found.tariff_id,
                    detail={"assignment_id": assignment_id},
                )
            )
            await s.commit()
        return found
