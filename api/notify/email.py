"""Outgoing email behind a small protocol, so the domain never knows how mail leaves.

The default `OutboxMailer` keeps recent messages in memory and logs them: development and tests
read verification and reset links from it. Production sets CHARGENET_EMAIL_SENDER=smtp.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from schema.timeutil import utcnow

log = logging.getLogger(__name__)

# A development process sends a handful of mails; keeping the last few hundred is plenty.
OUTBOX_SIZE = 500


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    body: str
    # What kind of mail (verify_email, password_reset, invitation…): tests and logs filter by it.
    kind: str = "notice"
    created_at: object = field(default_factory=utcnow)


class Mailer(Protocol):
    async def send(self, email: Email) -> None: ...


class OutboxMailer:
    def __init__(self, size: int = OUTBOX_SIZE) -> None:
        self.outbox: deque[Email] = deque(maxlen=size)

    async def send(self, email: Email) -> None:
        self.outbox.append(email)
        log.info(
            "email (outbox) to=%s kind=%s subject=%r\n%s", email.to, email.kind, email.subject, email.body
        )

    def latest(self, to: str, kind: str | None = None) -> Email | None:
        for email in reversed(self.outbox):
            if email.to == to and (kind is None or email.kind == kind):
                return email
        return None
