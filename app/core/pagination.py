"""Cursor pagination over time-ordered UUIDv7 ids (newest first).

The cursor is opaque to clients: base64url of the last id seen. A tampered cursor is a 400.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from app.core.errors import BadRequest

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class PageParams:
    limit: int
    after_id: uuid.UUID | None


@dataclass(frozen=True)
class PageResult(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("The `cursor` is not one this API returned.") from exc


def page_params(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1-200).")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=64, description="`next_cursor` from the previous page."),
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, after_id=decode_cursor(cursor) if cursor else None)


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
        return PageResult(kept, encode_cursor(id_of(kept[-1])))
    return PageResult(rows, None)
