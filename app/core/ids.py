"""Identifiers. UUIDv7 is time-ordered, so ids double as stable pagination keys."""

from __future__ import annotations

import uuid

import uuid6


def new_id() -> uuid.UUID:
    return uuid.UUID(int=uuid6.uuid7().int)
