"""Webhook steps: POST the step's JSON payload to its URL, signed Standard-Webhooks style
with the sequence's secret. `webhook-id` is the message id (stable across retries)."""

from __future__ import annotations

import binascii
import json
from urllib.parse import urlsplit

import httpx

from app.channels.providers.base import OutboundMessage, PermanentError, Provider, SendResult
from app.channels.providers.http import now_epoch, post_classified
from app.channels.signing import signed_headers

WEBHOOK_TIMEOUT_SECONDS = 15.0


def check_destination(url: str) -> None:
    """SSRF hook: the outbound webhooks work will refuse private, loopback and link-local
    destinations here (unless allowed by configuration). For now: http(s) URLs only."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise PermanentError(f"not an http(s) URL: {url[:200]}")


class WebhookProvider(Provider):
    name = "webhook"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(self, message: OutboundMessage) -> SendResult:
        if not message.recipient:
            raise PermanentError("the webhook step has no URL")
        if not message.signing_secret:
            raise PermanentError("the sequence has no signing secret")
        check_destination(message.recipient)
        body = json.dumps(
            message.content.get("payload"), ensure_ascii=False, separators=(",", ":")
        ).encode()
        try:
            headers = signed_headers([message.signing_secret], str(message.id), now_epoch(), body)
        except (binascii.Error, ValueError) as error:
            raise PermanentError("the sequence's signing secret is not valid base64") from error
        result = await post_classified(
            self.client, message.recipient, body, headers, WEBHOOK_TIMEOUT_SECONDS
        )
        return SendResult(str(message.id), result.response)
