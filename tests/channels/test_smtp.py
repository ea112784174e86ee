"""SMTP delivery against a real aiosmtpd server."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email import message_from_bytes, policy
from typing import cast

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


def smtp_ctx(make_ctx: MakeCtx, port: int, **extra: object) -> object:
    return make_ctx(
        email_provider="smtp",
        smtp=make_ctx()
        .get("settings")
        .channels.smtp.model_copy(update={"port": port, "timeout_seconds": 5.0}),
        **extra,
    )


async def test_email_reaches_the_server_with_headers_and_both_parts(
    make_ctx: MakeCtx, outbox: Outbox, smtp_sink: SmtpSink
) -> None:
    clock.freeze()
    message = await outbox.message()
    ctx = smtp_ctx(make_ctx, smtp_sink.port)

    report = await deliver(ctx, [message.id])  # type: ignore[arg-type]

    assert report.sent == 1
    [envelope] = smtp_sink.received
    mail = received_welcome_email(envelope, message)
    assert mail["Reply-To"] == "support@acme.example"
    unsubscribe = str(mail["List-Unsubscribe"])
    assert unsubscribe.startswith("<http")
    assert "/v1/unsubscribe/" in unsubscribe
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().strip() == "Hi Ana"
    html_body = html.get_content()
    assert "/v1/t/o/" in html_body  # the open pixel, before </body>
    assert html_body.index("/v1/t/o/") < html_body.index("</body>")

    stored = await outbox.get(message.id)
    assert stored.status == "sent"
    assert stored.provider == "smtp"
    assert stored.attempts == 1
    assert stored.sent_at == clock.now()
    assert stored.provider_message_id == f"<{message.id}@acme.example>"


async def test_a_4xx_reply_retries_later_and_a_5xx_fails(
    make_ctx: MakeCtx, outbox: Outbox, smtp_sink: SmtpSink
) -> None:
    now = clock.freeze()
    ctx = smtp_ctx(make_ctx, smtp_sink.port)
    smtp_sink.rcpt_reply = "450 4.2.1 Mailbox busy, try later"
    transient = await outbox.message()

    report = await deliver(ctx, [transient.id])  # type: ignore[arg-type]

    assert report.retried == 1
    stored = await outbox.get(transient.id)
    assert stored.status == "queued"
    assert stored.attempts == 1
    assert stored.error is not None
    assert "450" in stored.error
    assert stored.next_attempt_at is not None
    # 2^0 * 30 s with +-20% jitter
    assert now + timedelta(seconds=24) <= stored.next_attempt_at <= now + timedelta(seconds=36)
    # Not due yet: a second delivery leaves it alone.
    assert (await deliver(ctx, [transient.id])).sent == 0  # type: ignore[arg-type]

    smtp_sink.rcpt_reply = "550 5.1.1 No such user"
    permanent = await outbox.message()
    report = await deliver(ctx, [permanent.id])  # type: ignore[arg-type]
    assert report.failed == 1
    stored = await outbox.get(permanent.id)
    assert stored.status == "failed"
    assert stored.failed_at == now
    assert stored.error is not None
    assert "550" in stored.error
    assert smtp_sink.received == []

    # The retry, once due, goes through.
    smtp_sink.rcpt_reply = None
    clock.advance(timedelta(seconds=40))
    assert (await deliver(ctx, [transient.id])).sent == 1  # type: ignore[arg-type]
    assert (await outbox.get(transient.id)).attempts == 2


async def test_server_down_is_retryable(make_ctx: MakeCtx, outbox: Outbox) -> None:
    clock.freeze()
    ctx = smtp_ctx(make_ctx, free_port())  # nothing listens there
    message = await outbox.message()

    report = await deliver(ctx, [message.id])  # type: ignore[arg-type]

    assert report.retried == 1
    stored = await outbox.get(message.id)
    assert stored.status == "queued"
    assert stored.error is not None
    assert "connect" in stored.error


async def test_retries_end_in_failed_and_wake_the_enrollment_waiting_on_the_send(
    make_ctx: MakeCtx, outbox: Outbox
) -> None:
    """The settled message wakes its enrollment (set-wise, with the outcome); the engine's
    pass then applies `on_send_failure` (tests/sequences/engine/test_delivery_timing.py)."""
    clock.freeze()
    ctx = smtp_ctx(make_ctx, free_port(), max_attempts=2)
    message = await outbox.message(on_send_failure="fail")

    await deliver(ctx, [message.id])  # type: ignore[arg-type]
    clock.advance(timedelta(hours=2))
    report = await deliver(ctx, [message.id])  # type: ignore[arg-type]

    assert report.failed == 1
    stored = await outbox.get(message.id)
    assert (stored.status, stored.attempts) == ("failed", 2)
    enrollment = await outbox.enrollment(message.enrollment_id)
    assert enrollment.next_action_at == clock.now()
    typed = cast(WorkerContext, ctx)
    queued = await typed["redis"].queued_jobs(queue_name=typed["queue"].queue_name)
    assert any(
        job.function == "run_enrollments" and str(enrollment.id) in job.args[1] for job in queued
    )


async def test_a_permanent_failure_leaves_the_enrollment_running_by_default(
    make_ctx: MakeCtx, outbox: Outbox, smtp_sink: SmtpSink
) -> None:
    clock.freeze()
    smtp_sink.rcpt_reply = "550 5.1.1 No such user"
    message = await outbox.message()

    await deliver(smtp_ctx(make_ctx, smtp_sink.port), [message.id])  # type: ignore[arg-type]

    assert (await outbox.get(message.id)).status == "failed"
    assert (await outbox.enrollment(message.enrollment_id)).state == "active"


async def test_header_injection_is_a_permanent_failure(
    make_ctx: MakeCtx, outbox: Outbox, smtp_sink: SmtpSink
) -> None:
    clock.freeze()
    content = {"subject": "Hi\r\nBcc: victim@example.com", "text": "x"}
    message = await outbox.message(content=content)

    await deliver(smtp_ctx(make_ctx, smtp_sink.port), [message.id])  # type: ignore[arg-type]

    assert (await outbox.get(message.id)).status == "failed"
    assert smtp_sink.received == []


async def test_template_sender_fields_make_the_from_header(
    make_ctx: MakeCtx, outbox: Outbox, smtp_sink: SmtpSink
) -> None:
    clock.freeze()
    content = {
        "subject": "Hi",
        "text": "Hi",
        "from_email": "team@globex.example",
        "from_name": "Globex Team",
    }
    message = await outbox.message(content=content)

    await deliver(smtp_ctx(make_ctx, smtp_sink.port), [message.id])  # type: ignore[arg-type]

    [envelope] = smtp_sink.received
    assert envelope.mail_from == "team@globex.example"
    assert isinstance(envelope.content, bytes)
    mail = message_from_bytes(envelope.content, policy=policy.default)
    assert mail["From"] == "Globex Team <team@globex.example>"
    assert mail["Message-ID"] == f"<{message.id}@globex.example>"
    assert mail.get_content_type() == "text/plain"


async def test_connection_lost_after_data_is_unknown_and_never_resent(
    make_ctx: MakeCtx, outbox: Outbox
) -> None:
    """A server that takes the whole message and hangs up before answering: it may have
    accepted it, so the message ends `unknown` and is not retried."""
    payloads: list[bytes] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                payloads.append(await reader.readuntil(b"\r\n.\r\n"))
                break  # hang up without the final reply
            writer.write(b"221 bye\r\n" if verb == b"QUIT" else b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        clock.freeze()
        message = await outbox.message()
        ctx = smtp_ctx(make_ctx, port)
        report = await deliver(ctx, [message.id])  # type: ignore[arg-type]
        clock.advance(timedelta(hours=2))
        await deliver(ctx, [message.id])  # type: ignore[arg-type]
    finally:
        server.close()
        await server.wait_closed()

    assert report.unknown == 1
    assert len(payloads) == 1
    stored = await outbox.get(message.id)
    assert (stored.status, stored.next_attempt_at) == ("unknown", None)
