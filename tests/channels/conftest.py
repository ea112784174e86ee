"""Channel test helpers: a worker context over the test app's resources, outbox rows
(contact + sequence + version + enrollment + message), and real local peers (an aiosmtpd
server, a minimal HTTP receiver)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd import smtp as aiosmtpd_smtp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.channels.models import Message
from app.config import Settings
from app.contacts.models import Contact
from app.core.clock import utcnow
from app.core.db import transaction
from app.core.signing import new_secret
from app.core.state import AppState
from app.core.worker_context import WorkerContext
from app.sequences.models import Enrollment, Sequence, SequenceVersion
from tests.fixtures.tenants import Tenant

EMAIL_CONTENT: dict[str, Any] = {
    "subject": "Welcome, Ana",
    "html": "<html><body><p>Hi Ana</p></body></html>",
    "text": "Hi Ana",
    "from": "Acme <news@acme.example>",
    "reply_to": "support@acme.example",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- worker context -------------------------------------------------------------------------

MakeCtx = Callable[..., WorkerContext]


@pytest.fixture
def make_ctx(state: AppState, settings: Settings) -> MakeCtx:
    """A worker context on the test app's pools, with `channels` settings overridden."""

    def build(**channels: Any) -> WorkerContext:
        overridden = settings.model_copy(
            update={"channels": settings.channels.model_copy(update=channels)}
        )
        return WorkerContext(
            redis=state.redis,
            settings=overridden,
            engine=state.engine,
            session_factory=state.session_factory,
            queue=state.queue,
            http=state.http,
        )

    return build


# --- outbox rows ----------------------------------------------------------------------------


@dataclass
class Outbox:
    factory: async_sessionmaker[AsyncSession]
    tenant: Tenant
    sequence_id: uuid.UUID | None = None
    version_id: uuid.UUID | None = None
    secret: str = field(default_factory=new_secret)
    contact_count: int = 0

    async def _sequence(self, session: AsyncSession, on_send_failure: str) -> None:
        if self.sequence_id is not None:
            return
        sequence = Sequence(
            workspace_id=self.tenant.workspace_id,
            name="Onboarding",
            version=1,
            definition={"steps": [{"key": "welcome", "type": "exit"}]},
            published_version=1,
            signing_secret=self.secret,
        )
        session.add(sequence)
        await session.flush()
        version = SequenceVersion(
            workspace_id=self.tenant.workspace_id,
            sequence_id=sequence.id,
            number=1,
            definition={
                "steps": [{"key": "welcome", "type": "exit"}],
                "settings": {"on_send_failure": on_send_failure},
            },
            published_at=utcnow(),
        )
        session.add(version)
        await session.flush()
        self.sequence_id, self.version_id = sequence.id, version.id

    async def contact(self, email: str | None = None) -> uuid.UUID:
        async with transaction(self.factory) as session:
            self.contact_count += 1
            contact = Contact(
                workspace_id=self.tenant.workspace_id,
                email=email or f"ana{self.contact_count}@acme.example",
            )
            session.add(contact)
            await session.flush()
            return contact.id

    async def message(
        self,
        *,
        channel: str = "email",
        recipient: str | None = None,
        content: dict[str, Any] | None = None,
        contact_id: uuid.UUID | None = None,
        on_send_failure: str = "continue",
        step_key: str = "welcome",
    ) -> Message:
        """One queued, due message (what the engine's claim creates)."""
        if contact_id is None:
            contact_id = await self.contact()
        now = utcnow()
        async with transaction(self.factory) as session:
            await self._sequence(session, on_send_failure)
            assert self.sequence_id is not None
            assert self.version_id is not None
            enrollment = Enrollment(
                workspace_id=self.tenant.workspace_id,
                sequence_id=self.sequence_id,
                sequence_version_id=self.version_id,
                contact_id=contact_id,
                source="api",
                state="active",
                step_key=step_key,
                step_visit=1,
                step_entered_at=now,
                next_action_at=now,
                started_at=now,
                updated_at=now,
            )
            session.add(enrollment)
            await session.flush()
            contact = await session.get(Contact, contact_id)
            assert contact is not None
            message = Message(
                workspace_id=self.tenant.workspace_id,
                enrollment_id=enrollment.id,
                contact_id=contact_id,
                sequence_id=self.sequence_id,
                step_key=step_key,
                visit=1,
                channel=channel,
                recipient=recipient or contact.email,
                content=content if content is not None else dict(EMAIL_CONTENT),
                status="queued",
                attempts=0,
                next_attempt_at=now,
                due_at=now,
                created_at=now,
                updated_at=now,
            )
            session.add(message)
            await session.flush()
            return message

    async def get(self, message_id: uuid.UUID) -> Message:
        async with self.factory() as session:
            message = await session.get(Message, message_id)
            assert message is not None
            return message

    async def enrollment(self, enrollment_id: uuid.UUID) -> Enrollment:
        async with self.factory() as session:
            enrollment = await session.get(Enrollment, enrollment_id)
            assert enrollment is not None
            return enrollment


