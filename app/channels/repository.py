"""Message reads for the API (workspace-scoped) and for the token endpoints (by id: the
signed token is the authority, there is no caller workspace)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.models import Message
from app.channels.schemas import MessageFilters
from app.core.pagination import PageParams, PageResult
from app.core.repository import WorkspaceRepository


class MessageRepository(WorkspaceRepository[Message]):
    model = Message
    noun = "message"

    async def list_messages(
        self, params: PageParams, filters: MessageFilters
    ) -> PageResult[Message]:
        conditions = []
        if filters.enrollment_id is not None:
            conditions.append(Message.enrollment_id == filters.enrollment_id)
        if filters.contact_id is not None:
            conditions.append(Message.contact_id == filters.contact_id)
        if filters.status is not None:
            conditions.append(Message.status == filters.status)
        if filters.channel is not None:
            conditions.append(Message.channel == filters.channel)
        return await self.page(params, *conditions)


async def message_by_token_id(session: AsyncSession, message_id: uuid.UUID) -> Message | None:
    result = await session.execute(select(Message).where(Message.id == message_id))
    return result.scalar_one_or_none()


async def mark_first(
    session: AsyncSession, message_id: uuid.UUID, column: str, now: datetime
) -> None:
    """Set `first_opened_at` / `first_clicked_at` once (later opens leave it alone)."""
    target = getattr(Message, column)
    await session.execute(
        update(Message)
        .where(Message.id == message_id, target.is_(None))
        .values({column: now, "updated_at": now})
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True, slots=True)
class MessageRef:
    id: uuid.UUID
    workspace_id: uuid.UUID
    contact_id: uuid.UUID
    enrollment_id: uuid.UUID
    sequence_id: uuid.UUID
    campaign_id: uuid.UUID | None
    step_key: str
    channel: str
    variant: str | None
    recipient: str | None
    provider_message_id: str | None


# --- provider outcomes (app/channels/outcomes.py) ------------------------------------------

_FIND = text(
    """
    SELECT id, workspace_id, contact_id, enrollment_id, sequence_id, campaign_id, step_key,
           channel, variant, recipient, provider_message_id
    FROM messages
    WHERE id = ANY(CAST(:ids AS uuid[]))
       OR (provider_message_id = ANY(CAST(:provider_ids AS text[]))
           AND provider_message_id IS NOT NULL)
    """
)

# Per outcome: the first-time column (earliest report wins) and the status it may move to.
# Status only moves forward: sent / unknown -> delivered -> bounced (a bounce may follow an
# accepted delivery; a delivery report never undoes a bounce). `unknown` moves because the
# report proves the provider had the message.
OUTCOME_COLUMNS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "delivered": ("delivered_at", "delivered", ("sent", "unknown")),
    "bounced": ("bounced_at", "bounced", ("sent", "unknown", "delivered")),
    "opened": ("first_opened_at", None, ()),
    "clicked": ("first_clicked_at", None, ()),
    "replied": ("replied_at", None, ()),
}


def _update_statement(kind: str) -> Any:
    column, status, moves_from = OUTCOME_COLUMNS[kind]
    status_sql = ""
    if status is not None:
        allowed = ", ".join(f"'{value}'" for value in moves_from)
        status_sql = (
            f", status = CASE WHEN m.status IN ({allowed}) THEN '{status}' ELSE m.status END"
        )
    return text(
        f"""
        UPDATE messages AS m
        SET {column} = LEAST(COALESCE(m.{column}, v.at), v.at){status_sql}, updated_at = :now
        FROM unnest(CAST(:ids AS uuid[]), CAST(:ats AS timestamptz[])) AS v(id, at)
        WHERE m.workspace_id = :workspace_id AND m.id = v.id
        """
    )


_UPDATES = {kind: _update_statement(kind) for kind in OUTCOME_COLUMNS}


async def find_messages_for_outcomes(
    session: AsyncSession, ids: Sequence[uuid.UUID], provider_ids: Sequence[str]
) -> list[MessageRef]:
    """Across workspaces on purpose: the caller is the deployment's provider, and each
    message found carries its own workspace, which every later statement is scoped by."""
    result = await session.execute(_FIND, {"ids": list(ids), "provider_ids": list(provider_ids)})
    return [MessageRef(*row) for row in result.all()]


async def mark_outcomes(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    kind: str,
    first: dict[uuid.UUID, datetime],
    now: datetime,
) -> None:
    await session.execute(
        _UPDATES[kind],
        {
            "workspace_id": workspace_id,
            "ids": list(first),
            "ats": list(first.values()),
            "now": now,
        },
    )
