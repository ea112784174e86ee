"""Enrollments: start one by API (idempotent), enroll a query of contacts set-wise (for
launches), exit one, list, and read one's timeline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.service import live_contact_id
from app.core.clock import utcnow
from app.core.errors import Conflict, FieldError, Unprocessable
from app.core.ids import new_id
from app.outbox import emit
from app.outbox.catalogue import EnrollmentStarted
from app.sequences.engine.emissions import started_data
from app.sequences.engine.exits import exit_by_id
from app.sequences.engine.scheduler import Batch, schedule
from app.sequences.engine.versions import parsed
from app.sequences.enrollments.repository import (
    EnrollmentRepository,
    TimelineRepository,
    VersionLookup,
    live_state_at,
    started_rows,
)
from app.sequences.models import Enrollment, EnrollmentStep, Sequence, SequenceVersion
from app.sequences.repository import SequenceRepository

if TYPE_CHECKING:
    from app.core.pagination import PageParams, PageResult
    from app.sequences.enrollments.schemas import EnrollmentCreate


@dataclass(frozen=True)
class Started:
    enrollment: Enrollment
    created: bool


async def enroll(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    sequence_id: uuid.UUID,
    body: EnrollmentCreate,
    *,
    campaign_id: uuid.UUID | None = None,
    source: str = "api",
) -> Started:
    """Start the contact on the sequence, or answer its unfinished enrollment (idempotent:
    one unfinished enrollment per sequence, contact and campaign, enforced by an index)."""
    now = utcnow()
    await _sequence(session, workspace_id, sequence_id)
    contact_id = await _contact_id(session, workspace_id, body)
    version = await _version(session, workspace_id, sequence_id, body.version)
    repo = EnrollmentRepository(session, workspace_id)
    # A concurrent sequence delete waits for this enrollment, then refuses (409), instead of
    # cascading it away.
    await repo.share_sequence(sequence_id)
    created_id = await repo.insert_one(
        {
            **enrollment_columns(version, now, campaign_id, source),
            "id": new_id(),
            "contact_id": contact_id,
        }
    )
    if created_id is None:
        existing = await repo.unfinished(sequence_id, contact_id, campaign_id)
        if existing is None:  # finished between the insert and this read: try once more
            raise Conflict("The contact's enrollment changed concurrently; retry the request.")
        return Started(existing, False)
    # The first step runs right after commit instead of at the next scan.
    schedule(session, Batch(workspace_id, [created_id], now), now, "start")
    created = await repo.get_or_404(created_id)
    await emit.emit(session, workspace_id, started_data(created, version.number), occurred_at=now)
    return Started(created, True)


async def enroll_contacts(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    version: SequenceVersion,
    contacts: Select[Any],
    *,
    campaign_id: uuid.UUID | None,
    source: str,
) -> list[uuid.UUID]:
    """INSERT ... SELECT one enrollment per contact id of `contacts` (a launch); contacts
    already enrolled keep their enrollment, so launching twice enrolls nobody twice. The
    scheduler scan picks the new rows up (they are due now)."""
    values = enrollment_columns(version, utcnow(), campaign_id, source)
    repo = EnrollmentRepository(session, workspace_id)
    endpoints = await emit.subscribers_of(session, workspace_id, EnrollmentStarted.TYPE)
    await repo.share_sequence(version.sequence_id)
    await repo.widen_work_mem()
    ids = await repo.insert_from(contacts, values)
    if endpoints and ids:
        rows = repo.payload_rows(ids)
        await emit.emit_from_query(
            session,
            workspace_id,
            EnrollmentStarted,
            started_rows(rows, version.number),
            endpoints=endpoints,
        )
    return ids


async def enroll_count(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    version: SequenceVersion,
    contacts: Select[Any],
    *,
    campaign_id: uuid.UUID | None,
    source: str,
) -> int:
    """`enroll_contacts` answering only how many it enrolled. With an endpoint subscribed
    to `enrollment.started`, the same single statement also writes one event per new
    enrollment (and its deliveries): set-wise, whatever the audience's size."""
    values = enrollment_columns(version, utcnow(), campaign_id, source)
    repo = EnrollmentRepository(session, workspace_id)
    endpoints = await emit.subscribers_of(session, workspace_id, EnrollmentStarted.TYPE)
    await repo.share_sequence(version.sequence_id)
    await repo.widen_work_mem()
    if not endpoints:
        return await repo.count_from(contacts, values)
    inserted = repo.inserting(contacts, values)
    return await emit.emit_from_query(
        session,
        workspace_id,
        EnrollmentStarted,
        started_rows(inserted, version.number),
        endpoints=endpoints,
    )


