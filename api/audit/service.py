"""The audit trail: every change an operator makes and every remote command, with its result.

Entries are written in their own short transaction, after the action, so a failed action is
recorded too (with its error code) and recording never holds the action's locks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth.principal import SYSTEM, Principal
from schema.account_models import AuditEntry

log = logging.getLogger(__name__)

MAX_DETAIL_CHARS = 2_000


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, and from where: what every audited service call needs."""

    principal: Principal
    ip_address: str | None = None


# The worker's own commands and changes (see api.auth.principal.SYSTEM).
SYSTEM_ACTOR = Actor(SYSTEM)


def entry(
    actor: Actor,
    *,
    action: str,
    result: str,
    organization_id: int | None = None,
    target_type: str | None = None,
    target_id: int | str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    p = actor.principal
    return AuditEntry(
        organization_id=organization_id,
        actor_kind=p.kind.value,
        actor_user_id=p.user_id,
        actor_api_key_id=p.api_key_id,
        actor_label=p.actor_label,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        ip_address=actor.ip_address,
        result=result[:40],
        detail=json.dumps(detail, default=str)[:MAX_DETAIL_CHARS] if detail else None,
    )


async def record(db: async_sessionmaker[AsyncSession], audit_entry: AuditEntry) -> None:
    """Write one entry in its own transaction; an audit failure is logged loudly, not raised
    (the action already happened and its caller must learn its real result)."""
    try:
        async with db() as s:
            s.add(audit_entry)
            await s.commit()
    except Exception:
        log.exception("could not write audit entry %s %s", audit_entry.action, audit_entry.target_id)
