"""Sign in with Google and Apple: the app sends the provider's ID token, ChargeNet verifies it
and signs in, links or creates the account (see `api.accounts.social_service`)."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.accounts import social_service
from api.accounts.types import AuthPayload, DeviceInput, device_from
from api.auth.oidc import APPLE, GOOGLE
from api.auth.permissions import IsPublic

_NONCE = (
    "The nonce the app put in the sign-in request. Required when the token carries one; it "
    "binds the token to this sign-in so a token captured elsewhere cannot be replayed."
)


@strawberry.input
class GoogleSignInInput:
    id_token: str = strawberry.field(description="The ID token from Google Sign-In / Credential Manager.")
    nonce: str | None = strawberry.field(default=None, description=_NONCE)
    device: DeviceInput | None = None


@strawberry.input
class AppleSignInInput:
    id_token: str = strawberry.field(description="The identityToken from Sign in with Apple.")
    nonce: str | None = strawberry.field(
        default=None, description=_NONCE + " Send the raw nonce, even if Apple was given its SHA-256."
    )
    display_name: str | None = strawberry.field(
        default=None,
        description="Apple gives the app the person's name on the first sign-in only; pass it here "
        "so a new account gets it. Ignored for existing accounts.",
    )
    device: DeviceInput | None = None


async def _sign_in(
    info: Info,
    provider: str,
    id_token: str,
    nonce: str | None,
    device: DeviceInput | None,
    display_name: str | None = None,
) -> AuthPayload:
    ctx = info.context
    request = social_service.SignInRequest(
        provider=provider,
        id_token=id_token,
        nonce=nonce,
        device=device_from(device, user_agent=ctx.user_agent, ip_address=ctx.client_ip),
        display_name=display_name,
    )
    pair = await social_service.sign_in_with_id_token(
        ctx.db, ctx.auth, request, ttl_days=ctx.settings.session_ttl_days
    )
    return AuthPayload.from_pair(pair)


@strawberry.type
class SocialSignInMutation:
    @strawberry.mutation(
        permission_classes=[IsPublic],
        description="Sign in with a Google ID token: the Google account's existing ChargeNet account, "
        "else the account with the same (Google-verified) email, else a new account. Errors: "
        "INVALID_ID_TOKEN, PROVIDER_DISABLED, RATE_LIMITED.",
    )
    async def sign_in_with_google(self, info: Info, input: GoogleSignInInput) -> AuthPayload:
        return await _sign_in(info, GOOGLE, input.id_token, input.nonce, input.device)

    @strawberry.mutation(
        permission_classes=[IsPublic],
        description="Sign in with an Apple identity token; accounts are found, linked or created as "
        "for Google. Errors: INVALID_ID_TOKEN, PROVIDER_DISABLED, RATE_LIMITED.",
    )
    async def sign_in_with_apple(self, info: Info, input: AppleSignInInput) -> AuthPayload:
        return await _sign_in(info, APPLE, input.id_token, input.nonce, input.device, input.display_name)
