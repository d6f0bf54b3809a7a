"""GraphQL shapes of station health: the score, whether it is an early warning, and each
input's part in it, so an operator sees why a station scores what it does."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.service.health import Factor, FactorKind

if TYPE_CHECKING:
    from api.network.types import StationNode

strawberry.enum(
    FactorKind,
    name="HealthFactorKind",
    description="FAULTS: fault status changes; FAILED_SESSIONS: sessions ending under 0.1 kWh or "
    "with an error stop reason, and starts the station refused or never made; REBOOTS: "
    "BootNotifications (retries minutes apart count once); HEARTBEAT_GAPS: offline episodes; "
    "LOW_POWER: sessions averaging under a share of rated power while the SoC was low.",
)


@strawberry.type(name="HealthFactor", description="One input of a station's health score and its part in it.")
class HealthFactorNode:
    kind: FactorKind
    count: int = strawberry.field(description="What happened in the window (faults, failures, reboots…).")
    out_of: int | None = strawberry.field(
        description="What the count is a share of (session attempts, sessions sampled at low SoC); "
        "null for per-day rates."
    )
    value: float = strawberry.field(
        description="Per day, or a share 0..1 of at least a minimum number of attempts."
    )
    zero_at: float = strawberry.field(description="The value at which the sub-score reaches 0.")
    sub_score: float = strawberry.field(description="100 (nothing wrong) down to 0.")
    weight: int = strawberry.field(description="Percent of the score.")

    @classmethod
    def from_factor(cls, f: Factor) -> HealthFactorNode:
        return cls(
            kind=f.kind,
            count=f.count,
            out_of=f.out_of,
            value=f.value,
            zero_at=f.zero_at,
            sub_score=f.sub_score,
            weight=f.weight,
        )


@strawberry.type(
    name="StationHealth",
    description="A station's health score over a trailing window, computed by the worker (hourly by "
    "default). Below the threshold it is degraded and a low-severity DEGRADED incident opens; it "
    "recovers at threshold + hysteresis.",
)
class StationHealthNode:
    station_id: relay.GlobalID
    score: int = strawberry.field(description="0 (failing) to 100 (healthy).")
    degraded: bool
    degraded_since: datetime | None
    threshold: int = strawberry.field(description="The threshold in force when it was computed.")
    window_start: datetime
    computed_at: datetime
    factors: list[HealthFactorNode]
    _station_pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Any) -> StationHealthNode:
        return cls(
            station_id=relay.GlobalID("Station", str(row.station_id)),
            score=row.score,
            degraded=bool(row.degraded),
            degraded_since=row.degraded_since,
            threshold=row.threshold,
            window_start=row.window_start,
            computed_at=row.computed_at,
            factors=[HealthFactorNode.from_factor(Factor.from_json(d)) for d in row.factors],
            _station_pk=int(row.station_id),
        )

    @strawberry.field
    async def station(
        self, info: Info
    ) -> Annotated[StationNode, strawberry.lazy("api.network.types")] | None:
        from api.network.types import station_node

        return await station_node(info, self._station_pk)
