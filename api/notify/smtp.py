"""Email over SMTP (CHARGENET_EMAIL_SENDER=smtp): a submission server such as Postfix, SES, Mailgun.

smtplib blocks, so each message is sent from a worker thread on its own connection: account
mail is rare (sign-ups, resets), and a fresh connection never trips over one the server closed
while idle. STARTTLS is required unless turned off (only for a server on the same host).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid

from api.notify.email import Email
from schema.settings import Settings

# Long enough for a slow relay, short enough that a dead one does not hold a sign-up forever.
SMTP_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class SmtpMailer:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    timeout_s: float = SMTP_TIMEOUT_S

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpMailer:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.email_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )

    def message(self, email: Email) -> EmailMessage:
        """The RFC 5322 message: From, To, Subject, Date, Message-ID and a plain-text body."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = email.to
        msg["Subject"] = email.subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain=_domain(self.sender))
        # RFC 3834: an automatic message; well-behaved autoresponders do not answer it.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-ChargeNet-Kind"] = email.kind
        msg.set_content(email.body)
        return msg

    async def send(self, email: Email) -> None:
        await asyncio.to_thread(self._send, self.message(email))

    def _send(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg)


def _domain(sender: str) -> str:
    """The domain of `Name <user@domain>`, for Message-ID; a local fallback if it has none."""
    _, at, domain = getaddresses([sender])[0][1].rpartition("@")
    return domain if at and domain else "chargenet.local"
