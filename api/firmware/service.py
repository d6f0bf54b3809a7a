"""Creating a firmware campaign and moving it through its states.

A campaign freezes its station list at creation: the filter (stations, locations, vendor and
model, current firmware versions) is resolved once against the caller's organisation, and the
matching stations are numbered into waves of `wave_size` in id order. Nothing is sent here:
the progress job (`api.firmware.progress`) sends each wave when it falls due and follows every
station to the end, so one replica at a time decides what goes out.

States: draft → running ⇄ paused → completed; draft, running and paused → aborted. Aborting
skips every station not sent to yet; commands already sent are not recalled (OCPP 1.6 has no
way to cancel an accepted UpdateFirmware) and the stations updating are still followed.
Every transition is checked under a row lock and written to the audit log. Whoever starts
or resumes a campaign is who its commands are then sent for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit import service as audit
from api.audit.service import Actor
from api.auth.roles import Permission
from api.firmware import repository
from api.firmware.errors import EmptyStationFilter, InvalidCampaignTransition
from api.firmware.repository import StationFilter
from schema.campaign_models import (
    CampaignState,
    CampaignStationState,
    FirmwareCampaign,
    FirmwareCampaignStation,
)
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.models import ChargingStation
from schema.timeutil import utcnow

# A campaign larger than this is several campaigns: it keeps one creation transaction (and one
# stations page of counts) bounded.
MAX_CAMPAIGN_STATIONS = 10_000
# One wave is one burst of commands through the bus, like a bulk command.
MAX_WAVE_SIZE = 1_000
MAX_WAVE_INTERVAL_S = 30 * 86_400
# Long enough for a slow download and install over a cellular link; a station silent longer
# than its campaign's timeout counts as failed.
DEFAULT_STATION_TIMEOUT_S = 2 * 3600
MIN_STATION_TIMEOUT_S = 60
MAX_STATION_TIMEOUT_S = 7 * 86_400
MAX_RETRIES = 10
MAX_RETRY_INTERVAL_S = 86_400
MAX_FILTER_VALUES = 1_000
URL_SCHEMES = frozenset({"http", "https", "ftp", "ftps"})
MAX_LOCATION_LENGTH = 512  # 2.0.1 Firmware.location; 1.6 anyURI has no bound of its own
MAX_NAME_LENGTH = 100
MAX_VERSION_LENGTH = 50

S = CampaignState
# Which states each action leaves from.
TRANSITIONS: dict[str, tuple[frozenset[CampaignState], CampaignState]] = {
    "start": (frozenset({S.DRAFT}), S.RUNNING),
    "pause": (frozenset({S.RUNNING}), S.PAUSED),
    "resume": (frozenset({S.PAUSED}), S.RUNNING),
    "abort": (frozenset({S.DRAFT, S.RUNNING, S.PAUSED}), S.ABORTED),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignSpec:
    name: str
    location: str
    target_version: str | None = None
    wave_size: int = 10
    wave_interval_s: int | None = None
    max_failure_percent: int = 20
    station_timeout_s: int = DEFAULT_STATION_TIMEOUT_S
    retries: int | None = None
    retry_interval_s: int | None = None


def _validate(spec: CampaignSpec, f: StationFilter) -> None:
    if not 1 <= len(spec.name.strip()) <= MAX_NAME_LENGTH:
        raise InvalidInput(f"name must be 1–{MAX_NAME_LENGTH} characters")
    parts = urlsplit(spec.location)
    if (
        parts.scheme.lower() not in URL_SCHEMES
        or not parts.netloc
        or len(spec.location) > MAX_LOCATION_LENGTH
    ):
        raise InvalidInput(
            f"location must be an http(s) or ftp(s) URL of at most {MAX_LOCATION_LENGTH} characters"
        )
    if spec.target_version is not None and not 1 <= len(spec.target_version) <= MAX_VERSION_LENGTH:
        raise InvalidInput(f"targetVersion must be 1–{MAX_VERSION_LENGTH} characters")
    if not 1 <= spec.wave_size <= MAX_WAVE_SIZE:
        raise InvalidInput(f"waveSize must be 1–{MAX_WAVE_SIZE}")
    if spec.wave_interval_s is not None and not 0 <= spec.wave_interval_s <= MAX_WAVE_INTERVAL_S:
        raise InvalidInput(f"waveIntervalSeconds must be 0–{MAX_WAVE_INTERVAL_S}")
    if not 0 <= spec.max_failure_percent <= 100:
        raise InvalidInput("maxFailurePercent must be 0–100")
    if not MIN_STATION_TIMEOUT_S <= spec.station_timeout_s <= MAX_STATION_TIMEOUT_S:
        raise InvalidInput(f"stationTimeoutSeconds must be {MIN_STATION_TIMEOUT_S}–{MAX_STATION_TIMEOUT_S}")
    if spec.retries is not None and not 0 <= spec.retries <= MAX_RETRIES:
        raise InvalidInput(f"retries must be 0–{MAX_RETRIES}")
    if spec.retry_interval_s is not None and not 0 <= spec.retry_interval_s <= MAX_RETRY_INTERVAL_S:
        raise InvalidInput(f"retryIntervalSeconds must be 0–{MAX_RETRY_INTERVAL_S}")
    lists = (f.station_ids, f.location_ids, f.firmware_versions)
    if any(len(values) > MAX_FILTER_VALUES for values in lists):
        raise InvalidInput(f"at most {MAX_FILTER_VALUES} values per filter")
    if not any(lists) and f.vendor is None and f.model is None:
        # A fleet-wide rollout is never the default: it must be asked for by naming something.
        raise InvalidInput("name stations, locations, a vendor or model, or firmware versions to update")


def _organization(actor: Actor, organization_id: int | None) -> int:
    """The organisation named, or the caller's only one with stations:diagnose."""
    p = actor.principal
    if organization_id is None:
        orgs = p.organizations_with(Permission.STATIONS_DIAGNOSE)
        if orgs is not None and not orgs:
            raise Forbidden("requires stations:diagnose in an organisation")
        if orgs is None or len(orgs) != 1:
            raise InvalidInput("organizationId is required")
        organization_id = next(iter(orgs))
    if not p.can(Permission.STATIONS_DIAGNOSE, organization_id):
        raise Forbidden("requires stations:diagnose in this organisation")
    return organization_id


