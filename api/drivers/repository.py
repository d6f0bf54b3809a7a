"""Every query about a driver's own data, scoped to the caller.

Vehicles, cards and app tokens are personal: each statement here returns only rows owned by
the signed-in person, and nothing for API keys, the platform token or anonymous callers (a
platform admin sees their own vehicles, not everyone's). Another driver's id therefore looks
exactly like an id that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, false, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.auth.principal import Principal
from api.auth.roles import Role
from api.reads import count_rows
from api.sessions.repository import APP_TOKEN_TYPE
from schema.account_models import (
    AuthSession,
    ExternalIdentity,
    Membership,
    OneTimeToken,
    UserAccount,
    Vehicle,
)
from schema.charge_models import SessionCharge
from schema.document_models import ERASED_BUYER, BillingDocument
from schema.models import IdToken, Organization, Transaction
from schema.timeutil import utcnow

# OCPP AuthorizationStatus values stored in id_token.status.
ACCEPTED = "Accepted"
BLOCKED = "Blocked"


def _owner(principal: Principal) -> int | None:
    return principal.user_id if principal.is_user else None


def own_vehicles(principal: Principal) -> SelectOfScalar[Vehicle]:
    owner = _owner(principal)
    stmt = select(Vehicle)
    return stmt.where(false()) if owner is None else stmt.where(col(Vehicle.user_id) == owner)


def own_tokens(principal: Principal, *, app: bool) -> SelectOfScalar[IdToken]:
    """App tokens (issued by ChargeNet for remote start) or cards (everything else)."""
    owner = _owner(principal)
    stmt = select(IdToken)
    if owner is None:
        return stmt.where(false())
    kind = col(IdToken.token_type) == APP_TOKEN_TYPE if app else col(IdToken.token_type) != APP_TOKEN_TYPE
    return stmt.where(col(IdToken.user_id) == owner, kind)


async def account(s: AsyncSession, principal: Principal) -> UserAccount | None:
    """The caller's live account (None once deleted)."""
    owner = _owner(principal)
    if owner is None:
        return None
    stmt = select(UserAccount).where(col(UserAccount.id) == owner, col(UserAccount.deleted_at).is_(None))
    return (await s.exec(stmt)).first()


async def vehicles_by_ids(s: AsyncSession, principal: Principal, ids: Sequence[int]) -> dict[int, Vehicle]:
    rows = (await s.exec(own_vehicles(principal).where(col(Vehicle.id).in_(ids)))).all()
    return {r.id: r for r in rows if r.id is not None}


async def vehicles(s: AsyncSession, principal: Principal) -> list[Vehicle]:
    return list((await s.exec(own_vehicles(principal).order_by(col(Vehicle.id)))).all())


async def count_vehicles(s: AsyncSession, principal: Principal) -> int:
    return await count_rows(s, own_vehicles(principal))


async def tokens_by_ids(
    s: AsyncSession, principal: Principal, ids: Sequence[int], *, app: bool
) -> dict[int, IdToken]:
    rows = (await s.exec(own_tokens(principal, app=app).where(col(IdToken.id).in_(ids)))).all()
    return {r.id: r for r in rows if r.id is not None}


async def tokens(s: AsyncSession, principal: Principal, *, app: bool) -> list[IdToken]:
    return list((await s.exec(own_tokens(principal, app=app).order_by(col(IdToken.id)))).all())


async def count_tokens(s: AsyncSession, principal: Principal, *, app: bool) -> int:
    return await count_rows(s, own_tokens(principal, app=app))


async def token_by_value(s: AsyncSession, token: str) -> IdToken | None:
    """Any token with this idTag, whoever holds it: only for deciding whether a card can be
    linked, never returned to the caller."""
    return (await s.exec(select(IdToken).where(col(IdToken.token) == token))).first()


