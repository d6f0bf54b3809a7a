"""Expected failures of organisation management, each with a stable code for clients."""

from __future__ import annotations

from schema.errors import ChargeNetError, Forbidden


class InvitationEmailMismatch(Forbidden):
    """The invitation was sent to another address than the signed-in account's verified one."""

    code = "INVITATION_EMAIL_MISMATCH"


class InvalidInvitationToken(ChargeNetError):
    """Unknown, expired, revoked or already used: the same answer for each, so a token's
    history does not leak."""

    code = "INVALID_TOKEN"
