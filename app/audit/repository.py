"""Every query of the audit log, scoped by workspace. Reads only: rows are appended by
`app.audit.service.record` and never updated or deleted."""

from __future__ import annotations

from sqlalchemy import ColumnElement

from app.audit.models import AuditEvent
from app.audit.schemas import AuditFilters
from app.core.pagination import PageParams, PageResult
from app.core.repository import WorkspaceRepository, window_clauses


def _action_condition(action: str) -> ColumnElement[bool]:
    if action.endswith(".*"):
        # The filter pattern admits only [a-z0-9_.], so `_` is the one LIKE metacharacter to
        # escape; startswith(autoescape=True) does exactly that.
        return AuditEvent.action.startswith(action[:-1], autoescape=True)
    return AuditEvent.action == action


class AuditEventRepository(WorkspaceRepository[AuditEvent]):
    model = AuditEvent
    noun = "audit event"

    async def list_events(
        self, params: PageParams, filters: AuditFilters
    ) -> PageResult[AuditEvent]:
        conditions: list[ColumnElement[bool]] = []
        if filters.action is not None:
            conditions.append(_action_condition(filters.action))
        if filters.entity_type is not None:
            conditions.append(AuditEvent.entity_type == filters.entity_type)
        if filters.entity_id is not None:
            conditions.append(AuditEvent.entity_id == filters.entity_id)
        if filters.member_id is not None:
            conditions.append(AuditEvent.member_id == filters.member_id)
        if filters.api_key_id is not None:
            conditions.append(AuditEvent.api_key_id == filters.api_key_id)
        conditions += window_clauses(
            AuditEvent.occurred_at, (filters.occurred_after, filters.occurred_before)
        )
        if filters.request_id is not None:
            conditions.append(AuditEvent.request_id == filters.request_id)
        return await self.page(params, *conditions)
