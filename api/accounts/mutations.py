"""Sign-up, sign-in, tokens, password reset."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.accounts import service
from api.accounts.tokens import refresh_session
from api.accounts.types import AuthPayload, DeviceInput, device_from
from api.auth.permissions import IsPublic, IsUser
from api.context import Context
from schema.errors import NotFound


@strawberry.input
class SignUpInput:
    email: str
    password: str = strawberry.field(description="At least 10 characters; not a commonly used password.")
    display_name: str | None = None


@strawberry.input
class LogInInput:
    email: str
    password: str
    device: DeviceInput | None = None


@strawberry.type(description="The same answer whether or not the address has an account.")
class EmailSentPayload:
    message: str


def _device(ctx: Context, device: DeviceInput | None) -> service.Device:
    return device_from(device, user_agent=ctx.user_agent, ip_address=ctx.client_ip)


@strawberry.type
class AccountsMutation:
    @strawberry.mutation(
        permission_classes=[IsPublic],
        description="Create an account; a link to confirm the email address is mailed.",
    )
    async def sign_up(self, info: Info[Context, None], input: SignUpInput) -> EmailSentPayload:
        ctx = info.context
        message = await service.sign_up(
            ctx.db,
            ctx.auth,
            ctx.settings,
            ctx.actor,
            email=input.email,
            password=input.password,
            display_name=input.display_name,
        )
        return EmailSentPayload(message=message)

    @strawberry.mutation(
        permission_classes=[IsPublic],
        description="Confirm the email address with the token from the link; signs the device in.",
    )
    async def verify_email(
        self, info: Info[Context, None], token: str, device: DeviceInput | None = None
    ) -> AuthPayload:
        ctx = info.context
        pair = await service.verify_email(
            ctx.db, ctx.auth, ctx.settings, ctx.actor, token=token, device=_device(ctx, device)
        )
        return AuthPayload.from_pair(pair)

    @strawberry.mutation(permission_classes=[IsPublic])
    async def resend_verification_email(self, info: Info[Context, None], email: str) -> EmailSentPayload:
        ctx = info.context
        message = await service.resend_verification(ctx.db, ctx.auth, ctx.settings, ctx.actor, email=email)
        return EmailSentPayload(message=message)

    @strawberry.mutation(
        permission_classes=[IsPublic],
        description="Sign in with email and password. Errors: INVALID_CREDENTIALS, "
        "EMAIL_NOT_VERIFIED, RATE_LIMITED (extensions.retryAfterSeconds).",
    )
    async def log_in(self, info: Info[Context, None], input: LogInInput) -> AuthPayload:
        ctx = info.context
        pair = await service.log_in(
            ctx.db,
            ctx.auth,
            ctx.settings,
            email=input.email,
            password=input.password,
            device=_device(ctx, input.device),
        )
        return AuthPayload.from_pair(pair)

    @strawberry.mutation(
        permission_classes=[IsPublic],
        description="Exchange a refresh token for a new pair (single use: reusing one ends the session).",
    )
    async def refresh_token(self, info: Info[Context, None], refresh_token: str) -> AuthPayload:
        ctx = info.context
        pair = await refresh_session(
            ctx.db,
            ctx.auth.keys,
            refresh_token,
            ip_address=ctx.client_ip,
            ttl_days=ctx.settings.session_ttl_days,
            authenticator=ctx.auth.authenticator,
        )
        return AuthPayload.from_pair(pair)

    @strawberry.mutation(permission_classes=[IsUser], description="End this device's session.")
    async def log_out(self, info: Info[Context, None]) -> bool:
        return await service.log_out(info.context.db, info.context.auth, info.context.principal)

    @strawberry.mutation(
        permission_classes=[IsUser], description="End every session of the account; returns how many ended."
    )
    async def log_out_everywhere(self, info: Info[Context, None]) -> int:
        return await service.log_out_everywhere(info.context.db, info.context.auth, info.context.actor)

    @strawberry.mutation(
        permission_classes=[IsPublic], description="Mail a link to choose a new password (valid 30 minutes)."
    )
    async def request_password_reset(self, info: Info[Context, None], email: str) -> EmailSentPayload:
        ctx = info.context
        message = await service.request_password_reset(ctx.db, ctx.auth, ctx.settings, ctx.actor, email=email)
        return EmailSentPayload(message=message)

    @strawberry.mutation(
        permission_classes=[IsPublic],
        description="Set a new password with the token from the emailed link; signs out every device. "
        "Errors: INVALID_TOKEN, INVALID_INPUT.",
    )
    async def reset_password(self, info: Info[Context, None], token: str, new_password: str) -> bool:
        ctx = info.context
        await service.reset_password(ctx.db, ctx.auth, ctx.actor, token=token, new_password=new_password)
        return True

    @strawberry.mutation(
        permission_classes=[IsUser],
        description="Replace the password; every other device is signed out, this one stays.",
    )
    async def change_password(
        self, info: Info[Context, None], current_password: str, new_password: str
    ) -> bool:
        ctx = info.context
        await service.change_password(
            ctx.db, ctx.auth, ctx.actor, current_password=current_password, new_password=new_password
        )
        return True

    @strawberry.mutation(
        permission_classes=[IsUser], description="Sign one of your devices out (see authSessions)."
    )
    async def revoke_auth_session(self, info: Info[Context, None], id: strawberry.ID) -> bool:
        if not str(id).isdigit():
            raise NotFound("no such session")
        await service.revoke_session(
            info.context.db, info.context.auth, info.context.actor, session_id=int(id)
        )
        return True
