"""The simulated charger's own knowledge of idTags: the Local Authorization List the central
system sends (OCPP 1.6 §3.5.2, §5.15) and the Authorization Cache it fills itself (§3.5.1).

IdToken is a CiString20, so tags compare without regard to case. The list takes precedence
over the cache (§3.5.3); an entry whose expiryDate has passed counts as Expired.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.sim_types import LOCAL_AUTH_LIST_MANAGEMENT
from schema.timeutil import parse_ocpp_datetime, utcnow

if TYPE_CHECKING:
    from gateway.simulator import SimCharger

# GetLocalListVersion (OCPP 1.6 §5.10): 0 = the list is empty, -1 = no local list here.
EMPTY_LIST_VERSION = 0
NO_LIST_VERSION = -1


def _effective(info: dict[str, Any]) -> dict[str, Any]:
    expiry = info.get("expiryDate")
    if expiry is not None and info.get("status") == "Accepted" and parse_ocpp_datetime(expiry) <= utcnow():
        return {**info, "status": "Expired"}
    return info


class LocalAuth:
    """One charger's local list (versioned) and authorization cache."""

    def __init__(self) -> None:
        self.version = EMPTY_LIST_VERSION
        self._list: dict[str, dict[str, Any]] = {}
        self._cache: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._list)

    def entries(self) -> dict[str, dict[str, Any]]:
        """The local list as installed: case-folded idTag → idTagInfo (a copy)."""
        return {tag: dict(info) for tag, info in self._list.items()}

    def list_version(self, *, enabled: bool) -> int:
        """GetLocalListVersion.conf's listVersion for this charger."""
        if not enabled:
            return NO_LIST_VERSION
        return self.version if self._list else EMPTY_LIST_VERSION

    def send_local_list(
        self, payload: dict[str, Any], *, enabled: bool, max_send: int, max_length: int
    ) -> str:
        """SendLocalList (§5.15): Full replaces the list; Differential upserts entries that
        carry idTagInfo and deletes those that do not, and must raise the version."""
        if not enabled:
            return "NotSupported"
        entries: list[dict[str, Any]] = payload.get("localAuthorizationList") or []
        if len(entries) > max_send:
            return "Failed"
        tags = [e["idTag"].casefold() for e in entries]
        if len(set(tags)) != len(tags):  # §5.15: the idTags in one list are unique
            return "Failed"
        version = int(payload["listVersion"])
        if payload["updateType"] == "Full":
            updated = {e["idTag"].casefold(): e["idTagInfo"] for e in entries if "idTagInfo" in e}
        else:
            if version <= self.version:
                return "VersionMismatch"
            updated = dict(self._list)
            for entry in entries:
                tag = entry["idTag"].casefold()
                if "idTagInfo" in entry:
                    updated[tag] = entry["idTagInfo"]
                else:
                    updated.pop(tag, None)
        if len(updated) > max_length:
            return "Failed"
        self._list, self.version = updated, version
        return "Accepted"

    def lookup(self, id_tag: str, *, use_list: bool = True, use_cache: bool = True) -> dict[str, Any] | None:
        """The idTagInfo the charger knows for a tag (list before cache), or None."""
        tag = id_tag.casefold()
        info = (self._list.get(tag) if use_list else None) or (self._cache.get(tag) if use_cache else None)
        return _effective(info) if info is not None else None

    def parent_of(self, id_tag: str) -> str | None:
        info = self.lookup(id_tag)
        return info.get("parentIdTag") if info is not None else None

    def remember(self, id_tag: str, info: dict[str, Any]) -> None:
        """Cache what the central system said about a tag (Authorize / StartTransaction.conf)."""
        self._cache[id_tag.casefold()] = dict(info)

    def clear_cache(self) -> None:
        self._cache.clear()


def authorize_offline(cp: SimCharger, id_tag: str) -> bool:
    """Whether the charger lets a tag start while it cannot reach the central system (1.6
    §3.5, 2.0.1 C12): a tag its local list (or cache) knows starts only if that says Accepted
    and LocalAuthorizeOffline is on; an unknown tag only with AllowOfflineTxForUnknownId."""
    known = cp.local_auth.lookup(
        id_tag,
        use_list=LOCAL_AUTH_LIST_MANAGEMENT in cp.cfg.feature_profiles
        and cp.config.flag("LocalAuthListEnabled"),
        use_cache=cp.config.flag("AuthorizationCacheEnabled"),
    )
    if known is not None:
        return known["status"] == "Accepted" and cp.config.flag("LocalAuthorizeOffline")
    return cp.config.flag("AllowOfflineTxForUnknownId")


async def authorize(cp: SimCharger, id_tag: str) -> dict[str, Any]:
    """Authorize a tag as for a local start (§3.5): with LocalPreAuthorize a tag the list or
    cache accepts starts at once; otherwise the central system is asked."""
    known = cp.local_auth.lookup(
        id_tag,
        use_list=cp.config.flag("LocalAuthListEnabled"),
        use_cache=cp.config.flag("AuthorizationCacheEnabled"),
    )
    if known is not None and known["status"] == "Accepted" and cp.config.flag("LocalPreAuthorize"):
        return known
    result = await cp.call("Authorize", {"idTag": id_tag})
    info: dict[str, Any] = result["idTagInfo"]
    if cp.config.flag("AuthorizationCacheEnabled"):
        cp.local_auth.remember(id_tag, info)
    return info


async def parent_of(cp: SimCharger, id_tag: str) -> str | None:
    """A tag's parentIdTag, asking the central system only when a reservation could need it
    and the list and cache do not know it (§5.13: a reservation may be for a group)."""
    parent = cp.local_auth.parent_of(id_tag)
    if parent is None and cp.reservations.needs_parent() and cp.online.is_set():
        parent = (await authorize(cp, id_tag)).get("parentIdTag")
    return parent
