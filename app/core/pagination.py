"""Cursor pagination over time-ordered UUIDv7 ids (newest first).

A cursor is opaque and URL-safe: base64url of a version byte, the 16-byte position (the last
id seen, or what a list orders by encoded as 16 bytes) and a 128-bit HMAC-SHA256 tag. The tag
covers the list it was issued for (the request path, so its path ids too) and that list's
filter values (every query parameter but `cursor` and `limit`), keyed by a server secret
derived from `HERALD_CHANNELS__TRACKING_SECRET` (required in production). A cursor that was
altered, issued by another list, or replayed with other filters is a 400 `invalid-cursor`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Request
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from app.core.errors import BadRequest
from app.core.state import app_state

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
CURSOR_VERSION = 1
TAG_BYTES = 16
# Query parameters that may change between pages without invalidating the cursor.
UNBOUND_PARAMETERS = frozenset({"cursor", "limit"})


class InvalidCursor(BadRequest):
    slug = "invalid-cursor"
    title = "Invalid cursor"

    def __init__(self) -> None:
        super().__init__(
            "The `cursor` is not one this API issued for this list and these filters; "
            "start again without `cursor` (keep the filters unchanged between pages)."
        )


@lru_cache(maxsize=4)
def cursor_key(server_secret: str) -> bytes:
    """The cursor signing key, derived from a server secret (its own label, so a cursor tag
    can never be replayed as a tracking token or the other way round)."""
    return hmac.new(server_secret.encode(), b"herald/cursor/v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class CursorScope:
    """One list as a cursor sees it: the signing key and the list's canonical binding."""

    key: bytes
    binding: bytes = b""

    def _tag(self, position: bytes) -> bytes:
        message = self.binding + b"\x00" + position
        return hmac.new(self.key, message, hashlib.sha256).digest()[:TAG_BYTES]

    def seal(self, position: uuid.UUID) -> str:
        raw = bytes([CURSOR_VERSION]) + position.bytes + self._tag(position.bytes)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def open(self, cursor: str) -> uuid.UUID:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError) as exc:
            raise InvalidCursor from exc
        if len(raw) != 1 + 16 + TAG_BYTES or raw[0] != CURSOR_VERSION:
            raise InvalidCursor
        position, tag = raw[1:17], raw[17:]
        if not hmac.compare_digest(tag, self._tag(position)):
            raise InvalidCursor
        return uuid.UUID(bytes=position)


# For in-process callers (the CLI) whose cursors never leave the process.
INTERNAL_SCOPE = CursorScope(key=b"herald/internal-cursor")


@dataclass(frozen=True)
class PageParams:
    limit: int
    after_id: uuid.UUID | None
    scope: CursorScope = field(default=INTERNAL_SCOPE, repr=False)

    def cursor_for(self, position: uuid.UUID) -> str:
        """The `next_cursor` continuing after `position` in this same list."""
        return self.scope.seal(position)


@dataclass(frozen=True)
class PageResult(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


def list_binding(request: Request) -> bytes:
    """The list a request reads: its path (with path ids) and filter values, canonical (query
    parameters sorted, repeated ones kept in order)."""
    filters = sorted(
        (name, value)
        for name, value in request.query_params.multi_items()
        if name not in UNBOUND_PARAMETERS
    )
    return json.dumps([request.url.path, filters], separators=(",", ":")).encode()


def page_params(
    request: Request,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1-200).")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            max_length=64,
            description="`next_cursor` from the previous page of this list, with the same "
            "filters (`limit` may change). Opaque and signed: an altered or foreign cursor is "
            "a 400 `invalid-cursor`.",
        ),
    ] = None,
) -> PageParams:
    secret = app_state(request).settings.channels.tracking_secret.get_secret_value()
    scope = CursorScope(key=cursor_key(secret), binding=list_binding(request))
    return PageParams(limit=limit, after_id=scope.open(cursor) if cursor else None, scope=scope)


def apply_page(
    statement: Select[Any], id_column: InstrumentedAttribute[uuid.UUID], params: PageParams
) -> Select[Any]:
    if params.after_id is not None:
        statement = statement.where(id_column < params.after_id)
    return statement.order_by(id_column.desc()).limit(params.limit + 1)


def to_page(rows: Sequence[T], params: PageParams, id_of: Any) -> PageResult[T]:
    """Trim the probe row fetched by `apply_page` and derive the next cursor."""
    if len(rows) > params.limit:
        kept = rows[: params.limit]
        return PageResult(kept, params.cursor_for(id_of(kept[-1])))
    return PageResult(rows, None)
