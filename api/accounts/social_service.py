"""Sign in with Google / Apple: from a verified provider identity to a ChargeNet account.

The provider's stable `sub` is the identity; the email is only a hint. Linking by email is the
one place where an outside party vouches for who owns an account, so:

- a provider email that is not verified never links to an existing account (anyone can put
  any address on a provider account: that would be account takeover), and is not stored as a
  new account's address either (it would squat on the real owner's address, who could then
  not sign up). The driver gets a separate account without an email until they add one;
- linking to an account whose own email was never verified drops that account's password and
  sessions: whoever set the password never proved they own the address the provider has now
  proven ("pre-account-takeover"), so they must not keep access to the account being claimed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.accounts.tokens import Device, TokenPair, open_session, revoke_sessions
from api.audit import service as audit
from api.audit.service import Actor
from api.auth.deps import AuthDeps, VerifiedIdentity
from api.auth.oidc import InvalidIdToken, ProviderDisabled
from api.auth.principal import Principal, PrincipalKind
from api.auth.ratelimit import ADDRESS_BUDGET, address_key
from schema.account_models import ExternalIdentity, UserAccount
from schema.errors import InvalidInput, Unauthenticated
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

MAX_DISPLAY_NAME = 120  # user_account.display_name
RATE_LIMIT_PURPOSE = "social_sign_in"


@dataclass(frozen=True, slots=True)
class SignInRequest:
    """What the app sends: the provider's ID token and the context of this sign-in."""

    provider: str
    id_token: str
    nonce: str | None
    device: Device
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class _Resolved:
    user_id: int
    outcome: str  # "signed_in", "linked" or "created"
    claimed_unverified: bool = False


async def sign_in_with_id_token(
    db: async_sessionmaker[AsyncSession], auth: AuthDeps, request: SignInRequest, *, ttl_days: int
) -> TokenPair:
    """Verify the ID token, then sign in (or link, or create) the account it names.

    Invalid tokens count against the caller's address like wrong passwords do.
    """
    if auth.identity is None:
        raise ProviderDisabled(f"sign in with {request.provider} is not enabled on this server")
    limit_key = address_key(RATE_LIMIT_PURPOSE, request.device.ip_address)
    auth.limiter.check(limit_key)
    try:
        identity = await auth.identity.verify(request.provider, request.id_token, nonce=request.nonce)
    except InvalidIdToken as exc:
        auth.limiter.failure(limit_key, ADDRESS_BUDGET)
        log.info("%s sign-in refused: %s", request.provider, exc.message)
        raise
    return await sign_in_with(
        db, auth, identity, device=request.device, display_name=request.display_name, ttl_days=ttl_days
    )


async def sign_in_with(
    db: async_sessionmaker[AsyncSession],
    auth: AuthDeps,
    identity: VerifiedIdentity,
    *,
    device: Device,
    display_name: str | None = None,
    ttl_days: int,
) -> TokenPair:
    """Find the account linked to `identity`, else link the verified-email account, else create
    one; open a device session for it. Owns its unit of work."""
    # A name the app passes (Apple's first sign-in) wins; else the provider's (Google's) claim,
    # cut to fit rather than refused, since the person did not type it here.
    name = _display_name(display_name) or ((identity.name or "").strip()[:MAX_DISPLAY_NAME] or None)
    for attempt in (1, 2):
        try:
            async with db() as s:
                resolved = await _resolve_account(s, identity, name)
                pair = await open_session(
                    s,
                    auth.keys,
                    user_id=resolved.user_id,
                    method=identity.provider,
                    device=device,
                    ttl_days=ttl_days,
                )
                await s.commit()
            break
        except IntegrityError:
            # A concurrent first sign-in of the same identity (or a sign-up with the same email)
            # won the race; the second pass finds its row and signs in or links to it.
            if attempt == 2:
                raise
    if resolved.claimed_unverified:
        auth.authenticator.forget_user(resolved.user_id)
    if resolved.outcome != "signed_in":
        actor = Actor(Principal(PrincipalKind.USER, user_id=resolved.user_id), device.ip_address)
        await audit.record(
            db,
            audit.entry(
                actor,
                action=f"account.{identity.provider}_{resolved.outcome}",
                result="ok",
                target_type="user",
                target_id=resolved.user_id,
                detail={"dropped_unverified_password": True} if resolved.claimed_unverified else None,
            ),
        )
    return pair


async def _resolve_account(
    s: AsyncSession, identity: VerifiedIdentity, display_name: str | None
) -> _Resolved:
    linked = (
        await s.exec(
            select(ExternalIdentity, UserAccount)
            .join(UserAccount, col(UserAccount.id) == col(ExternalIdentity.user_id))
            .where(
                col(ExternalIdentity.provider) == identity.provider,
                col(ExternalIdentity.subject) == identity.subject,
            )
        )
    ).first()
    if linked is not None:
        link, user = linked
        if user.deleted_at is not None:
            raise Unauthenticated("this account was deleted")
        if identity.email and link.email != identity.email:
            link.email = identity.email  # keep the provider's latest address for support
            s.add(link)
        return _Resolved(user.id or 0, "signed_in")

    trusted_email = identity.email if identity.email_verified else None
    if trusted_email is not None:
        owner = (
            await s.exec(
                select(UserAccount).where(
                    col(UserAccount.email) == trusted_email, col(UserAccount.deleted_at).is_(None)
                )
            )
        ).first()
        if owner is not None:
            return await _link(s, owner, identity)

    new = UserAccount(
        email=trusted_email,
        email_verified_at=utcnow() if trusted_email else None,
        display_name=display_name,
    )
    s.add(new)
    await s.flush()
    s.add(_identity_row(new, identity))
    await s.flush()
    return _Resolved(new.id or 0, "created")


async def _link(s: AsyncSession, user: UserAccount, identity: VerifiedIdentity) -> _Resolved:
    user_id = user.id or 0
    claimed_unverified = user.email_verified_at is None
    if claimed_unverified:
        user.password_hash = None
        await revoke_sessions(s, user_id, reason="email_claimed")
    user.email_verified_at = user.email_verified_at or utcnow()
    s.add(user)
    s.add(_identity_row(user, identity))
    await s.flush()
    return _Resolved(user_id, "linked", claimed_unverified=claimed_unverified)


def _identity_row(user: UserAccount, identity: VerifiedIdentity) -> ExternalIdentity:
    return ExternalIdentity(
        user_id=user.id or 0, provider=identity.provider, subject=identity.subject, email=identity.email
    )


def _display_name(value: str | None) -> str | None:
    """Apple sends the person's name to the app on the first sign-in only; the app passes it on."""
    name = (value or "").strip()
    if len(name) > MAX_DISPLAY_NAME:
        raise InvalidInput(f"displayName is longer than {MAX_DISPLAY_NAME} characters")
    return name or None
