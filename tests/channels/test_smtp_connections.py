"""SMTP connections reused within a delivery batch, against a real aiosmtpd server: how many
connections a batch opens, a refused envelope that leaves its connection usable, and a
server that closes sessions early."""

from __future__ import annotations

from collections import Counter
from typing import Any

from app.channels.delivery import deliver
from app.channels.models import Message
from app.core.clock import clock
from tests.fixtures.channels import MakeCtx, Outbox, SmtpSink


def smtp_ctx(make_ctx: MakeCtx, port: int, **smtp: Any) -> Any:
    settings = make_ctx().get("settings").channels.smtp
    return make_ctx(
        email_provider="smtp",
        smtp=settings.model_copy(update={"port": port, "timeout_seconds": 5.0, **smtp}),
    )


async def queued(outbox: Outbox, count: int) -> list[Message]:
    return [await outbox.message(recipient=f"r{i}@acme.example") for i in range(count)]


async def test_a_batch_reuses_its_connections_up_to_the_limit(
    make_ctx: MakeCtx, outbox: Outbox, smtp_sink: SmtpSink
) -> None:
    clock.freeze()
    messages = await queued(outbox, 12)

    report = await deliver(
        smtp_ctx(make_ctx, smtp_sink.port, max_connections=3), [m.id for m in messages]
    )

    assert report.sent == 12
    assert sorted(e.rcpt_tos[0] for e in smtp_sink.received) == sorted(
        str(m.recipient) for m in messages
    )
    connections = Counter(smtp_sink.peers)
    assert 1 <= len(connections) <= 3
    assert sum(connections.values()) == 12


async def test_a_refused_recipient_leaves_the_connection_usable(
    make_ctx: MakeCtx, outbox: Outbox, smtp_sink: SmtpSink
) -> None:
    """RCPT TO refused (550) fails that message only; the envelope is reset and the same
    connection carries the others."""
    clock.freeze()
    messages = await queued(outbox, 5)
    smtp_sink.rcpt_replies["r2@acme.example"] = "550 5.1.1 No such user"

    report = await deliver(
        smtp_ctx(make_ctx, smtp_sink.port, max_connections=1), [m.id for m in messages]
    )

    assert (report.sent, report.failed) == (4, 1)
    assert len(set(smtp_sink.peers)) == 1  # one connection, before and after the refusal
    refused = await outbox.get(messages[2].id)
    assert refused.status == "failed"
    assert refused.error is not None
    assert "550" in refused.error
    assert all(e.mail_from for e in smtp_sink.received)


async def test_a_server_closing_sessions_early_costs_a_reconnect_not_a_message(
    make_ctx: MakeCtx, outbox: Outbox, smtp_sink: SmtpSink
) -> None:
    """A server that takes two messages per session answers 421 to the third MAIL FROM:
    the message goes out on a fresh connection, nothing is retried or failed."""
    clock.freeze()
    messages = await queued(outbox, 5)
    smtp_sink.messages_per_session = 2

    report = await deliver(
        smtp_ctx(make_ctx, smtp_sink.port, max_connections=1), [m.id for m in messages]
    )

    assert (report.sent, report.retried, report.failed) == (5, 0, 0)
    assert sorted(Counter(smtp_sink.peers).values()) == [1, 2, 2]
    for message in messages:
        assert (await outbox.get(message.id)).attempts == 1
