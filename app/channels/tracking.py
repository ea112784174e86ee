"""Signed links for one message: open pixel, click redirect, one-click unsubscribe.

A token is base64url(kind || message id || url? || tag), where tag is the first 16 bytes of
HMAC-SHA256(tracking_secret, kind || message id || url). The kind byte keeps an open token
from working as an unsubscribe token; the url is inside the signed part, so the click
redirect only ever goes where our own rendering pointed (no open redirect).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from app.config import Settings

TokenKind = Literal["open", "click", "unsubscribe"]
_KIND_BYTES: dict[TokenKind, bytes] = {"open": b"o", "click": b"c", "unsubscribe": b"u"}
_TAG_BYTES = 16
# Far above any real link, far below a path a proxy would refuse.
MAX_URL_BYTES = 4096


@dataclass(frozen=True)
class MessageLinks:
    unsubscribe_url: str
    open_pixel_url: str
    link: Callable[[Any], Any]  # the template's `link(url)`: a tracked URL


@dataclass(frozen=True)
class TokenData:
    kind: TokenKind
    message_id: uuid.UUID
    url: str | None


@functools.lru_cache(maxsize=4)
def _keyed(secret: str) -> hmac.HMAC:
    """The keyed HMAC state, computed once per secret (three tokens per message)."""
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def _tag(secret: str, payload: bytes) -> bytes:
    mac = _keyed(secret).copy()
    mac.update(payload)
    return mac.digest()[:_TAG_BYTES]


def _secret(settings: Settings) -> str:
    return settings.channels.tracking_secret.get_secret_value()


def make_token(
    settings: Settings, kind: TokenKind, message_id: uuid.UUID, url: str | None = None
) -> str:
    payload = _KIND_BYTES[kind] + message_id.bytes + (url or "").encode()
    raw = payload + _tag(_secret(settings), payload)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def read_token(settings: Settings, token: str, kind: TokenKind) -> TokenData | None:
    """The token's content if we signed it for this kind; None when tampered or foreign."""
    if len(token) > (MAX_URL_BYTES + 64) * 4 // 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 1 + 16 + _TAG_BYTES:
        return None
    payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(_secret(settings), payload)):
        return None
    if payload[:1] != _KIND_BYTES[kind]:
        return None
    try:
        url = payload[17:].decode() or None
    except UnicodeDecodeError:
        return None
    return TokenData(kind, uuid.UUID(bytes=payload[1:17]), url)


def public_base(settings: Settings) -> str:
    return (settings.http.public_url or f"http://127.0.0.1:{settings.port}").rstrip("/")


def message_links(settings: Settings, message_id: uuid.UUID) -> MessageLinks:
    base = public_base(settings)

    def link(url: Any) -> Any:
        # Only absolute web links are tracked; anything else (mailto:, anchors, undefined)
        # is left as the template wrote it.
        text = str(url)
        if not text.lower().startswith(("http://", "https://")):
            return url
        if len(text.encode()) > MAX_URL_BYTES:
            return url
        return f"{base}/v1/t/c/{make_token(settings, 'click', message_id, text)}"

    return MessageLinks(
        unsubscribe_url=f"{base}/v1/unsubscribe/{make_token(settings, 'unsubscribe', message_id)}",
        open_pixel_url=f"{base}/v1/t/o/{make_token(settings, 'open', message_id)}",
        link=link,
    )
