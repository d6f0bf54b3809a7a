"""The mails accounts send: what they say and where their links point."""

from __future__ import annotations

from dataclasses import dataclass

from api.notify.email import Email


@dataclass(frozen=True, slots=True)
class Links:
    """Where emailed links point: the app (web or a universal link) handles the token."""

    app_url: str

    def verify(self, token: str) -> str:
        return f"{self.app_url.rstrip('/')}/verify-email?token={token}"

    def reset(self, token: str) -> str:
        return f"{self.app_url.rstrip('/')}/reset-password?token={token}"

    def forgot(self) -> str:
        return f"{self.app_url.rstrip('/')}/forgot-password"


def verify_mail(links: Links, *, to: str, name: str | None, token: str) -> Email:
    return Email(
        to=to,
        subject="Confirm your email address for ChargeNet",
        body=(
            f"Hello{' ' + name if name else ''},\n\n"
            "Confirm your email address to finish signing up for ChargeNet:\n\n"
            f"{links.verify(token)}\n\n"
            "The link works once and expires in 48 hours. If you did not sign up, ignore this email.\n"
        ),
        kind="verify_email",
    )


def account_exists_mail(links: Links, *, to: str) -> Email:
    return Email(
        to=to,
        subject="You already have a ChargeNet account",
        body=(
            "Someone, hopefully you, tried to sign up for ChargeNet with this address, "
            "but it already has an account.\n\n"
            "Sign in with your password, or if you forgot it, reset it here:\n\n"
            f"{links.forgot()}\n\n"
            "If it was not you, ignore this email: nothing changed.\n"
        ),
        kind="account_exists",
    )


def reset_mail(links: Links, *, to: str, token: str) -> Email:
    return Email(
        to=to,
        subject="Reset your ChargeNet password",
        body=(
            "Choose a new ChargeNet password here:\n\n"
            f"{links.reset(token)}\n\n"
            "The link works once and expires in 30 minutes. Setting a new password signs "
            "you out on every device.\nIf you did not ask for this, ignore this email: your "
            "password stays the same.\n"
        ),
        kind="password_reset",
    )
