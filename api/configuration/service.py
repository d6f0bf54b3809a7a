"""Configuration templates: writing them, the drift of the stations they govern, and pushing
their expected values to stations.

Which template governs a station: the organisation's templates for the station's exact vendor
and model (as its BootNotification reported them), the one with the longest firmware prefix
that begins the station's firmware version winning. A station governed by a firmware-specific
template is not counted under the model's general one, so two templates never pull one
station two ways.

Applying sends ChangeConfiguration through `api.control.operations.send_logged`, one key at a
time in key order (a station takes one call at a time anyway), so every change leaves the same
command-log and audit trail as a hand-made one. Only keys that are drifted, writable on the
station and flagged `apply` are sent; the rest come back with the reason they were not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit import service as audit
from api.audit.service import Actor
from api.auth.principal import Principal
from api.auth.roles import Permission
from api.configuration import repository
from api.configuration.drift import (
    KeyDrift,
    KeyState,
    StationDrift,
    best_template,
    compute_drift,
    is_secret_key,
    normalize_key,
)
from api.configuration.errors import TemplateNameTaken
from api.control import operations
from api.control.service import CommandOutcome
from api.network import repository as network
from schema.bus import Bus
from schema.commands import ChangeConfiguration
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.template_models import ConfigurationTemplate
from schema.timeutil import utcnow

# A template is a model's handful of settings that matter (intervals, measurands, auth
# behaviour), not a dump of its whole configuration; 200 covers the largest 1.6 key set.
MAX_TEMPLATE_ENTRIES = 200
MAX_KEY_CHARS = 50  # station_configuration_key.key (OCPP 1.6 CiString50)
MAX_VALUE_CHARS = 500  # OCPP 1.6 ChangeConfiguration value: CiString500
MAX_NAME_CHARS = 80
MAX_MODEL_CHARS = 50
# Stations a template's drift lists or one apply reaches: a fleet of one model beyond this is
# a campaign (the same bound as bulk commands).
MAX_TEMPLATE_STATIONS = operations.MAX_BULK_STATIONS
# Stations changed at once by one apply; each holds a station's keys in sequence.
APPLY_CONCURRENCY = 50
# Outcomes after which sending the station its next key would only wait for the same failure.
UNREACHABLE = frozenset({CommandOutcome.STATION_OFFLINE, CommandOutcome.TIMED_OUT})


@dataclass(frozen=True, slots=True)
class EntryInput:
    key: str
    value: str
    apply: bool = False


@dataclass(frozen=True, slots=True)
class TemplateInput:
    organization_id: int
    name: str
    vendor: str
    model: str
    firmware_prefix: str | None
    entries: Sequence[EntryInput]


@dataclass(frozen=True, slots=True)
class Governed:
    """A station, the template that governs it (if any) and its drift from it."""

    station: Any
    template: Any | None
    drift: StationDrift | None


@dataclass(frozen=True, slots=True)
class KeyResult:
    key: str
    expected: str
    previous: str | None
    state: KeyState
    sent: bool
    outcome: CommandOutcome | None = None
    station_status: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class StationApplyResult:
    station_id: int
    template_id: int | None
    message: str
    keys: list[KeyResult] = field(default_factory=list)


# --- writing templates ---


def _text(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if not value or len(value) > limit:
        raise InvalidInput(f"{what} must be 1–{limit} characters")
    return value


def _entries(entries: Sequence[EntryInput]) -> list[dict[str, Any]]:
    if len(entries) > MAX_TEMPLATE_ENTRIES:
        raise InvalidInput(f"at most {MAX_TEMPLATE_ENTRIES} keys per template")
    seen: set[str] = set()
    out = []
    for e in entries:
        key = _text(e.key, "a key", MAX_KEY_CHARS)
        if is_secret_key(key):
            raise InvalidInput(f"{key} is the station's password: it is never part of a template")
        if key.lower() in seen:
            raise InvalidInput(f"{key} appears twice (keys compare without regard to case)")
        seen.add(key.lower())
        if len(e.value) > MAX_VALUE_CHARS:
            raise InvalidInput(f"the value of {key} is longer than {MAX_VALUE_CHARS} characters")
        out.append({"key": key, "value": e.value, "apply": e.apply})
    return out


def _fields(i: TemplateInput) -> dict[str, Any]:
    prefix = (i.firmware_prefix or "").strip() or None
    if prefix is not None and len(prefix) > MAX_MODEL_CHARS:
        raise InvalidInput(f"firmwarePrefix is at most {MAX_MODEL_CHARS} characters")
    return {
        "name": _text(i.name, "name", MAX_NAME_CHARS),
        "vendor": _text(i.vendor, "vendor", MAX_MODEL_CHARS),
        "model": _text(i.model, "model", MAX_MODEL_CHARS),
        "firmware_prefix": prefix,
    }


def _may_write(principal: Principal, organization_id: int) -> None:
    if not principal.can(Permission.STATIONS_CONTROL, organization_id):
        raise Forbidden("requires stations:control at this organisation")


async def _writable(s: AsyncSession, principal: Principal, template_id: int) -> ConfigurationTemplate:
    """The template, if the caller may see it (stations:diagnose or :control in its
    organisation, else NOT_FOUND) and change it (stations:control, else FORBIDDEN)."""
    template = await s.get(ConfigurationTemplate, template_id)
    org = None if template is None else template.organization_id
    if template is None or not (
        principal.can(Permission.STATIONS_DIAGNOSE, org) or principal.can(Permission.STATIONS_CONTROL, org)
    ):
        raise NotFound("no such configuration template")
    _may_write(principal, template.organization_id)
    return template


def _audit(actor: Actor, action: str, template: ConfigurationTemplate, detail: dict[str, Any]) -> Any:
    return audit.entry(
        actor,
        action=f"configuration_template.{action}",
        result="OK",
        organization_id=template.organization_id,
        target_type="configuration_template",
        target_id=template.id,
        detail=detail,
    )


async def create_template(
    db: async_sessionmaker[AsyncSession], actor: Actor, i: TemplateInput
) -> ConfigurationTemplate:
    _may_write(actor.principal, i.organization_id)
    fields, entries = _fields(i), _entries(i.entries)
    label = actor.principal.actor_label[:120]
    async with db() as s:
        if await repository.name_taken(s, i.organization_id, fields["name"]):
            raise TemplateNameTaken(f"a template named {fields['name']!r} exists")
        template = ConfigurationTemplate(
            organization_id=i.organization_id, created_by=label, updated_by=label, **fields
        )
        s.add(template)
        try:
            await s.flush()
        except IntegrityError:  # a concurrent create with the same name
            raise TemplateNameTaken(f"a template named {fields['name']!r} exists") from None
        await repository.replace_entries(s, template.id or 0, entries)
        s.add(_audit(actor, "create", template, {"name": template.name, "keys": len(entries)}))
        await s.commit()
        await s.refresh(template)
        return template


async def update_template(
    db: async_sessionmaker[AsyncSession], actor: Actor, template_id: int, i: TemplateInput
) -> ConfigurationTemplate:
    """Replace the template's match rule and entries (its organisation stays)."""
    async with db() as s:
        template = await _writable(s, actor.principal, template_id)
        fields, entries = _fields(i), _entries(i.entries)
        if await repository.name_taken(s, template.organization_id, fields["name"], but=template_id):
            raise TemplateNameTaken(f"a template named {fields['name']!r} exists")
        for k, v in fields.items():
            setattr(template, k, v)
        template.updated_at = utcnow()
        template.updated_by = actor.principal.actor_label[:120]
        s.add(template)
        await repository.replace_entries(s, template_id, entries)
        s.add(_audit(actor, "update", template, {"name": template.name, "keys": len(entries)}))
        try:
            await s.commit()
        except IntegrityError:
            raise TemplateNameTaken(f"a template named {fields['name']!r} exists") from None
        await s.refresh(template)
        return template


