"""Bringing stations into the network: registration with a generated password (shown once,
stored hashed), approval of stations that connected unannounced, and password rotation over
OCPP that never locks a station out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.accounts.passwords import hash_password
from api.audit import service as audit
from api.audit.service import Actor
from api.auth.roles import Permission
from api.control import operations
from api.control.service import CommandOutcome
from schema.bus import Bus
from schema.commands import ChangeConfiguration
from schema.enums import RegistrationStatus
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.models import ChargingStation, Connector, Location
from schema.timeutil import utcnow

# 20 random bytes as 40 hex characters: the longest password OCPP 1.6's security whitepaper
# (AuthorizationKey) and 2.0.1 (BasicAuthPassword) allow, in characters every charger takes.
PASSWORD_BYTES = 20
MAX_CHARGE_POINT_ID = 48
MAX_CONNECTORS = 32
PROFILES_WITH_PASSWORD = (1, 2)
AUTHORIZATION_KEY = "AuthorizationKey"


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    connector_id: int
    connector_type: str = "Type2"
    current_type: str = "AC"
    max_power_w: int = 22_000


def new_station_password() -> str:
    return secrets.token_hex(PASSWORD_BYTES)


async def _location(s: AsyncSession, actor: Actor, location_id: int) -> Location:
    location = (await s.exec(select(Location).where(col(Location.id) == location_id))).first()
    if location is None:
        raise NotFound("no such location")
    if not actor.principal.can(Permission.NETWORK_MANAGE, location.organization_id):
        raise Forbidden("requires network:manage in the location's organisation")
    return location


def _check_connectors(connectors: list[ConnectorSpec]) -> None:
    ids = [c.connector_id for c in connectors]
    if not 1 <= len(ids) <= MAX_CONNECTORS:
        raise InvalidInput(f"a station has 1–{MAX_CONNECTORS} connectors")
    if sorted(ids) != list(range(1, len(ids) + 1)):
        raise InvalidInput("connector ids are 1, 2, … without gaps (OCPP numbering)")
    for c in connectors:
        if c.current_type not in ("AC", "DC") or not 1_000 <= c.max_power_w <= 1_000_000:
            raise InvalidInput("currentType is AC or DC and maxPowerW 1 000–1 000 000")


async def register_station(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    *,
    location_id: int,
    charge_point_id: str,
    connectors: list[ConnectorSpec],
    security_profile: int,
) -> tuple[ChargingStation, str | None]:
    """The station and, for profiles 1 and 2, its password — returned this once only."""
    cpid = charge_point_id.strip()
    if not 1 <= len(cpid) <= MAX_CHARGE_POINT_ID or "/" in cpid or any(ch.isspace() for ch in cpid):
        raise InvalidInput(f"chargePointId: 1–{MAX_CHARGE_POINT_ID} characters, no '/' or spaces")
    if security_profile not in (0, 1, 2, 3):
        raise InvalidInput("securityProfile is 0, 1, 2 or 3")
    _check_connectors(connectors)
    password = new_station_password() if security_profile in PROFILES_WITH_PASSWORD else None
    password_hash = None if password is None else await hash_password(password)
    async with db() as s:
        location = await _location(s, actor, location_id)
        same_id = select(ChargingStation.id).where(col(ChargingStation.charge_point_id) == cpid)
        taken = (await s.exec(same_id)).first()
        if taken is not None:
            raise InvalidInput(f"{cpid} is already registered")
        station = ChargingStation(
            organization_id=location.organization_id,
            location_id=location.id,
            charge_point_id=cpid,
            password_hash=password_hash,
            password_changed_at=None if password is None else utcnow(),
            security_profile=security_profile,
            registration_status=RegistrationStatus.ACCEPTED.value,
        )
        s.add(station)
        await s.flush()
        for c in connectors:
            s.add(
                Connector(
                    station_id=station.id or 0,
                    connector_id=c.connector_id,
                    connector_type=c.connector_type,
                    current_type=c.current_type,
                    max_power_w=c.max_power_w,
                )
            )
        s.add(
            audit.entry(
                actor,
                action="station.register",
                result="OK",
                organization_id=location.organization_id,
                target_type="station",
                target_id=station.id,
                detail={"charge_point_id": cpid, "security_profile": security_profile},
            )
        )
        await s.commit()
    return station, password


async def decide_registration(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    *,
    station_id: int,
    location_id: int | None,
    accept: bool,
) -> ChargingStation:
    """Approve (into a location of the caller's organisation) or reject a station; its next
    BootNotification gets the answer."""
    async with db() as s:
        station = (await s.exec(select(ChargingStation).where(col(ChargingStation.id) == station_id))).first()
        if station is None:
            raise NotFound("no such station")
        if location_id is not None:
            location = await _location(s, actor, location_id)
            if station.organization_id not in (None, location.organization_id):
                raise NotFound("no such station")
            station.organization_id, station.location_id = location.organization_id, location.id
        elif not actor.principal.can(Permission.NETWORK_MANAGE, station.organization_id):
            raise (
                NotFound("no such station")
                if station.organization_id is None
                else Forbidden("requires network:manage in the station's organisation")
            )
        if accept and station.location_id is None:
            raise InvalidInput("name the location the approved station belongs to")
        status = RegistrationStatus.ACCEPTED if accept else RegistrationStatus.REJECTED
        station.registration_status = status.value
        s.add(station)
        s.add(
            audit.entry(
                actor,
                action="station.approve" if accept else "station.reject",
                result="OK",
                organization_id=station.organization_id,
                target_type="station",
                target_id=station_id,
            )
        )
        await s.commit()
        await s.refresh(station)
    return station


async def rotate_password(
    db: async_sessionmaker[AsyncSession], bus: Bus, actor: Actor, *, station_id: int, timeout_s: float
) -> tuple[operations.CommandResult, str | None]:
    """Tell the station a new password; it stays valid next to the old one until the station
    first connects with it (gateway), so a station that misses the change keeps working."""
    async with db() as s:
        station = (await s.exec(select(ChargingStation).where(col(ChargingStation.id) == station_id))).first()
    if station is None or not actor.principal.can(Permission.NETWORK_MANAGE, station.organization_id):
        raise (
            NotFound("no such station")
            if station is None
            else Forbidden("requires network:manage in the station's organisation")
        )
    if station.security_profile not in PROFILES_WITH_PASSWORD and station.password_hash is None:
        raise InvalidInput("this station does not use a password (security profile 0 or 3)")
    password = new_station_password()
    pending = await hash_password(password)
    await _set_pending(db, station_id, pending, None)
    result = await operations.run(
        db,
        bus,
        actor,
        station_id=station_id,
        command=ChangeConfiguration(key=AUTHORIZATION_KEY, value=password),
        timeout_s=timeout_s,
        permission=Permission.NETWORK_MANAGE,
    )
    if result.outcome is CommandOutcome.ACCEPTED:
        return result, password
    await _set_pending(db, station_id, None, pending)  # the station will not use it: forget it
    return result, None


async def _set_pending(
    db: async_sessionmaker[AsyncSession], station_id: int, value: str | None, only_if: str | None
) -> None:
    async with db() as s:
        stmt = update(ChargingStation).where(col(ChargingStation.id) == station_id)
        if only_if is not None:
            stmt = stmt.where(col(ChargingStation.pending_password_hash) == only_if)
        values: dict[str, object] = {"pending_password_hash": value}
        if value is not None:
            values["password_changed_at"] = utcnow()
        await s.exec(stmt.values(**values))  # type: ignore[call-overload]
        await s.commit()
