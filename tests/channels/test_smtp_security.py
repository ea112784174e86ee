"""SMTP over STARTTLS, implicit TLS and AUTH against real aiosmtpd servers whose certificate
comes from a private test CA (trustme)."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd import smtp as aiosmtpd_smtp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from app.channels.delivery import deliver
from app.core.clock import clock
from app.core.worker_context import WorkerContext
from tests.fixtures.channels import (
    MakeCtx,
    Outbox,
    SmtpSink,
    free_port,
    received_welcome_email,
)

USERNAME = "herald"
PASSWORD = "s3cret-pass"


@dataclass
class Delivered:
    envelope: Envelope
    tls: bool  # the DATA arrived over an encrypted transport
    login: bytes | None  # the AUTH identity of the session, if any


@dataclass
class SecureSink:
    """What one aiosmtpd server saw."""

    port: int
    received: list[Delivered] = field(default_factory=list)
    starttls: int = 0  # completed STARTTLS handshakes
    auth_attempts: list[tuple[str, bytes]] = field(default_factory=list)  # (mechanism, login)


class _Handler:
    def __init__(self, sink: SecureSink) -> None:
        self.sink = sink

    def handle_STARTTLS(  # noqa: N802 - aiosmtpd's hook name
        self, server: aiosmtpd_smtp.SMTP, session: Session, envelope: Envelope
    ) -> bool:
        self.sink.starttls += 1
        return True

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: aiosmtpd_smtp.SMTP, session: Session, envelope: Envelope
    ) -> str:
        transport = server.transport
        assert transport is not None
        encrypted = transport.get_extra_info("ssl_object") is not None
        self.sink.received.append(Delivered(envelope, encrypted, session.login_data))
        return "250 Message accepted for delivery"


def _authenticator(sink: SecureSink) -> Callable[..., AuthResult]:
    def check(
        server: aiosmtpd_smtp.SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        sink.auth_attempts.append((mechanism, auth_data.login))
        valid = auth_data.login == USERNAME.encode() and auth_data.password == PASSWORD.encode()
        return AuthResult(success=valid, handled=False, auth_data=auth_data)

    return check


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """The servers' certificate: for 127.0.0.1 (the host Herald connects to), by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


StartServer = Callable[..., SecureSink]


@pytest.fixture
def start_server(server_tls: ssl.SSLContext) -> Iterator[StartServer]:
    """Starts aiosmtpd servers: `implicit_tls=True` wraps the socket in TLS from the first
    byte; otherwise the server offers STARTTLS (`require_starttls` refuses mail without it).
    `auth=True` requires AUTH (only after TLS) with USERNAME / PASSWORD."""
    controllers: list[Controller] = []

    def start(
        *, implicit_tls: bool = False, require_starttls: bool = False, auth: bool = False
    ) -> SecureSink:
        sink = SecureSink(port=free_port())
        options: dict[str, Any] = {}
        if implicit_tls:
            options["ssl_context"] = server_tls
        else:
            options["tls_context"] = server_tls
            options["require_starttls"] = require_starttls
        if auth:
            # aiosmtpd's `auth_require_tls` only knows STARTTLS: over implicit TLS the whole
            # connection is encrypted, and it would never offer AUTH.
            options.update(
                authenticator=_authenticator(sink),
                auth_required=True,
                auth_require_tls=not implicit_tls,
            )
        controller = Controller(_Handler(sink), hostname="127.0.0.1", port=sink.port, **options)
        controller.start()
        controllers.append(controller)
        return sink

    try:
        yield start
    finally:
        for controller in controllers:
            controller.stop()


def smtp_ctx(make_ctx: MakeCtx, port: int, **smtp: Any) -> WorkerContext:
    base = make_ctx()["settings"].channels.smtp
    update = {"host": "127.0.0.1", "port": port, "timeout_seconds": 5.0, **smtp}
    return make_ctx(email_provider="smtp", smtp=base.model_copy(update=update))


# Over implicit TLS the test servers require AUTH with `auth_require_tls` off (see above).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

CREDENTIALS: dict[str, Any] = {"username": USERNAME, "password": SecretStr(PASSWORD)}


async def test_starttls_with_auth_delivers_over_tls(
    make_ctx: MakeCtx, outbox: Outbox, start_server: StartServer, ca_file: str
) -> None:
    clock.freeze()
    server = start_server(require_starttls=True, auth=True)
    message = await outbox.message()
    ctx = smtp_ctx(make_ctx, server.port, security="starttls", ca_file=ca_file, **CREDENTIALS)

    report = await deliver(ctx, [message.id])

    assert report.sent == 1
    [delivered] = server.received
    assert delivered.tls
    assert server.starttls == 1
    assert delivered.login == USERNAME.encode()
    assert [login for _, login in server.auth_attempts] == [USERNAME.encode()]
    envelope = delivered.envelope
    mail = received_welcome_email(envelope, message)
    assert mail.get_content_type() == "multipart/alternative"
    stored = await outbox.get(message.id)
    assert (stored.status, stored.provider, stored.attempts) == ("sent", "smtp", 1)
    assert stored.provider_message_id == f"<{message.id}@acme.example>"