async def identities(s: AsyncSession, principal: Principal) -> list[ExternalIdentity]:
    owner = _owner(principal)
    if owner is None:
        return []
    stmt = select(ExternalIdentity).where(col(ExternalIdentity.user_id) == owner)
    return list((await s.exec(stmt.order_by(col(ExternalIdentity.id)))).all())


async def memberships(s: AsyncSession, principal: Principal) -> list[tuple[Membership, Organization]]:
    owner = _owner(principal)
    if owner is None:
        return []
    stmt = (
        select(Membership, Organization)
        .join(Organization, col(Organization.id) == col(Membership.organization_id))
        .where(col(Membership.user_id) == owner)
        .order_by(col(Organization.name), col(Organization.id))
    )
    return [(m, o) for m, o in (await s.exec(stmt)).all()]


# --- account deletion: erase personal data, keep the financial records ---


async def sole_owner_organizations(s: AsyncSession, user_id: int) -> list[str]:
    """Names of organisations where `user_id` is the only owner.

    The owner memberships of those organisations are locked (PostgreSQL), so two owners
    deleting their accounts at the same time cannot both leave: the second one waits and
    then sees that it is now the last.
    """
    owned = select(Membership.organization_id).where(
        col(Membership.user_id) == user_id, col(Membership.role) == Role.OWNER.value
    )
    owners = (
        await s.exec(
            select(Membership.organization_id, Membership.user_id)
            .where(col(Membership.organization_id).in_(owned), col(Membership.role) == Role.OWNER.value)
            .with_for_update()
        )
    ).all()
    alone = {org for org, _ in owners} - {org for org, uid in owners if uid != user_id}
    if not alone:
        return []
    names = await s.exec(select(Organization.name).where(col(Organization.id).in_(alone)))
    return sorted(names.all())


async def erase_personal_data(s: AsyncSession, user_id: int) -> None:
    """Everything that identifies the person goes; sessions they charged stay, detached from
    the card that started them. Tokens are blocked as well as unlinked: a card that belonged
    to a deleted account must not start a session for whoever holds it now. The account row
    stays (sessions and audit entries point at it) with its email free for a new sign-up."""
    conn = await s.connection()
    await conn.execute(
        update(UserAccount)
        .where(col(UserAccount.id) == user_id)
        .values(
            email=None,
            email_verified_at=None,
            password_hash=None,
            password_changed_at=None,
            display_name=None,
            phone=None,
            billing_address=None,
            is_platform_admin=False,
            deleted_at=utcnow(),
        )
    )
    await conn.execute(update(Transaction).where(col(Transaction.user_id) == user_id).values(id_tag=None))
    await conn.execute(update(SessionCharge).where(col(SessionCharge.user_id) == user_id).values(id_tag=None))
    # Receipts keep their numbers and amounts (financial records) but no longer name the person.
    await conn.execute(
        update(BillingDocument).where(col(BillingDocument.user_id) == user_id).values(buyer=ERASED_BUYER)
    )
    await conn.execute(
        update(IdToken)
        .where(col(IdToken.user_id) == user_id)
        .values(user_id=None, status=BLOCKED, label=None)
    )
    await conn.execute(
        update(AuthSession)
        .where(col(AuthSession.user_id) == user_id)
        .values(device_name=None, user_agent=None, ip_address=None)
    )
    for table in (Vehicle, ExternalIdentity, Membership, OneTimeToken):
        await conn.execute(delete(table).where(col(table.user_id) == user_id))  # type: ignore[attr-defined]


async def claim_unowned_card(s: AsyncSession, token_id: int, user_id: int, label: str | None) -> bool:
    """Link a card nobody holds; False if someone linked or blocked it in the meantime."""
    conn = await s.connection()
    result = await conn.execute(
        update(IdToken)
        .where(
            col(IdToken.id) == token_id,
            col(IdToken.user_id).is_(None),
            col(IdToken.organization_id).is_(None),
            col(IdToken.status) == ACCEPTED,
        )
        .values(user_id=user_id, label=label)
    )
    return result.rowcount == 1
