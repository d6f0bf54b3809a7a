"""Email + password accounts: sign-up, verification, sign-in, sign-out, password reset and
change, device sessions.

Guarantees:
- No account enumeration: sign-up, resend and reset requests answer the same whatever the
  address; a wrong email and a wrong password are the same INVALID_CREDENTIALS error and cost
  the same Argon2 verification.
- Brute force is bounded per account and per client address (`api.auth.ratelimit`), and so is
  mail sent to any one address.
- Links in emails carry 256-bit single-use tokens stored only as SHA-256 hashes.
- Changing or resetting a password ends other sessions at once (`Authenticator.forget_user`).

Every function owns its unit of work (`async with db() as s: … commit`), like the other
services the GraphQL mutations call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.accounts import emails, passwords
from api.accounts.addresses import normalize_email
from api.accounts.tokens import Device, TokenPair, open_session, revoke_sessions
from api.audit import service as audit
from api.audit.service import Actor
from api.auth.deps import AuthDeps
from api.auth.opaque import hash_token, new_token
from api.auth.principal import Principal
from api.auth.ratelimit import ACCOUNT_BUDGET, ADDRESS_BUDGET, account_key, address_key
from api.notify.email import Email
from schema.account_models import AuditEntry, AuthSession, OneTimeToken, UserAccount
from schema.errors import ChargeNetError, InvalidCredentials, InvalidInput, NotFound, RateLimited
from schema.settings import Settings
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"
VERIFY_TTL = timedelta(hours=48)
# Short: a reset link in a forgotten inbox tab should not stay a way into the account.
RESET_TTL = timedelta(minutes=30)
# Mails any one address may be sent per rate-limit window before backoff (mail bombing).
MAIL_ACCOUNT_BUDGET = 3
MAIL_ADDRESS_BUDGET = 20
MAX_DISPLAY_NAME = 120
# A person has a few devices; a list longer than this is stale sessions nobody looks at.
MAX_LISTED_SESSIONS = 100

SIGN_UP_MESSAGE = "Check your email to finish signing up."
RESEND_MESSAGE = "If this address has an account waiting for confirmation, we sent a new link."
RESET_MESSAGE = "If this address has an account, we sent a link to reset the password."


class EmailNotVerified(ChargeNetError):
    code = "EMAIL_NOT_VERIFIED"


class InvalidToken(ChargeNetError):
    """A link token that is unknown, expired or already used."""

    code = "INVALID_TOKEN"


# --- sign-up and verification ---


async def sign_up(
    db: async_sessionmaker[AsyncSession],
    auth: AuthDeps,
    settings: Settings,
    actor: Actor,
    *,
    email: str,
    password: str,
    display_name: str | None,
) -> str:
    """Create an unverified account and mail a confirmation link, or, for an address that
    already has an account, mail a reminder instead. Answers the same either way."""
    address = normalize_email(email)
    name = (display_name or "").strip() or None
    if name is not None and len(name) > MAX_DISPLAY_NAME:
        raise InvalidInput(f"the display name must have at most {MAX_DISPLAY_NAME} characters")
    passwords.check_policy(password, email=address)
    _spend_mail_budget(auth, "sign_up", address, actor.ip_address)
    # Hashed for existing addresses too, so both answers take equally long.
    password_hash = await passwords.hash_password(password)
    links = emails.Links(settings.app_url)
    async with db() as s:
        existing = await _user_by_email(s, address)
        if existing is None:
            user = UserAccount(email=address, password_hash=password_hash, display_name=name)
            s.add(user)
            try:
                await s.flush()
                token = await _issue(s, user.id or 0, VERIFY_EMAIL, VERIFY_TTL)
                await s.commit()
            except IntegrityError:  # signed up concurrently: it exists now
                await s.rollback()
            else:
                await _deliver(auth, emails.verify_mail(links, to=address, name=name, token=token))
                await audit.record(db, _account_entry(actor, "account.sign_up", user.id))
                return SIGN_UP_MESSAGE
    await _deliver(auth, emails.account_exists_mail(links, to=address))
    return SIGN_UP_MESSAGE


async def verify_email(
    db: async_sessionmaker[AsyncSession],
    auth: AuthDeps,
    settings: Settings,
    actor: Actor,
    *,
    token: str,
    device: Device,
) -> TokenPair:
    """Confirm the address with the emailed token (single use) and sign the device in."""
    async with db() as s:
        found, user = await _find_token(s, token, VERIFY_EMAIL)
        await _consume(s, found)
        if user.email_verified_at is None:
            user.email_verified_at = utcnow()
            s.add(user)
        pair = await open_session(
            s,
            auth.keys,
            user_id=user.id or 0,
            method="email_link",
            device=device,
            ttl_days=settings.session_ttl_days,
        )
        await s.commit()
    await audit.record(db, _account_entry(actor, "account.email_verified", user.id))
    return pair


async def resend_verification(
    db: async_sessionmaker[AsyncSession], auth: AuthDeps, settings: Settings, actor: Actor, *, email: str
) -> str:
    address = normalize_email(email)
    _spend_mail_budget(auth, "verify_mail", address, actor.ip_address)
    async with db() as s:
        user = await _user_by_email(s, address)
    if user is not None and user.deleted_at is None and user.email_verified_at is None:
        await _send_verification(db, auth, settings, user)
    return RESEND_MESSAGE


# --- sign-in and sign-out ---


async def log_in(
    db: async_sessionmaker[AsyncSession],
    auth: AuthDeps,
    settings: Settings,
    *,
    email: str,
    password: str,
    device: Device,
) -> TokenPair:
    address = email.strip().lower()
    by_account = account_key("login", address)
    by_address = address_key("login", device.ip_address)
    auth.limiter.check(by_account, by_address)
    async with db() as s:
        user = await _user_by_email(s, address)
    # Unknown, deleted and Google/Apple-only accounts cost a verification too, and fail alike.
    stored = user.password_hash if user is not None and user.deleted_at is None else None
    ok, new_hash = await passwords.verify_password(password, stored)
    if not ok or user is None:
        auth.limiter.failure(by_account, ACCOUNT_BUDGET)
        auth.limiter.failure(by_address, ADDRESS_BUDGET)
        raise InvalidCredentials("email or password is wrong")
    auth.limiter.success(by_account)
    if user.email_verified_at is None:
        await _remind_to_verify(db, auth, settings, user, device.ip_address)
        raise EmailNotVerified("confirm your email address first; we sent you a new link")
    async with db() as s:
        if new_hash is not None:  # hashing parameters were raised since this hash was made
            await s.exec(  # type: ignore[call-overload]
                update(UserAccount).where(col(UserAccount.id) == user.id).values(password_hash=new_hash)
            )
        pair = await open_session(
            s,
            auth.keys,
            user_id=user.id or 0,
            method="password",
            device=device,
            ttl_days=settings.session_ttl_days,
        )
        await s.commit()
    return pair


async def log_out(db: async_sessionmaker[AsyncSession], auth: AuthDeps, principal: Principal) -> bool:
    """End the caller's own session; its access token stops working at once."""
    user_id = principal.user_id or 0
    async with db() as s:
        ended = await revoke_sessions(s, user_id, reason="logout", only=principal.session_id or 0)
        await s.commit()
    auth.authenticator.forget_user(user_id)
    return ended > 0


