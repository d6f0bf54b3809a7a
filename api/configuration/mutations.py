"""Writing configuration templates and applying them (stations:control): parse, call the
service, shape."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.configuration import repository, service
from api.configuration.types import (
    ApplyConfigurationTemplatePayload,
    ConfigurationTemplateNode,
    StationTemplateApplyResult,
)
from api.control.service import CommandOutcome
from api.network.types import parse_global_id
from api.orgs.types import parse_organization_id
from schema.template_models import ConfigurationTemplate


@strawberry.input
class ConfigurationTemplateEntryInput:
    key: str = strawberry.field(
        description="As the station reports it: a 1.6 key, or for 2.0.1 Component.Variable as in "
        "stationConfiguration and deviceModel. Compared without regard to case; never a password key."
    )
    value: str
    apply: bool = strawberry.field(default=False, description="applyConfigurationTemplate may push it.")


@strawberry.input
class ConfigurationTemplateInput:
    name: str
    vendor: str
    model: str
    firmware_prefix: str | None = None
    entries: list[ConfigurationTemplateEntryInput]


@strawberry.input
class CreateConfigurationTemplateInput(ConfigurationTemplateInput):
    organization_id: relay.GlobalID


@strawberry.input
class ApplyConfigurationTemplateInput:
    station_ids: list[relay.GlobalID] | None = strawberry.field(
        default=None, description="Each station gets the template that governs it."
    )
    template_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Every station this template governs."
    )


def _input(i: ConfigurationTemplateInput, organization_id: int) -> service.TemplateInput:
    return service.TemplateInput(
        organization_id=organization_id,
        name=i.name,
        vendor=i.vendor,
        model=i.model,
        firmware_prefix=i.firmware_prefix,
        entries=[service.EntryInput(e.key, e.value, e.apply) for e in i.entries],
    )


def _template_id(value: relay.GlobalID) -> int:
    return parse_global_id(value, "ConfigurationTemplate")


async def _node(info: Info, template: ConfigurationTemplate) -> ConfigurationTemplateNode:
    """The written template as its writer sees it (a writer may hold stations:control only)."""
    async with info.context.db() as s:
        entries = await repository.entries_of(s, [template.id or 0])
    return ConfigurationTemplateNode.from_row(template, entries.get(template.id or 0, []))


@strawberry.type
class ConfigurationMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="A configuration template for one station model (stations:control).",
    )
    async def create_configuration_template(
        self, info: Info, input: CreateConfigurationTemplateInput
    ) -> ConfigurationTemplateNode:
        ctx = info.context
        template = await service.create_template(
            ctx.db, ctx.actor, _input(input, parse_organization_id(input.organization_id))
        )
        return await _node(info, template)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Replace a template's match rule and entries (stations:control).",
    )
    async def update_configuration_template(
        self, info: Info, id: relay.GlobalID, input: ConfigurationTemplateInput
    ) -> ConfigurationTemplateNode:
        ctx = info.context
        template = await service.update_template(ctx.db, ctx.actor, _template_id(id), _input(input, 0))
        return await _node(info, template)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Delete a template (stations:control); returns its id.",
    )
    async def delete_configuration_template(self, info: Info, id: relay.GlobalID) -> relay.GlobalID:
        ctx = info.context
        await service.delete_template(ctx.db, ctx.actor, _template_id(id))
        return id

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Send ChangeConfiguration for every drifted, writable key flagged apply "
        "(stations:control), to the stations named or every station the template governs; a "
        "result per station and key. Each change is in the command log.",
    )
    async def apply_configuration_template(
        self, info: Info, input: ApplyConfigurationTemplateInput
    ) -> ApplyConfigurationTemplatePayload:
        ctx = info.context
        results = await service.apply_template(
            ctx.db,
            ctx.bus,
            ctx.actor,
            station_ids=None
            if input.station_ids is None
            else [parse_global_id(s, "Station") for s in input.station_ids],
            template_id=None if input.template_id is None else _template_id(input.template_id),
            timeout_s=ctx.settings.command_timeout_s,
        )
        keys = [k for r in results for k in r.keys]
        return ApplyConfigurationTemplatePayload(
            results=[StationTemplateApplyResult.from_result(r) for r in results],
            sent_count=sum(1 for k in keys if k.sent),
            accepted_count=sum(1 for k in keys if k.outcome is CommandOutcome.ACCEPTED),
        )