async def test_implicit_tls_delivers(
    make_ctx: MakeCtx, outbox: Outbox, start_server: StartServer, ca_file: str
) -> None:
    clock.freeze()
    server = start_server(implicit_tls=True, auth=True)
    message = await outbox.message()
    ctx = smtp_ctx(make_ctx, server.port, security="tls", ca_file=ca_file, **CREDENTIALS)

    report = await deliver(ctx, [message.id])

    assert report.sent == 1
    [delivered] = server.received
    assert delivered.tls
    assert server.starttls == 0  # TLS from the first byte, no upgrade
    assert delivered.login == USERNAME.encode()
    assert delivered.envelope.rcpt_tos == [message.recipient]
    assert (await outbox.get(message.id)).status == "sent"


async def test_a_rejected_password_fails_the_message_permanently(
    make_ctx: MakeCtx, outbox: Outbox, start_server: StartServer, ca_file: str
) -> None:
    now = clock.freeze()
    server = start_server(require_starttls=True, auth=True)
    message = await outbox.message()
    wrong = {"username": USERNAME, "password": SecretStr("not-the-password")}
    ctx = smtp_ctx(make_ctx, server.port, security="starttls", ca_file=ca_file, **wrong)

    report = await deliver(ctx, [message.id])

    assert (report.failed, report.retried, report.sent) == (1, 0, 0)
    assert server.auth_attempts  # the server did check the credentials (over TLS)
    assert server.starttls == 1
    assert server.received == []
    stored = await outbox.get(message.id)
    assert (stored.status, stored.failed_at, stored.next_attempt_at) == ("failed", now, None)
    assert stored.error is not None
    assert "535" in stored.error
    assert "AUTH" in stored.error


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_a_certificate_from_an_unknown_ca_is_retried_and_nothing_is_sent(
    make_ctx: MakeCtx, outbox: Outbox, start_server: StartServer, security: str
) -> None:
    """Without `ca_file` only the system's CAs are trusted: the handshake fails before any
    credential or mail leaves; the message waits for a retry (configuration to fix)."""
    clock.freeze()
    server = start_server(implicit_tls=security == "tls", require_starttls=True, auth=True)
    message = await outbox.message()
    ctx = smtp_ctx(make_ctx, server.port, security=security, **CREDENTIALS)

    report = await deliver(ctx, [message.id])

    assert (report.retried, report.failed, report.sent) == (1, 0, 0)
    assert server.received == []
    assert server.auth_attempts == []
    assert server.starttls == 0
    stored = await outbox.get(message.id)
    assert (stored.status, stored.attempts) == ("queued", 1)
    assert stored.next_attempt_at is not None
    assert stored.error is not None
    assert "certificate verification failed" in stored.error
    assert ("STARTTLS" if security == "starttls" else "connect") in stored.error


async def test_an_unverified_certificate_is_accepted_when_verification_is_off(
    make_ctx: MakeCtx, outbox: Outbox, start_server: StartServer
) -> None:
    clock.freeze()
    server = start_server(require_starttls=True)
    message = await outbox.message()
    ctx = smtp_ctx(make_ctx, server.port, security="starttls", verify_certificate=False)

    assert (await deliver(ctx, [message.id])).sent == 1
    [delivered] = server.received
    assert delivered.tls


async def test_starttls_required_but_not_offered_is_retried_without_plaintext(
    make_ctx: MakeCtx, outbox: Outbox, smtp_sink: SmtpSink, ca_file: str
) -> None:
    clock.freeze()
    message = await outbox.message()
    ctx = smtp_ctx(make_ctx, smtp_sink.port, security="starttls", ca_file=ca_file)

    report = await deliver(ctx, [message.id])

    assert report.retried == 1
    assert smtp_sink.received == []
    stored = await outbox.get(message.id)
    assert stored.status == "queued"
    assert stored.error is not None
    assert "STARTTLS" in stored.error
    assert "not supported" in stored.error


async def test_security_none_never_upgrades_even_when_starttls_is_offered(
    make_ctx: MakeCtx, outbox: Outbox, start_server: StartServer, ca_file: str
) -> None:
    clock.freeze()
    server = start_server()  # offers STARTTLS, does not require it
    message = await outbox.message()
    ctx = smtp_ctx(make_ctx, server.port, security="none", ca_file=ca_file)

    assert (await deliver(ctx, [message.id])).sent == 1
    [delivered] = server.received
    assert not delivered.tls
    assert server.starttls == 0
