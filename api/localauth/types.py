"""GraphQL shapes of local authorization lists: sync results and a station's list status."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from api.localauth.service import ListStatus, SyncOutcome, SyncResult
from api.network.types import StationNode, station_node
from schema.commands import UpdateType

SyncOutcomeGQL = strawberry.enum(
    SyncOutcome,
    name="LocalAuthListSyncOutcome",
    description="UPDATED: the station now holds the organisation's list; UP_TO_DATE: it already "
    "did; NOT_SUPPORTED: it keeps no local list (or has it switched off); STATION_OFFLINE, "
    "TIMED_OUT, FAILED: the update stays pending and the worker retries.",
)
UpdateTypeGQL = strawberry.enum(UpdateType, name="LocalAuthListUpdateType")


@strawberry.type(name="LocalAuthListSync", description="One station's local-list sync.")
class LocalAuthListSync:
    outcome: SyncOutcomeGQL  # type: ignore[valid-type]
    message: str
    update_type: UpdateTypeGQL | None = strawberry.field(  # type: ignore[valid-type]
        description="FULL or DIFFERENTIAL, when an update was sent."
    )
    version: int | None = strawberry.field(description="The list version the station holds now.")
    entries_sent: int = strawberry.field(description="Entries sent, over every message.")
    messages_sent: int = strawberry.field(description="SendLocalList messages the station accepted.")
    left_out: int = strawberry.field(
        description="Tokens of the organisation not on the list (too long for the station's "
        "protocol, or beyond the number of entries it holds)."
    )
    pending: bool = strawberry.field(description="The update is still owed; the worker retries.")
    _station_id: strawberry.Private[int]

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)

    @classmethod
    def from_result(cls, r: SyncResult) -> LocalAuthListSync:
        return cls(
            outcome=r.outcome,
            message=r.message,
            update_type=r.update_type,
            version=r.version,
            entries_sent=r.entries_sent,
            messages_sent=r.messages_sent,
            left_out=r.left_out,
            pending=r.pending,
            _station_id=r.station_id,
        )


@strawberry.type(name="LocalAuthListSyncPayload")
class LocalAuthListSyncPayload:
    results: list[LocalAuthListSync] = strawberry.field(description="One per station, in the order asked.")


@strawberry.type(
    name="LocalAuthListStatus",
    description="What ChargeNet knows of a station's local authorization list.",
)
class LocalAuthListStatus:
    managed: bool = strawberry.field(
        description="ChargeNet keeps this station's list in step with the organisation's tokens "
        "(from its first sync on)."
    )
    version: int | None = strawberry.field(description="The version installed by ChargeNet.")
    entry_count: int
    synced_at: datetime | None = strawberry.field(description="When it last matched the tokens.")
    attempted_at: datetime | None
    pending: bool = strawberry.field(description="An update is owed (offline, failed, timed out).")
    last_result: SyncOutcomeGQL | None  # type: ignore[valid-type]
    last_message: str | None
    _station_id: strawberry.Private[int]

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)

    @classmethod
    def from_status(cls, st: ListStatus) -> LocalAuthListStatus:
        return cls(
            managed=st.managed,
            version=st.version,
            entry_count=st.entry_count,
            synced_at=st.synced_at,
            attempted_at=st.attempted_at,
            pending=st.pending,
            last_result=None if st.last_result is None else SyncOutcome(st.last_result),
            last_message=st.last_message,
            _station_id=st.station_id,
        )