async def campaign_has_unfinished(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID
) -> bool:
    """Whether any enrollment of the campaign is active, waiting or paused."""
    return await EnrollmentRepository(session, workspace_id).campaign_has_unfinished(campaign_id)


def unserved_entries(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    entries: Select[Any],
    *,
    reentry: tuple[str, int | None],
    now: datetime,
) -> Select[Any]:
    """A trigger sweep's entries (contact_id, entered_at) that no enrollment of the
    campaign serves yet under its re-entry policy, as one SELECT of contact ids."""
    repo = EnrollmentRepository(session, workspace_id)
    return repo.unserved_entries(campaign_id, entries, reentry, now)


async def version_by_id(
    session: AsyncSession, workspace_id: uuid.UUID, version_id: uuid.UUID
) -> SequenceVersion | None:
    return await VersionLookup(session, workspace_id).get(version_id)


async def list_enrollments(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    sequence_id: uuid.UUID,
    params: PageParams,
    *,
    state: str | None,
    contact_id: uuid.UUID | None,
) -> PageResult[Enrollment]:
    await _sequence(session, workspace_id, sequence_id)
    return await EnrollmentRepository(session, workspace_id).page_for_sequence(
        sequence_id, params, state, contact_id
    )


async def get_enrollment(
    session: AsyncSession, workspace_id: uuid.UUID, enrollment_id: uuid.UUID
) -> Enrollment:
    return await EnrollmentRepository(session, workspace_id).get_or_404(enrollment_id)


async def exit_enrollment(
    session: AsyncSession, workspace_id: uuid.UUID, enrollment_id: uuid.UUID, reason: str
) -> Enrollment:
    repo = EnrollmentRepository(session, workspace_id)
    enrollment = await repo.get_or_404(enrollment_id)
    label = reason if reason == "manual" else f"manual:{reason}"
    ended = await exit_by_id(session, workspace_id, [enrollment_id], label, utcnow())
    if not ended:
        raise Conflict(
            f"Enrollment {enrollment_id} is already {enrollment.state}; only active, waiting "
            "or paused enrollments can exit."
        )
    await session.refresh(enrollment)
    return enrollment


async def timeline(
    session: AsyncSession, workspace_id: uuid.UUID, enrollment_id: uuid.UUID, params: PageParams
) -> PageResult[EnrollmentStep]:
    await get_enrollment(session, workspace_id, enrollment_id)
    return await TimelineRepository(session, workspace_id).page_for(enrollment_id, params)


async def version_numbers(
    session: AsyncSession, workspace_id: uuid.UUID, enrollments: list[Enrollment]
) -> dict[uuid.UUID, int]:
    ids = list({item.sequence_version_id for item in enrollments})
    return await VersionLookup(session, workspace_id).numbers(ids)


# -- helpers ---------------------------------------------------------------------------------


def enrollment_columns(
    version: SequenceVersion, now: datetime, campaign_id: uuid.UUID | None, source: str
) -> dict[str, Any]:
    definition = parsed(version.id, version.sequence_id, version.definition)
    entry = definition.definition.entry_key()
    return {
        **live_state_at(now),
        "sequence_id": version.sequence_id,
        "sequence_version_id": version.id,
        "campaign_id": campaign_id,
        "source": source,
        "step_key": entry,
        "visits": {entry: 1},
        "exit_events": definition.exit_event_types or None,
    }


def _invalid(detail: str, pointer: str) -> Unprocessable:
    error = FieldError(pointer=pointer, location="body", message=detail, code="invalid_value")
    return Unprocessable(detail, errors=[error])


async def _sequence(
    session: AsyncSession, workspace_id: uuid.UUID, sequence_id: uuid.UUID
) -> Sequence:
    return await SequenceRepository(session, workspace_id).get_or_404(sequence_id)


async def _version(
    session: AsyncSession, workspace_id: uuid.UUID, sequence_id: uuid.UUID, number: int | None
) -> SequenceVersion:
    version = await VersionLookup(session, workspace_id).latest_or_number(sequence_id, number)
    if version is None:
        if number is None:
            raise _invalid(
                f"Sequence {sequence_id} has no published version; publish it first.", "/version"
            )
        raise _invalid(f"Sequence {sequence_id} has no version {number}.", "/version")
    return version


async def _contact_id(
    session: AsyncSession, workspace_id: uuid.UUID, body: EnrollmentCreate
) -> uuid.UUID:
    value: uuid.UUID | str
    if body.contact_id is not None:
        key, value, pointer = "id", body.contact_id, "/contact_id"
    elif body.external_id is not None:
        key, value, pointer = "external_id", body.external_id, "/external_id"
    else:
        key, value, pointer = "email", str(body.email), "/email"
    found = await live_contact_id(session, workspace_id, key, value)
    if found is None:
        raise _invalid("No such contact in this workspace.", pointer)
    return found
