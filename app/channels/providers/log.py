"""The `log` provider: records what would be sent (the default in `herald dev`)."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from app.channels.providers.base import OutboundMessage, Outcome, Provider, SendResult

log = structlog.get_logger("herald.channels")


class LogProvider(Provider):
    name = "log"

    async def send(self, message: OutboundMessage) -> SendResult:
        # Ids only: recipients and content are personal data and stay out of logs.
        log.info(
            "message_logged",
            message_id=str(message.id),
            workspace_id=str(message.workspace_id),
            channel=message.channel,
        )
        return SendResult(provider_message_id=f"log-{message.id}")

    async def send_many(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        # No I/O worth overlapping: the whole batch in one pass, no tasks per message.
        return [Outcome(message, result=await self.send(message)) for message in messages]
