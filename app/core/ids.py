"""Identifiers. UUIDv7 is time-ordered, so ids double as stable pagination keys.

`new_ids` makes many at once (events ingest 1,000 per request); `sql_uuid7` is the same id
made inside PostgreSQL for INSERT ... SELECT.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ColumnElement, DateTime, Uuid, cast, extract, func, literal

_RAND_B = (1 << 62) - 1
_VARIANT = 1 << 63
_state = {"ms": 0, "seq": 0}


def new_ids(count: int) -> list[uuid.UUID]:
    """`count` UUIDv7 ids, ordered within the call and after earlier calls of this process
    (a 12-bit sequence in `rand_a`); about 10x cheaper than building them one by one."""
    ms = max(time.time_ns() // 1_000_000, _state["ms"])
    seq = _state["seq"] + 1 if ms == _state["ms"] else 0
    if seq + count > 0x1000:
        ms, seq = ms + 1, 0
    _state["ms"], _state["seq"] = ms, seq + count - 1
    head = (ms << 80) | (0x7 << 76)
    random_bits = os.urandom(8 * count)
    return [
        uuid.UUID(
            int=head
            | ((seq + i) << 64)
            | (int.from_bytes(random_bits[8 * i : 8 * i + 8]) & _RAND_B)
            | _VARIANT
        )
        for i in range(count)
    ]


def new_id() -> uuid.UUID:
    return new_ids(1)[0]


def sql_uuid7(now: datetime) -> ColumnElement[uuid.UUID]:
    """A UUIDv7 made in SQL for set-wise inserts: the clock's milliseconds, then random bits,
    so rows inserted by INSERT ... SELECT stay time-ordered like `new_id`."""
    millis = cast(
        func.floor(extract("epoch", literal(now, DateTime(timezone=True))) * 1000), BigInteger
    )
    stamped = func.overlay(
        func.uuid_send(func.gen_random_uuid()), func.substr(func.int8send(millis), 3), 1, 6
    )
    # gen_random_uuid() is version 4 (0100); setting bits 52 and 53 makes it 7 (0111).
    return cast(func.encode(func.set_bit(func.set_bit(stamped, 52, 1), 53, 1), "hex"), Uuid)
