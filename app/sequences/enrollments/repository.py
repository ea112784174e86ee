"""Enrollment queries for the API and for launches (every one scoped to a workspace)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app.core.ids import ordered_uuid7
from app.core.pagination import PageParams, PageResult
from app.core.repository import WorkspaceRepository
from app.sequences.models import (
    UNFINISHED,
    UNFINISHED_STATES,
    Enrollment,
    EnrollmentStep,
    Sequence,
    SequenceVersion,
)

BULK_WORK_MEM = "64MB"
_LIVE_KEY = ["sequence_id", "contact_id", "campaign_id"]


class EnrollmentRepository(WorkspaceRepository[Enrollment]):
    model = Enrollment
    noun = "enrollment"

    async def campaign_has_unfinished(self, campaign_id: uuid.UUID) -> bool:
        statement = select(
            exists().where(
                Enrollment.workspace_id == self.workspace_id,
                Enrollment.campaign_id == campaign_id,
                Enrollment.state.in_(UNFINISHED_STATES),
            )
        )
        return bool((await self.session.execute(statement)).scalar())

    def unserved_entries(
        self,
        campaign_id: uuid.UUID,
        entries: Select[Any],
        reentry: tuple[str, int | None],
        now: datetime,
    ) -> Select[Any]:
        """Contact ids of the campaign entries (a SELECT of contact_id, entered_at) that
        need a new enrollment under the re-entry policy: `once` -> the contact never had
        an enrollment in the campaign; otherwise none started at/after the entry and none
        unfinished (`once_per` N days: and none started within N days)."""
        entry = entries.subquery("entry")
        policy, days = reentry
        mine = and_(
            Enrollment.workspace_id == self.workspace_id,
            Enrollment.campaign_id == campaign_id,
            Enrollment.contact_id == entry.c.contact_id,
        )
        if policy == "once":
            served = exists().where(mine)
        else:
            recent: list[Any] = [
                Enrollment.started_at >= entry.c.entered_at,
                Enrollment.state.in_(UNFINISHED_STATES),
            ]
            if policy == "once_per" and days:
                recent.append(Enrollment.started_at > literal(now) - timedelta(days=days))
            served = exists().where(mine, or_(*recent))
        return select(entry.c.contact_id).where(~served)

    async def insert_one(self, values: dict[str, Any]) -> uuid.UUID | None:
        """The new enrollment's id, or None when the contact already has an unfinished one."""
        result = await self.session.execute(
            pg_insert(Enrollment)
            .values(workspace_id=self.workspace_id, **values)
            .on_conflict_do_nothing(index_elements=_LIVE_KEY, index_where=text(UNFINISHED))
            .returning(Enrollment.id)
        )
        return result.scalar_one_or_none()

    async def share_sequence(self, sequence_id: uuid.UUID) -> None:
        """KEY SHARE lock on the sequence row until commit. Enrollments reference their
        version (not the sequence) by foreign key, so this is what orders a bulk insert
        against `delete_sequence` (FOR UPDATE, then "no live enrollments?"): the delete
        waits, then sees the new enrollments and refuses, instead of cascading them away."""
        await self.session.execute(
            select(Sequence.id)
            .where(Sequence.workspace_id == self.workspace_id, Sequence.id == sequence_id)
            .with_for_update(key_share=True, read=True)
        )

    async def widen_work_mem(self) -> None:
        """`work_mem` for the rest of this transaction only (`set_config(..., true)`): a
        launch's audience joins and the sort into contact order then stay in memory instead
        of spilling to disk (measured: about a fifth of the launch's CPU at 200,000
        contacts; docs/benchmarks.md, Launch). A few such nodes per launch, launches rare."""
        await self.session.execute(select(func.set_config("work_mem", BULK_WORK_MEM, True)))

    async def insert_from(self, contacts: Select[Any], values: dict[str, Any]) -> list[uuid.UUID]:
        """INSERT ... SELECT one enrollment per contact id the query yields (launches);
        contacts with an unfinished enrollment keep it. Returns the new ids."""
        result = await self.session.execute(
            self._insert_from(contacts, values).returning(Enrollment.id)
        )
        return [row[0] for row in result]

    async def count_from(self, contacts: Select[Any], values: dict[str, Any]) -> int:
        """The same insert, answering only how many enrollments it made (a launch of a
        million contacts need not bring a million ids back)."""
        result = await self.session.execute(self._insert_from(contacts, values))
        return int(result.rowcount)  # type: ignore[attr-defined]

    def inserting(self, contacts: Select[Any], values: dict[str, Any]) -> Any:
        """The same insert as a CTE returning the new rows (`id`, `contact_id`,
        `sequence_id`, `campaign_id`, `started_at`), for a statement that emits webhook
        events from them (`app.outbox.emit.emit_from_query`)."""
        return (
            self._insert_from(contacts, values)
            .returning(
                Enrollment.id,
                Enrollment.contact_id,
                Enrollment.sequence_id,
                Enrollment.campaign_id,
                Enrollment.started_at,
            )
            .cte("inserted_enrollments")
        )

    def payload_rows(self, ids: list[uuid.UUID]) -> Any:
        """These enrollments' payload columns, as a subquery."""
        return (
            select(
                Enrollment.id,
                Enrollment.contact_id,
                Enrollment.sequence_id,
                Enrollment.campaign_id,
                Enrollment.started_at,
            )
            .where(Enrollment.workspace_id == self.workspace_id, Enrollment.id.in_(ids))
            .subquery("started")
        )

    def _insert_from(self, contacts: Select[Any], values: dict[str, Any]) -> Any:
        """Rows go in contact id order with ids ascending in that same order, so every
        index of `enrollments` is appended to rather than written at random places (the
        contact-keyed unique index and the id-keyed ones alike); docs/benchmarks.md, Launch."""
        columns = ["id", "workspace_id", "contact_id", *values]
        source = contacts.subquery()
        contact = source.c[0]
        position = func.row_number().over(order_by=contact) - 1
        selected = select(
            ordered_uuid7(values["started_at"], position),
            literal(self.workspace_id),
            contact,
            *(
                bindparam(f"v_{key}", value, type_=Enrollment.__table__.c[key].type)
                for key, value in values.items()
            ),
        ).order_by(contact)
        return (
            pg_insert(Enrollment)
            # Server defaults only: python-side ones are not evaluated inside a CTE (emission).
            .from_select(columns, selected, include_defaults=False)
            .on_conflict_do_nothing(index_elements=_LIVE_KEY, index_where=text(UNFINISHED))
        )

    async def unfinished(
        self, sequence_id: uuid.UUID, contact_id: uuid.UUID, campaign_id: uuid.UUID | None
    ) -> Enrollment | None:
        result = await self.session.execute(
            self.scoped().where(
                Enrollment.sequence_id == sequence_id,
                Enrollment.contact_id == contact_id,
                Enrollment.campaign_id.is_not_distinct_from(campaign_id),
                text(f"enrollments.{UNFINISHED}"),
            )
        )
        return result.scalar_one_or_none()

    async def page_for_sequence(
        self,
        sequence_id: uuid.UUID,
        params: PageParams,
        state: str | None,
        contact_id: uuid.UUID | None,
    ) -> PageResult[Enrollment]:
        conditions: list[Any] = [Enrollment.sequence_id == sequence_id]
        if state is not None:
            conditions.append(Enrollment.state == state)
        if contact_id is not None:
            conditions.append(Enrollment.contact_id == contact_id)
        return await self.page(params, *conditions)


