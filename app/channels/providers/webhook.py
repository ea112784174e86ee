"""Webhook steps: POST the step's JSON payload to its URL, signed Standard-Webhooks style
with the sequence's secret. `webhook-id` is the message id (stable across retries)."""

from __future__ import annotations

import binascii
import json

import httpx

from app.channels.providers.base import OutboundMessage, PermanentError, Provider, SendResult
from app.channels.providers.http import now_epoch, post_classified
from app.core.egress import GuardPolicy
from app.core.signing import signed_headers

WEBHOOK_TIMEOUT_SECONDS = 15.0


class WebhookProvider(Provider):
    """Webhook step URLs are chosen by tenants: every call goes through the SSRF guard
    (app/core/egress.py, docs/ssrf.md). Without a policy the strictest one applies (no
    private, loopback or link-local destination at all)."""

    name = "webhook"

    def __init__(self, client: httpx.AsyncClient, policy: GuardPolicy | None = None) -> None:
        self.client = client
        self.policy = policy if policy is not None else GuardPolicy()

    async def send(self, message: OutboundMessage) -> SendResult:
        if not message.recipient:
            raise PermanentError("the webhook step has no URL")
        if not message.signing_secret:
            raise PermanentError("the sequence has no signing secret")
        body = json.dumps(
            message.content.get("payload"), ensure_ascii=False, separators=(",", ":")
        ).encode()
        try:
            headers = signed_headers([message.signing_secret], str(message.id), now_epoch(), body)
        except (binascii.Error, ValueError) as error:
            raise PermanentError("the sequence's signing secret is not valid base64") from error
        result = await post_classified(
            self.client,
            message.recipient,
            body,
            headers,
            WEBHOOK_TIMEOUT_SECONDS,
            guard=self.policy,
        )
        return SendResult(str(message.id), result.response)
