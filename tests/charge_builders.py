"""Keyword-only builders for ended, charged sessions (a `charging_transaction` with its
`session_charge` row, as the worker writes them), for tests that start after pricing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from schema import outbox
from schema.charge_models import SessionCharge
from schema.events import SessionCharged
from schema.models import ChargingStation, Transaction

TX = Transaction.__table__  # type: ignore[attr-defined]
CHARGE = SessionCharge.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]


def energy_line(energy_wh: int, amount: int) -> dict[str, Any]:
    return {
        "component": "energy",
        "label": "Energy",
        "unit": "kWh",
        "amount": amount,
        "base_quantity": energy_wh * 1000,
        "scaled_price": None,
    }


async def make_charged_session(
    engine: AsyncEngine,
    *,
    station_id: int,
    started_at: datetime,
    user_id: int | None = None,
    id_tag: str | None = "TAG-OK-1",
    energy_wh: int = 10_000,
    total: int = 400,
    tax_basis_points: int = 1900,
    sponsor_amount: int = 0,
    minutes: int = 60,
    announce: bool = False,
) -> tuple[int, int]:
    """(transaction id, charge id). `announce`: also record the durable SessionCharged, as the
    worker does in the same transaction."""
    stopped_at = started_at + timedelta(minutes=minutes)
    net = round(total * 10_000 / (10_000 + tax_basis_points))
    async with engine.begin() as conn:
        station = (await conn.execute(STATION.select().where(STATION.c.id == station_id))).one()
        tx_id = (
            await conn.execute(
                TX.insert()
                .values(
                    station_id=station_id,
                    connector_id=1,
                    id_tag=id_tag,
                    user_id=user_id,
                    start_key=f"built-{started_at.isoformat()}-{user_id}-{id_tag}-{station_id}",
                    state="Completed",
                    started_at=started_at,
                    stopped_at=stopped_at,
                    meter_start_wh=1_000_000,
                    meter_stop_wh=1_000_000 + energy_wh,
                    energy_wh=energy_wh,
                    created_at=started_at,
                )
                .returning(TX.c.id)
            )
        ).scalar_one()
        charge_id = (
            await conn.execute(
                CHARGE.insert()
                .values(
                    transaction_id=tx_id,
                    organization_id=station.organization_id,
                    station_id=station_id,
                    user_id=user_id,
                    id_tag=id_tag,
                    currency="EUR",
                    lines=[energy_line(energy_wh, total)],
                    subtotal=total,
                    net=net,
                    tax=total - net,
                    total=total,
                    tax_basis_points=tax_basis_points,
                    prices_include_tax=True,
                    energy_wh=energy_wh,
                    charging_seconds=minutes * 60,
                    idle_seconds=0,
                    sponsor_amount=sponsor_amount,
                    driver_amount=total - sponsor_amount,
                    started_at=started_at,
                    stopped_at=stopped_at,
                    priced_at=stopped_at,
                )
                .returning(CHARGE.c.id)
            )
        ).scalar_one()
        if announce:
            await outbox.append(
                conn,
                [
                    SessionCharged(
                        station_id=station_id,
                        charge_point_id=station.charge_point_id,
                        location_id=station.location_id,
                        at=stopped_at,
                        transaction_id=tx_id,
                        charge_id=charge_id,
                        user_id=user_id,
                        currency="EUR",
                        total=total,
                        driver_amount=total - sponsor_amount,
                    )
                ],
                stopped_at,
            )
    return int(tx_id), int(charge_id)