async def _check_named_stations(s: AsyncSession, organization_id: int, station_ids: tuple[int, ...]) -> None:
    """Stations named one by one must all be the organisation's: a typo fails the request
    instead of silently shrinking the rollout. Other tenants' stations read as unknown."""
    if not station_ids:
        return
    stmt = select(col(ChargingStation.id)).where(
        col(ChargingStation.id).in_(station_ids), col(ChargingStation.organization_id) == organization_id
    )
    found = set((await s.exec(stmt)).all())
    missing = [i for i in station_ids if i not in found]
    if missing:
        raise NotFound(f"no such stations: {missing[:10]}")


async def create_campaign(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    *,
    organization_id: int | None,
    spec: CampaignSpec,
    station_filter: StationFilter,
    start: bool = False,
) -> FirmwareCampaign:
    _validate(spec, station_filter)
    org = _organization(actor, organization_id)
    p = actor.principal
    now = utcnow()
    async with db() as s:
        await _check_named_stations(s, org, station_filter.station_ids)
        station_ids = await repository.matching_stations(s, org, station_filter, MAX_CAMPAIGN_STATIONS)
        if not station_ids:
            raise EmptyStationFilter("no station of the organisation matches the filter")
        if len(station_ids) > MAX_CAMPAIGN_STATIONS:
            raise InvalidInput(f"the filter matches more than {MAX_CAMPAIGN_STATIONS} stations: narrow it")
        versions = await _versions(s, station_ids)
        campaign = FirmwareCampaign(
            organization_id=org,
            name=spec.name.strip(),
            location=spec.location,
            target_version=spec.target_version,
            retries=spec.retries,
            retry_interval_s=spec.retry_interval_s,
            wave_size=spec.wave_size,
            wave_interval_s=spec.wave_interval_s,
            max_failure_percent=spec.max_failure_percent,
            station_timeout_s=spec.station_timeout_s,
            wave_count=(len(station_ids) + spec.wave_size - 1) // spec.wave_size,
            state=(S.RUNNING if start else S.DRAFT).value,
            started_at=now if start else None,
            created_by_kind=p.kind.value,
            created_by_user_id=p.user_id,
            created_by_api_key_id=p.api_key_id,
            created_by_label=p.actor_label[:120],
            **(_run_by(actor) if start else {}),
            created_at=now,
            updated_at=now,
        )
        s.add(campaign)
        await s.flush()
        s.add_all(
            [
                _member(campaign, station_id, i, versions.get(station_id), now)
                for i, station_id in enumerate(station_ids)
            ]
        )
        await s.commit()
    await audit.record(
        db,
        audit.entry(
            actor,
            action="firmware_campaign.create",
            result="OK",
            organization_id=org,
            target_type="firmware_campaign",
            target_id=campaign.id,
            detail={"stations": len(station_ids), "location": spec.location, "started": start},
        ),
    )
    return campaign


