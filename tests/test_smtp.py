"""Sending e-mail (``activities.smtp``) to real SMTP servers (aiosmtpd on the test's loop):
one that accepts, refuses, answers "try later", never answers, drops the connection, or
wants STARTTLS or implicit TLS with a login."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from activities.settings import Settings
from activities.smtp import MailError, SmtpConfig, send_message
from starter.devserver import free_port


def message(to: str = "ann@example.com") -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Shop <shop@example.com>"
    mail["To"] = to
    mail["Subject"] = "Your cart is waiting"
    mail["Message-ID"] = "<cart-1.reminder-1@shop.example.com>"
    mail.set_content("Hello Ann")
    mail.add_alternative("<p>Hello <b>Ann</b></p>", subtype="html")
    return mail


class Handler:
    def __init__(
        self,
        *,
        rcpt_answer: str | None = None,
        data_delay: float = 0.0,
        refuse: frozenset[str] = frozenset(),
    ) -> None:
        self.rcpt_answer = rcpt_answer
        self.data_delay = data_delay
        self.refuse = refuse
        self.received: list[Envelope] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.rcpt_answer is not None:
            return self.rcpt_answer
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.data_delay)
        self.received.append(envelope)
        return "250 OK"


@asynccontextmanager
async def smtp_server(
    handler: Handler, *, ssl_context: ssl.SSLContext | None = None, **smtp: Any
) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()

    def protocol() -> Any:
        return SMTP(handler, hostname="test-relay", loop=loop, **smtp)

    server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def dropping_server() -> AsyncIterator[int]:
    """Accepts the connection and closes it at once."""

    async def drop(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def config(port: int, **fields: Any) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, timeout_seconds=2, **fields)


async def test_an_accepted_message_reaches_the_relay() -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        sent = await send_message(config(port), message())
    assert sent.recipients == ("ann@example.com",)
    assert sent.message_id == "<cart-1.reminder-1@shop.example.com>"
    (envelope,) = handler.received
    assert envelope.mail_from == "shop@example.com"
    assert envelope.rcpt_tos == ["ann@example.com"]
    assert b"Message-ID: <cart-1.reminder-1@shop.example.com>" in (envelope.content or b"")


async def test_one_refused_recipient_of_two_is_reported_and_the_rest_sent() -> None:
    handler = Handler(refuse=frozenset({"bob@example.com"}))
    async with smtp_server(handler) as port:
        sent = await send_message(config(port), message("ann@example.com, bob@example.com"))
    assert sent.recipients == ("ann@example.com",) and sent.refused == ("bob@example.com",)
    assert handler.received[0].rcpt_tos == ["ann@example.com"]


async def test_a_refused_recipient_is_permanent() -> None:
    async with smtp_server(Handler(rcpt_answer="550 5.1.1 no such user")) as port:
        with pytest.raises(MailError) as raised:
            await send_message(config(port), message())
    assert raised.value.code == "smtp_refused" and not raised.value.transient
    assert "550" in raised.value.message and "ann@example.com" in raised.value.message


async def test_try_later_is_transient() -> None:
    async with smtp_server(Handler(rcpt_answer="451 4.3.0 try again later")) as port:
        with pytest.raises(MailError) as raised:
            await send_message(config(port), message())
    assert raised.value.code == "smtp_unavailable" and raised.value.transient


async def test_a_relay_that_does_not_answer_times_out() -> None:
    async with smtp_server(Handler(data_delay=5)) as port:
        with pytest.raises(MailError) as raised:
            await send_message(
                SmtpConfig(host="127.0.0.1", port=port, timeout_seconds=0.3), message()
            )
    assert raised.value.code == "smtp_timeout" and raised.value.transient


async def test_a_dropped_connection_is_transient() -> None:
    async with dropping_server() as port:
        with pytest.raises(MailError) as raised:
            await send_message(config(port), message())
    assert raised.value.code == "smtp_unavailable" and raised.value.transient


async def test_nothing_listening_is_transient() -> None:
    with pytest.raises(MailError) as raised:
        await send_message(config(free_port()), message())
    assert raised.value.code == "smtp_unavailable" and raised.value.transient


# --------------------------------------------------------------------------- TLS and login


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 signed by a test CA, and that CA's file."""
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    return server_context, ca_file


