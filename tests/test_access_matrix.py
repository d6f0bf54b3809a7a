"""Who may do what: every query, mutation and subscription against every kind of caller.

The list of operations is read from the schema, so a new root field that is not in RULES
fails `test_every_operation_has_a_rule`; each (operation, caller) pair then runs for real
against its own freshly built organisation, so the expectation is checked, not assumed.

"Allowed" means the caller got past access control: the answer may still be a domain error
(STATION_OFFLINE, INVALID_INPUT, LAST_OWNER…). "Denied" means UNAUTHENTICATED, FORBIDDEN, or —
for objects of someone else — NOT_FOUND / null, which is how scoped reads answer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry import relay
from websockets.asyncio.client import connect

from api.accounts.tokens import Device, open_session
from api.auth.keys import KeyRing
from api.auth.opaque import new_token
from api.auth.roles import Permission, Role, format_permissions
from api.graphql_schema import build_schema
from schema.account_models import ApiKey, AuditEntry, Invitation, Membership, UserAccount, Vehicle
from schema.campaign_models import FirmwareCampaign, FirmwareCampaignStation
from schema.control_models import StationCommand, StationConfigurationKey
from schema.db import session_factory
from schema.document_models import BillingDocument, DocumentKind
from schema.fault_rule_models import FaultCodeRule
from schema.health_models import StationHealth
from schema.incident_models import ExclusionReason, Incident, OutageExclusion
from schema.maintenance_models import DriverReport, InspectionPlan, WorkOrder, WorkOrderChecklistItem
from schema.models import ChargingStation, Connector, IdToken, Location, Organization, Transaction
from schema.plan_models import MembershipPlan, PlanSubscription
from schema.request_models import ChargingRequest, Reservation
from schema.sponsorship_models import Sponsor, Sponsorship
from schema.tariff_models import StoredTariff, TariffAssignment, TariffVersion
from schema.template_models import ConfigurationTemplate, ConfigurationTemplateEntry
from schema.timeutil import utcnow
from tests.conftest import OPERATOR_TOKEN, ApiServer

# Access rules do not depend on the database; SQLite keeps the ~500 probes quick.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

ROLES = tuple(r.value for r in Role)
ANON, DRIVER, KEY, PLATFORM = "anonymous", "driver", "api_key", "platform"
CALLERS = (ANON, DRIVER, *ROLES, KEY, PLATFORM)
ALL = frozenset(CALLERS)
AUTHENTICATED = ALL - {ANON}
PEOPLE = frozenset({DRIVER, *ROLES})
MANAGERS = frozenset({"owner", "admin", PLATFORM})
SESSION_READERS = frozenset({"owner", "admin", "operator", "finance", "viewer", KEY, PLATFORM})
CONTROLLERS = frozenset({"owner", "admin", "operator", KEY, PLATFORM})
# stations:diagnose: resets, configuration reads, firmware and logs (not in the matrix's key).
DIAGNOSERS = frozenset({"owner", "admin", "operator", "technician", PLATFORM})
MEMBERS = frozenset(ROLES)
BILLERS = frozenset({"owner", "admin", "finance", PLATFORM})
REPORTERS = frozenset({"owner", "admin", "operator", "finance", PLATFORM})
# network:read: every member role, the integration key, the platform.
NETWORK_READERS = MEMBERS | {KEY, PLATFORM}
# Classifying outages for uptime: stations:control or workorders:manage.
CLASSIFIERS = frozenset({"owner", "admin", "operator", "technician", KEY, PLATFORM})
# workorders:manage: managers and technicians (a technician reaches the orders assigned to it).
WORKERS = frozenset({"owner", "admin", "technician", PLATFORM})
INCIDENT_ACTORS = frozenset({"owner", "admin", "operator", "technician"})
PERIOD = {"from": "2026-01-01T00:00:00+00:00", "to": "2027-01-01T00:00:00+00:00"}
MATRIX_TARIFF = {"energy_per_kwh": "39", "time_per_minute": "0", "idle_per_minute": "10", "windows": []}
# The integration the matrix plays: reads the network and sessions, starts and stops charging.
KEY_PERMISSIONS = frozenset({Permission.NETWORK_READ, Permission.SESSIONS_READ, Permission.STATIONS_CONTROL})
DENY_CODES = {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "INVITATION_EMAIL_MISMATCH"}


def gid(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


@dataclass
class World:
    """One organisation with a station, a session of another driver, every role, a driver with
    a vehicle, a card and an app token, an integration key, and things to revoke."""

    org: int
    station: int
    transaction: int
    vehicle: int
    card: int
    app_token: int
    app_tag: str
    target_member: int
    target_key: int
    invitation: int
    invitation_token: str
    refresh_token: str = ""
    location: int = 0
    target_membership: int = 0
    audit_entry: int = 0
    command: int = 0
    reservation: int = 0
    charging_request: int = 0
    configuration_template: int = 0
    tariff: int = 0
    tariff_assignment: int = 0
    plan: int = 0
    plan_membership: int = 0
    campaign: int = 0
    campaign_station: int = 0
    sponsor: int = 0
    sponsorship: int = 0
    receipt: int = 0
    invoice: int = 0
    outage_exclusion: int = 0
    work_order: int = 0
    checklist_item: int = 0
    inspection_plan: int = 0
    problem_report: int = 0
    incident: int = 0
    fault_rule: int = 0
    users: dict[str, int] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


_counter = itertools.count()


async def build_world(engine: AsyncEngine, keys: KeyRing) -> World:
    n = next(_counter)
    async with session_factory(engine)() as s:
        org = Organization(name=f"Org {n}", slug=f"org-{n}")
        s.add(org)
        await s.flush()
        oid = org.id or 0
        location = Location(organization_id=oid, name="Depot", latitude=52.5, longitude=13.4, time_zone="UTC")
        s.add(location)
        await s.flush()
        station = ChargingStation(organization_id=oid, location_id=location.id, charge_point_id=f"M-{n}")
        s.add(station)
        await s.flush()
        s.add(Connector(station_id=station.id or 0, connector_id=1))
        s.add(
            StationHealth(
                station_id=station.id or 0,
                score=42,
                degraded=True,
                threshold=60,
                window_start=utcnow(),
                computed_at=utcnow(),
            )
        )
        people = {DRIVER: None, "other-driver": None, "target": Role.VIEWER} | {r.value: r for r in Role}
        users: dict[str, int] = {}
        memberships: dict[str, Membership] = {}
        for who, role in people.items():
            user = UserAccount(email=f"{who}-{n}@example.com", email_verified_at=utcnow())
            s.add(user)
            await s.flush()
            users[who] = user.id or 0
            if role is not None:
                memberships[who] = Membership(organization_id=oid, user_id=user.id or 0, role=role.value)
                s.add(memberships[who])
        tx = Transaction(
            station_id=station.id or 0,
            connector_id=1,
            start_key=f"m-{n}",
            started_at=utcnow(),
            user_id=users["other-driver"],
            id_tag=f"OTHER{n}",
        )
        vehicle = Vehicle(user_id=users[DRIVER], make="Renault", model="Zoe", battery_wh=52_000)
        card = IdToken(token=f"CARD{n}", user_id=users[DRIVER])
        app = IdToken(token=f"APP{n}", token_type="Central", user_id=users[DRIVER])
        secret_hash = new_token()[1]
        target_key = ApiKey(
            organization_id=oid,
            name="old",
            public_id=f"old{n}",
            secret_hash=secret_hash,
            permissions="network:read",
        )
        key_secret, key_hash = new_token()
        key = ApiKey(
            organization_id=oid,
            name="matrix",
            public_id=f"matrix{n}",
            secret_hash=key_hash,
            permissions=format_permissions(KEY_PERMISSIONS),
        )
        invite_token, invite_hash = new_token()
        invitation = Invitation(
            organization_id=oid,
            email=f"{DRIVER}-{n}@example.com",
            role=Role.VIEWER.value,
            token_hash=invite_hash,
            expires_at=utcnow().replace(year=utcnow().year + 1),
        )
        audit = AuditEntry(
            organization_id=oid, actor_kind="user", actor_label="user:0", action="org.test", result="OK"
        )
        command = StationCommand(
            organization_id=oid,
            station_id=station.id or 0,
            name="Reset",
            payload={"kind": "Soft"},
            actor_kind="user",
            actor_label="user:0",
            outcome="ACCEPTED",
        )
        setting = StationConfigurationKey(station_id=station.id or 0, key="HeartbeatInterval", value="300")
        request = ChargingRequest(
            station_id=station.id or 0, organization_id=oid, user_id=users["other-driver"], id_tag=f"OTHER{n}"
        )
        # the driver's reservation at this station, still holding connector 1
        reservation = Reservation(
            station_id=station.id or 0,
            organization_id=oid,
            connector_id=1,
            user_id=users[DRIVER],
            id_tag=app.token,
            expires_at=utcnow().replace(year=utcnow().year + 1),
        )
        s.add(reservation)
        s.add_all([tx, vehicle, card, app, target_key, key, invitation, audit, command, setting, request])
        template = ConfigurationTemplate(
            organization_id=oid,
            name="Matrix",
            vendor="V",
            model="M",
            created_by="user:0",
            updated_by="user:0",
        )
        s.add(template)
        await s.flush()
        s.add(ConfigurationTemplateEntry(template_id=template.id or 0, key="HeartbeatInterval", value="300"))
        tariff = StoredTariff(organization_id=oid, name="Matrix")
        s.add(tariff)
        await s.flush()
        s.add(TariffVersion(tariff_id=tariff.id or 0, version=1, definition=MATRIX_TARIFF))
        assignment = TariffAssignment(organization_id=oid, tariff_id=tariff.id or 0)
        s.add(assignment)
        plan = MembershipPlan(organization_id=oid, name="Matrix", monthly_fee=500, currency="EUR")
        s.add(plan)
        await s.flush()
        # the driver is an active member of the plan
        plan_membership = PlanSubscription(
            user_id=users[DRIVER],
            plan_id=plan.id or 0,
            organization_id=oid,
            open_organization_id=oid,
            status="active",
            stripe_subscription_id=f"sub_matrix_{n}",
        )
        s.add(plan_membership)
        # a draft firmware campaign of the organisation's one station
        campaign = FirmwareCampaign(
            organization_id=oid,
            name="matrix",
            location="https://firmware.example.com/sim-2.0.bin",
            wave_size=1,
            wave_count=1,
            station_timeout_s=3600,
            created_by_kind="platform",
            created_by_label="platform",
        )
        s.add(campaign)
        await s.flush()
        campaign_station = FirmwareCampaignStation(
            campaign_id=campaign.id or 0, station_id=station.id or 0, wave=1
        )
        s.add(campaign_station)
        # a sponsor funding the station's sessions
        sponsor = Sponsor(organization_id=oid, name="Matrix Mall")
        s.add(sponsor)
        await s.flush()
        sponsorship = Sponsorship(
            organization_id=oid,
            sponsor_id=sponsor.id or 0,
            currency="EUR",
            message="Sponsored by Matrix Mall",
            location_ids=[],
            station_ids=[station.id or 0],
            windows=[],
            cap_amount=300,
            budget=3_000,
            starts_at=utcnow(),
        )
        s.add(sponsorship)
        await s.flush()
        # the other driver's receipt for their session, and an invoice to a sponsor
        receipt = _document(oid, DocumentKind.RECEIPT, n, transaction_id=tx.id, user_id=users["other-driver"])
        invoice = _document(oid, DocumentKind.INVOICE, n)
        s.add_all([receipt, invoice])
        # an operator's exclusion of a utility outage from the station's uptime
        exclusion = OutageExclusion(
            organization_id=oid,
            station_id=station.id or 0,
            started_at=utcnow().replace(year=2026, month=3, day=1),
            ended_at=utcnow().replace(year=2026, month=3, day=2),
            reason=ExclusionReason.UTILITY_INTERRUPTION.value,
        )
        s.add(exclusion)
        # the organisation's own verdict on a fault code
        fault_rule = FaultCodeRule(
            organization_id=oid, source="error_code", code="WeakSignal", severity="high", updated_at=utcnow()
        )
        s.add(fault_rule)
        # a work order of the station in the technician's hands, a plan, and the driver's report
        work_order = WorkOrder(
            organization_id=oid,
            station_id=station.id or 0,
            title="Matrix repair",
            source="manual",
            severity="high",
            state="assigned",
            assignee_id=users[Role.TECHNICIAN.value],
            sla_due_at=utcnow().replace(year=utcnow().year + 1),
        )
        plan_row = InspectionPlan(
            organization_id=oid, name="Matrix plan", location_id=location.id, every_days=90
        )
        report = DriverReport(
            user_id=users[DRIVER],
            organization_id=oid,
            station_id=station.id or 0,
            category="other",
            text="Matrix",
        )
        s.add_all([work_order, plan_row, report])
        await s.flush()
        item = WorkOrderChecklistItem(work_order_id=work_order.id or 0, text="Check")
        s.add(item)
        # an open incident on the station
        incident = Incident(
            organization_id=oid,
            station_id=station.id or 0,
            connector_id=1,
            kind="fault",
            severity="high",
            dedup_key=f"fault:{station.id}:1:GroundFailure",
            title="Connector 1: GroundFailure",
        )
        s.add(incident)
        await s.flush()
        world = World(
            org=oid,
            station=station.id or 0,
            transaction=tx.id or 0,
            vehicle=vehicle.id or 0,
            card=card.id or 0,
            app_token=app.id or 0,
            app_tag=app.token,
            target_member=users["target"],
            target_key=target_key.id or 0,
            invitation=invitation.id or 0,
            invitation_token=invite_token,
            location=location.id or 0,
            target_membership=memberships["target"].id or 0,
            audit_entry=audit.id or 0,
            command=command.id or 0,
            reservation=reservation.id or 0,
            charging_request=request.id or 0,
            configuration_template=template.id or 0,
            tariff=tariff.id or 0,
            tariff_assignment=assignment.id or 0,
            plan=plan.id or 0,
            plan_membership=plan_membership.id or 0,
            campaign=campaign.id or 0,
            campaign_station=campaign_station.id or 0,
            sponsor=sponsor.id or 0,
            sponsorship=sponsorship.id or 0,
            receipt=receipt.id or 0,
            invoice=invoice.id or 0,
            outage_exclusion=exclusion.id or 0,
            work_order=work_order.id or 0,
            checklist_item=item.id or 0,
            inspection_plan=plan_row.id or 0,
            problem_report=report.id or 0,
            incident=incident.id or 0,
            fault_rule=fault_rule.id or 0,
            users=users,
        )
        for who in PEOPLE:
            pair = await open_session(
                s, keys, user_id=users[who], method="password", device=Device(name="m"), ttl_days=1
            )
            world.tokens[who] = pair.access_token
            world.sessions[who] = pair.session_id
            if who == DRIVER:
                world.refresh_token = pair.refresh_token
        world.tokens[KEY] = f"cnk_matrix{n}_{key_secret}"
        world.tokens[PLATFORM] = OPERATOR_TOKEN
        await s.commit()
    return world


def _document(oid: int, kind: DocumentKind, n: int, **extra: Any) -> BillingDocument:
    series = "R" if kind is DocumentKind.RECEIPT else "I"
    return BillingDocument(
        organization_id=oid,
        kind=kind.value,
        series=series,
        year=2026,
        sequence=1,
        number=f"{series}-2026-{n:06d}",
        currency="EUR",
        seller={"name": f"Org {n}"},
        buyer={"name": "Buyer"},
        lines=[],
        tax_breakdown=[],
        net=84,
        tax=16,
        total=100,
        amount_due=100,
        **extra,
    )


Args = Callable[[World, str], dict[str, Any]]


def no_args(w: World, who: str) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str]
    args: Args = no_args


def org(w: World, who: str) -> dict[str, Any]:
    return {"organizationId": gid("Organization", w.org)}


FIRMWARE_URL = "https://firmware.example.com/sim-2.0.bin"


def work_order(w: World, **extra: Any) -> dict[str, Any]:
    return {"id": gid("WorkOrder", w.work_order), **extra}


def work_order_settings(w: World, who: str) -> dict[str, Any]:
    minutes = {f"sla{s}Minutes": 600 for s in ("Critical", "High", "Medium", "Low")}
    return {"input": {"organizationId": gid("Organization", w.org), **minutes, "autoCreateFor": ["CRITICAL"]}}


def station_input(w: World, **extra: Any) -> dict[str, Any]:
    return {"input": {"stationId": gid("Station", w.station), **extra}}


def stations_input(w: World, **extra: Any) -> dict[str, Any]:
    return {"input": {"stationIds": [gid("Station", w.station)], **extra}}


RULES: dict[str, Rule] = {
    # --- public reads ---
    "Query.locations": Rule(ALL),
    "Query.stations": Rule(ALL),
    "Query.station": Rule(ALL, lambda w, _: {"id": gid("Station", w.station)}),
    "Query.location": Rule(ALL, lambda w, _: {"id": gid("Location", 1)}),
    "Query.node": Rule(SESSION_READERS, lambda w, _: {"id": gid("Transaction", w.transaction)}),
    "Subscription.stationStatusChanged": Rule(ALL, lambda w, _: {"stationId": gid("Station", w.station)}),
    # Operator data (network:read): every member role, the integration key, the platform.
    "Subscription.stationEvents": Rule(
        ALL - {ANON, DRIVER}, lambda w, _: {"stationId": gid("Station", w.station)}
    ),
    # --- station health (network:read in the station's organisation) ---
    "Query.stationHealth": Rule(NETWORK_READERS, lambda w, _: {"stationId": gid("Station", w.station)}),
    "Query.unhealthyStations": Rule(NETWORK_READERS, org),
    # --- sessions ---
    "Query.transactions": Rule(AUTHENTICATED),
    "Query.transaction": Rule(SESSION_READERS, lambda w, _: {"id": gid("Transaction", w.transaction)}),
    "Subscription.transactionUpdated": Rule(
        SESSION_READERS, lambda w, _: {"transactionId": gid("Transaction", w.transaction)}
    ),
    # Any signed-in caller may try: operators with any tag, people with their own (INVALID_INPUT
    # when the tag is not theirs), so only anonymous is refused outright.
    "Mutation.startCharging": Rule(
        AUTHENTICATED,
        lambda w, _: {
            "input": {"stationId": gid("Station", w.station), "idTag": w.app_tag, "waitSeconds": 0}
        },
    ),
    "Mutation.stopCharging": Rule(
        CONTROLLERS,
        lambda w, _: {"input": {"transactionId": gid("Transaction", w.transaction), "waitSeconds": 0}},
    ),
    # --- station operations (the matrix's station has no charger: STATION_OFFLINE is allowed) ---
    "Mutation.resetStation": Rule(DIAGNOSERS, lambda w, _: station_input(w)),
    "Mutation.bulkResetStations": Rule(DIAGNOSERS, lambda w, _: stations_input(w)),
    "Mutation.unlockConnector": Rule(CONTROLLERS, lambda w, _: station_input(w, connectorId=1)),
    "Mutation.changeAvailability": Rule(CONTROLLERS, lambda w, _: station_input(w, operative=False)),
    "Mutation.bulkChangeAvailability": Rule(CONTROLLERS, lambda w, _: stations_input(w, operative=True)),
    "Mutation.clearAuthorizationCache": Rule(DIAGNOSERS, lambda w, _: station_input(w)),
    "Mutation.triggerMessage": Rule(DIAGNOSERS, lambda w, _: station_input(w, message="HEARTBEAT")),
    "Mutation.changeConfiguration": Rule(
        CONTROLLERS, lambda w, _: station_input(w, key="HeartbeatInterval", value="60")
    ),
    "Mutation.readConfiguration": Rule(DIAGNOSERS, lambda w, _: station_input(w)),
    "Mutation.dataTransfer": Rule(CONTROLLERS, lambda w, _: station_input(w, vendorId="com.example")),
    "Mutation.updateFirmware": Rule(DIAGNOSERS, lambda w, _: station_input(w, location=FIRMWARE_URL)),
    "Mutation.bulkUpdateFirmware": Rule(DIAGNOSERS, lambda w, _: stations_input(w, location=FIRMWARE_URL)),
    "Mutation.requestDiagnostics": Rule(DIAGNOSERS, lambda w, _: station_input(w, location=FIRMWARE_URL)),
    "Mutation.localListVersion": Rule(DIAGNOSERS, lambda w, _: station_input(w)),
    "Mutation.setChargingLimit": Rule(CONTROLLERS, lambda w, _: station_input(w, limit=16)),
    "Mutation.clearChargingLimit": Rule(CONTROLLERS, lambda w, _: station_input(w)),
    "Mutation.compositeSchedule": Rule(DIAGNOSERS, lambda w, _: station_input(w)),
    # --- reservations: people for themselves (INVALID_INPUT with a tag not theirs), operators for
    # any card; cancelling is for its driver and those with stations:control ---
    "Mutation.reserveConnector": Rule(
        AUTHENTICATED, lambda w, _: station_input(w, connectorId=1, minutes=30, idTag=w.app_tag)
    ),
    "Mutation.cancelReservation": Rule(
        CONTROLLERS | {DRIVER}, lambda w, _: {"id": gid("Reservation", w.reservation)}
    ),
    "Query.reservations": Rule(AUTHENTICATED, lambda w, _: {"stationId": gid("Station", w.station)}),
    # --- local authorization lists: syncing is control, reading the list's state is diagnosis
    # (the matrix's station has no charger: STATION_OFFLINE results are allowed) ---
    "Mutation.syncLocalAuthList": Rule(CONTROLLERS, lambda w, _: {"stationIds": [gid("Station", w.station)]}),
    "Query.localAuthListStatus": Rule(DIAGNOSERS, lambda w, _: {"stationId": gid("Station", w.station)}),
    # --- firmware campaigns (stations:diagnose); the matrix's campaign is a draft, so pausing and
    # resuming it is INVALID_STATE_TRANSITION for those allowed, NOT_FOUND for the others ---
    "Query.firmwareCampaigns": Rule(AUTHENTICATED),
    "Mutation.createFirmwareCampaign": Rule(
        DIAGNOSERS,
        lambda w, _: {
            "input": {
                "organizationId": gid("Organization", w.org),
                "name": "matrix",
                "location": FIRMWARE_URL,
                "stations": {"stationIds": [gid("Station", w.station)]},
            }
        },
    ),
    "Mutation.startFirmwareCampaign": Rule(
        DIAGNOSERS, lambda w, _: {"id": gid("FirmwareCampaign", w.campaign)}
    ),
    "Mutation.pauseFirmwareCampaign": Rule(
        DIAGNOSERS, lambda w, _: {"id": gid("FirmwareCampaign", w.campaign)}
    ),
    "Mutation.resumeFirmwareCampaign": Rule(
        DIAGNOSERS, lambda w, _: {"id": gid("FirmwareCampaign", w.campaign)}
    ),
    "Mutation.abortFirmwareCampaign": Rule(
        DIAGNOSERS, lambda w, _: {"id": gid("FirmwareCampaign", w.campaign)}
    ),
    # --- provisioning (network:manage) ---
    "Mutation.registerStation": Rule(
        MANAGERS,
        lambda w, who: {
            "input": {
                "locationId": gid("Location", w.location),
                "chargePointId": f"REG-{w.org}-{who}",
                "connectors": [{"connectorId": 1}],
            }
        },
    ),
    "Mutation.approveStation": Rule(MANAGERS, lambda w, _: station_input(w)),
    "Mutation.rejectStation": Rule(MANAGERS, lambda w, _: {"stationId": gid("Station", w.station)}),
    "Mutation.rotateStationPassword": Rule(MANAGERS, lambda w, _: {"stationId": gid("Station", w.station)}),
    # Scoped lists: everyone signed in may ask; the rows are their organisations' only.
    "Query.chargingRequest": Rule(
        SESSION_READERS, lambda w, _: {"id": gid("ChargingRequest", w.charging_request)}
    ),
    "Query.commands": Rule(AUTHENTICATED, lambda w, _: {"stationId": gid("Station", w.station)}),
    "Query.stationFiles": Rule(AUTHENTICATED, lambda w, _: {"stationId": gid("Station", w.station)}),
    "Query.stationConfiguration": Rule(AUTHENTICATED, lambda w, _: {"stationId": gid("Station", w.station)}),
    # --- configuration templates: reading drift and the device model is diagnosing (null for
    # others), writing and applying templates is control ---
    "Query.configurationTemplates": Rule(AUTHENTICATED),
    # --- tariffs: prices are public where the station is; managing them is billing ---
    "Query.tariffs": Rule(AUTHENTICATED),
    "Query.connectorTariff": Rule(
        ALL, lambda w, _: {"stationId": gid("Station", w.station), "connectorId": 1}
    ),
    "Query.estimateCost": Rule(
        ALL,
        lambda w, _: {
            "input": {
                "stationId": gid("Station", w.station),
                "connectorId": 1,
                "energyKwh": "10",
                "chargingMinutes": 60,
            }
        },
    ),
    "Mutation.createTariff": Rule(
        BILLERS,
        lambda w, who: {
            "input": {
                "organizationId": gid("Organization", w.org),
                "name": f"T {who}",
                "prices": {"energyPerKwh": "35"},
            }
        },
    ),
    "Mutation.updateTariffPrices": Rule(
        BILLERS,
        lambda w, _: {"input": {"tariffId": gid("Tariff", w.tariff), "prices": {"energyPerKwh": "41"}}},
    ),
    "Mutation.archiveTariff": Rule(BILLERS, lambda w, _: {"id": gid("Tariff", w.tariff)}),
    "Mutation.assignTariff": Rule(
        BILLERS,
        lambda w, _: {"input": {"tariffId": gid("Tariff", w.tariff), "stationId": gid("Station", w.station)}},
    ),
    "Mutation.unassignTariff": Rule(
        BILLERS, lambda w, _: {"id": gid("TariffAssignment", w.tariff_assignment)}
    ),
    # --- payments: cards, payments and balance are the signed-in person's own; the matrix world
    # has no card, no paid session and no request of the callers' own, so acting on one is
    # NOT_FOUND for everybody (tests/test_pay_as_you_go.py shows the owners succeeding) ---
    "Query.paymentMethods": Rule(PEOPLE),
    "Query.myPayments": Rule(PEOPLE),
    "Query.myUnpaidBalance": Rule(PEOPLE),
    "Mutation.addPaymentMethod": Rule(PEOPLE, lambda w, who: {"attemptId": f"matrix-{who}"}),
    "Mutation.setDefaultPaymentMethod": Rule(frozenset(), lambda w, _: {"paymentMethodId": "pm_card_visa"}),
    "Mutation.removePaymentMethod": Rule(frozenset(), lambda w, _: {"paymentMethodId": "pm_card_visa"}),
    "Mutation.payUnpaidBalance": Rule(PEOPLE),
    "Mutation.resumeCharging": Rule(
        frozenset(), lambda w, _: {"requestId": gid("ChargingRequest", w.charging_request)}
    ),
    "Query.billingSettings": Rule(BILLERS, lambda w, _: {"organizationId": gid("Organization", w.org)}),
    "Mutation.updateBillingSettings": Rule(
        BILLERS,
        lambda w, _: {"input": {"organizationId": gid("Organization", w.org), "paymentsRequired": False}},
    ),
    "Mutation.refundSession": Rule(
        frozenset(), lambda w, _: {"input": {"transactionId": gid("Transaction", w.transaction)}}
    ),
    # --- membership plans: public to list, billing to manage; memberships are the driver's ---
    "Query.membershipPlans": Rule(ALL, lambda w, _: {"organizationId": gid("Organization", w.org)}),
    "Query.myMemberships": Rule(AUTHENTICATED),
    "Mutation.createMembershipPlan": Rule(
        BILLERS,
        lambda w, who: {
            "input": {"organizationId": gid("Organization", w.org), "name": f"P {who}", "monthlyFee": 100}
        },
    ),
    "Mutation.archiveMembershipPlan": Rule(BILLERS, lambda w, _: {"id": gid("MembershipPlan", w.plan)}),
    # --- sponsored charging: billing:read to read (lists are scoped: empty for others, the report
    # null), billing:manage to write ---
    "Query.sponsors": Rule(AUTHENTICATED),
    "Query.sponsorships": Rule(AUTHENTICATED),
    "Query.sponsorStatements": Rule(AUTHENTICATED),
    "Query.sponsorshipReport": Rule(
        BILLERS, lambda w, _: {"id": gid("Sponsorship", w.sponsorship), "month": "2026-11"}
    ),
    "Mutation.createSponsor": Rule(
        BILLERS, lambda w, who: {"input": {"organizationId": gid("Organization", w.org), "name": f"S {who}"}}
    ),
    "Mutation.createSponsorship": Rule(
        BILLERS,
        lambda w, _: {
            "input": {
                "sponsorId": gid("Sponsor", w.sponsor),
                "message": "Sponsored",
                "budget": 1_000,
                "capAmount": 100,
                "stationIds": [gid("Station", w.station)],
            }
        },
    ),
    "Mutation.updateSponsorship": Rule(
        BILLERS, lambda w, _: {"input": {"id": gid("Sponsorship", w.sponsorship), "budgetIncrease": 100}}
    ),
    "Mutation.endSponsorship": Rule(BILLERS, lambda w, _: {"id": gid("Sponsorship", w.sponsorship)}),
    "Mutation.issueSponsorStatements": Rule(
        BILLERS, lambda w, _: {"organizationId": gid("Organization", w.org), "month": "2026-10"}
    ),
    # --- incidents: network:read to read (the list is scoped: empty for others), acting takes
    # stations:control or workorders:manage and a person (the timeline names who acted) ---
    "Query.incidents": Rule(AUTHENTICATED),
    "Query.incident": Rule(MEMBERS | {KEY, PLATFORM}, lambda w, _: {"id": gid("Incident", w.incident)}),
    "Mutation.acknowledgeIncident": Rule(INCIDENT_ACTORS, lambda w, _: {"id": gid("Incident", w.incident)}),
    "Mutation.commentOnIncident": Rule(
        INCIDENT_ACTORS, lambda w, _: {"id": gid("Incident", w.incident), "text": "on it"}
    ),
    "Mutation.resolveIncident": Rule(
        INCIDENT_ACTORS, lambda w, _: {"id": gid("Incident", w.incident), "resolution": "fixed"}
    ),
    "Subscription.fleetAlerts": Rule(MEMBERS | {KEY, PLATFORM}, org),
    # --- receipts and invoices: the driver's own, billing staff's organisation's; revenue is reports ---
    "Query.myReceipts": Rule(PEOPLE),
    "Query.myInvoices": Rule(PEOPLE),
    "Query.chargingHistory": Rule(PEOPLE, lambda w, _: dict(PERIOD)),
    "Query.receipts": Rule(BILLERS),
    "Query.invoices": Rule(BILLERS),
    "Query.revenueReport": Rule(REPORTERS, lambda w, _: {**PERIOD, "groupBy": "STATION"}),
    "Query.revenueExportUrl": Rule(REPORTERS, lambda w, _: dict(PERIOD)),
    # --- uptime: network:read reads; stations:control or workorders:manage classify outages ---
    "Query.uptime": Rule(NETWORK_READERS, org),
    "Query.stationsBelowUptime": Rule(NETWORK_READERS, org),
    "Query.portOutages": Rule(
        NETWORK_READERS, lambda w, _: {"stationId": gid("Station", w.station), **PERIOD}
    ),
    "Query.uptimeExportUrl": Rule(NETWORK_READERS, lambda w, _: org(w, _) | {"year": 2026, "quarter": 1}),
    "Mutation.excludeOutage": Rule(
        CLASSIFIERS,
        lambda w, _: {
            "stationId": gid("Station", w.station),
            "start": "2026-03-01T00:00:00+00:00",
            "end": "2026-03-01T02:00:00+00:00",
            "reason": "VANDALISM",
        },
    ),
    "Mutation.revokeOutageExclusion": Rule(
        CLASSIFIERS, lambda w, _: {"id": gid("OutageExclusion", w.outage_exclusion)}
    ),
    # --- fault code rules: network:read reads the table, network:manage changes it ---
    "Query.faultCodeRules": Rule(NETWORK_READERS, org),
    "Mutation.setFaultCodeRule": Rule(
        MANAGERS,
        lambda w, _: {
            "input": org(w, _) | {"source": "ERROR_CODE", "code": "ReaderFailure", "severity": "LOW"}
        },
    ),
    "Mutation.removeFaultCodeRule": Rule(MANAGERS, lambda w, _: {"id": gid("FaultCodeRule", w.fault_rule)}),
    "Mutation.updateBillingDetails": Rule(
        BILLERS, lambda w, _: org(w, _) | {"input": {"vatId": "DE123456789"}}
    ),
    "Query.planSubscriptions": Rule(BILLERS, lambda w, _: {"planId": gid("MembershipPlan", w.plan)}),
    # Any person may join a plan for themselves (the matrix has no Stripe: BILLING_DISABLED).
    "Mutation.subscribeToPlan": Rule(PEOPLE, lambda w, _: {"planId": gid("MembershipPlan", w.plan)}),
    "Mutation.changePlan": Rule(PEOPLE, lambda w, _: {"planId": gid("MembershipPlan", w.plan)}),
    # Only the driver holds the membership: to everyone else it does not exist.
    "Mutation.cancelMembership": Rule(
        frozenset({DRIVER}), lambda w, _: {"id": gid("PlanMembership", w.plan_membership)}
    ),
    "Query.configurationDrift": Rule(DIAGNOSERS, lambda w, _: {"stationId": gid("Station", w.station)}),
    "Query.deviceModel": Rule(DIAGNOSERS, lambda w, _: {"stationId": gid("Station", w.station)}),
    "Mutation.createConfigurationTemplate": Rule(
        CONTROLLERS,
        lambda w, who: {
            "input": {
                "organizationId": gid("Organization", w.org),
                "name": f"T {who}",
                "vendor": "V",
                "model": "M",
                "entries": [{"key": "HeartbeatInterval", "value": "60"}],
            }
        },
    ),
    "Mutation.updateConfigurationTemplate": Rule(
        CONTROLLERS,
        lambda w, _: {
            "id": gid("ConfigurationTemplate", w.configuration_template),
            "input": {"name": "Matrix", "vendor": "V", "model": "M", "entries": []},
        },
    ),
    "Mutation.deleteConfigurationTemplate": Rule(
        CONTROLLERS, lambda w, _: {"id": gid("ConfigurationTemplate", w.configuration_template)}
    ),
    "Mutation.applyConfigurationTemplate": Rule(CONTROLLERS, lambda w, _: stations_input(w)),
    # --- work orders, inspections, problem reports: workorders:manage (technicians their own
    # orders, managers everything), costs also to finance, reports by any person ---
    "Query.workOrders": Rule(WORKERS),
    "Query.myWorkOrders": Rule(WORKERS),
    "Query.workOrder": Rule(WORKERS, lambda w, _: work_order(w)),
    "Query.workOrderSettings": Rule(WORKERS, org),
    "Query.maintenanceCosts": Rule(WORKERS | {"finance"}, lambda w, _: org(w, _) | {"year": 2026}),
    "Query.inspectionPlans": Rule(WORKERS),
    "Query.problemReports": Rule(WORKERS),
    "Query.myProblemReports": Rule(PEOPLE),
    "Subscription.workOrderUpdated": Rule(WORKERS, org),
    "Mutation.createWorkOrder": Rule(
        MANAGERS,
        lambda w, _: {"input": {"stationId": gid("Station", w.station), "title": "Fix", "severity": "LOW"}},
    ),
    "Mutation.assignWorkOrder": Rule(
        MANAGERS, lambda w, _: work_order(w, assigneeId=gid("Account", w.users[Role.TECHNICIAN.value]))
    ),
    "Mutation.changeWorkOrderState": Rule(WORKERS, lambda w, _: work_order(w, state="IN_PROGRESS")),
    "Mutation.addWorkOrderNote": Rule(WORKERS, lambda w, _: work_order(w, text="Note")),
    "Mutation.addWorkOrderChecklistItem": Rule(WORKERS, lambda w, _: work_order(w, text="Item")),
    "Mutation.setWorkOrderChecklistItem": Rule(
        WORKERS, lambda w, _: work_order(w, itemId=str(w.checklist_item), done=True)
    ),
    "Mutation.addWorkOrderPart": Rule(
        WORKERS, lambda w, _: work_order(w, input={"name": "Fuse", "quantity": 1, "unitCost": 100})
    ),
    "Mutation.setWorkOrderLabourCost": Rule(WORKERS, lambda w, _: work_order(w, amount=1000)),
    "Mutation.addWorkOrderPhoto": Rule(
        WORKERS,
        lambda w, _: work_order(
            w, photo={"fileName": "p.jpg", "contentType": "image/jpeg", "dataBase64": "/9j/"}
        ),
    ),
    "Mutation.runWorkOrderStationAction": Rule(
        WORKERS,
        lambda w, _: {"input": {"workOrderId": gid("WorkOrder", w.work_order), "action": "TRIGGER_STATUS"}},
    ),
    "Mutation.updateWorkOrderSettings": Rule(MANAGERS, work_order_settings),
    "Mutation.createInspectionPlan": Rule(
        MANAGERS,
        lambda w, _: {
            "input": {
                "organizationId": gid("Organization", w.org),
                "name": "P",
                "vendor": "V",
                "everyDays": 30,
            }
        },
    ),
    "Mutation.setInspectionPlanActive": Rule(
        MANAGERS, lambda w, _: {"id": gid("InspectionPlan", w.inspection_plan), "active": False}
    ),
    "Mutation.reportProblem": Rule(
        PEOPLE,
        lambda w, _: {
            "input": {
                "stationId": gid("Station", w.station),
                "category": "OTHER",
                "text": "Broken",
                "connectorId": 1,
            }
        },
    ),
    # --- signing in (public by nature) ---
    "Mutation.signUp": Rule(
        ALL, lambda w, who: {"input": {"email": f"new-{who}@example.com", "password": "x"}}
    ),
    "Mutation.verifyEmail": Rule(ALL, lambda w, _: {"token": "not-a-token"}),
    "Mutation.resendVerificationEmail": Rule(ALL, lambda w, who: {"email": f"new-{who}@example.com"}),
    "Mutation.logIn": Rule(ALL, lambda w, who: {"input": {"email": f"{who}@example.com", "password": "x"}}),
    # A refresh token is a bearer credential of its own: whoever holds one may exchange it.
    "Mutation.refreshToken": Rule(ALL, lambda w, _: {"refreshToken": w.refresh_token}),
    "Mutation.requestPasswordReset": Rule(ALL, lambda w, who: {"email": f"{who}@example.com"}),
    "Mutation.resetPassword": Rule(ALL, lambda w, _: {"token": "not-a-token", "newPassword": "x"}),
    "Mutation.signInWithGoogle": Rule(ALL, lambda w, _: {"input": {"idToken": "x.y.z"}}),
    "Mutation.signInWithApple": Rule(ALL, lambda w, _: {"input": {"idToken": "x.y.z"}}),
    # --- a person's own account ---
    "Query.me": Rule(PEOPLE),
    "Query.authSessions": Rule(PEOPLE),
    "Mutation.logOut": Rule(PEOPLE),
    "Mutation.logOutEverywhere": Rule(PEOPLE),
    "Mutation.changePassword": Rule(PEOPLE, lambda w, _: {"currentPassword": "x", "newPassword": "y"}),
    "Mutation.revokeAuthSession": Rule(PEOPLE, lambda w, who: {"id": str(w.sessions.get(who, 0))}),
    "Mutation.updateProfile": Rule(PEOPLE, lambda w, _: {"input": {"displayName": "New Name"}}),
    "Mutation.addVehicle": Rule(PEOPLE, lambda w, _: {"input": {"make": "Kia", "model": "EV6"}}),
    "Mutation.linkCard": Rule(PEOPLE, lambda w, who: {"input": {"token": f"NEW{w.org}{len(who)}{who[:3]}"}}),
    "Mutation.createAppToken": Rule(PEOPLE),
    "Mutation.deleteAccount": Rule(PEOPLE, lambda w, _: {"input": {}}),
    # --- the driver's own objects: nobody else reaches them ---
    "Mutation.updateVehicle": Rule(
        frozenset({DRIVER}), lambda w, _: {"id": gid("Vehicle", w.vehicle), "input": {"nickname": "Zed"}}
    ),
    "Mutation.removeVehicle": Rule(frozenset({DRIVER}), lambda w, _: {"id": gid("Vehicle", w.vehicle)}),
    "Mutation.unlinkCard": Rule(frozenset({DRIVER}), lambda w, _: {"id": gid("Card", w.card)}),
    "Mutation.revokeAppToken": Rule(frozenset({DRIVER}), lambda w, _: {"id": gid("AppToken", w.app_token)}),
    "Mutation.acceptInvitation": Rule(frozenset({DRIVER}), lambda w, _: {"token": w.invitation_token}),
    # --- the organisation ---
    "Query.organizations": Rule(AUTHENTICATED),
    "Query.organization": Rule(MEMBERS | {KEY, PLATFORM}, lambda w, _: {"id": gid("Organization", w.org)}),
    "Query.invitations": Rule(MANAGERS, lambda w, _: org(w, _) | {"pendingOnly": True}),
    "Query.apiKeys": Rule(MANAGERS, org),
    "Query.auditLog": Rule(MANAGERS, org),
    "Mutation.createOrganization": Rule(
        frozenset({PLATFORM}), lambda w, who: {"name": "New", "slug": f"new-{w.org}-{who}", "currency": "EUR"}
    ),
    "Mutation.updateOrganization": Rule(
        frozenset({"owner", PLATFORM}), lambda w, _: {"id": gid("Organization", w.org), "name": "Renamed"}
    ),
    "Mutation.changeMemberRole": Rule(
        MANAGERS, lambda w, _: org(w, _) | {"userId": gid("Account", w.target_member), "role": "TECHNICIAN"}
    ),
    "Mutation.removeMember": Rule(
        MANAGERS, lambda w, _: org(w, _) | {"userId": gid("Account", w.target_member)}
    ),
    "Mutation.inviteMember": Rule(
        MANAGERS, lambda w, _: org(w, _) | {"email": f"invitee-{w.org}@example.com", "role": "VIEWER"}
    ),
    "Mutation.revokeInvitation": Rule(MANAGERS, lambda w, _: {"id": gid("Invitation", w.invitation)}),
    "Mutation.createApiKey": Rule(
        MANAGERS, lambda w, _: org(w, _) | {"name": "k", "permissions": ["SESSIONS_READ"]}
    ),
    "Mutation.revokeApiKey": Rule(MANAGERS, lambda w, _: {"id": gid("ApiKey", w.target_key)}),
}


def _schema() -> GraphQLSchema:
    return build_schema()._schema


def operations() -> list[tuple[str, str]]:
    schema = _schema()
    out = []
    for root in ("Query", "Mutation", "Subscription"):
        t = schema.get_type(root)
        assert isinstance(t, GraphQLObjectType)
        out += [(root, name) for name in t.fields]
    return out


def _type_ref(t: Any) -> str:
    if isinstance(t, GraphQLNonNull):
        return f"{_type_ref(t.of_type)}!"
    if isinstance(t, GraphQLList):
        return f"[{_type_ref(t.of_type)}]"
    return str(t.name)


def _placeholder(t: Any) -> Any:
    """A syntactically valid value for a required argument the rule did not give."""
    if isinstance(t, GraphQLNonNull):
        return _placeholder(t.of_type)
    if isinstance(t, GraphQLList):
        return []
    if isinstance(t, GraphQLEnumType):
        return next(iter(t.values))
    if isinstance(t, GraphQLInputObjectType):
        return {
            name: _placeholder(f.type) for name, f in t.fields.items() if isinstance(f.type, GraphQLNonNull)
        }
    assert isinstance(t, GraphQLScalarType)
    return {"Int": 1, "Float": 1.0, "Boolean": False}.get(t.name, "x")


def document(root: str, name: str, variables: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The operation calling `name` with `variables`, selecting just `__typename`."""
    schema = _schema()
    field_def = schema.get_type(root).fields[name]  # type: ignore[union-attr]
    values = dict(variables)
    for arg, definition in field_def.args.items():
        if arg not in values and isinstance(definition.type, GraphQLNonNull):
            values[arg] = _placeholder(definition.type)
    used = {a: d for a, d in field_def.args.items() if a in values}
    var_defs = ", ".join(f"${a}: {_type_ref(d.type)}" for a, d in used.items())
    call = f"{name}({', '.join(f'{a}: ${a}' for a in used)})" if used else name
    named = field_def.type
    while isinstance(named, GraphQLNonNull | GraphQLList):
        named = named.of_type
    selection = (
        " { __typename }"
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType)
        else ""
    )
    op = root.lower()
    header = f"{op} Probe({var_defs})" if var_defs else f"{op} Probe"
    return f"{header} {{ {call}{selection} }}", values