async def log_out_everywhere(db: async_sessionmaker[AsyncSession], auth: AuthDeps, actor: Actor) -> int:
    user_id = actor.principal.user_id or 0
    async with db() as s:
        ended = await revoke_sessions(s, user_id, reason="logout_everywhere")
        await s.commit()
    auth.authenticator.forget_user(user_id)
    await audit.record(db, _account_entry(actor, "account.logout_everywhere", user_id, {"ended": ended}))
    return ended


# --- passwords ---


async def request_password_reset(
    db: async_sessionmaker[AsyncSession], auth: AuthDeps, settings: Settings, actor: Actor, *, email: str
) -> str:
    """Mail a reset link if the address has an account; earlier unused links stop working."""
    address = normalize_email(email)
    _spend_mail_budget(auth, "reset_mail", address, actor.ip_address)
    async with db() as s:
        user = await _user_by_email(s, address)
        if user is None or user.deleted_at is not None:
            return RESET_MESSAGE
        await s.exec(  # type: ignore[call-overload]
            update(OneTimeToken)
            .where(
                col(OneTimeToken.user_id) == user.id,
                col(OneTimeToken.purpose) == RESET_PASSWORD,
                col(OneTimeToken.used_at).is_(None),
            )
            .values(used_at=utcnow())
        )
        token = await _issue(s, user.id or 0, RESET_PASSWORD, RESET_TTL)
        await s.commit()
    await _deliver(auth, emails.reset_mail(emails.Links(settings.app_url), to=address, token=token))
    return RESET_MESSAGE


