"""Email addresses as ChargeNet stores and compares them: trimmed, lower-cased, plausible.

One definition for sign-up, sign-in, resets and invitations, so an address typed two ways
always finds the same account (and an invitation always matches its invitee).
"""

from __future__ import annotations

import re

from schema.errors import InvalidInput

MAX_EMAIL_LENGTH = 254  # RFC 5321 §4.5.3.1.3 path limit, minus the angle brackets
# Deliberately loose: the confirmation mail is the real check; this only refuses what cannot
# be an address (no @, spaces, no dot in the domain, an over-long local part).
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


def normalize_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not email.isprintable() or not _EMAIL.match(email):
        raise InvalidInput("that is not a valid email address")
    return email
