"""Recording audit events: called by every domain in the same transaction as the change it
describes, so a rolled-back change leaves no audit row and a committed one always has one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.audit.repository import AuditEventRepository
from app.audit.schemas import AuditFilters
from app.core.auth import Principal
from app.core.clock import utcnow
from app.core.ids import new_id
from app.core.pagination import PageParams, PageResult
from app.core.request_context import current_request_id


@dataclass(frozen=True)
class Actor:
    """Who did it: a member (through a key bound to them), a key, or the system (jobs)."""

    type: str  # member, key, system
    member_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        if principal.member_id is not None:
            return cls("member", principal.member_id, principal.api_key_id)
        return cls("key", None, principal.api_key_id)

    @classmethod
    def system(cls) -> Actor:
        return cls("system")


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """`{field: {"before": b, "after": a}}` for the fields whose JSON value changed."""
    return {
        key: {"before": before.get(key), "after": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


async def record(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    actor: Actor,
    action: str,
    *,
    entity_type: str,
    entity_id: uuid.UUID | None,
    changes: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event (values must be JSON-compatible: use `mode="json"` dumps)."""
    event = AuditEvent(
        id=new_id(),
        workspace_id=workspace_id,
        occurred_at=utcnow(),
        actor_type=actor.type,
        member_id=actor.member_id,
        api_key_id=actor.api_key_id,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        changes=changes or None,
        data=data or None,
        request_id=current_request_id(),
    )
    session.add(event)
    return event


async def list_events(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams, filters: AuditFilters
) -> PageResult[AuditEvent]:
    """The workspace's audit events, newest first."""
    return await AuditEventRepository(session, workspace_id).list_events(params, filters)


async def get_event(
    session: AsyncSession, workspace_id: uuid.UUID, event_id: uuid.UUID
) -> AuditEvent:
    return await AuditEventRepository(session, workspace_id).get_or_404(event_id)