@pytest.fixture
def outbox(session_factory: async_sessionmaker[AsyncSession], tenant: Tenant) -> Outbox:
    return Outbox(session_factory, tenant)


# --- SMTP sink ------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    port: int
    received: list[Envelope] = field(default_factory=list)
    # Reply to RCPT TO with this instead of accepting (e.g. "450 4.2.1 try later").
    rcpt_reply: str | None = None
    # The same, for these recipients only.
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    # Messages a connection may carry; MAIL FROM past it answers 421 (a per-session cap).
    messages_per_session: int | None = None
    # The client address and port of each accepted message: one per connection.
    peers: list[Any] = field(default_factory=list)
    carried: dict[Any, int] = field(default_factory=dict)

    def emails(self) -> list[EmailMessage]:
        """The accepted messages, parsed."""
        parsed = []
        for envelope in self.received:
            assert isinstance(envelope.content, bytes)
            mail = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(mail, EmailMessage)
            parsed.append(mail)
        return parsed


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: aiosmtpd_smtp.SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if self.sink.rcpt_reply is not None:
            return self.sink.rcpt_reply
        if address in self.sink.rcpt_replies:
            return self.sink.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: aiosmtpd_smtp.SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        cap = self.sink.messages_per_session
        if cap is not None and self.sink.carried.get(session.peer, 0) >= cap:
            return "421 4.7.0 Too many messages on this connection, closing"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: aiosmtpd_smtp.SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.sink.received.append(envelope)
        self.sink.peers.append(session.peer)
        self.sink.carried[session.peer] = self.sink.carried.get(session.peer, 0) + 1
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    controller = Controller(_Handler(sink), hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


# --- HTTP receiver --------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when the request arrived

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    port: int
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"id": "prov-1"}'

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(Received(method, path, headers, body))
        extra = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
        writer.write(
            f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(self.body)}\r\n"
            f"Content-Type: application/json\r\nConnection: close\r\n{extra}\r\n".encode()
            + self.body
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    peer = HttpReceiver(port=0)
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    try:
        yield peer
    finally:
        server.close()
        await server.wait_closed()


def received_welcome_email(envelope: Envelope, message: Message) -> EmailMessage:
    """The EMAIL_CONTENT email as the SMTP server received it for `message`, its envelope and
    identifying headers checked."""
    assert envelope.mail_from == "news@acme.example"
    assert envelope.rcpt_tos == [message.recipient]
    assert isinstance(envelope.content, bytes)
    mail = message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(mail, EmailMessage)
    assert mail["Message-ID"] == f"<{message.id}@acme.example>"
    assert mail["Subject"] == "Welcome, Ana"
    assert mail["From"] == "Acme <news@acme.example>"
    return mail
