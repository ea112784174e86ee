"""A real local webhook receiver that verifies every delivery with the reference
`standardwebhooks` library, plus helpers for the delivery tests (endpoints, emitting, a
worker context, reading rows).

The receiver answers from a script (`answers`, then `default`); an answer may stall until
released (`Answer.stall`), which is how a dead endpoint is modelled without timers.

Verification: `standardwebhooks.Webhook.verify` checks the signature (HMAC over
`id.timestamp.body`, any of the space-separated signatures) and the timestamp against the
machine's real time (+-5 min). Tests that move Herald's clock hours ahead would see every
timestamp as "too new", so `ClockedWebhook` is the reference class with only its timestamp
check reading Herald's clock instead (same 5-minute tolerance); with the clock untouched the
two are identical. The signature code is the library's, untouched.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.config import Settings
from app.core.clock import utcnow
from app.core.db import transaction
from app.core.signing import new_secret
from app.core.state import AppState
from app.core.worker_context import WorkerContext
from app.outbox.catalogue import EventData
from app.outbox.emit import emit
from app.outbox.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

TOLERANCE = timedelta(minutes=5)
Factory = async_sessionmaker[AsyncSession]


class ClockedWebhook(Webhook):
    """The reference verifier, its timestamp window centred on Herald's clock."""

    def _Webhook__verify_timestamp(self, timestamp_header: str) -> datetime:  # noqa: N802
        now = utcnow()
        try:
            timestamp = datetime.fromtimestamp(float(timestamp_header), tz=UTC)
        except Exception as error:
            raise WebhookVerificationError("Invalid Signature Headers") from error
        if timestamp < now - TOLERANCE:
            raise WebhookVerificationError("Message timestamp too old")
        if timestamp > now + TOLERANCE:
            raise WebhookVerificationError("Message timestamp too new")
        return timestamp


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok": true}'
    stall: asyncio.Event | None = None  # answer only once this is set


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    received_at: datetime  # Herald's clock when it arrived
    verified: dict[str, bool]  # secret -> did the library accept it

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int = 0
    secrets: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    default: Answer = field(default_factory=Answer)
    received: list[Received] = field(default_factory=list)
    waiting: int = 0  # requests held by a stalled answer right now
    path: str = "/hook"
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def verify(self, body: bytes, headers: dict[str, str]) -> dict[str, bool]:
        found: dict[str, bool] = {}
        for secret in self.secrets:
            try:
                ClockedWebhook(secret).verify(body, headers)
                found[secret] = True
            except WebhookVerificationError:
                found[secret] = False
        return found

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.received.append(Received(headers, body, utcnow(), self.verify(body, headers)))
        answer = self.answers.pop(0) if self.answers else self.default
        if answer.stall is not None:
            await self._count_waiting(+1)
            try:
                await answer.stall.wait()
            finally:
                await self._count_waiting(-1)
        extra = "".join(f"{name}: {value}\r\n" for name, value in answer.headers.items())
        try:
            writer.write(
                f"HTTP/1.1 {answer.status} X\r\nContent-Length: {len(answer.body)}\r\n"
                f"Content-Type: application/json\r\nConnection: close\r\n{extra}\r\n".encode()
                + answer.body
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _count_waiting(self, delta: int) -> None:
        async with self.changed:
            self.waiting += delta
            self.changed.notify_all()

    async def until_waiting(self, count: int) -> None:
        """Until `count` requests are held by stalled answers (no timer involved)."""
        async with self.changed:
            await self.changed.wait_for(lambda: self.waiting >= count)

    def all_verified(self) -> bool:
        """Every request carried a valid signature for at least one configured secret."""
        return all(any(r.verified.values()) for r in self.received)


async def start_receiver(secret: str | None = None) -> tuple[Receiver, asyncio.Server]:
    peer = Receiver(secrets=[secret] if secret else [])
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    return peer, server


@pytest.fixture
async def receivers() -> AsyncIterator[list[asyncio.Server]]:
    """Collects servers started by `start_receiver` in a test and closes them after."""
    servers: list[asyncio.Server] = []
    yield servers
    for server in servers:
        server.close()
    for server in servers:
        await server.wait_closed()


# -- Herald side -----------------------------------------------------------------------------


def worker_ctx(state: AppState, settings: Settings, **webhooks: Any) -> WorkerContext:
    """A worker context on the test app's pools, `webhooks` settings overridden."""
    overridden = settings.model_copy(
        update={"webhooks": settings.webhooks.model_copy(update=webhooks)}
    )
    return WorkerContext(
        redis=state.redis,
        settings=overridden,
        engine=state.engine,
        session_factory=state.session_factory,
        queue=state.queue,
        http=state.http,
    )


async def make_endpoint(
    factory: Factory,
    workspace_id: uuid.UUID,
    url: str,
    *,
    event_types: Sequence[str] = ("*",),
    secret: str | None = None,
    **values: Any,
) -> WebhookEndpoint:
    async with transaction(factory) as session:
        endpoint = WebhookEndpoint(
            workspace_id=workspace_id,
            url=url,
            event_types=list(event_types),
            secret=secret or new_secret(),
            **values,
        )
        session.add(endpoint)
        await session.flush()
        return endpoint


async def emit_events(
    state: AppState, workspace_id: uuid.UUID, events: Sequence[EventData]
) -> None:
    """Emit in one committed transaction (the delivery jobs reach Redis after commit)."""
    async with transaction(state.session_factory, state.queue) as session:
        for data in events:
            await emit(session, workspace_id, data)


async def deliveries(factory: Factory, endpoint_id: uuid.UUID) -> list[WebhookDelivery]:
    async with factory() as session:
        rows = await session.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id)
        )
        return list(rows.scalars().all())


async def attempts(factory: Factory, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    async with factory() as session:
        rows = await session.execute(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.id)
        )
        return list(rows.scalars().all())


async def endpoint_row(factory: Factory, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    async with factory() as session:
        found = await session.get(WebhookEndpoint, endpoint_id)
        assert found is not None
        return found


async def events_of_type(factory: Factory, event_type: str) -> list[WebhookEvent]:
    async with factory() as session:
        rows = await session.execute(
            select(WebhookEvent).where(WebhookEvent.type == event_type).order_by(WebhookEvent.id)
        )
        return list(rows.scalars().all())