async def delete_template(db: async_sessionmaker[AsyncSession], actor: Actor, template_id: int) -> None:
    async with db() as s:
        template = await _writable(s, actor.principal, template_id)
        s.add(_audit(actor, "delete", template, {"name": template.name}))
        await repository.delete_template(s, template_id)
        await s.commit()


# --- drift ---


async def govern(s: AsyncSession, stations: Sequence[Any]) -> list[Governed]:
    """Each station with its governing template and its drift from it."""
    candidates = await repository.templates_for_models(
        s, {(st.organization_id, st.vendor, st.model) for st in stations}
    )
    chosen = {st.id: best_template(candidates, st) for st in stations}
    template_ids = list({t.id for t in chosen.values() if t is not None})
    entries = await repository.entries_of(s, template_ids) if template_ids else {}
    governed_ids = [st.id for st in stations if chosen[st.id] is not None]
    keys = {normalize_key(e.key) for found in entries.values() for e in found}
    stored = await repository.stored_configuration(s, governed_ids, keys) if governed_ids else {}
    now = utcnow()
    out = []
    for st in stations:
        template = chosen[st.id]
        drift = None
        if template is not None:
            drift = compute_drift(
                station_id=st.id,
                template_id=template.id,
                entries=entries.get(template.id, []),
                reported=stored.get(st.id, []),
                read_at=st.configuration_read_at,
                now=now,
            )
        out.append(Governed(st, template, drift))
    return out