def _run_by(actor: Actor) -> dict[str, Any]:
    """Whoever starts or resumes a campaign is who it then acts for (see progress.py)."""
    p = actor.principal
    return {
        "run_by_kind": p.kind.value,
        "run_by_user_id": p.user_id,
        "run_by_api_key_id": p.api_key_id,
        "run_by_label": p.actor_label[:120],
    }


async def _versions(s: AsyncSession, station_ids: list[int]) -> dict[int, str | None]:
    stmt = select(ChargingStation.id, ChargingStation.firmware_version).where(
        col(ChargingStation.id).in_(station_ids)
    )
    return {int(i or 0): v for i, v in (await s.exec(stmt)).all()}


def _member(
    campaign: FirmwareCampaign, station_id: int, index: int, version: str | None, now: datetime
) -> FirmwareCampaignStation:
    """A station already running the target version needs nothing: it is skipped up front."""
    current = campaign.target_version is not None and version == campaign.target_version
    return FirmwareCampaignStation(
        campaign_id=campaign.id or 0,
        station_id=station_id,
        wave=index // campaign.wave_size + 1,
        state=(CampaignStationState.SKIPPED if current else CampaignStationState.QUEUED).value,
        message=f"already runs {version}" if current else None,
        updated_at=now,
    )


async def transition(
    db: async_sessionmaker[AsyncSession], actor: Actor, campaign_id: int, action: str
) -> FirmwareCampaign:
    """start, pause, resume or abort; InvalidCampaignTransition from any other state."""
    sources, target = TRANSITIONS[action]
    now = utcnow()
    async with db() as s:
        visible = (await repository.campaigns_by_ids(s, actor.principal, [campaign_id])).get(campaign_id)
        if visible is None:
            raise NotFound("no such firmware campaign")
        if not actor.principal.can(Permission.STATIONS_DIAGNOSE, visible.organization_id):
            raise Forbidden("requires stations:diagnose in the campaign's organisation")
        campaign = await repository.lock_campaign(s, campaign_id)
        assert campaign is not None
        state = CampaignState(campaign.state)
        if state not in sources:
            raise InvalidCampaignTransition(f"cannot {action} a campaign that is {state.value}")
        values: dict[str, Any] = {"state": target.value, "updated_at": now}
        if action == "start":
            values.update(started_at=now, **_run_by(actor))
        elif action == "pause":
            values["paused_reason"] = f"paused by {actor.principal.actor_label}"[:200]
        elif action == "resume":
            # The failures that paused it were seen: only later waves count against the threshold.
            values.update(paused_reason=None, tolerated_wave=campaign.current_wave, **_run_by(actor))
        else:
            values["finished_at"] = now
            await repository.skip_queued(
                s, campaign_id, f"campaign aborted by {actor.principal.actor_label}", now
            )
        for key, value in values.items():
            setattr(campaign, key, value)
        s.add(campaign)
        await s.commit()
        await s.refresh(campaign)
    await audit.record(
        db,
        audit.entry(
            actor,
            action=f"firmware_campaign.{action}",
            result="OK",
            organization_id=campaign.organization_id,
            target_type="firmware_campaign",
            target_id=campaign_id,
            detail={"from": state.value, "to": target.value},
        ),
    )
    return campaign