class VersionLookup(WorkspaceRepository[SequenceVersion]):
    model = SequenceVersion
    noun = "sequence version"

    async def latest_or_number(
        self, sequence_id: uuid.UUID, number: int | None
    ) -> SequenceVersion | None:
        statement = self.scoped().where(SequenceVersion.sequence_id == sequence_id)
        if number is not None:
            statement = statement.where(SequenceVersion.number == number)
        result = await self.session.execute(
            statement.order_by(SequenceVersion.number.desc()).limit(1)
        )
        return result.scalar_one_or_none()

    async def numbers(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        if not ids:
            return {}
        result = await self.session.execute(
            select(SequenceVersion.id, SequenceVersion.number).where(
                SequenceVersion.workspace_id == self.workspace_id, SequenceVersion.id.in_(ids)
            )
        )
        return {row[0]: row[1] for row in result}


class TimelineRepository(WorkspaceRepository[EnrollmentStep]):
    model = EnrollmentStep
    noun = "timeline entry"

    async def page_for(
        self, enrollment_id: uuid.UUID, params: PageParams
    ) -> PageResult[EnrollmentStep]:
        return await self.page(params, EnrollmentStep.enrollment_id == enrollment_id)


def live_state_at(now: datetime) -> dict[str, Any]:
    """Columns of an enrollment that starts now (its first step due at once)."""
    return {
        "state": "active",
        "step_visit": 1,
        "step_entered_at": now,
        "next_action_at": now,
        "started_at": now,
        "updated_at": now,
    }


def started_rows(inserted: Any, version_number: int) -> Select[Any]:
    """`(data, occurred_at)` of `enrollment.started` for the rows of an INSERT ... RETURNING
    CTE (`id`, `contact_id`, `sequence_id`, `campaign_id`, `started_at`)."""
    data = func.jsonb_build_object(
        "enrollment_id",
        inserted.c.id,
        "contact_id",
        inserted.c.contact_id,
        "sequence_id",
        inserted.c.sequence_id,
        "sequence_version",
        literal(version_number, Integer),
        "campaign_id",
        inserted.c.campaign_id,
    )
    return select(data, inserted.c.started_at).select_from(inserted)
