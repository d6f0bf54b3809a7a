"""Request-scoped DataLoaders: nested fields batch into one query per kind and level.

Subscriptions live for the whole socket, so their loaders do not cache (a cached station
would freeze the snapshot a later event should refresh).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.dataloader import DataLoader

from api.auth.principal import Principal
from api.invoicing import repository as invoicing
from api.network import repository as network
from api.service import health_repository as health
from api.service import incident_repository as incidents
from api.sessions import repository as sessions
from schema.models import ChargingStation, Connector, Location, Transaction

K = TypeVar("K")
V = TypeVar("V")


class _Loader(DataLoader[K, V], Generic[K, V]):
    def __init__(self, db: async_sessionmaker[AsyncSession], principal: Principal, *, cache: bool) -> None:
        super().__init__(load_fn=self.batch_load, cache=cache)
        self.db = db
        self.principal = principal

    async def batch_load(self, keys: Sequence[K]) -> list[V]:
        raise NotImplementedError


class StationByIdLoader(_Loader[int, ChargingStation | None]):
    async def batch_load(self, keys: Sequence[int]) -> list[ChargingStation | None]:
        async with self.db() as s:
            found = await network.stations_by_ids(s, self.principal, keys)
        return [found.get(k) for k in keys]


class LocationByIdLoader(_Loader[int, Location | None]):
    async def batch_load(self, keys: Sequence[int]) -> list[Location | None]:
        async with self.db() as s:
            found = await network.locations_by_ids(s, self.principal, keys)
        return [found.get(k) for k in keys]


class ConnectorsByStationIdLoader(_Loader[int, list[Connector]]):
    async def batch_load(self, keys: Sequence[int]) -> list[list[Connector]]:
        async with self.db() as s:
            found = await network.connectors_by_station_ids(s, self.principal, keys)
        return [found.get(k, []) for k in keys]


class StationsByLocationIdLoader(_Loader[int, list[ChargingStation]]):
    async def batch_load(self, keys: Sequence[int]) -> list[list[ChargingStation]]:
        async with self.db() as s:
            found = await network.stations_by_location_ids(s, self.principal, keys)
        return [found.get(k, []) for k in keys]


class TransactionByIdLoader(_Loader[int, Transaction | None]):
    async def batch_load(self, keys: Sequence[int]) -> list[Transaction | None]:
        async with self.db() as s:
            found = await sessions.transactions_by_ids(s, self.principal, keys)
        return [found.get(k) for k in keys]


class HealthByStationIdLoader(_Loader[int, Row[Any] | None]):
    async def batch_load(self, keys: Sequence[int]) -> list[Row[Any] | None]:
        async with self.db() as s:
            found = await health.health_by_station_ids(await s.connection(), self.principal, keys)
        return [found.get(k) for k in keys]


class InvoiceBySourceKeyLoader(_Loader[str, Row[Any] | None]):
    """The invoice issued for a fact (a sponsor statement…), if the caller may read it."""

    async def batch_load(self, keys: Sequence[str]) -> list[Row[Any] | None]:
        async with self.db() as s:
            found = await invoicing.invoices_by_source_keys(await s.connection(), self.principal, keys)
        return [found.get(k) for k in keys]


class IncidentEntriesByIncidentIdLoader(_Loader[int, list[Row[Any]]]):
    async def batch_load(self, keys: Sequence[int]) -> list[list[Row[Any]]]:
        async with self.db() as s:
            found = await incidents.entries_by_incident_ids(s, self.principal, keys)
        return [found.get(k, []) for k in keys]


class Loaders:
    __slots__ = (
        "cache",
        "connectors_by_station",
        "health_by_station",
        "incident_entries",
        "invoice_by_source_key",
        "location_by_id",
        "station_by_id",
        "stations_by_location",
        "transaction_by_id",
    )

    def __init__(
        self, db: async_sessionmaker[AsyncSession], principal: Principal, *, cache: bool = True
    ) -> None:
        self.cache = cache
        self.station_by_id = StationByIdLoader(db, principal, cache=cache)
        self.location_by_id = LocationByIdLoader(db, principal, cache=cache)
        self.connectors_by_station = ConnectorsByStationIdLoader(db, principal, cache=cache)
        self.stations_by_location = StationsByLocationIdLoader(db, principal, cache=cache)
        self.transaction_by_id = TransactionByIdLoader(db, principal, cache=cache)
        self.health_by_station = HealthByStationIdLoader(db, principal, cache=cache)
        self.invoice_by_source_key = InvoiceBySourceKeyLoader(db, principal, cache=cache)
        self.incident_entries = IncidentEntriesByIncidentIdLoader(db, principal, cache=cache)
