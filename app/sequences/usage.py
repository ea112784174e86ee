"""Sequences report the templates and segments their definitions name (draft or any published
version) to the owners' delete checks and `GET .../usage`, via app/core/usage.py."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.usage import UsageRef, register_usage_finder
from app.sequences.repository import SequenceRepository


async def _sequence_users(
    session: AsyncSession, workspace_id: uuid.UUID, resource_id: uuid.UUID
) -> list[UsageRef]:
    sequences = await SequenceRepository(session, workspace_id).mentioning(resource_id)
    return [
        UsageRef(kind="sequence", id=sequence.id, name=sequence.name, via="definition")
        for sequence in sequences
    ]


def register() -> None:
    """Called once per process by app/wiring.py."""
    register_usage_finder("template", "sequences", _sequence_users)
    register_usage_finder("segment", "sequences", _sequence_users)