async def reset_password(
    db: async_sessionmaker[AsyncSession], auth: AuthDeps, actor: Actor, *, token: str, new_password: str
) -> None:
    """Set a new password with an emailed token and end every session of the account."""
    async with db() as s:
        _, user = await _find_token(s, token, RESET_PASSWORD)
    passwords.check_policy(new_password, email=user.email or "")
    new_hash = await passwords.hash_password(new_password)
    now = utcnow()
    async with db() as s:
        found, user = await _find_token(s, token, RESET_PASSWORD)
        await _consume(s, found)
        user.password_hash = new_hash
        user.password_changed_at = now
        # The link reached the inbox, which proves the address as well as a verification would.
        user.email_verified_at = user.email_verified_at or now
        s.add(user)
        ended = await revoke_sessions(s, user.id or 0, reason="password_reset")
        await s.commit()
    auth.authenticator.forget_user(user.id or 0)
    await audit.record(db, _account_entry(actor, "account.password_reset", user.id, {"ended": ended}))


async def change_password(
    db: async_sessionmaker[AsyncSession],
    auth: AuthDeps,
    actor: Actor,
    *,
    current_password: str,
    new_password: str,
) -> int:
    """Replace the password after re-checking the current one; every other session ends,
    the caller's stays. Returns how many sessions ended."""
    principal = actor.principal
    user_id = principal.user_id or 0
    async with db() as s:
        user = await s.get(UserAccount, user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound("no such account")
    # Guesses through this door count against the same budget as sign-in.
    by_account = account_key("login", user.email or f"user:{user_id}")
    by_address = address_key("login", actor.ip_address)
    auth.limiter.check(by_account, by_address)
    passwords.check_policy(new_password, email=user.email or "")
    ok, _ = await passwords.verify_password(current_password, user.password_hash)
    if not ok:
        auth.limiter.failure(by_account, ACCOUNT_BUDGET)
        auth.limiter.failure(by_address, ADDRESS_BUDGET)
        raise InvalidCredentials("the current password is wrong")
    auth.limiter.success(by_account)
    new_hash = await passwords.hash_password(new_password)
    async with db() as s:
        await s.exec(  # type: ignore[call-overload]
            update(UserAccount)
            .where(col(UserAccount.id) == user_id)
            .values(password_hash=new_hash, password_changed_at=utcnow())
        )
        ended = await revoke_sessions(s, user_id, reason="password_changed", keep=principal.session_id)
        await s.commit()
    auth.authenticator.forget_user(user_id)
    await audit.record(db, _account_entry(actor, "account.password_changed", user_id, {"ended": ended}))
    return ended


# --- device sessions ---


async def list_sessions(db: async_sessionmaker[AsyncSession], principal: Principal) -> Sequence[AuthSession]:
    """The caller's live sessions (not revoked, not expired), most recently used first."""
    async with db() as s:
        rows = await s.exec(
            select(AuthSession)
            .where(
                col(AuthSession.user_id) == principal.user_id,
                col(AuthSession.revoked_at).is_(None),
                col(AuthSession.expires_at) > utcnow(),
            )
            .order_by(col(AuthSession.last_used_at).desc(), col(AuthSession.id).desc())
            .limit(MAX_LISTED_SESSIONS)
        )
        return rows.all()


async def revoke_session(
    db: async_sessionmaker[AsyncSession], auth: AuthDeps, actor: Actor, *, session_id: int
) -> None:
    """End one of the caller's sessions (e.g. a lost phone); another person's is NOT_FOUND."""
    user_id = actor.principal.user_id or 0
    async with db() as s:
        ended = await revoke_sessions(s, user_id, reason="revoked_by_user", only=session_id)
        await s.commit()
    if not ended:
        raise NotFound("no such session")
    auth.authenticator.forget_user(user_id)
    await audit.record(
        db, _account_entry(actor, "account.session_revoked", user_id, {"session_id": session_id})
    )


# --- helpers ---


async def _user_by_email(s: AsyncSession, email: str) -> UserAccount | None:
    return (await s.exec(select(UserAccount).where(col(UserAccount.email) == email))).first()


async def _issue(s: AsyncSession, user_id: int, purpose: str, ttl: timedelta) -> str:
    plain, token_hash = new_token()
    now = utcnow()
    s.add(
        OneTimeToken(
            user_id=user_id, purpose=purpose, token_hash=token_hash, created_at=now, expires_at=now + ttl
        )
    )
    await s.flush()
    return plain


async def _find_token(s: AsyncSession, plain: str, purpose: str) -> tuple[OneTimeToken, UserAccount]:
    found = (
        await s.exec(
            select(OneTimeToken, UserAccount)
            .join(UserAccount, col(UserAccount.id) == col(OneTimeToken.user_id))
            .where(col(OneTimeToken.token_hash) == hash_token(plain), col(OneTimeToken.purpose) == purpose)
        )
    ).first()
    if found is None:
        raise InvalidToken("this link is not valid; ask for a new one")
    token, user = found
    if token.used_at is not None or token.expires_at <= utcnow() or user.deleted_at is not None:
        raise InvalidToken("this link was used already or has expired; ask for a new one")
    return token, user


async def _consume(s: AsyncSession, token: OneTimeToken) -> None:
    """Mark the token used; of two concurrent uses exactly one wins."""
    claimed = await s.exec(  # type: ignore[call-overload]
        update(OneTimeToken)
        .where(col(OneTimeToken.id) == token.id, col(OneTimeToken.used_at).is_(None))
        .values(used_at=utcnow())
    )
    if claimed.rowcount != 1:
        raise InvalidToken("this link was used already; ask for a new one")


def _spend_mail_budget(auth: AuthDeps, purpose: str, email: str, ip: str | None) -> None:
    """Count a request that sends mail, whether or not the address has an account (so the
    limit reveals nothing); raises RateLimited once either budget is spent."""
    by_account, by_address = account_key(purpose, email), address_key(purpose, ip)
    auth.limiter.check(by_account, by_address)
    auth.limiter.failure(by_account, MAIL_ACCOUNT_BUDGET)
    auth.limiter.failure(by_address, MAIL_ADDRESS_BUDGET)


async def _remind_to_verify(
    db: async_sessionmaker[AsyncSession],
    auth: AuthDeps,
    settings: Settings,
    user: UserAccount,
    ip: str | None,
) -> None:
    """A sign-in before confirming re-sends the link, within the mail budget (else silently not)."""
    try:
        _spend_mail_budget(auth, "verify_mail", user.email or "", ip)
    except RateLimited:
        return
    await _send_verification(db, auth, settings, user)


async def _send_verification(
    db: async_sessionmaker[AsyncSession], auth: AuthDeps, settings: Settings, user: UserAccount
) -> None:
    async with db() as s:
        token = await _issue(s, user.id or 0, VERIFY_EMAIL, VERIFY_TTL)
        await s.commit()
    mail = emails.verify_mail(
        emails.Links(settings.app_url), to=user.email or "", name=user.display_name, token=token
    )
    await _deliver(auth, mail)


async def _deliver(auth: AuthDeps, email: Email) -> None:
    """Send, logging failures: the account change stands and the person can ask again."""
    try:
        await auth.mailer.send(email)
    except Exception:
        log.exception("could not send %s email", email.kind)


def _account_entry(
    actor: Actor, action: str, user_id: int | None, detail: dict[str, object] | None = None
) -> AuditEntry:
    return audit.entry(
        actor, action=action, result="ok", target_type="user", target_id=user_id, detail=detail
    )
