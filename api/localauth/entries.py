"""What a station's local list should hold, and what changed since it was installed.

Pure functions over plain values: the service reads tokens and the installed snapshot, these
decide the entries and the messages.

Decisions (documented in README.md, "Local authorization lists"):
- Every token of the station's organisation is listed, with its status: a blocked or expired
  token stays on the list as Blocked / Expired so the station refuses it offline even if its
  authorization cache still remembers it as Accepted (the list takes precedence over the
  cache, OCPP 1.6 §3.5.3). An Accepted token past its expiry is sent as Expired; one with a
  future expiry carries it, so the station expires it on time without another update.
- Tokens without an organisation (drivers' personal cards) are never sent: a station only
  learns the tokens of the organisation that runs it.
- Deleted tokens (and tokens moved to another organisation) are removed from the list.
- Tokens longer than the station's idTag limit (1.6: CiString20) cannot be sent; they are left
  out and counted. Tags compare without regard to case on the station, so of two tokens that
  differ only in case the older one is listed.
- A list longer than the station holds (LocalAuthListMaxLength) is cut: Accepted tokens first
  (they are what lets drivers charge offline), then refusals, each oldest first, so the cut is
  stable and the next differential stays small. The result says how many were left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from schema.commands import LocalAuthEntry, SendLocalList, UpdateType

ACCEPTED = "Accepted"
EXPIRED = "Expired"
INVALID = "Invalid"
# AuthorizationStatus values both OCPP versions know (1.6 §7.2; 2.0.1 is a superset).
LIST_STATUSES = frozenset({ACCEPTED, "Blocked", EXPIRED, INVALID, "ConcurrentTx"})


@dataclass(frozen=True, slots=True)
class Token:
    """An id_token row as far as the list cares."""

    id: int
    token: str
    status: str
    expires_at: datetime | None
    parent_token: str | None


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One entry as installed on (or meant for) the station."""

    id_token: str
    status: str
    expires_at: datetime | None = None
    parent_token: str | None = None

    def command_entry(self) -> LocalAuthEntry:
        return LocalAuthEntry(self.id_token, self.status, self.expires_at, self.parent_token)


@dataclass(frozen=True, slots=True)
class Desired:
    entries: list[ListEntry]
    # Tokens of the organisation that could not be listed (too long, duplicate, over the cap).
    left_out: int


def _status(token: Token, now: datetime) -> str:
    status = token.status if token.status in LIST_STATUSES else INVALID
    if status == ACCEPTED and token.expires_at is not None and token.expires_at <= now:
        return EXPIRED
    return status


def desired_entries(
    tokens: Iterable[Token], *, now: datetime, max_id_length: int, max_entries: int | None
) -> Desired:
    """The list the station should hold, in a stable order (see the module docstring)."""
    seen: set[str] = set()
    usable: list[tuple[bool, int, ListEntry]] = []
    left_out = 0
    for t in sorted(tokens, key=lambda t: t.id):
        folded = t.token.casefold()
        if len(t.token) > max_id_length or folded in seen:
            left_out += 1
            continue
        seen.add(folded)
        parent = t.parent_token if t.parent_token and len(t.parent_token) <= max_id_length else None
        status = _status(t, now)
        usable.append((status != ACCEPTED, t.id, ListEntry(t.token, status, t.expires_at, parent)))
    usable.sort(key=lambda u: (u[0], u[1]))
    if max_entries is not None and len(usable) > max_entries:
        left_out += len(usable) - max_entries
        usable = usable[:max_entries]
    return Desired([u[2] for u in usable], left_out)


def changes(installed: Mapping[str, ListEntry], desired: Sequence[ListEntry]) -> list[LocalAuthEntry]:
    """The differential update from `installed` to `desired`: added and changed entries with
    their information, removed ones without (which deletes them on the station)."""
    wanted = {e.id_token: e for e in desired}
    out = [e.command_entry() for e in desired if installed.get(e.id_token) != e]
    out += [LocalAuthEntry(tag) for tag in sorted(installed) if tag not in wanted]
    return out


def _chunks(items: Sequence[LocalAuthEntry], size: int) -> list[tuple[LocalAuthEntry, ...]]:
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


def full_plan(desired: Sequence[ListEntry], *, base_version: int, per_message: int) -> list[SendLocalList]:
    """A Full update with the first `per_message` entries, then Differential ones with the
    rest: each message fits the station's SendLocalListMaxLength and carries its own, rising
    version, so a station that stops half-way holds a consistent (if shorter) list."""
    parts = _chunks([e.command_entry() for e in desired], per_message) or [()]
    return [
        SendLocalList(
            version=base_version + n + 1,
            update_type=UpdateType.FULL if n == 0 else UpdateType.DIFFERENTIAL,
            entries=part,
        )
        for n, part in enumerate(parts)
    ]


def differential_plan(
    updates: Sequence[LocalAuthEntry], *, base_version: int, per_message: int
) -> list[SendLocalList]:
    return [
        SendLocalList(version=base_version + n + 1, update_type=UpdateType.DIFFERENTIAL, entries=part)
        for n, part in enumerate(_chunks(updates, per_message))
    ]


def apply(installed: dict[str, ListEntry], command: SendLocalList) -> dict[str, ListEntry]:
    """The list the station holds after it accepted `command`."""
    after = {} if command.update_type is UpdateType.FULL else dict(installed)
    for e in command.entries:
        if e.status is None:
            after.pop(e.id_tag, None)
        else:
            after[e.id_tag] = ListEntry(e.id_tag, e.status, e.expires_at, e.parent_id_tag)
    return after
