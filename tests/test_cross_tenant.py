"""Probing another tenant's objects by id finds nothing.

Every object type with a global id (read from the schema, so a new type must be added here)
is created in organisation B and for B's driver; then the owner of organisation A, an
all-permissions API key of A, and a driver without memberships ask for it by id, through
`node(id:)`, through the type's own query and through every mutation that takes it. Each
probe must come back null or NOT_FOUND — except public objects (stations, locations) — while
the platform admin sees every object, which proves the ids were right.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from graphql import GraphQLInterfaceType
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.opaque import new_token
from api.auth.roles import Permission, format_permissions
from api.graphql_schema import build_schema
from schema.account_models import ApiKey
from schema.db import session_factory
from tests.conftest import ApiServer
from tests.graphql_client import gql
from tests.test_access_matrix import DRIVER, PLATFORM, SQLITE_ONLY, World, build_world, gid

NODE = "query ($id: ID!) { node(id: $id) { __typename id } }"
PUBLIC_TYPES = {"Station", "Location", "MembershipPlan"}
# A driver's own objects: not even the platform admin reads them; their owner proves they exist.
PERSONAL_TYPES = {"Account", "Vehicle", "Card", "AppToken"}
# type name → how to find world B's object of that type.
OBJECTS: dict[str, Callable[[World], int]] = {
    "Station": lambda w: w.station,
    "Location": lambda w: w.location,
    "Transaction": lambda w: w.transaction,
    "Account": lambda w: w.users[DRIVER],
    "Vehicle": lambda w: w.vehicle,
    "Card": lambda w: w.card,
    "AppToken": lambda w: w.app_token,
    "Organization": lambda w: w.org,
    "Member": lambda w: w.target_membership,
    "Invitation": lambda w: w.invitation,
    "ApiKey": lambda w: w.target_key,
    "AuditEntry": lambda w: w.audit_entry,
    "StationCommand": lambda w: w.command,
    "Reservation": lambda w: w.reservation,
    "ChargingRequest": lambda w: w.charging_request,
    "ConfigurationTemplate": lambda w: w.configuration_template,
    "Tariff": lambda w: w.tariff,
    "MembershipPlan": lambda w: w.plan,
    "Sponsor": lambda w: w.sponsor,
    "Sponsorship": lambda w: w.sponsorship,
    "PlanMembership": lambda w: w.plan_membership,
    "FirmwareCampaign": lambda w: w.campaign,
    "FirmwareCampaignStation": lambda w: w.campaign_station,
    "Receipt": lambda w: w.receipt,
    "Invoice": lambda w: w.invoice,
    "OutageExclusion": lambda w: w.outage_exclusion,
    "WorkOrder": lambda w: w.work_order,
    "InspectionPlan": lambda w: w.inspection_plan,
    "ProblemReport": lambda w: w.problem_report,
    "Incident": lambda w: w.incident,
}
# Root operations that take another tenant's object: each must answer null or NOT_FOUND.
PROBES: dict[str, tuple[str, Callable[[World], dict[str, Any]]]] = {
    "transaction": (
        "query ($id: ID!) { transaction(id: $id) { id } }",
        lambda w: {"id": gid("Transaction", w.transaction)},
    ),
    "organization": (
        "query ($id: ID!) { organization(id: $id) { id } }",
        lambda w: {"id": gid("Organization", w.org)},
    ),
    "invitations": (
        "query ($o: ID!) { invitations(organizationId: $o, pendingOnly: false) { totalCount } }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "apiKeys": (
        "query ($o: ID!) { apiKeys(organizationId: $o) { totalCount } }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "auditLog": (
        "query ($o: ID!) { auditLog(organizationId: $o) { totalCount } }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "chargingRequest": (
        "query ($id: ID!) { chargingRequest(id: $id) { id } }",
        lambda w: {"id": gid("ChargingRequest", w.charging_request)},
    ),
    "resetStation": (
        "mutation ($s: ID!) { resetStation(input: {stationId: $s}) { outcome } }",
        lambda w: {"s": gid("Station", w.station)},
    ),
    "bulkResetStations": (
        "mutation ($s: ID!) { bulkResetStations(input: {stationIds: [$s]}) { bulkId } }",
        lambda w: {"s": gid("Station", w.station)},
    ),
    "changeConfiguration": (
        "mutation ($s: ID!) "
        '{ changeConfiguration(input: {stationId: $s, key: "AuthorizationKey", value: "mine"}) { outcome } }',
        lambda w: {"s": gid("Station", w.station)},
    ),
    "setChargingLimit": (
        "mutation ($s: ID!) { setChargingLimit(input: {stationId: $s, limit: 0}) { outcome } }",
        lambda w: {"s": gid("Station", w.station)},
    ),
    "registerStation": (
        'mutation ($l: ID!) { registerStation(input: {locationId: $l, chargePointId: "SPY-1", '
        "connectors: [{connectorId: 1}]}) { password } }",
        lambda w: {"l": gid("Location", w.location)},
    ),
    "approveStation": (
        "mutation ($s: ID!) { approveStation(input: {stationId: $s}) { id } }",
        lambda w: {"s": gid("Station", w.station)},
    ),
    "rejectStation": (
        "mutation ($s: ID!) { rejectStation(stationId: $s) { id } }",
        lambda w: {"s": gid("Station", w.station)},
    ),
    "rotateStationPassword": (
        "mutation ($s: ID!) { rotateStationPassword(stationId: $s) { password } }",
        lambda w: {"s": gid("Station", w.station)},
    ),
    "syncLocalAuthList": (
        "mutation ($s: ID!) { syncLocalAuthList(stationIds: [$s]) { results { outcome } } }",
        lambda w: {"s": gid("Station", w.station)},
    ),
    "localAuthListStatus": (
        "query ($s: ID!) { localAuthListStatus(stationId: $s) { version pending } }",
        lambda w: {"s": gid("Station", w.station)},
    ),
    "cancelReservation": (
        "mutation ($id: ID!) { cancelReservation(id: $id) { outcome } }",
        lambda w: {"id": gid("Reservation", w.reservation)},
    ),
    "createFirmwareCampaign": (
        'mutation ($s: ID!) { createFirmwareCampaign(input: {name: "spy", location: '
        '"https://firmware.example.com/x.bin", stations: {stationIds: [$s]}}) { campaign { id } } }',
        lambda w: {"s": gid("Station", w.station)},
    ),
    **{
        f"{action}FirmwareCampaign": (
            f"mutation ($id: ID!) {{ {action}FirmwareCampaign(id: $id) {{ campaign {{ id }} }} }}",
            lambda w: {"id": gid("FirmwareCampaign", w.campaign)},
        )
        for action in ("start", "pause", "resume", "abort")
    },
    "stopCharging": (
        "mutation ($t: ID!) { stopCharging(input: {transactionId: $t, waitSeconds: 0}) { outcome } }",
        lambda w: {"t": gid("Transaction", w.transaction)},
    ),
    "updateOrganization": (
        'mutation ($o: ID!) { updateOrganization(id: $o, name: "Mine") { id } }',
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "changeMemberRole": (
        "mutation ($o: ID!, $u: ID!) "
        "{ changeMemberRole(organizationId: $o, userId: $u, role: OWNER) { id } }",
        lambda w: {"o": gid("Organization", w.org), "u": gid("Account", w.users["target"])},
    ),
    "removeMember": (
        "mutation ($o: ID!, $u: ID!) { removeMember(organizationId: $o, userId: $u) }",
        lambda w: {"o": gid("Organization", w.org), "u": gid("Account", w.users["target"])},
    ),
    "inviteMember": (
        "mutation ($o: ID!) "
        '{ inviteMember(organizationId: $o, email: "spy@example.com", role: OWNER) { id } }',
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "revokeInvitation": (
        "mutation ($i: ID!) { revokeInvitation(id: $i) { id } }",
        lambda w: {"i": gid("Invitation", w.invitation)},
    ),
    "createApiKey": (
        'mutation ($o: ID!) { createApiKey(organizationId: $o, name: "spy", '
        "permissions: [SESSIONS_READ]) { secret } }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "revokeApiKey": (
        "mutation ($k: ID!) { revokeApiKey(id: $k) { id } }",
        lambda w: {"k": gid("ApiKey", w.target_key)},
    ),
    "updateVehicle": (
        'mutation ($v: ID!) { updateVehicle(id: $v, input: {nickname: "mine"}) { id } }',
        lambda w: {"v": gid("Vehicle", w.vehicle)},
    ),
    "removeVehicle": (
        "mutation ($v: ID!) { removeVehicle(id: $v) }",
        lambda w: {"v": gid("Vehicle", w.vehicle)},
    ),
    "unlinkCard": ("mutation ($c: ID!) { unlinkCard(id: $c) }", lambda w: {"c": gid("Card", w.card)}),
    "configurationDrift": (
        "query ($s: ID!) { configurationDrift(stationId: $s) { status } }",
        lambda w: {"s": gid("Station", w.station)},
    ),
    "deviceModel": (
        "query ($s: ID!) { deviceModel(stationId: $s) { attributeCount } }",
        lambda w: {"s": gid("Station", w.station)},
    ),
    "createConfigurationTemplate": (
        "mutation ($o: ID!) { createConfigurationTemplate(input: {organizationId: $o, "
        'name: "spy", vendor: "V", model: "M", entries: []}) { id } }',
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "updateConfigurationTemplate": (
        "mutation ($t: ID!) { updateConfigurationTemplate(id: $t, "
        'input: {name: "mine", vendor: "V", model: "M", entries: []}) { id } }',
        lambda w: {"t": gid("ConfigurationTemplate", w.configuration_template)},
    ),
    "deleteConfigurationTemplate": (
        "mutation ($t: ID!) { deleteConfigurationTemplate(id: $t) }",
        lambda w: {"t": gid("ConfigurationTemplate", w.configuration_template)},
    ),
    "applyConfigurationTemplate": (
        "mutation ($t: ID!) { applyConfigurationTemplate(input: {templateId: $t}) { sentCount } }",
        lambda w: {"t": gid("ConfigurationTemplate", w.configuration_template)},
    ),
    "sponsorshipReport": (
        'query ($s: ID!) { sponsorshipReport(id: $s, month: "2026-11") { sessions } }',
        lambda w: {"s": gid("Sponsorship", w.sponsorship)},
    ),
    "createSponsor": (
        'mutation ($o: ID!) { createSponsor(input: {organizationId: $o, name: "spy"}) { id } }',
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "createSponsorship": (
        'mutation ($s: ID!, $st: ID!) { createSponsorship(input: {sponsorId: $s, message: "spy", '
        "budget: 100, capAmount: 1, stationIds: [$st]}) { id } }",
        lambda w: {"s": gid("Sponsor", w.sponsor), "st": gid("Station", w.station)},
    ),
    "updateSponsorship": (
        "mutation ($s: ID!) { updateSponsorship(input: {id: $s, budgetIncrease: 1}) { id } }",
        lambda w: {"s": gid("Sponsorship", w.sponsorship)},
    ),
    "endSponsorship": (
        "mutation ($s: ID!) { endSponsorship(id: $s) { id } }",
        lambda w: {"s": gid("Sponsorship", w.sponsorship)},
    ),
    "issueSponsorStatements": (
        'mutation ($o: ID!) { issueSponsorStatements(organizationId: $o, month: "2026-10") { amount } }',
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "createTariff": (
        'mutation ($o: ID!) { createTariff(input: {organizationId: $o, name: "spy", prices: {}}) { id } }',
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "updateTariffPrices": (
        "mutation ($t: ID!) { updateTariffPrices(input: {tariffId: $t, prices: {}}) { id } }",
        lambda w: {"t": gid("Tariff", w.tariff)},
    ),
    "archiveTariff": (
        "mutation ($t: ID!) { archiveTariff(id: $t) { id } }",
        lambda w: {"t": gid("Tariff", w.tariff)},
    ),
    "assignTariff": (
        "mutation ($t: ID!) { assignTariff(input: {tariffId: $t}) { id } }",
        lambda w: {"t": gid("Tariff", w.tariff)},
    ),
    "unassignTariff": (
        "mutation ($a: ID!) { unassignTariff(id: $a) { id } }",
        lambda w: {"a": gid("TariffAssignment", w.tariff_assignment)},
    ),
    "archiveMembershipPlan": (
        "mutation ($p: ID!) { archiveMembershipPlan(id: $p) { id } }",
        lambda w: {"p": gid("MembershipPlan", w.plan)},
    ),
    "billingSettings": (
        "query ($o: ID!) { billingSettings(organizationId: $o) { holdAmount } }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "updateBillingSettings": (
        "mutation ($o: ID!) { updateBillingSettings(input: {organizationId: $o, paymentsRequired: true}) "
        "{ holdAmount } }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "refundSession": (
        "mutation ($t: ID!) { refundSession(input: {transactionId: $t}) { amountRefunded } }",
        lambda w: {"t": gid("Transaction", w.transaction)},
    ),
    "resumeCharging": (
        "mutation ($r: ID!) { resumeCharging(requestId: $r) { outcome } }",
        lambda w: {"r": gid("ChargingRequest", w.charging_request)},
    ),
    "updateBillingDetails": (
        'mutation ($o: ID!) { updateBillingDetails(organizationId: $o, input: {vatId: "SPY1"}) { vatId } }',
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "planSubscriptions": (
        "query ($p: ID!) { planSubscriptions(planId: $p) { totalCount } }",
        lambda w: {"p": gid("MembershipPlan", w.plan)},
    ),
    "cancelMembership": (
        "mutation ($m: ID!) { cancelMembership(id: $m) { id } }",
        lambda w: {"m": gid("PlanMembership", w.plan_membership)},
    ),
    "uptime": (
        "query ($o: ID!) { uptime(organizationId: $o) { ports } }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "stationsBelowUptime": (
        "query ($o: ID!) { stationsBelowUptime(organizationId: $o) { chargePointId } }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "portOutages": (
        'query ($s: ID!) { portOutages(stationId: $s, from: "2026-01-01T00:00:00Z", '
        'to: "2026-12-01T00:00:00Z") { connectorId } }',
        lambda w: {"s": gid("Station", w.station)},
    ),
    "uptimeExportUrl": (
        "query ($o: ID!) { uptimeExportUrl(organizationId: $o, year: 2026, quarter: 1) }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "excludeOutage": (
        'mutation ($s: ID!) { excludeOutage(stationId: $s, start: "2026-03-01T00:00:00Z", '
        'end: "2026-03-01T01:00:00Z", reason: VANDALISM) { id } }',
        lambda w: {"s": gid("Station", w.station)},
    ),
    "revokeOutageExclusion": (
        "mutation ($x: ID!) { revokeOutageExclusion(id: $x) { id } }",
        lambda w: {"x": gid("OutageExclusion", w.outage_exclusion)},
    ),
    "incident": (
        "query ($i: ID!) { incident(id: $i) { id } }",
        lambda w: {"i": gid("Incident", w.incident)},
    ),
    "acknowledgeIncident": (
        "mutation ($i: ID!) { acknowledgeIncident(id: $i) { id } }",
        lambda w: {"i": gid("Incident", w.incident)},
    ),
    "commentOnIncident": (
        'mutation ($i: ID!) { commentOnIncident(id: $i, text: "spy") { id } }',
        lambda w: {"i": gid("Incident", w.incident)},
    ),
    "resolveIncident": (
        'mutation ($i: ID!) { resolveIncident(id: $i, resolution: "spy") { id } }',
        lambda w: {"i": gid("Incident", w.incident)},
    ),
    "revokeAppToken": (
        "mutation ($a: ID!) { revokeAppToken(id: $a) }",
        lambda w: {"a": gid("AppToken", w.app_token)},
    ),
    "workOrder": (
        "query ($w: ID!) { workOrder(id: $w) { id } }",
        lambda w: {"w": gid("WorkOrder", w.work_order)},
    ),
    "assignWorkOrder": (
        "mutation ($w: ID!, $a: ID!) { assignWorkOrder(id: $w, assigneeId: $a) { id } }",
        lambda w: {"w": gid("WorkOrder", w.work_order), "a": gid("Account", w.users["technician"])},
    ),
    "changeWorkOrderState": (
        "mutation ($w: ID!) { changeWorkOrderState(id: $w, state: CANCELLED) { id } }",
        lambda w: {"w": gid("WorkOrder", w.work_order)},
    ),
    "addWorkOrderNote": (
        'mutation ($w: ID!) { addWorkOrderNote(id: $w, text: "spy") { id } }',
        lambda w: {"w": gid("WorkOrder", w.work_order)},
    ),
    "runWorkOrderStationAction": (
        "mutation ($w: ID!) { runWorkOrderStationAction(input: {workOrderId: $w, action: RESET_SOFT}) "
        "{ outcome } }",
        lambda w: {"w": gid("WorkOrder", w.work_order)},
    ),
    "createWorkOrder": (
        'mutation ($s: ID!) { createWorkOrder(input: {stationId: $s, title: "spy", severity: LOW}) { id } }',
        lambda w: {"s": gid("Station", w.station)},
    ),
    "workOrderSettings": (
        "query ($o: ID!) { workOrderSettings(organizationId: $o) { slaLowMinutes } }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "updateWorkOrderSettings": (
        "mutation ($o: ID!) { updateWorkOrderSettings(input: {organizationId: $o, slaCriticalMinutes: 60, "
        "slaHighMinutes: 60, slaMediumMinutes: 60, slaLowMinutes: 60, autoCreateFor: []}) "
        "{ slaLowMinutes } }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "maintenanceCosts": (
        "query ($o: ID!) { maintenanceCosts(organizationId: $o, year: 2026) { totalCost } }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "createInspectionPlan": (
        'mutation ($o: ID!) { createInspectionPlan(input: {organizationId: $o, name: "spy", vendor: "V", '
        "everyDays: 1}) { id } }",
        lambda w: {"o": gid("Organization", w.org)},
    ),
    "setInspectionPlanActive": (
        "mutation ($p: ID!) { setInspectionPlanActive(id: $p, active: false) { id } }",
        lambda w: {"p": gid("InspectionPlan", w.inspection_plan)},
    ),
}
ALL_PERMISSIONS = frozenset(Permission) - {Permission.ORG_MANAGE}


def node_types() -> set[str]:
    schema = build_schema()._schema
    node = schema.get_type("Node")
    assert isinstance(node, GraphQLInterfaceType)
    return {t.name for t in schema.get_possible_types(node)}


async def _key_with_everything(engine: AsyncEngine, organization_id: int) -> str:
    secret, secret_hash = new_token()
    async with session_factory(engine)() as s:
        s.add(
            ApiKey(
                organization_id=organization_id,
                name="all",
                public_id=f"all{organization_id}",
                secret_hash=secret_hash,
                permissions=format_permissions(ALL_PERMISSIONS),
            )
        )
        await s.commit()
    return f"cnk_all{organization_id}_{secret}"


def test_every_node_type_is_probed() -> None:
    assert node_types() == set(OBJECTS), "add the new object type to OBJECTS with how to build it"


def _hidden(result: dict[str, Any], field: str) -> bool:
    codes = {e.get("extensions", {}).get("code") for e in result.get("errors") or []}
    if codes & {"NOT_FOUND", "FORBIDDEN"}:
        return True
    return not result.get("errors") and (result.get("data") or {}).get(field) is None


@SQLITE_ONLY
class TestCrossTenant:
    @pytest.fixture
    async def worlds(self, engine: AsyncEngine, api_server: ApiServer) -> tuple[World, World, dict[str, str]]:
        keys = api_server.app.state.auth.keys
        a, b = await build_world(engine, keys), await build_world(engine, keys)
        probers = {
            "owner of A": a.tokens["owner"],
            "API key of A with every permission": await _key_with_everything(engine, a.org),
            "driver of A": a.tokens[DRIVER],
        }
        return a, b, probers

    async def test_node_by_id(
        self, http: httpx.AsyncClient, worlds: tuple[World, World, dict[str, str]]
    ) -> None:
        _, b, probers = worlds
        leaks = []
        for type_name, pk in ((t, f(b)) for t, f in OBJECTS.items()):
            variables = {"id": gid(type_name, pk)}
            witness = b.tokens[DRIVER] if type_name in PERSONAL_TYPES else b.tokens[PLATFORM]
            seen = await gql(http, NODE, variables, token=witness)
            assert (seen.get("data") or {}).get("node"), f"{type_name} {pk} should exist: {seen}"
            for who, token in probers.items():
                found = (await gql(http, NODE, variables, token=token)).get("data", {}).get("node")
                if (found is not None) != (type_name in PUBLIC_TYPES):
                    leaks.append((type_name, who, found))
        assert not leaks, leaks

    @pytest.mark.parametrize("operation", sorted(PROBES))
    async def test_operations_taking_another_tenants_object(
        self, http: httpx.AsyncClient, worlds: tuple[World, World, dict[str, str]], operation: str
    ) -> None:
        _, b, probers = worlds
        query, variables = PROBES[operation]
        for who, token in probers.items():
            result = await gql(http, query, variables(b), token=token)
            assert _hidden(result, operation), f"{who} reached B through {operation}: {result}"

    async def test_maintenance_lists_never_include_another_tenant(
        self, http: httpx.AsyncClient, worlds: tuple[World, World, dict[str, str]]
    ) -> None:
        _, b, probers = worlds
        lists = {
            "workOrders": (
                "{ workOrders(first: 100) { edges { node { id } } } }",
                gid("WorkOrder", b.work_order),
            ),
            "problemReports": (
                "{ problemReports(first: 100) { edges { node { id } } } }",
                gid("ProblemReport", b.problem_report),
            ),
        }
        for who, token in probers.items():
            for name, (query, hidden) in lists.items():
                result = await gql(http, query, token=token)
                edges = ((result.get("data") or {}).get(name) or {}).get("edges", [])
                assert hidden not in {e["node"]["id"] for e in edges}, (who, name)
            plans = (await gql(http, "{ inspectionPlans { id } }", token=token)).get("data") or {}
            assert gid("InspectionPlan", b.inspection_plan) not in {
                p["id"] for p in plans.get("inspectionPlans") or []
            }
            mine = (await gql(http, "{ myProblemReports { id } }", token=token)).get("data") or {}
            assert gid("ProblemReport", b.problem_report) not in {
                r["id"] for r in mine.get("myProblemReports") or []
            }

    async def test_lists_never_include_another_tenant(
        self, http: httpx.AsyncClient, worlds: tuple[World, World, dict[str, str]]
    ) -> None:
        a, b, probers = worlds
        tx_query = "{ transactions(first: 100) { edges { node { id } } } }"
        org_query = "{ organizations(first: 100) { edges { node { id } } } }"
        for who, token in probers.items():
            txs = {
                e["node"]["id"]
                for e in (await gql(http, tx_query, token=token))["data"]["transactions"]["edges"]
            }
            assert gid("Transaction", b.transaction) not in txs, who
            orgs = (await gql(http, org_query, token=token))["data"]["organizations"]["edges"]
            assert gid("Organization", b.org) not in {e["node"]["id"] for e in orgs}, who
            commands = await gql(http, "{ commands(first: 100) { edges { node { id } } } }", token=token)
            assert gid("StationCommand", b.command) not in {
                e["node"]["id"] for e in commands["data"]["commands"]["edges"]
            }, who
            settings = await gql(
                http,
                "query ($s: ID!) { stationConfiguration(stationId: $s) { key value } }",
                {"s": gid("Station", b.station)},
                token=token,
            )
            assert settings["data"]["stationConfiguration"] == [], who
            templates = await gql(
                http, "{ configurationTemplates(first: 100) { edges { node { id } } } }", token=token
            )
            assert gid("ConfigurationTemplate", b.configuration_template) not in {
                e["node"]["id"] for e in templates["data"]["configurationTemplates"]["edges"]
            }, who
            sponsorships = await gql(
                http, "{ sponsorships(first: 100) { edges { node { id } } } }", token=token
            )
            assert gid("Sponsorship", b.sponsorship) not in {
                e["node"]["id"] for e in sponsorships["data"]["sponsorships"]["edges"]
            }, who
            found = await gql(http, "{ incidents(first: 100) { edges { node { id } } } }", token=token)
            assert gid("Incident", b.incident) not in {
                e["node"]["id"] for e in found["data"]["incidents"]["edges"]
            }, who
            sponsors = await gql(http, "{ sponsors(first: 100) { edges { node { id } } } }", token=token)
            assert gid("Sponsor", b.sponsor) not in {
                e["node"]["id"] for e in sponsors["data"]["sponsors"]["edges"]
            }, who
            campaigns = await gql(
                http, "{ firmwareCampaigns(first: 100) { edges { node { id } } } }", token=token
            )
            assert gid("FirmwareCampaign", b.campaign) not in {
                e["node"]["id"] for e in campaigns["data"]["firmwareCampaigns"]["edges"]
            }, who
            for field in ("receipts", "invoices"):
                listed = await gql(
                    http, f"{{ {field}(first: 100) {{ edges {{ node {{ id }} }} }} }}", token=token
                )
                seen = {
                    e["node"]["id"] for e in ((listed.get("data") or {}).get(field) or {"edges": []})["edges"]
                }
                assert not seen & {gid("Receipt", b.receipt), gid("Invoice", b.invoice)}, (who, field)
        # and the owner of A does see A's own session and organisation (the probes can see)
        own_receipts = await gql(
            http, "{ receipts(first: 100) { edges { node { id } } } }", token=a.tokens["owner"]
        )
        assert gid("Receipt", a.receipt) in {
            e["node"]["id"] for e in own_receipts["data"]["receipts"]["edges"]
        }
        own = await gql(http, tx_query, token=a.tokens["owner"])
        assert gid("Transaction", a.transaction) in {
            e["node"]["id"] for e in own["data"]["transactions"]["edges"]
        }
        own_commands = await gql(
            http, "{ commands(first: 100) { edges { node { id } } } }", token=a.tokens["owner"]
        )
        assert gid("StationCommand", a.command) in {
            e["node"]["id"] for e in own_commands["data"]["commands"]["edges"]
        }
        own_settings = await gql(
            http,
            "query ($s: ID!) { stationConfiguration(stationId: $s) { key value } }",
            {"s": gid("Station", a.station)},
            token=a.tokens["owner"],
        )
        assert own_settings["data"]["stationConfiguration"] == [{"key": "HeartbeatInterval", "value": "300"}]
        own_templates = await gql(
            http, "{ configurationTemplates(first: 100) { edges { node { id } } } }", token=a.tokens["owner"]
        )
        assert gid("ConfigurationTemplate", a.configuration_template) in {
            e["node"]["id"] for e in own_templates["data"]["configurationTemplates"]["edges"]
        }
