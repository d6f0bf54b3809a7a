"""GraphQL shapes of configuration templates, drift and the 2.0.1 device model."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeAlias

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.roles import Permission
from api.configuration import repository, service
from api.configuration.device_model import Component
from api.configuration.drift import DriftStatus, KeyState
from api.control.mutations import CommandOutcomeGQL
from api.network.types import StationNode, int_ids, station_node
from api.pagination import clamp_first
from schema.errors import Forbidden

strawberry.enum(
    KeyState,
    name="ConfigurationKeyDriftState",
    description="DRIFTED: reported, writable, another value; MISSING: the station did not report "
    "the key; READ_ONLY: reported read-only with another value, so ChargeNet cannot fix it.",
)
strawberry.enum(
    DriftStatus,
    name="ConfigurationDriftStatus",
    description="NOT_READ: ChargeNet has not read the station's configuration yet; NO_TEMPLATE: no "
    "template of its organisation matches its vendor, model and firmware.",
)
KeyStateGQL: TypeAlias = KeyState
DriftStatusGQL: TypeAlias = DriftStatus


@strawberry.type(description="A key the template expects, and the value it expects.")
class ConfigurationTemplateEntry:
    key: str
    value: str
    apply: bool = strawberry.field(description="applyConfigurationTemplate may push this value.")


@strawberry.type(
    name="ConfigurationTemplate",
    description="What an organisation expects the configuration of one station model to be.",
)
class ConfigurationTemplateNode(relay.Node):
    id: relay.NodeID[int]
    name: str
    vendor: str = strawberry.field(description="Matched exactly against the station's BootNotification.")
    model: str = strawberry.field(description="Matched exactly against the station's BootNotification.")
    firmware_prefix: str | None = strawberry.field(
        description="Only stations whose firmware version starts with it; a longer prefix wins over "
        "a shorter one (or none) for the same model."
    )
    entries: list[ConfigurationTemplateEntry]
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    _organization_id: strawberry.Private[int]
    _row: strawberry.Private[Any]

    @classmethod
    def from_row(cls, r: Any, entries: Iterable[Any]) -> ConfigurationTemplateNode:
        return cls(
            id=r.id or 0,
            name=r.name,
            vendor=r.vendor,
            model=r.model,
            firmware_prefix=r.firmware_prefix,
            entries=[ConfigurationTemplateEntry(key=e.key, value=e.value, apply=e.apply) for e in entries],
            created_at=r.created_at,
            created_by=r.created_by,
            updated_at=r.updated_at,
            updated_by=r.updated_by,
            _organization_id=r.organization_id,
            _row=r,
        )

    @strawberry.field(
        description="Drift of the stations this template governs (stations:diagnose), as last read."
    )
    async def drift(
        self, info: Info, drifted_only: bool = False, first: int | None = None
    ) -> TemplateDriftReport:
        limit = clamp_first(first)
        if not info.context.principal.can(Permission.STATIONS_DIAGNOSE, self._organization_id):
            raise Forbidden("requires stations:diagnose at this organisation")
        async with info.context.db() as s:
            governed = await service.template_drift(s, self._row)
        drifts = [g.drift for g in governed if g.drift is not None]
        listed = [g for g in governed if not drifted_only or (g.drift is not None and g.drift.keys)]
        return TemplateDriftReport(
            station_count=len(governed),
            drifted_count=sum(1 for d in drifts if d.status is DriftStatus.DRIFTED),
            not_read_count=sum(1 for d in drifts if d.status is DriftStatus.NOT_READ),
            stale_count=sum(1 for d in drifts if d.stale),
            stations=[StationConfigurationDrift.from_governed(g, self) for g in listed[:limit]],
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ConfigurationTemplateNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            return await nodes(s, info.context.principal, ids)


async def nodes(s: Any, principal: Any, ids: list[int]) -> list[ConfigurationTemplateNode | None]:
    """Templates by id as the caller may read them (None where not), with their entries."""
    found = await repository.templates_by_ids(s, principal, ids)
    entries = await repository.entries_of(s, list(found)) if found else {}
    return [
        ConfigurationTemplateNode.from_row(found[i], entries.get(i, [])) if i in found else None for i in ids
    ]


@strawberry.type(description="One template key on which the station differs.")
class ConfigurationKeyDrift:
    key: str
    expected: str
    actual: str | None = strawberry.field(description="As last reported; null when missing.")
    state: KeyStateGQL
    apply: bool
    fixable: bool = strawberry.field(description="applyConfigurationTemplate would send it.")


@strawberry.type(description="How a station's configuration differs from its template.")
class StationConfigurationDrift:
    status: DriftStatusGQL
    drifted: bool = strawberry.field(description="Some template key differs (DRIFTED status).")
    configuration_read_at: datetime | None = strawberry.field(
        description="When the compared configuration was read from the station."
    )
    stale: bool = strawberry.field(
        description="The configuration was read more than a day ago (or never): the station may "
        "have changed since; readConfiguration refreshes it."
    )
    drifted_count: int
    missing_count: int
    read_only_count: int
    keys: list[ConfigurationKeyDrift] = strawberry.field(description="In sync keys are not listed.")
    _station_id: strawberry.Private[int]
    _template: strawberry.Private[ConfigurationTemplateNode | None]
    _template_id: strawberry.Private[int | None]

    @classmethod
    def from_governed(
        cls, g: service.Governed, template: ConfigurationTemplateNode | None = None
    ) -> StationConfigurationDrift:
        d = g.drift
        return cls(
            status=DriftStatus.NO_TEMPLATE if d is None else d.status,
            drifted=d is not None and d.status is DriftStatus.DRIFTED,
            configuration_read_at=g.station.configuration_read_at,
            stale=True if d is None else d.stale,
            drifted_count=0 if d is None else d.count(KeyState.DRIFTED),
            missing_count=0 if d is None else d.count(KeyState.MISSING),
            read_only_count=0 if d is None else d.count(KeyState.READ_ONLY),
            keys=[]
            if d is None
            else [
                ConfigurationKeyDrift(
                    key=k.key,
                    expected=k.expected,
                    actual=k.actual,
                    state=k.state,
                    apply=k.apply,
                    fixable=k.fixable,
                )
                for k in d.keys
            ],
            _station_id=g.station.id,
            _template=template,
            _template_id=None if g.template is None else g.template.id,
        )

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)

    @strawberry.field(description="The template that governs the station, if any.")
    async def template(self, info: Info) -> ConfigurationTemplateNode | None:
        if self._template is not None or self._template_id is None:
            return self._template
        async with info.context.db() as s:
            [found] = await nodes(s, info.context.principal, [self._template_id])
        return found


@strawberry.type(description="Drift across the stations one template governs.")
class TemplateDriftReport:
    station_count: int = strawberry.field(
        description=f"Stations the template governs (at most {service.MAX_TEMPLATE_STATIONS})."
    )
    drifted_count: int
    not_read_count: int
    stale_count: int
    stations: list[StationConfigurationDrift] = strawberry.field(
        description="Per station, in station order, at most `first`."
    )


@strawberry.type(description="What happened to one template key at one station.")
class ConfigurationKeyApplyResult:
    key: str
    expected: str
    previous: str | None
    state: KeyStateGQL
    sent: bool = strawberry.field(description="A ChangeConfiguration was sent (see the command log).")
    outcome: CommandOutcomeGQL | None = strawberry.field(description="The station's answer, when sent.")
    station_status: str | None = strawberry.field(description="Accepted, Rejected, RebootRequired…")
    message: str


@strawberry.type(description="The template's changes at one station.")
class StationTemplateApplyResult:
    message: str
    keys: list[ConfigurationKeyApplyResult]
    _station_id: strawberry.Private[int]
    _template_id: strawberry.Private[int | None]

    @classmethod
    def from_result(cls, r: service.StationApplyResult) -> StationTemplateApplyResult:
        return cls(
            message=r.message,
            keys=[
                ConfigurationKeyApplyResult(
                    key=k.key,
                    expected=k.expected,
                    previous=k.previous,
                    state=k.state,
                    sent=k.sent,
                    outcome=k.outcome,
                    station_status=k.station_status,
                    message=k.message,
                )
                for k in r.keys
            ],
            _station_id=r.station_id,
            _template_id=r.template_id,
        )

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)

    @strawberry.field
    async def template(self, info: Info) -> ConfigurationTemplateNode | None:
        if self._template_id is None:
            return None
        async with info.context.db() as s:
            [found] = await nodes(s, info.context.principal, [self._template_id])
        return found


@strawberry.type
class ApplyConfigurationTemplatePayload:
    results: list[StationTemplateApplyResult]
    sent_count: int = strawberry.field(description="ChangeConfiguration commands sent.")
    accepted_count: int


# --- the device model ---


@strawberry.type(name="DeviceModelAttribute")
class DeviceModelAttributeGQL:
    type: str = strawberry.field(description="Actual, Target, MinSet or MaxSet.")
    value: str | None = strawberry.field(description="Never shown for write-only attributes.")
    mutability: str | None = strawberry.field(description="ReadOnly, WriteOnly or ReadWrite.")
    reported_at: datetime
    key: str = strawberry.field(
        description="Its name in stationConfiguration, templates and changeConfiguration."
    )


@strawberry.type(name="DeviceModelVariable")
class DeviceModelVariableGQL:
    name: str
    instance: str | None
    data_type: str | None
    unit: str | None
    attributes: list[DeviceModelAttributeGQL]


@strawberry.type(name="DeviceModelComponent")
class DeviceModelComponentGQL:
    name: str
    instance: str | None
    evse_id: int | None
    connector_id: int | None
    variables: list[DeviceModelVariableGQL]


@strawberry.type(description="An OCPP 2.0.1 station's device model as its NotifyReport described it.")
class DeviceModel:
    components: list[DeviceModelComponentGQL]
    attribute_count: int
    truncated: bool = strawberry.field(
        description="More attributes than one answer holds: narrow by component or variable."
    )
    reported_at: datetime | None = strawberry.field(description="The latest report among these attributes.")

    @classmethod
    def from_components(cls, components: list[Component], *, count: int, truncated: bool) -> DeviceModel:
        times = [a.reported_at for c in components for v in c.variables for a in v.attributes]
        return cls(
            components=[
                DeviceModelComponentGQL(
                    name=c.name,
                    instance=c.instance,
                    evse_id=c.evse_id,
                    connector_id=c.connector_id,
                    variables=[
                        DeviceModelVariableGQL(
                            name=v.name,
                            instance=v.instance,
                            data_type=v.data_type,
                            unit=v.unit,
                            attributes=[
                                DeviceModelAttributeGQL(
                                    type=a.type,
                                    value=a.value,
                                    mutability=a.mutability,
                                    reported_at=a.reported_at,
                                    key=a.key,
                                )
                                for a in v.attributes
                            ],
                        )
                        for v in c.variables
                    ],
                )
                for c in components
            ],
            attribute_count=count,
            truncated=truncated,
            reported_at=max(times, default=None),
        )
