"""Rules for a driver's own profile, vehicles, cards and app tokens.

Each function is one unit of work: it opens a session, applies its rule and commits. Rows of
other drivers are never found (the repository scopes every read to the caller), so acting on
another driver's vehicle or card fails with NOT_FOUND, exactly like an id that never existed.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Sequence
from typing import NoReturn

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.accounts import passwords
from api.accounts.tokens import revoke_sessions
from api.audit import service as audit
from api.audit.service import Actor
from api.auth.authenticator import Authenticator
from api.auth.ratelimit import ACCOUNT_BUDGET, ADDRESS_BUDGET, RateLimiter, account_key, address_key
from api.drivers import repository as repo
from api.drivers import validation as v
from api.drivers.errors import CardUnavailable, LimitReached
from api.drivers.validation import UNSET, Unset
from api.sessions.repository import APP_TOKEN_TYPE
from schema.account_models import UserAccount, Vehicle
from schema.enums import ConnectorType
from schema.errors import InvalidCredentials, InvalidInput, LastOwner, NotFound, Unauthenticated
from schema.models import IdToken

# A household's cars and a few shared ones; a real fleet belongs to an organisation.
MAX_VEHICLES_PER_ACCOUNT = 20
# Cards a person carries (own, work, spare); more is someone collecting other people's cards.
MAX_CARDS_PER_ACCOUNT = 20
# One per installed app with room to spare; each one can start a session on its owner's bill.
MAX_APP_TOKENS_PER_ACCOUNT = 10
# Refused links allowed per driver per rate-limit window: a typo is fine, probing which card
# numbers exist is not.
CARD_LINK_FAILURE_BUDGET = 5
CARD_TYPE = "RFID"
# OCPP 1.6 IdToken is CiString20Type; 36 upper-case letters and digits give 103 bits.
APP_TOKEN_LENGTH = 20
_APP_TOKEN_ALPHABET = string.ascii_uppercase + string.digits


def _user_id(actor: Actor) -> int:
    user_id = actor.principal.user_id if actor.principal.is_user else None
    if user_id is None:
        raise Unauthenticated("a personal account is required")
    return user_id


# --- profile ---


async def update_profile(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    *,
    display_name: str | Unset | None = UNSET,
    phone: str | Unset | None = UNSET,
    locale: str | Unset | None = UNSET,
    billing_address: str | Unset | None = UNSET,
) -> UserAccount:
    """Fields left UNSET keep their value; None clears display name, phone and address."""
    changes: dict[str, str | None] = {}
    if display_name is not UNSET:
        changes["display_name"] = v.display_name(display_name)
    if phone is not UNSET:
        changes["phone"] = v.phone(phone)
    if locale is not UNSET:
        changes["locale"] = v.locale(locale)
    if billing_address is not UNSET:
        changes["billing_address"] = v.billing_address(billing_address)
    async with db() as s:
        user = await repo.account(s, actor.principal)
        if user is None:
            raise Unauthenticated("account not found; sign in again")
        for name, value in changes.items():
            setattr(user, name, value)
        s.add(user)
        await s.commit()
        return user


# --- vehicles ---


async def add_vehicle(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    *,
    make: str,
    model: str,
    battery_kwh: float | None = None,
    connector_types: Sequence[ConnectorType] = (),
    nickname: str | None = None,
) -> Vehicle:
    vehicle = Vehicle(
        user_id=_user_id(actor),
        make=v.required_text(make, "make", max_length=v.MAX_VEHICLE_TEXT),
        model=v.required_text(model, "model", max_length=v.MAX_VEHICLE_TEXT),
        battery_wh=v.battery_wh(battery_kwh),
        connector_types=v.connector_types(connector_types),
        nickname=v.optional_text(nickname, "nickname", max_length=v.MAX_VEHICLE_TEXT),
    )
    async with db() as s:
        if await repo.count_vehicles(s, actor.principal) >= MAX_VEHICLES_PER_ACCOUNT:
            raise LimitReached(f"an account can have at most {MAX_VEHICLES_PER_ACCOUNT} vehicles")
        s.add(vehicle)
        await s.commit()
        return vehicle


async def update_vehicle(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    vehicle_id: int,
    *,
    make: str | Unset | None = UNSET,
    model: str | Unset | None = UNSET,
    battery_kwh: float | Unset | None = UNSET,
    connector_types: Sequence[ConnectorType] | Unset | None = UNSET,
    nickname: str | Unset | None = UNSET,
) -> Vehicle:
    """UNSET keeps a field; None clears battery size, connector types and nickname (make and
    model cannot be cleared)."""
    changes: dict[str, str | int | None] = {}
    if make is not UNSET:
        changes["make"] = v.required_text(make or "", "make", max_length=v.MAX_VEHICLE_TEXT)
    if model is not UNSET:
        changes["model"] = v.required_text(model or "", "model", max_length=v.MAX_VEHICLE_TEXT)
    if battery_kwh is not UNSET:
        changes["battery_wh"] = v.battery_wh(battery_kwh)
    if connector_types is not UNSET:
        changes["connector_types"] = v.connector_types(connector_types or ())
    if nickname is not UNSET:
        changes["nickname"] = v.optional_text(nickname, "nickname", max_length=v.MAX_VEHICLE_TEXT)
    async with db() as s:
        vehicle = (await repo.vehicles_by_ids(s, actor.principal, [vehicle_id])).get(vehicle_id)
        if vehicle is None:
            raise NotFound("no such vehicle")
        for name, value in changes.items():
            setattr(vehicle, name, value)
        s.add(vehicle)
        await s.commit()
        return vehicle


async def remove_vehicle(db: async_sessionmaker[AsyncSession], actor: Actor, vehicle_id: int) -> None:
    async with db() as s:
        vehicle = (await repo.vehicles_by_ids(s, actor.principal, [vehicle_id])).get(vehicle_id)
        if vehicle is None:
            raise NotFound("no such vehicle")
        await s.delete(vehicle)
        await s.commit()


# --- cards and app tokens ---


def _linkable(token: IdToken) -> bool:
    """A card nobody holds: no driver, no organisation (an operator's fleet card is theirs),
    and not blocked (a card unlinked as lost stays blocked for good)."""
    return (
        token.user_id is None
        and token.organization_id is None
        and token.status == repo.ACCEPTED
        and token.token_type != APP_TOKEN_TYPE
    )


async def link_card(
    db: async_sessionmaker[AsyncSession],
    limiter: RateLimiter,
    actor: Actor,
    *,
    token: str,
    label: str | None = None,
) -> IdToken:
    """Link an RFID card by the number printed on it or read from it.

    A number ChargeNet has never seen becomes a new accepted card of the caller; linking a
    card the caller already holds only updates its label. Anything else is CARD_UNAVAILABLE,
    whatever the reason, and counts against the caller's rate limit (probing which numbers
    exist is thereby slow).
    """
    user_id = _user_id(actor)
    limit_key = f"link_card:user:{user_id}"
    limiter.check(limit_key)
    idtag = v.card_token(token)
    label = v.optional_text(label, "label", max_length=v.MAX_CARD_LABEL)
    async with db() as s:
        existing = await repo.token_by_value(s, idtag)
        if existing is not None and existing.user_id == user_id and existing.token_type != APP_TOKEN_TYPE:
            if label is not None:
                existing.label = label
                s.add(existing)
                await s.commit()
            return existing
        if existing is not None and not _linkable(existing):
            await _refuse_card(db, limiter, actor, limit_key)
        if await repo.count_tokens(s, actor.principal, app=False) >= MAX_CARDS_PER_ACCOUNT:
            raise LimitReached(f"an account can have at most {MAX_CARDS_PER_ACCOUNT} cards")
        if existing is None:
            card = IdToken(
                token=idtag, token_type=CARD_TYPE, status=repo.ACCEPTED, user_id=user_id, label=label
            )
            s.add(card)
            try:
                await s.commit()
            except IntegrityError:
                # Someone registered the same number a moment ago.
                await s.rollback()
                await _refuse_card(db, limiter, actor, limit_key)
        else:
            if not await repo.claim_unowned_card(s, existing.id or 0, user_id, label):
                await s.rollback()
                await _refuse_card(db, limiter, actor, limit_key)
            await s.commit()
            await s.refresh(existing)
            card = existing
    # No reset of the failure budget on success: linking a fresh number between probes must
    # not buy more probes.
    await _audit(db, actor, "card.link", "card", card.id)
    return card


async def _refuse_card(
    db: async_sessionmaker[AsyncSession], limiter: RateLimiter, actor: Actor, limit_key: str
) -> NoReturn:
    limiter.failure(limit_key, CARD_LINK_FAILURE_BUDGET)
    await _audit(db, actor, "card.link", "card", None, result=CardUnavailable.code)
    raise CardUnavailable("this card cannot be linked to your account")


async def _unlink(db: async_sessionmaker[AsyncSession], actor: Actor, token_id: int, *, app: bool) -> None:
    """Unlink and block: a lost card or a leaked app token must not start sessions for
    whoever holds it now, and nobody can link it again."""
    async with db() as s:
        token = (await repo.tokens_by_ids(s, actor.principal, [token_id], app=app)).get(token_id)
        if token is None:
            raise NotFound("no such app token" if app else "no such card")
        token.user_id = None
        token.status = repo.BLOCKED
        token.label = None
        s.add(token)
        await s.commit()
    await _audit(
        db, actor, "app_token.revoke" if app else "card.unlink", "app_token" if app else "card", token_id
    )


async def unlink_card(db: async_sessionmaker[AsyncSession], actor: Actor, card_id: int) -> None:
    await _unlink(db, actor, card_id, app=False)


async def create_app_token(
    db: async_sessionmaker[AsyncSession], actor: Actor, *, label: str | None = None
) -> IdToken:
    """A random idTag the app starts sessions with (OCPP 2.0.1 IdTokenEnumType "Central")."""
    token = IdToken(
        token="".join(secrets.choice(_APP_TOKEN_ALPHABET) for _ in range(APP_TOKEN_LENGTH)),
        token_type=APP_TOKEN_TYPE,
        status=repo.ACCEPTED,
        user_id=_user_id(actor),
        label=v.optional_text(label, "label", max_length=v.MAX_CARD_LABEL),
    )
    async with db() as s:
        if await repo.count_tokens(s, actor.principal, app=True) >= MAX_APP_TOKENS_PER_ACCOUNT:
            raise LimitReached(f"an account can have at most {MAX_APP_TOKENS_PER_ACCOUNT} app tokens")
        s.add(token)
        await s.commit()
    await _audit(db, actor, "app_token.create", "app_token", token.id)
    return token


async def revoke_app_token(db: async_sessionmaker[AsyncSession], actor: Actor, token_id: int) -> None:
    await _unlink(db, actor, token_id, app=True)


async def _audit(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    action: str,
    target_type: str,
    target_id: int | None,
    *,
    result: str = "OK",
) -> None:
    await audit.record(
        db, audit.entry(actor, action=action, result=result, target_type=target_type, target_id=target_id)
    )


# --- account deletion ---


async def delete_account(
    db: async_sessionmaker[AsyncSession],
    authenticator: Authenticator,
    limiter: RateLimiter,
    actor: Actor,
    *,
    password: str | None,
) -> None:
    """Erase the caller's personal data and close the account for good.

    An account with a password must confirm it (a stolen access token alone cannot delete
    an account); wrong guesses count against the account's sign-in budget. Sessions the
    person charged stay for the operators' accounting, attached to the anonymised account
    but no longer to the card that started them. The email address is free again at once.
    """
    user_id = _user_id(actor)
    async with db() as s:
        user = await repo.account(s, actor.principal)
    if user is None:
        raise Unauthenticated("account not found; sign in again")
    if user.password_hash is not None:
        await _confirm_password(limiter, actor, user, password)
    async with db() as s:
        orphaned = await repo.sole_owner_organizations(s, user_id)
        if orphaned:
            raise LastOwner(f"you are the only owner of {', '.join(orphaned)}; make someone else owner first")
        await repo.erase_personal_data(s, user_id)
        await revoke_sessions(s, user_id, reason="account_deleted")
        await s.commit()
    authenticator.forget_user(user_id)
    await _audit(db, actor, "account.delete", "user", user_id)


async def _confirm_password(
    limiter: RateLimiter, actor: Actor, user: UserAccount, password: str | None
) -> None:
    """Guesses through this door count against the same budget as signing in."""
    if not password:
        raise InvalidInput("password is required to delete this account")
    by_account = account_key("login", user.email or f"user:{user.id}")
    by_address = address_key("login", actor.ip_address)
    limiter.check(by_account, by_address)
    matches, _ = await passwords.verify_password(password, user.password_hash)
    if not matches:
        limiter.failure(by_account, ACCOUNT_BUDGET)
        limiter.failure(by_address, ADDRESS_BUDGET)
        raise InvalidCredentials("the password is wrong")
    limiter.success(by_account)