def authenticator(expected: tuple[str, str]) -> Callable[..., AuthResult]:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and (
                auth_data.login.decode(),
                auth_data.password.decode(),
            )
            == expected
        )
        return AuthResult(success=ok, handled=False)

    return check


async def test_starttls_with_a_login(tls: tuple[ssl.SSLContext, Path]) -> None:
    server_context, ca_file = tls
    handler = Handler()
    async with smtp_server(
        handler,
        tls_context=server_context,
        require_starttls=True,
        authenticator=authenticator(("shop", "s3cret")),
        auth_require_tls=True,
    ) as port:
        good = config(
            port, security="starttls", username="shop", password="s3cret", ca_file=ca_file
        )
        await send_message(good, message())
        assert len(handler.received) == 1
        with pytest.raises(MailError) as raised:
            await send_message(
                config(
                    port, security="starttls", username="shop", password="wrong", ca_file=ca_file
                ),
                message(),
            )
        assert raised.value.code == "smtp_refused" and not raised.value.transient
        # A relay whose certificate is not trusted is not talked to.
        with pytest.raises(MailError) as untrusted:
            await send_message(
                config(port, security="starttls", username="shop", password="s3cret"), message()
            )
        assert untrusted.value.code == "smtp_unavailable"
    assert len(handler.received) == 1


async def test_implicit_tls(tls: tuple[ssl.SSLContext, Path]) -> None:
    server_context, ca_file = tls
    handler = Handler()
    async with smtp_server(handler, ssl_context=server_context) as port:
        await send_message(config(port, security="tls", ca_file=ca_file), message())
    assert len(handler.received) == 1


async def test_configurations_that_cannot_work_are_permanent(
    tmp_path: Path, tls: tuple[ssl.SSLContext, Path]
) -> None:
    # A password in clear to another host is never sent.
    with pytest.raises(MailError) as clear:
        await send_message(
            SmtpConfig(host="relay.example.com", port=25, username="shop", password="x"),
            message(),
        )
    assert clear.value.code == "smtp_misconfigured" and not clear.value.transient
    # An unreadable CA file.
    with pytest.raises(MailError) as ca:
        await send_message(config(25, security="tls", ca_file=tmp_path / "missing.pem"), message())
    assert ca.value.code == "smtp_misconfigured"
    # STARTTLS asked of a relay that does not offer it.
    async with smtp_server(Handler()) as port:
        with pytest.raises(MailError) as starttls:
            await send_message(config(port, security="starttls", ca_file=tls[1]), message())
    assert starttls.value.code == "smtp_misconfigured" and not starttls.value.transient


def test_the_password_is_never_shown() -> None:
    smtp = SmtpConfig(username="shop", password="hunter2")
    assert "hunter2" not in repr(smtp) and "hunter2" not in smtp.describe()


def test_the_config_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTKEEPER_SMTP_HOST", "relay.example.com")
    monkeypatch.setenv("CARTKEEPER_SMTP_PORT", "587")
    monkeypatch.setenv("CARTKEEPER_SMTP_SECURITY", "starttls")
    monkeypatch.setenv("CARTKEEPER_SMTP_USERNAME", "shop")
    monkeypatch.setenv("CARTKEEPER_SMTP_PASSWORD", "s3cret")
    smtp = SmtpConfig.from_settings(Settings())
    assert (smtp.host, smtp.port, smtp.security, smtp.username, smtp.password) == (
        "relay.example.com",
        587,
        "starttls",
        "shop",
        "s3cret",
    )
    assert "s3cret" not in smtp.describe()
    monkeypatch.setenv("CARTKEEPER_SMTP_SECURITY", "ssl")
    with pytest.raises(ValueError):
        Settings()
