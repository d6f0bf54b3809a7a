"""The organisation as seller: the legal name, address, VAT id and billing email printed on
every receipt and invoice it issues (copied into each document when issued, so a change applies
to documents issued from then on, never to those already handed out)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import Actor
from api.auth.roles import Permission
from api.invoicing.postal import clean_address
from api.orgs import repository as orgs
from api.orgs.access import audited, require
from schema.errors import InvalidInput, NotFound
from schema.models import Organization

MAX_LEGAL_NAME = 200
# EU VAT ids are a country prefix and up to 12 characters; other tax ids are of the same shape.
VAT_ID = re.compile(r"^[A-Z0-9][A-Z0-9 .\-]{1,39}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class BillingDetailsChange:
    """None: leave as it is; "": clear."""

    legal_name: str | None = None
    address: str | None = None
    vat_id: str | None = None
    email: str | None = None


def _clean(change: BillingDetailsChange) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    if change.legal_name is not None:
        name = " ".join(change.legal_name.split())
        if len(name) > MAX_LEGAL_NAME:
            raise InvalidInput(f"legalName is longer than {MAX_LEGAL_NAME} characters")
        out["legal_name"] = name or None
    if change.address is not None:
        out["billing_address"] = clean_address(change.address)
    if change.vat_id is not None:
        vat = change.vat_id.strip().upper()
        if vat and not VAT_ID.match(vat):
            raise InvalidInput("vatId is not a tax id (letters, digits, spaces, dots, dashes)")
        out["vat_id"] = vat or None
    if change.email is not None:
        email = change.email.strip().lower()
        if email and (len(email) > 254 or not EMAIL.match(email)):
            raise InvalidInput("email is not an email address")
        out["billing_email"] = email or None
    return out


async def update_billing_details(
    db: async_sessionmaker[AsyncSession], actor: Actor, *, organization_id: int, change: BillingDetailsChange
) -> Organization:
    """billing:manage in the organisation; NOT_FOUND for one the caller does not belong to."""
    values = _clean(change)
    async with audited(
        db, actor, "organization.billing_details", target_type="organization", target_id=organization_id
    ) as note:
        async with db() as s:
            await require(s, actor.principal, organization_id, Permission.BILLING_MANAGE, note)
            org = await orgs.lock_organization(s, organization_id)
            if org is None:
                raise NotFound("no such organization")
            for field, value in values.items():
                note.detail[field] = [getattr(org, field), value]
                setattr(org, field, value)
            s.add(org)
            await s.commit()
            await s.refresh(org)
            return org
