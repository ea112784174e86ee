"""Entries for triggered campaigns: who entered a segment, or did an event matching rule
property filters, within a time window. Each query answers (contact_id, entered_at = the
latest entry in the window) per contact and is composed by the trigger sweep, never
executed here."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.models import Event
from app.segments.compiler import property_condition
from app.segments.models import SegmentMembershipChange
from app.segments.rules.nodes import PropertyFilter


class EntryQueries:
    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    def segment_entries(
        self, segment_id: uuid.UUID, after: datetime, until: datetime, before: datetime | None
    ) -> Select[Any]:
        """`entered` journal rows of the segment in (after, until] (and < before)."""
        at = SegmentMembershipChange.occurred_at
        return self._latest_per_contact(
            SegmentMembershipChange.contact_id,
            at,
            [
                SegmentMembershipChange.workspace_id == self.workspace_id,
                SegmentMembershipChange.segment_id == segment_id,
                SegmentMembershipChange.change == "entered",
            ],
            after,
            until,
            before,
        )

    def event_entries(
        self,
        event_type: str,
        filters: list[PropertyFilter],
        after: datetime,
        until: datetime,
        before: datetime | None,
    ) -> Select[Any]:
        """Events of the type matching every property filter, occurred in (after, until]."""
        return self._latest_per_contact(
            Event.contact_id,
            Event.occurred_at,
            [
                Event.workspace_id == self.workspace_id,
                Event.type == event_type,
                *(property_condition(item) for item in filters),
            ],
            after,
            until,
            before,
        )

    @staticmethod
    def _latest_per_contact(
        contact_id: Any,
        at: Any,
        conditions: list[ColumnElement[bool]],
        *window: datetime | None,
    ) -> Select[Any]:
        after, until, before = window
        bounds = [at > after, at <= until, *([at < before] if before is not None else [])]
        return (
            select(contact_id.label("contact_id"), func.max(at).label("entered_at"))
            .where(*conditions, *bounds)
            .group_by(contact_id)
        )
