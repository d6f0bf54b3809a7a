"""GraphQL types of charging sessions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.billing import charges
from api.billing.types import PriceBreakdown
from api.enums import TransactionStateGQL
from api.network.types import StationNode, int_ids
from api.sessions import repository
from schema.events import TransactionEvent
from schema.models import MeterSample, Transaction

DEFAULT_SAMPLES = 200


@strawberry.type(name="MeterSample", description="One sampled value from a station's meter.")
class MeterSampleNode:
    sampled_at: datetime
    measurand: str
    phase: str | None
    location: str | None
    context: str | None
    unit: str | None
    value: float

    @classmethod
    def from_model(cls, m: MeterSample) -> MeterSampleNode:
        return cls(
            sampled_at=m.sampled_at,
            measurand=m.measurand,
            phase=m.phase or None,
            location=m.location or None,
            context=m.context or None,
            unit=m.unit,
            value=m.value,
        )


@strawberry.type(name="Transaction", description="A charging session on one connector.")
class TransactionNode(relay.Node):
    id: relay.NodeID[int]
    connector_id: int
    id_tag: str | None = strawberry.field(description="The RFID card or token that authorised it.")
    state: TransactionStateGQL
    started_at: datetime
    stopped_at: datetime | None
    meter_start_wh: int
    meter_stop_wh: int | None
    energy_wh: int = strawberry.field(description="From the meter register, not summed from power.")
    power_w: int | None
    soc_percent: int | None
    last_sample_at: datetime | None
    stop_reason: str | None
    start_missing: bool = strawberry.field(
        description="The station reported the stop of a session whose start was never received."
    )
    _station_pk: strawberry.Private[int]

    @classmethod
    def from_model(cls, m: Transaction) -> TransactionNode:
        return cls(
            id=m.id or 0,
            connector_id=m.connector_id,
            id_tag=m.id_tag,
            state=TransactionStateGQL(m.state),
            started_at=m.started_at,
            stopped_at=m.stopped_at,
            meter_start_wh=m.meter_start_wh,
            meter_stop_wh=m.meter_stop_wh,
            energy_wh=m.energy_wh,
            power_w=m.power_w,
            soc_percent=m.soc_percent,
            last_sample_at=m.last_sample_at,
            stop_reason=m.stop_reason,
            start_missing=m.start_missing,
            _station_pk=m.station_id,
        )

    @strawberry.field(
        description="What the session costs with the tariff frozen at its start (so far, while it "
        "runs); null when no tariff applies."
    )
    async def cost(self, info: Info) -> PriceBreakdown | None:
        async with info.context.db() as s:
            price = await charges.bill(await s.connection(), self.id)
        return None if price is None else PriceBreakdown.from_price(price)

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        row = await info.context.loaders.station_by_id.load(self._station_pk)
        return StationNode.from_model(row) if row else None

    @strawberry.field(
        description=f"Samples in time order; at most {repository.MAX_SAMPLES_PER_REQUEST} per request."
    )
    async def meter_samples(
        self, info: Info, first: int = DEFAULT_SAMPLES, measurand: str | None = None
    ) -> list[MeterSampleNode]:
        async with info.context.db() as s:
            rows = await repository.samples_for_transaction(
                s, info.context.principal, self.id, limit=max(0, first), measurand=measurand
            )
        return [MeterSampleNode.from_model(r) for r in rows]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[TransactionNode | None]:
        rows = await info.context.loaders.transaction_by_id.load_many(int_ids(node_ids))
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type(description="The live state of a session, as each meter reading arrives.")
class TransactionLive:
    transaction_id: strawberry.ID
    state: TransactionStateGQL
    energy_wh: int
    power_w: int | None
    soc_percent: int | None
    last_sample_at: datetime | None
    started_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None
    _pk: strawberry.Private[int]
    cost: PriceBreakdown | None = strawberry.field(
        default=None,
        description="The cost so far with the session's tariff (null: no tariff applies); final "
        "when the session has ended.",
    )

    @classmethod
    def from_event(cls, e: TransactionEvent) -> TransactionLive:
        return cls(
            transaction_id=transaction_global_id(e.transaction_id),
            state=TransactionStateGQL(e.state),
            energy_wh=e.energy_wh,
            power_w=e.power_w,
            soc_percent=e.soc_percent,
            last_sample_at=e.last_sample_at,
            started_at=e.started_at,
            stopped_at=e.stopped_at,
            stop_reason=e.stop_reason,
            _pk=e.transaction_id,
        )

    @classmethod
    def from_model(cls, m: Transaction) -> TransactionLive:
        return cls(
            transaction_id=transaction_global_id(m.id or 0),
            state=TransactionStateGQL(m.state),
            energy_wh=m.energy_wh,
            power_w=m.power_w,
            soc_percent=m.soc_percent,
            last_sample_at=m.last_sample_at,
            started_at=m.started_at,
            stopped_at=m.stopped_at,
            stop_reason=m.stop_reason,
            _pk=m.id or 0,
        )

    @strawberry.field
    async def transaction(self, info: Info) -> TransactionNode | None:
        row = await info.context.loaders.transaction_by_id.load(self._pk)
        return TransactionNode.from_model(row) if row else None


def transaction_global_id(pk: int) -> strawberry.ID:
    return strawberry.ID(str(relay.GlobalID("Transaction", str(pk))))


async def transaction_node(info: Info, pk: int | None) -> TransactionNode | None:
    """A session by id through the request's (caller-scoped) loader; None when not visible."""
    if pk is None:
        return None
    row = await info.context.loaders.transaction_by_id.load(pk)
    return TransactionNode.from_model(row) if row else None
