"""A small real SMTP server for tests (RFC 5321 without TLS): EHLO/HELO, AUTH PLAIN, MAIL,
RCPT, DATA, RSET, NOOP, QUIT. Received messages are parsed and kept in `received`."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage

MAX_LINE = 1000  # RFC 5321 §4.5.3.1.6 text line limit, CRLF included


@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    message: EmailMessage
    # (username, password) if the client authenticated with AUTH PLAIN.
    login: tuple[str, str] | None = None


@dataclass
class _Envelope:
    mail_from: str | None = None
    rcpt_to: list[str] = field(default_factory=list)


def _path(arg: str) -> str:
    """`FROM:<a@b> BODY=8BITMIME` → `a@b`."""
    _, _, rest = arg.partition(":")
    rest = rest.strip()
    if rest.startswith("<"):
        return rest[1 : rest.index(">")]
    return rest.split(" ")[0]


class SmtpServer:
    def __init__(self, *, hostname: str = "smtp.test") -> None:
        self.hostname = hostname
        self.received: list[Received] = []
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> SmtpServer:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[Received]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.received) >= count), timeout)
        return self.received

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(text: str) -> None:
            writer.write(text.encode() + b"\r\n")
            await writer.drain()

        env = _Envelope()
        login: tuple[str, str] | None = None
        await reply(f"220 {self.hostname} ESMTP ready")
        try:
            while line := await reader.readline():
                if len(line) > MAX_LINE:
                    await reply("500 line too long")
                    continue
                verb, _, arg = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    await reply(f"250-{self.hostname}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN")
                elif verb == "HELO":
                    await reply(f"250 {self.hostname}")
                elif verb == "AUTH" and arg.upper().startswith("PLAIN "):
                    _, user, password = base64.b64decode(arg.split(" ", 1)[1]).decode().split("\0")
                    login = (user, password)
                    await reply("235 2.7.0 authentication successful")
                elif verb == "MAIL":
                    env = _Envelope(mail_from=_path(arg))
                    await reply("250 2.1.0 ok")
                elif verb == "RCPT":
                    if env.mail_from is None:
                        await reply("503 5.5.1 MAIL first")
                        continue
                    env.rcpt_to.append(_path(arg))
                    await reply("250 2.1.5 ok")
                elif verb == "DATA":
                    if not env.rcpt_to:
                        await reply("503 5.5.1 RCPT first")
                        continue
                    await reply("354 end data with <CR><LF>.<CR><LF>")
                    await self._data(reader, env, login)
                    env = _Envelope()
                    await reply("250 2.0.0 queued")
                elif verb == "RSET":
                    env = _Envelope()
                    await reply("250 2.0.0 ok")
                elif verb == "NOOP":
                    await reply("250 2.0.0 ok")
                elif verb == "QUIT":
                    await reply(f"221 2.0.0 {self.hostname} closing")
                    break
                else:
                    await reply("502 5.5.2 command not implemented")
        finally:
            writer.close()

    async def _data(
        self, reader: asyncio.StreamReader, env: _Envelope, login: tuple[str, str] | None
    ) -> None:
        lines: list[bytes] = []
        while (line := await reader.readline()) not in (b".\r\n", b".\n", b""):
            lines.append(line[1:] if line.startswith(b".") else line)  # RFC 5321 §4.5.2 dot-stuffing
        message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        async with self._arrived:
            self.received.append(Received(env.mail_from or "", list(env.rcpt_to), message, login))
            self._arrived.notify_all()
