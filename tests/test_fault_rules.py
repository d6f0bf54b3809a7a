"""An organisation's own fault code rules decide an incident's severity and whether the
station's recovery may close it (a vendor code rule over an OCPP code rule over the built-in
table, never another organisation's); a Faulted station (connector 0) is an outage on every
one of its ports for exactly as long as it is Faulted."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.service.fault_rules import RULE
from api.service.incidents import ENTRY, INCIDENT
from api.service.offline import OUTAGE
from api.worker.service import DurableWork
from gateway.simulator import SimConfig
from schema.models import ConnectorStatusEvent, Organization
from schema.timeutil import utcnow
from tests.conftest import ChargerFactory
from tests.detection_world import FAST_DETECTION, detector, gateway, make_watched_station, rows, wait_for

__all__ = ["detector", "gateway"]  # fixtures, imported for pytest

SIM_VENDOR = SimConfig.vendor
ORG = Organization.__table__  # type: ignore[attr-defined]
STATUS_EVENT = ConnectorStatusEvent.__table__  # type: ignore[attr-defined]


def one(found: list[dict[str, Any]]) -> bool:
    return len(found) == 1


async def org_id_of(conn: AsyncConnection, slug: str) -> int:
    """The station builders' organisation, or a bare second one (no tags: theirs clash)."""
    found = (await conn.execute(select(ORG.c.id).where(ORG.c.slug == slug))).scalar()
    if found is None:
        found = (
            await conn.execute(ORG.insert().values(name=slug.title(), slug=slug, created_at=utcnow()))
        ).inserted_primary_key[0]
    return int(found)


async def add_rule(
    engine: AsyncEngine,
    *,
    org_slug: str = "acme",
    source: str = "error_code",
    code: str,
    severity: str,
    auto_resolve: bool = True,
    vendor: str = "",
) -> None:
    async with engine.begin() as conn:
        org_id = await org_id_of(conn, org_slug)
        await conn.execute(
            RULE.insert().values(
                organization_id=org_id,
                source=source,
                vendor=vendor,
                code=code,
                severity=severity,
                auto_resolve=auto_resolve,
                updated_at=utcnow(),
            )
        )


class TestOverrides:
    async def test_an_override_changes_the_severity_and_makes_the_code_wait_for_a_technician(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        # given HighTemperature (built in: high, auto-resolved) overridden as critical, confirmed
        await make_watched_station(engine, charge_point_id="CP-R1", heartbeat_s=300)
        await add_rule(engine, code="HighTemperature", severity="critical", auto_resolve=False)
        cp = await connect_charger("CP-R1")
        await cp.status(1, "Faulted", "HighTemperature")
        [incident] = await wait_for(engine, INCIDENT, one)
        assert (incident["severity"], incident["auto_resolve"]) == ("critical", False)
        # when the connector recovers, the recovery is noted but the incident stays open
        await cp.status(1, "Available")
        await wait_for(engine, ENTRY, one, ENTRY.c.kind == "recovered")
        await asyncio.sleep(3 * FAST_DETECTION["CHARGENET_DETECTION_INTERVAL"])
        [incident] = await rows(engine, INCIDENT)
        assert incident["state"] == "open"

    async def test_a_vendor_code_rule_wins_over_the_error_code_rule_and_a_vendor_scoped_one_wins(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        # given a station whose BootNotification names its vendor (the simulator's)
        await make_watched_station(engine, charge_point_id="CP-R2", heartbeat_s=300)
        await add_rule(engine, code="OtherError", severity="high")
        await add_rule(engine, source="vendor_error_code", code="E-7", severity="low")
        await add_rule(engine, source="vendor_error_code", code="E-9", severity="low")
        await add_rule(engine, source="vendor_error_code", code="E-9", severity="critical", vendor=SIM_VENDOR)
        await add_rule(engine, source="vendor_error_code", code="E-9", severity="medium", vendor="Other")
        cp = await connect_charger("CP-R2")
        # when one port reports a code with an any-vendor rule, another one with a rule for its vendor
        await cp.status(1, "Available", "OtherError", vendorErrorCode="E-7")
        await cp.status(2, "Available", "OtherError", vendorErrorCode="E-9")
        found = await wait_for(engine, INCIDENT, lambda r: len(r) == 2)
        assert {i["connector_id"]: (i["vendor_error_code"], i["severity"]) for i in found} == {
            1: ("E-7", "low"),
            2: ("E-9", "critical"),
        }

    async def test_another_organisations_override_does_not_apply(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        await make_watched_station(engine, charge_point_id="CP-R3", heartbeat_s=300)
        await add_rule(engine, org_slug="rival", code="WeakSignal", severity="critical", auto_resolve=False)
        await add_rule(engine, org_slug="rival", source="vendor_error_code", code="W1", severity="critical")
        cp = await connect_charger("CP-R3")
        await cp.status(1, "Available", "WeakSignal", vendorErrorCode="W1")
        [incident] = await wait_for(engine, INCIDENT, one)
        assert (incident["severity"], incident["auto_resolve"]) == ("low", True)


class TestStationWideFaults:
    async def test_a_faulted_station_is_an_outage_on_every_port_until_it_recovers(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        # given a three-port station that reports itself (connector 0) Faulted
        await make_watched_station(engine, charge_point_id="CP-R4", connectors=3, heartbeat_s=300)
        cp = await connect_charger("CP-R4")
        await cp.status(0, "Faulted", "PowerSwitchFailure")
        # then the station's incident opens and every port has a faulted outage linked to it
        [incident] = await wait_for(engine, INCIDENT, one)
        assert (incident["connector_id"], incident["error_code"]) == (None, "PowerSwitchFailure")
        outages = await wait_for(engine, OUTAGE, lambda r: len(r) == 3)
        assert sorted(o["connector_id"] for o in outages) == [1, 2, 3]
        [faulted_at] = [
            r["received_at"]
            for r in await rows(
                engine, STATUS_EVENT, STATUS_EVENT.c.connector_id == 0, STATUS_EVENT.c.status == "Faulted"
            )
        ]
        assert all(
            (o["cause"], o["incident_id"], o["started_at"], o["ended_at"])
            == ("faulted", incident["id"], faulted_at, None)
            for o in outages
        )
        # and the reconcile job, seeing the ports Available, does not end them while the station is Faulted
        await asyncio.sleep(3 * FAST_DETECTION["CHARGENET_DETECTION_INTERVAL"])
        assert all(o["ended_at"] is None for o in await rows(engine, OUTAGE))
        # when the station recovers, every outage ends at that moment and no new one opens
        await cp.status(0, "Available")
        outages = await wait_for(engine, OUTAGE, lambda r: all(o["ended_at"] is not None for o in r))
        station_changes = await rows(engine, STATUS_EVENT, STATUS_EVENT.c.connector_id == 0)
        recovered_at = station_changes[-1]["received_at"]
        assert [o["ended_at"] for o in outages] == [recovered_at] * 3
        await asyncio.sleep(3 * FAST_DETECTION["CHARGENET_DETECTION_INTERVAL"])
        assert len(await rows(engine, OUTAGE)) == 3

    async def test_an_error_code_on_a_station_that_is_not_faulted_is_no_outage(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        await make_watched_station(engine, charge_point_id="CP-R5", heartbeat_s=300)
        cp = await connect_charger("CP-R5")
        await cp.status(0, "Available", "WeakSignal")
        [incident] = await wait_for(engine, INCIDENT, one)
        assert incident["connector_id"] is None
        await asyncio.sleep(3 * FAST_DETECTION["CHARGENET_DETECTION_INTERVAL"])
        assert await rows(engine, OUTAGE) == []
