"""Signature checks for inbound provider posts, over the raw body (docs/inbound.md).

- `standard_webhooks`: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
  HMAC-SHA256(secret bytes, "{id}.{timestamp}.{body}")>` (space-separated list: any may
  match), secret `whsec_<base64>`; as the reference `standardwebhooks` library verifies it.
- `hmac_sha256`: `X-Herald-Timestamp: <unix seconds>` and `X-Herald-Signature:
  sha256=<hex HMAC-SHA256(secret UTF-8, "{timestamp}.{body}")>` (space-separated list).

Both compare in constant time and refuse a timestamp further than `tolerance_seconds` from
the one clock, either way. Failures say which check failed, never what was expected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from app.config import InboundProviderSettings
from app.core.errors import AppError
from app.core.signing import SECRET_PREFIX

# Past any real header; keeps a hostile header from costing more than it should.
MAX_SIGNATURE_HEADER = 4096
MAX_ID_HEADER = 255


class SignatureRejected(AppError):
    """401 problem for an unsigned, mis-signed or stale provider post (no Bearer challenge:
    the signature is the credential here)."""

    status, slug, title = 401, "unauthorized", "Unauthorized"


def verify(
    config: InboundProviderSettings, headers: Mapping[str, str], body: bytes, now: datetime
) -> str | None:
    """Raise `SignatureRejected` unless the post is authentic and fresh. Returns the
    Standard Webhooks `webhook-id` (the default dedup key), None for `hmac_sha256`."""
    secret = config.secret.get_secret_value()
    if config.scheme == "standard_webhooks":
        message_id = _header(headers, "webhook-id")
        if len(message_id) > MAX_ID_HEADER:
            raise SignatureRejected("The `webhook-id` header is too long.")
        timestamp = _timestamp(headers, "webhook-timestamp", now, config.tolerance_seconds)
        signed = f"{message_id}.{timestamp}.".encode() + body
        expected = base64.b64encode(hmac.new(_whsec(secret), signed, hashlib.sha256).digest())
        offered = _signatures(headers, "webhook-signature", "v1,")
        _match(expected, offered, "webhook-signature")
        return message_id
    timestamp = _timestamp(headers, "x-herald-timestamp", now, config.tolerance_seconds)
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
    offered = [value.lower() for value in _signatures(headers, "x-herald-signature", "sha256=")]
    _match(expected, offered, "X-Herald-Signature")
    return None


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise SignatureRejected(f"The `{name}` header is missing.")
    return value


def _timestamp(headers: Mapping[str, str], name: str, now: datetime, tolerance: int) -> int:
    raw = _header(headers, name)
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise SignatureRejected(f"The `{name}` header is not a Unix time in seconds.")
    timestamp = int(raw)
    if abs(now.timestamp() - timestamp) > tolerance:
        raise SignatureRejected(
            f"The `{name}` header is more than {tolerance} seconds away from the server's "
            "clock (a stale or replayed request?)."
        )
    return timestamp


def _signatures(headers: Mapping[str, str], name: str, prefix: str) -> list[bytes]:
    raw = _header(headers, name)
    if len(raw) > MAX_SIGNATURE_HEADER:
        raise SignatureRejected(f"The `{name}` header is too long.")
    offered = [part[len(prefix) :] for part in raw.split() if part.startswith(prefix)]
    if not offered:
        raise SignatureRejected(f"The `{name}` header has no `{prefix}` signature.")
    return [value.encode() if value.isascii() else b"" for value in offered]


def _match(expected: bytes, offered: list[bytes], name: str) -> None:
    # Every candidate is compared (no early exit), each in constant time.
    matched = False
    for candidate in offered:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureRejected(f"No signature in `{name}` matches the body.")


def _whsec(secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret, decoded as the reference library does
    (padding optional). One that is not base64 at all is used as its UTF-8 bytes, so a
    misconfiguration fails signatures instead of every request."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "==")
    except (binascii.Error, ValueError):
        return secret.encode()
