"""Account mail leaves over SMTP (CHARGENET_EMAIL_SENDER=smtp) and lands in a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

import httpx
import pytest

from api.notify.email import Email
from api.notify.smtp import SmtpMailer
from tests.accounts_api import VERIFY_EMAIL, link_token, sign_up, unique_email
from tests.conftest import ApiServerFactory
from tests.graphql_client import data, gql
from tests.smtp_server import SmtpServer

APP_URL = "https://app.chargenet.test"


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    server = await SmtpServer().start()
    yield server
    await server.stop()


class TestSignUpMail:
    async def test_the_confirmation_mail_arrives_and_its_link_signs_in(
        self, api_server_factory: ApiServerFactory, smtp_server: SmtpServer
    ) -> None:
        # given an API that sends mail through an SMTP server
        api = await api_server_factory(
            CHARGENET_EMAIL_SENDER="smtp",
            CHARGENET_SMTP_HOST="127.0.0.1",
            CHARGENET_SMTP_PORT=smtp_server.port,
            CHARGENET_SMTP_STARTTLS=False,
            CHARGENET_APP_URL=APP_URL,
        )
        email = unique_email("mailed")
        async with httpx.AsyncClient(base_url=api.base_url, timeout=20) as http:
            # when someone signs up
            data(await sign_up(http, email, "amber-wind-turbine-7"))
            # then the server received one well-formed message for them
            [received] = await smtp_server.wait_for(1)
            assert received.rcpt_to == [email]
            assert received.mail_from == "no-reply@chargenet.local"
            msg = received.message
            assert msg["From"] == "ChargeNet <no-reply@chargenet.local>"
            assert msg["To"] == email
            assert msg["Subject"] == "Confirm your email address for ChargeNet"
            assert msg["Message-ID"].endswith("@chargenet.local>")
            assert parsedate_to_datetime(msg["Date"]).tzinfo is not None
            body = msg.get_content()
            assert f"{APP_URL}/verify-email?token=" in body
            # and its link confirms the address and signs in
            token = link_token(body, "verify-email")
            pair = data(await gql(http, VERIFY_EMAIL, {"token": token}))["verifyEmail"]
            assert pair["accessToken"]


class TestSmtpMailer:
    async def test_logs_in_and_keeps_the_body_intact(self, smtp_server: SmtpServer) -> None:
        # given a mailer with credentials
        mailer = SmtpMailer(
            host="127.0.0.1",
            port=smtp_server.port,
            sender="Fleet Ops <ops@fleet.example>",
            username="chargenet",
            password="s3cret",
            starttls=False,
        )
        body = "Hej Åsa,\n.a line starting with a dot\n\nbye\n"
        # when it sends a message
        await mailer.send(Email(to="asa@example.com", subject="Räkning", body=body, kind="notice"))
        # then the server saw the login and the exact message
        [received] = await smtp_server.wait_for(1)
        assert received.login == ("chargenet", "s3cret")
        assert received.mail_from == "ops@fleet.example"
        assert received.message["Subject"] == "Räkning"
        assert received.message["Message-ID"].endswith("@fleet.example>")
        assert received.message["Auto-Submitted"] == "auto-generated"
        # (text travels in canonical form, CRLF line breaks: RFC 2046 §4.1.1)
        assert received.message.get_content().replace("\r\n", "\n") == body
