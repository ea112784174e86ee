"""HTTP provider and webhook steps against a real local HTTP receiver."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.channels.delivery import deliver
from app.config import HttpProviderSettings
from app.core.clock import clock
from app.core.db import transaction
from app.sequences.service import rotate_signing_secret
from tests.fixtures.channels import HttpReceiver, MakeCtx, Outbox, free_port


async def test_http_provider_posts_with_the_message_id_as_idempotency_key(
    make_ctx: MakeCtx, outbox: Outbox, receiver: HttpReceiver
) -> None:
    clock.freeze()
    ctx = make_ctx(
        sms_provider="http",
        http=HttpProviderSettings(url=receiver.url, token=SecretStr("s3cret")),
    )
    message = await outbox.message(
        channel="sms", recipient="+4915112345678", content={"text": "Hi"}
    )

    report = await deliver(ctx, [message.id])

    assert report.sent == 1
    [call] = receiver.requests
    assert call.method == "POST"
    assert call.headers["idempotency-key"] == str(message.id)
    assert call.headers["authorization"] == "Bearer s3cret"
    assert call.json() == {
        "id": str(message.id),
        "channel": "sms",
        "to": "+4915112345678",
        "content": {"text": "Hi"},
    }
    stored = await outbox.get(message.id)
    assert (stored.status, stored.provider, stored.provider_message_id) == (
        "sent",
        "http",
        "prov-1",
    )
    assert stored.response is not None
    assert stored.response["status_code"] == 200


async def test_webhook_step_is_signed_standard_webhooks_style(
    make_ctx: MakeCtx, outbox: Outbox, receiver: HttpReceiver
) -> None:
    # The receiver's library checks the timestamp against real time: keep the clock real.
    receiver.body = b"ok" * 1000
    payload = {"event": "step.reached", "contact": {"email": "ana@acme.example"}}
    message = await outbox.message(
        channel="webhook", recipient=receiver.url, content={"payload": payload}
    )

    report = await deliver(make_ctx(), [message.id])

    assert report.sent == 1
    [call] = receiver.requests
    assert call.headers["webhook-id"] == str(message.id)
    verified = Webhook(outbox.secret).verify(call.body, call.headers)
    assert verified == payload
    stored = await outbox.get(message.id)
    assert stored.status == "sent"
    assert stored.response is not None
    assert stored.response["status_code"] == 200
    assert len(stored.response["excerpt"]) == 1024  # first KiB only
    assert stored.response["latency_ms"] >= 0


async def test_a_rotation_signs_messages_already_queued_with_the_new_secret(
    make_ctx: MakeCtx, outbox: Outbox, receiver: HttpReceiver
) -> None:
    """The secret is read when the message is handed over, not when it was queued: after a
    rotation the old secret signs nothing (docs/sequences.md, "Signing secret")."""
    message = await outbox.message(
        channel="webhook", recipient=receiver.url, content={"payload": {"n": 1}}
    )
    assert outbox.sequence_id is not None
    async with transaction(outbox.factory) as session:
        rotated = await rotate_signing_secret(
            session, outbox.tenant.workspace_id, outbox.sequence_id
        )
        new_secret = rotated.signing_secret

    assert (await deliver(make_ctx(), [message.id])).sent == 1

    [call] = receiver.requests
    assert Webhook(new_secret).verify(call.body, call.headers) == {"n": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(outbox.secret).verify(call.body, call.headers)


async def test_webhook_id_is_stable_across_retries(
    make_ctx: MakeCtx, outbox: Outbox, receiver: HttpReceiver
) -> None:
    receiver.status = 503
    message = await outbox.message(
        channel="webhook", recipient=receiver.url, content={"payload": {"n": 1}}
    )
    await deliver(make_ctx(), [message.id])
    receiver.status = 200
    clock.freeze()
    clock.advance(timedelta(minutes=2))

    await deliver(make_ctx(), [message.id])

    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(message.id)
    assert (await outbox.get(message.id)).status == "sent"


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (301, {"Location": "http://127.0.0.1:1/elsewhere"}, "failed"),
        (400, {}, "failed"),
        (410, {}, "failed"),
        (500, {}, "queued"),
        (503, {}, "queued"),
        (429, {"Retry-After": "7200"}, "queued"),
    ],
)
async def test_http_answers_are_classified(
    make_ctx: MakeCtx,
    outbox: Outbox,
    receiver: HttpReceiver,
    status: int,
    headers: dict[str, str],
    expected: str,
) -> None:
    now = clock.freeze()
    receiver.status, receiver.headers = status, headers
    message = await outbox.message(
        channel="webhook", recipient=receiver.url, content={"payload": {"n": 1}}
    )

    await deliver(make_ctx(), [message.id])

    stored = await outbox.get(message.id)
    assert stored.status == expected
    assert len(receiver.requests) == 1  # redirects are not followed
    assert stored.response is not None
    assert stored.response["status_code"] == status
    if status == 429:
        # Retry-After (2 h) beats the 30 s backoff.
        assert stored.next_attempt_at == now + timedelta(hours=2)


async def test_a_refused_connection_is_retryable(make_ctx: MakeCtx, outbox: Outbox) -> None:
    clock.freeze()
    url = f"http://127.0.0.1:{free_port()}/hook"
    message = await outbox.message(channel="webhook", recipient=url, content={"payload": {}})

    await deliver(make_ctx(), [message.id])

    stored = await outbox.get(message.id)
    assert stored.status == "queued"
    assert stored.error is not None
    assert "connection error" in stored.error


async def test_a_non_http_url_fails_without_a_call(make_ctx: MakeCtx, outbox: Outbox) -> None:
    clock.freeze()
    message = await outbox.message(
        channel="webhook", recipient="file:///etc/passwd", content={"payload": {}}
    )

    await deliver(make_ctx(), [message.id])

    assert (await outbox.get(message.id)).status == "failed"
