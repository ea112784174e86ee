"""What uses a resource: answered by the domains above it, asked by the domain that owns it.

A template is sent by sequence versions, a segment is the audience of campaigns, a sequence
is run by campaigns: the owning domain sits lower in the domain graph than its users, so it
cannot query them. Each using domain registers a finder for the kinds it points at
(`app/wiring.py`); the owner asks `users_of(kind, ...)` before a deletion (409 naming them)
and to answer "what uses this".
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class User:
    """One thing that uses the resource: its kind ("campaign", "sequence_version", ...),
    id, a name for people, and its state when that decides whether it still counts."""

    kind: str
    id: uuid.UUID
    name: str
    state: str | None = None


UsageFinder = Callable[[AsyncSession, uuid.UUID, uuid.UUID], Awaitable[list[User]]]
_finders: dict[str, list[UsageFinder]] = {}


def register_usage_finder(kind: str, finder: UsageFinder) -> None:
    """`finder(session, workspace_id, resource_id)` lists the users of one `kind` resource."""
    finders = _finders.setdefault(kind, [])
    if finder not in finders:
        finders.append(finder)


async def users_of(
    kind: str, session: AsyncSession, workspace_id: uuid.UUID, resource_id: uuid.UUID
) -> list[User]:
    found: list[User] = []
    for finder in _finders.get(kind, []):
        found += await finder(session, workspace_id, resource_id)
    return found
