"""Reservations on the simulated charger (OCPP 1.6 §3.11, ReserveNow §5.13, CancelReservation §5.4).

A reservation holds one connector (it reports Reserved) or, when ReserveConnectorZeroSupported
is true, "any connector" (connector 0: the charger keeps enough connectors free, none of them
shows Reserved, since connector 0's status can only be Available, Unavailable or Faulted). It
ends when it expires, is cancelled, or a session with its idTag (or an idTag with its
parentIdTag) starts; that StartTransaction carries the reservationId.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from gateway.sim_types import FollowUp, Reply
from schema.timeutil import parse_ocpp_datetime, utcnow

if TYPE_CHECKING:
    from gateway.simulator import SimCharger

# Connector states in which a new session (or reservation) cannot take the connector.
BUSY = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})


@dataclass
class Reservation:
    reservation_id: int
    connector_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry: datetime
    timer: asyncio.Task[Any] | None = None

    def admits(self, id_tag: str, parent_id_tag: str | None) -> bool:
        """§5.13: the reserved idTag, or any idTag whose parentIdTag the reservation names."""
        if id_tag.casefold() == self.id_tag.casefold():
            return True
        if self.parent_id_tag is None or parent_id_tag is None:
            return False
        return parent_id_tag.casefold() == self.parent_id_tag.casefold()


class Reservations:
    """One charger's reservations, with their expiry timers."""

    def __init__(self, charger: SimCharger) -> None:
        self.cp = charger
        self.by_id: dict[int, Reservation] = {}

    def on(self, connector_id: int) -> Reservation | None:
        """The reservation holding this very connector (not one for "any connector")."""
        return next((r for r in self.by_id.values() if r.connector_id == connector_id), None)

    def needs_parent(self) -> bool:
        """Whether matching a tag may need its parentIdTag (worth an Authorize to learn it)."""
        return any(r.parent_id_tag for r in self.by_id.values())

    def _free(self, *, excluding: int | None = None) -> list[int]:
        """Connectors a walk-in driver could use now."""
        return [
            c.connector_id
            for c in self.cp.connectors.values()
            if c.transaction_id is None
            and c.status not in BUSY
            and c.status != "Faulted"
            and not self.cp.is_inoperative(c.connector_id)
            and self.on(c.connector_id) is None
            and c.connector_id != excluding
        ]

    def reserve_now(self, p: dict[str, Any]) -> Reply:
        cid, rid = p["connectorId"], p["reservationId"]
        expiry = parse_ocpp_datetime(p["expiryDate"])

        def answer(status: str) -> Reply:
            return Reply({"status": status})

        if (cid != 0 and cid not in self.cp.connectors) or expiry <= utcnow():
            return answer("Rejected")
        if cid == 0:
            if not self.cp.config.flag("ReserveConnectorZeroSupported"):
                return answer("Rejected")
            if self.cp.is_inoperative(0):
                return answer("Unavailable")
            held = [r for r in self.by_id.values() if r.connector_id == 0 and r.reservation_id != rid]
            if len(self._free()) <= len(held):
                conns = self.cp.connectors.values()
                if all(c.status == "Faulted" for c in conns):
                    return answer("Faulted")
                if all(self.cp.is_inoperative(c.connector_id) for c in conns):
                    return answer("Unavailable")
                return answer("Occupied")
        else:
            conn = self.cp.connectors[cid]
            other = self.on(cid)
            if conn.status == "Faulted":
                return answer("Faulted")
            if self.cp.is_inoperative(cid):
                return answer("Unavailable")
            if conn.transaction_id is not None or conn.status in BUSY:
                return answer("Occupied")
            if other is not None and other.reservation_id != rid:
                return answer("Occupied")
        # §5.13: a known reservationId is replaced by the new reservation.
        previous = self.by_id.pop(rid, None)
        if previous is not None and previous.timer is not None:
            previous.timer.cancel()
        reservation = Reservation(rid, cid, p["idTag"], p.get("parentIdTag"), expiry)
        self.by_id[rid] = reservation
        reservation.timer = self.cp.spawn(self._expire(reservation))
        then: list[FollowUp] = []
        if previous is not None and previous.connector_id not in (0, cid):
            then.append(partial(self._release, previous.connector_id))
        if cid != 0:
            then.append(partial(self.cp.status, cid, "Reserved"))
        return Reply({"status": "Accepted"}, then)

    def cancel(self, p: dict[str, Any]) -> Reply:
        reservation = self.by_id.get(p["reservationId"])
        if reservation is None:
            return Reply({"status": "Rejected"})
        self._drop(reservation)
        return Reply({"status": "Accepted"}, [partial(self._release, reservation.connector_id)])

    def _drop(self, reservation: Reservation) -> None:
        self.by_id.pop(reservation.reservation_id, None)
        if reservation.timer is not None and reservation.timer is not asyncio.current_task():
            reservation.timer.cancel()

    async def _release(self, connector_id: int) -> None:
        """A reservation ended without a session: an idle connector reports its status again."""
        conn = self.cp.connectors.get(connector_id)
        if conn is not None and conn.transaction_id is None and conn.status == "Reserved":
            await self.cp.status(connector_id, self.cp.idle_status(connector_id))

    async def _expire(self, reservation: Reservation) -> None:
        delay = (reservation.expiry - utcnow()).total_seconds()
        await asyncio.sleep(max(0.0, delay))
        if self.by_id.get(reservation.reservation_id) is reservation:
            self._drop(reservation)
            await self._release(reservation.connector_id)

    def admit(self, connector_id: int, id_tag: str, parent_id_tag: str | None) -> tuple[bool, int | None]:
        """May a session for `id_tag` start on this connector, and which reservation does it
        use up? A connector-0 reservation keeps one free connector per reservation held."""
        own = self.on(connector_id)
        if own is not None:
            return (True, own.reservation_id) if own.admits(id_tag, parent_id_tag) else (False, None)
        anywhere = [r for r in self.by_id.values() if r.connector_id == 0]
        mine = next((r for r in anywhere if r.admits(id_tag, parent_id_tag)), None)
        if mine is not None:
            return True, mine.reservation_id
        return len(self._free(excluding=connector_id)) >= len(anywhere), None

    def consume(self, reservation_id: int) -> None:
        """The session that used the reservation has started."""
        reservation = self.by_id.get(reservation_id)
        if reservation is not None:
            self._drop(reservation)