def verdict(result: dict[str, Any], name: str) -> str:
    errors = result.get("errors") or []
    codes = {e.get("extensions", {}).get("code") for e in errors}
    if codes & DENY_CODES:
        return "denied"
    if not errors and (result.get("data") or {}).get(name) is None:
        return "denied"  # a scoped read of someone else's object answers null
    return "allowed"


async def _http(
    server: ApiServer, token: str | None, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    if response.status_code == 401:
        return {"errors": [{"extensions": {"code": "UNAUTHENTICATED"}}]}
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _ws(server: ApiServer, token: str | None, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    async with connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert ack["type"] == "connection_ack", ack
        subscribe = {"query": query, "variables": variables}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    if message["type"] == "next":
        return message["payload"]  # type: ignore[no-any-return]
    errors = message["payload"] if isinstance(message["payload"], list) else [message["payload"]]
    return {"errors": errors}


def test_every_operation_has_a_rule() -> None:
    missing = [f"{r}.{n}" for r, n in operations() if f"{r}.{n}" not in RULES]
    stale = set(RULES) - {f"{r}.{n}" for r, n in operations()}
    assert not missing, f"operations without an access rule in the matrix: {missing}"
    assert not stale, f"rules for operations that no longer exist: {stale}"


@SQLITE_ONLY
@pytest.mark.parametrize(("root", "name"), operations(), ids=[f"{r}.{n}" for r, n in operations()])
async def test_matrix(engine: AsyncEngine, api_server: ApiServer, root: str, name: str) -> None:
    rule = RULES.get(f"{root}.{name}")
    if rule is None:
        pytest.fail(f"{root}.{name} has no rule (see test_every_operation_has_a_rule)")
    keys = api_server.app.state.auth.keys
    outcomes: dict[str, str] = {}
    details: dict[str, Any] = {}
    for who in CALLERS:
        # A fresh organisation per caller: what one caller did (revoke, remove) can't decide
        # another's outcome.
        world = await build_world(engine, keys)
        query, variables = document(root, name, rule.args(world, who))
        token = world.tokens.get(who)
        run = _ws if root == "Subscription" else _http
        result = await run(api_server, token, query, variables)
        outcomes[who] = verdict(result, name)
        details[who] = result.get("errors") or result.get("data")
    expected = {who: ("allowed" if who in rule.allowed else "denied") for who in CALLERS}
    wrong = {who: (outcomes[who], details[who]) for who in CALLERS if outcomes[who] != expected[who]}
    assert not wrong, f"{root}.{name}: expected {sorted(rule.allowed)} allowed; mismatches: {wrong}"