async def station_drift(s: AsyncSession, principal: Principal, station_id: int) -> Governed | None:
    """The station's drift from its template; None when the caller may not diagnose it."""
    station = await repository.diagnosable_station(s, principal, station_id)
    if station is None:
        return None
    [governed] = await govern(s, [station])
    return governed


async def template_drift(s: AsyncSession, template: Any) -> list[Governed]:
    """Drift of every station the template governs (the caller has read the template, so may
    diagnose its organisation's stations)."""
    stations = await repository.stations_of_model(s, template, limit=MAX_TEMPLATE_STATIONS)
    return [g for g in await govern(s, stations) if g.template is not None and g.template.id == template.id]


# --- applying ---


def _skip_reason(k: KeyDrift) -> str:
    if k.state is KeyState.MISSING:
        return "the station did not report this key"
    if k.state is KeyState.READ_ONLY:
        return "read-only on this station: change it on site or by firmware"
    return "not flagged apply in the template"


async def _apply_one(
    db: async_sessionmaker[AsyncSession], bus: Bus, actor: Actor, station: Any, g: Governed, timeout_s: float
) -> StationApplyResult:
    if g.template is None or g.drift is None:
        return StationApplyResult(station.id, None, "no configuration template matches this station")
    drift = g.drift
    if drift.read_at is None:
        return StationApplyResult(
            station.id, g.template.id, "its configuration has not been read yet: read it first"
        )
    results: list[KeyResult] = []
    unreachable: operations.CommandResult | None = None
    for k in drift.keys:
        base: dict[str, Any] = {"key": k.key, "expected": k.expected, "previous": k.actual, "state": k.state}
        if not k.fixable:
            results.append(KeyResult(**base, sent=False, message=_skip_reason(k)))
            continue
        if unreachable is not None:
            results.append(KeyResult(**base, sent=False, message=f"not sent: {unreachable.message}"))
            continue
        command = ChangeConfiguration(key=k.station_key or k.key, value=k.expected)
        r = await operations.send_logged(db, bus, actor, station, command, timeout_s)
        results.append(
            KeyResult(
                **base, sent=True, outcome=r.outcome, station_status=r.station_status, message=r.message
            )
        )
        if r.outcome in UNREACHABLE:
            unreachable = r
    sent = sum(1 for r in results if r.sent)
    accepted = sum(1 for r in results if r.outcome is CommandOutcome.ACCEPTED)
    message = f"{accepted} of {sent} changes accepted" if sent else "nothing to change"
    if drift.stale:
        message += " (its stored configuration is stale: read it to be sure)"
    return StationApplyResult(station.id, g.template.id, message, results)


async def apply_template(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    *,
    station_ids: Sequence[int] | None,
    template_id: int | None,
    timeout_s: float,
) -> list[StationApplyResult]:
    """Push the governing template's expected values to the stations named, or to every
    station the template governs. All or nothing on access, like bulk commands: a station or
    template the caller may not control fails the request before anything is sent."""
    if (station_ids is None) == (template_id is None):
        raise InvalidInput("name either stationIds or templateId")
    principal = actor.principal
    async with db() as s:
        if template_id is not None:
            template = await _writable(s, principal, template_id)
            governed = await template_drift(s, template)
        else:
            unique = list(dict.fromkeys(station_ids or ()))
            if not unique:
                raise InvalidInput("name at least one station")
            if len(unique) > MAX_TEMPLATE_STATIONS:
                raise InvalidInput(f"at most {MAX_TEMPLATE_STATIONS} stations at once")
            found = await network.stations_by_ids(s, principal, unique)
            missing = [i for i in unique if i not in found]
            if missing:
                raise NotFound("no such station" if len(unique) == 1 else f"no such stations: {missing[:10]}")
            for st in found.values():
                if not principal.can(Permission.STATIONS_CONTROL, st.organization_id):
                    raise Forbidden("requires stations:control at this station's organisation")
            governed = await govern(s, [found[i] for i in unique])
    gate = asyncio.Semaphore(APPLY_CONCURRENCY)

    async def one(g: Governed) -> StationApplyResult:
        async with gate:
            return await _apply_one(db, bus, actor, g.station, g, timeout_s)

    return list(await asyncio.gather(*(one(g) for g in governed)))
