"""The GraphQL schema: queries, mutations and subscriptions of every context, plus limits."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import strawberry
from graphql import GraphQLError, NoSchemaIntrospectionCustomRule
from strawberry import relay
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.relay.types import GlobalIDValueError

from api.accounts.mutations import AccountsMutation
from api.accounts.queries import AccountsQuery
from api.accounts.social import SocialSignInMutation
from api.auth.permissions import IsPublic
from api.auth.policy import assert_every_root_field_has_a_rule
from api.billing.mutations import BillingMutation
from api.billing.payments_api import PaymentsMutation, PaymentsQuery
from api.billing.plan_api import MembershipMutation, MembershipQuery
from api.billing.queries import BillingQuery
from api.configuration.mutations import ConfigurationMutation
from api.configuration.queries import ConfigurationQuery
from api.control.mutations import ChargingRequestQuery, ControlMutation
from api.control.operations_api import ControlOperationsMutation, ControlQuery
from api.drivers.mutations import DriverMutation
from api.drivers.queries import DriverQuery
from api.firmware.mutations import FirmwareCampaignMutation
from api.firmware.queries import FirmwareCampaignQuery
from api.invoicing.mutations import InvoicingMutation
from api.invoicing.queries import InvoicingQuery
from api.localauth.mutations import LocalAuthMutation
from api.localauth.queries import LocalAuthQuery
from api.network.mutations import NetworkMutation
from api.network.queries import NetworkQuery
from api.network.station_events import StationEventsSubscription
from api.network.subscriptions import NetworkSubscription
from api.orgs.mutations import OrgsMutation
from api.orgs.queries import OrgsQuery
from api.query_cost import QueryCostRule
from api.reservations.mutations import ReservationsMutation
from api.reservations.queries import ReservationsQuery
from api.service.fault_rule_api import FaultRulesMutation, FaultRulesQuery
from api.service.health_queries import HealthQuery
from api.service.incident_mutations import IncidentsMutation
from api.service.incident_queries import IncidentsQuery
from api.service.incident_subscriptions import IncidentsSubscription
from api.service.maintenance_api import MaintenanceMutation, MaintenanceQuery
from api.service.uptime_mutations import UptimeMutation
from api.service.uptime_queries import UptimeQuery
from api.service.work_order_mutations import WorkOrderMutation
from api.service.work_order_queries import WorkOrderQuery
from api.service.work_order_subscriptions import WorkOrderSubscription
from api.sessions.queries import SessionsQuery
from api.sessions.subscriptions import SessionsSubscription
from api.sponsorships.mutations import SponsorshipsMutation
from api.sponsorships.queries import SponsorshipsQuery
from schema.errors import ChargeNetError

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "schema.graphql"

# Deep enough for station → connectors / transaction → station → location; deeper is abuse.
MAX_QUERY_DEPTH = 10
MAX_QUERY_TOKENS = 2_000
MAX_ALIASES = 30
PARSER_CACHE_SIZE = 512


@strawberry.type
class Query(
    NetworkQuery,
    SessionsQuery,
    AccountsQuery,
    DriverQuery,
    OrgsQuery,
    ControlQuery,
    ChargingRequestQuery,
    ReservationsQuery,
    ConfigurationQuery,
    LocalAuthQuery,
    BillingQuery,
    MembershipQuery,
    PaymentsQuery,
    FirmwareCampaignQuery,
    SponsorshipsQuery,
    InvoicingQuery,
    HealthQuery,
    UptimeQuery,
    WorkOrderQuery,
    MaintenanceQuery,
    IncidentsQuery,
    FaultRulesQuery,
):
    # Each node type's resolve_nodes reads through the caller-scoped loaders.
    node: relay.Node | None = relay.node(
        permission_classes=[IsPublic], description="Any object by its global id, if the caller may see it."
    )


@strawberry.type
class Mutation(
    ControlMutation,
    ControlOperationsMutation,
    NetworkMutation,
    AccountsMutation,
    SocialSignInMutation,
    DriverMutation,
    OrgsMutation,
    ReservationsMutation,
    ConfigurationMutation,
    LocalAuthMutation,
    BillingMutation,
    MembershipMutation,
    PaymentsMutation,
    FirmwareCampaignMutation,
    SponsorshipsMutation,
    InvoicingMutation,
    UptimeMutation,
    WorkOrderMutation,
    MaintenanceMutation,
    IncidentsMutation,
    FaultRulesMutation,
):
    pass


@strawberry.type
class Subscription(
    NetworkSubscription,
    SessionsSubscription,
    StationEventsSubscription,
    WorkOrderSubscription,
    IncidentsSubscription,
):
    pass


def _should_mask(error: GraphQLError) -> bool:
    """Expected failures keep their message and code; anything else is masked for clients."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError | ChargeNetError):
        return False  # syntax, validation, permission and domain errors are the client's to see
    return not isinstance(original, GlobalIDValueError)


class ErrorCodes(SchemaExtension):
    """Give every expected error a stable `extensions.code` that clients can branch on."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or []:
            if "code" in error.extensions:
                continue
            if isinstance(error.original_error, GlobalIDValueError):
                error.extensions["code"] = "INVALID_INPUT"
            elif error.original_error is None:
                error.extensions["code"] = "GRAPHQL_VALIDATION_FAILED"


class IntrospectionSwitch(SchemaExtension):
    """Refuse `__schema`/`__type` when CHARGENET_GRAPHQL_INTROSPECTION is off (production).

    Decided per request from the app's settings, so one process-wide schema serves both; the
    validation cache keys on the rule set, so the two verdicts are cached apart.
    """

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        settings = getattr(context, "settings", None)
        if settings is not None and not settings.graphql_introspection:
            self.execution_context.validation_rules = (
                *self.execution_context.validation_rules,
                NoSchemaIntrospectionCustomRule,
            )
        yield


@cache
def build_schema() -> strawberry.Schema:
    """One schema per process (strawberry's type registry allows it to be built only once)."""
    schema = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # Factories: a fresh extension per request; the parse/validation caches are module-level.
        extensions=[
            lambda: QueryDepthLimiter(max_depth=MAX_QUERY_DEPTH),
            lambda: MaxTokensLimiter(max_token_count=MAX_QUERY_TOKENS),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: AddValidationRules([QueryCostRule]),
            IntrospectionSwitch,
            lambda: ParserCache(maxsize=PARSER_CACHE_SIZE),
            lambda: ValidationCache(maxsize=PARSER_CACHE_SIZE),
            lambda: MaskErrors(should_mask_error=_should_mask),
            ErrorCodes,
        ],
    )
    assert_every_root_field_has_a_rule(schema)
    return schema


def export_sdl(schema: strawberry.Schema | None = None) -> str:
    return (schema or build_schema()).as_str() + "\n"
