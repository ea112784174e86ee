"""The provider interface: `send(message) -> SendResult`, raising a classified error.

Providers receive `OutboundMessage` (a detached snapshot taken when the message was leased),
never an ORM row: sends happen outside any transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

# Sends in flight at once per delivery call (one SMTP connection or HTTP request each).
SEND_CONCURRENCY = 20


@dataclass(frozen=True)
class OutboundMessage:
    id: uuid.UUID
    workspace_id: uuid.UUID
    channel: str
    recipient: str | None
    content: dict[str, Any]
    unsubscribe_url: str
    signing_secret: str | None = None  # webhook steps: the sequence's `whsec_` secret


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str | None
    response: dict[str, Any] | None = None


class SendError(Exception):
    def __init__(self, reason: str, response: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response


class RetryableError(SendError):
    """Try again later (timeouts, refused connections, 4xx SMTP replies, 5xx/429 HTTP)."""

    def __init__(
        self,
        reason: str,
        response: dict[str, Any] | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(reason, response)
        self.retry_after_seconds = retry_after_seconds


class PermanentError(SendError):
    """Never retried: the message fails (5xx SMTP replies, 4xx HTTP, invalid content)."""


class UnknownOutcomeError(SendError):
    """The peer may have accepted the message (SMTP: the connection died after DATA was
    sent). Never resent: the message ends `unknown`."""


@dataclass(frozen=True)
class Outcome:
    message: OutboundMessage
    result: SendResult | None = None
    error: SendError | None = field(default=None)


class Provider:
    """Base: subclasses implement `send`; `attempt` classifies one send's outcome, and
    `send_many` runs sends with bounded concurrency inside one `connections()` scope."""

    name: str = "base"
    concurrency: int = SEND_CONCURRENCY  # sends in flight at once within one scope

    async def send(self, message: OutboundMessage) -> SendResult:
        raise NotImplementedError

    @asynccontextmanager
    async def connections(self) -> AsyncIterator[None]:
        """A scope whose sends may share connections (SMTP); closed when it ends."""
        yield

    async def attempt(self, message: OutboundMessage) -> Outcome:
        try:
            return Outcome(message, result=await self.send(message))
        except SendError as error:
            return Outcome(message, error=error)
        except Exception as error:  # a provider bug must not lose the batch
            return Outcome(message, error=RetryableError(f"{type(error).__name__}: {error}"[:500]))

    async def send_many(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(message: OutboundMessage) -> Outcome:
            async with gate:
                return await self.attempt(message)

        async with self.connections():
            return list(await asyncio.gather(*(one(message) for message in messages)))
