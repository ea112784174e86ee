"""The dry run: the real engine drives one throwaway enrollment through virtual time inside a
SAVEPOINT that is always rolled back.

No second interpreter: the contact (or a hypothetical one), the enrollment, scripted events,
messages and timeline rows are real rows, written by the same code paths as production
(`advance_batch` for every pass, `EngineRepository.wake` for every scripted event), read
back, then discarded with the savepoint. Jobs the engine or the segments code buffer for
after-commit are dropped too, so the request's commit enqueues nothing.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts import service as contacts
from app.core.clock import utcnow
from app.core.egress import GuardPolicy
from app.core.errors import FieldError, Unprocessable
from app.core.ids import new_id
from app.core.jobs import no_new_jobs
from app.events import service as events
from app.sequences.definition import dump
from app.sequences.engine.claims import advance_batch
from app.sequences.engine.repository import EngineRepository
from app.sequences.enrollments.repository import EnrollmentRepository
from app.sequences.enrollments.schemas import EnrollmentState
from app.sequences.enrollments.service import enrollment_columns
from app.sequences.models import LIVE_STATES, Enrollment, SequenceVersion
from app.sequences.repository import ReferenceLookup
from app.sequences.service import (
    get_sequence,
    pinned_definition,
    validation_errors,
    version_for_enrollment,
)
from app.sequences.simulation.repository import SimulationRecords
from app.sequences.simulation.schemas import (
    MessagePreview,
    ScriptedEvent,
    SimulationEntry,
    SimulationFinal,
    SimulationOut,
    SimulationRequest,
)
from app.sequences.validation import parse_definition

if TYPE_CHECKING:
    from app.channels.models import Message
    from app.config import Settings

MAX_PASSES = 500
PREVIEW_CHARS = 500
SOURCE = "simulation"
# Far enough from year 9999 that every duration the engine adds (waits and timeouts up to
# ten years, the horizon) stays a valid datetime.
EARLIEST_START = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_START = datetime(9000, 1, 1, tzinfo=UTC)


Stopped = Literal["finished", "horizon", "pass_limit"]


@dataclass(frozen=True)
class _Scripted:
    at: datetime
    type: str
    properties: dict[str, Any]


@dataclass
class _Run:
    entries: list[tuple[datetime, int, int, SimulationEntry]]
    final: SimulationFinal


async def simulate(
    session: AsyncSession,
    settings: Settings,
    workspace_id: uuid.UUID,
    sequence_id: uuid.UUID,
    body: SimulationRequest,
) -> SimulationOut:
    start = body.start_at or utcnow()
    if not EARLIEST_START <= start <= LATEST_START:
        raise _invalid("`start_at` must be between 1970 and 9000.", "/start_at")
    horizon_end = start + body.horizon
    script = _script(body.events, start, horizon_end)
    draft: dict[str, Any] | None = None
    published: SequenceVersion | None = None
    if body.draft:
        destinations = GuardPolicy.from_settings(settings.webhooks)
        draft = await _draft_definition(session, workspace_id, sequence_id, destinations)
    else:
        published = await _published(session, workspace_id, sequence_id, body.version)
    contact_id = await _check_contact(session, workspace_id, body)

    # Jobs buffered by the engine (wake-ups) or segments (re-evaluation) during the run
    # concern rows that will not exist: the request's commit must not enqueue them.
    with no_new_jobs(session):
        async with session.begin_nested() as savepoint:
            try:
                version = published or await _insert_draft(
                    session, workspace_id, sequence_id, draft or {}
                )
                contact = contact_id or await _hypothetical_contact(session, workspace_id, body)
                enrollment = await _enroll(session, workspace_id, version, contact, start)
                run = await _run(
                    session,
                    settings=settings,
                    workspace_id=workspace_id,
                    enrollment=enrollment,
                    horizon_end=horizon_end,
                    script=script,
                )
            finally:
                await savepoint.rollback()
    run.entries.sort(key=lambda item: item[:3])
    return SimulationOut(
        sequence_id=sequence_id,
        version=published.number if published is not None else None,
        draft=body.draft,
        contact_id=contact_id,
        start_at=start,
        horizon_end=horizon_end,
        timeline=[item[3] for item in run.entries],
        final=run.final,
    )


# -- validation ------------------------------------------------------------------------------


def _invalid(detail: str, pointer: str) -> Unprocessable:
    error = FieldError(pointer=pointer, location="body", message=detail, code="invalid_value")
    return Unprocessable(detail, errors=[error])


def _script(events: list[ScriptedEvent], start: datetime, end: datetime) -> list[_Scripted]:
    """The script as instants, in time order (the request order among equal instants)."""
    script: list[_Scripted] = []
    for index, event in enumerate(events):
        field = "at" if event.at is not None else "after"
        at = event.at if event.at is not None else start + (event.after or end - start)
        if at < start:
            raise _invalid(
                "A scripted event cannot happen before `start_at`.", f"/events/{index}/at"
            )
        if at > end:
            raise _invalid(
                "A scripted event after the horizon would never be reached; extend `horizon` "
                "or drop the event.",
                f"/events/{index}/{field}",
            )
        script.append(_Scripted(at, event.type, event.properties))
    return sorted(script, key=lambda item: item.at)


async def _published(
    session: AsyncSession, workspace_id: uuid.UUID, sequence_id: uuid.UUID, number: int | None
) -> SequenceVersion:
    try:
        return await version_for_enrollment(session, workspace_id, sequence_id, number)
    except Unprocessable as exc:  # no published version (or not `number`): say which field
        raise _invalid(exc.detail, "/version") from exc


async def _draft_definition(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    sequence_id: uuid.UUID,
    destinations: GuardPolicy,
) -> dict[str, Any]:
    """The draft as publishing would store it (normalised, templates pinned)."""
    sequence = await get_sequence(session, workspace_id, sequence_id)
    errors = await validation_errors(session, workspace_id, sequence, destinations)
    parsed = parse_definition(sequence.definition)
    if errors or isinstance(parsed, list):
        raise Unprocessable(
            f"The draft has {len(errors)} problem(s) and cannot be simulated; see `errors` "
            "(pointers into the sequence, as GET /v1/sequences/{id}/validation reports them).",
            errors=errors,
        )
    return await pinned_definition(
        ReferenceLookup(session, workspace_id), dump(parsed.normalised())
    )


async def _insert_draft(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    sequence_id: uuid.UUID,
    definition: dict[str, Any],
) -> SequenceVersion:
    # Number 0 never collides with a published version (they start at 1).
    version = SequenceVersion(
        id=new_id(),
        workspace_id=workspace_id,
        sequence_id=sequence_id,
        number=0,
        definition=definition,
        published_at=utcnow(),
    )
    session.add(version)
    await session.flush()
    return version


async def _check_contact(
    session: AsyncSession, workspace_id: uuid.UUID, body: SimulationRequest
) -> uuid.UUID | None:
    """The existing contact's id, or None for a hypothetical one (whose email must be free:
    the workspace allows one contact per email)."""
    if body.contact_id is not None:
        found = await contacts.live_contact_id(session, workspace_id, "id", body.contact_id)
        if found is None:
            raise _invalid("No such contact in this workspace.", "/contact_id")
        return found
    email = body.contact.email if body.contact else None
    if email is not None and await contacts.email_in_use(session, workspace_id, email):
        raise _invalid(
            "A contact with this email exists; simulate it with `contact_id`, or use "
            "another address.",
            "/contact/email",
        )
    return None


# -- the run (inside the savepoint) ----------------------------------------------------------


async def _run(
    session: AsyncSession,
    *,
    settings: Settings,
    workspace_id: uuid.UUID,
    enrollment: Enrollment,
    horizon_end: datetime,
    script: list[_Scripted],
) -> _Run:
    """Advance the enrollment to each next instant (its next action or the next scripted
    event) until it finishes, passes the horizon, or the pass budget is spent."""
    pending = deque(script)
    entries: list[tuple[datetime, int, int, SimulationEntry]] = []
    passes = 0
    stopped: Stopped
    while True:
        instants = [at for at in (enrollment.next_action_at, *_head(pending)) if at is not None]
        if enrollment.state not in LIVE_STATES:
            stopped = "finished"
            break
        if not instants or min(instants) > horizon_end:
            stopped = "horizon"
            break
        if passes == MAX_PASSES:
            stopped = "pass_limit"
            break
        passes += 1
        now = min(instants)
        while pending and pending[0].at <= now:
            event = pending.popleft()
            await _happen(session, workspace_id, enrollment.contact_id, event)
            entries.append((event.at, 0, len(entries), _event_entry(event)))
        await advance_batch(session, settings, workspace_id, [enrollment.id], now)
        # Virtual delivery: every message is accepted the instant it is written, so the
        # steps after a send run from then (as they run from `sent_at` in production).
        await EngineRepository(session, workspace_id).deliver_instantly(enrollment.id, now)
        await session.flush()
        await session.refresh(enrollment)
    entries.extend(await _steps(session, workspace_id, enrollment.id, len(entries)))
    final = SimulationFinal(
        state=cast(EnrollmentState, enrollment.state),
        exit_reason=enrollment.exit_reason,
        step_key=enrollment.step_key,
        next_action_at=enrollment.next_action_at,
        stopped=stopped,
    )
    return _Run(entries, final)


def _head(pending: deque[_Scripted]) -> list[datetime]:
    return [pending[0].at] if pending else []


async def _hypothetical_contact(
    session: AsyncSession, workspace_id: uuid.UUID, body: SimulationRequest
) -> uuid.UUID:
    given = body.contact
    assert given is not None
    contact = contacts.BareContact(
        external_id=f"{SOURCE}:{uuid.uuid4()}",
        email=given.email,
        phone=given.phone,
        timezone=given.timezone,
        locale=given.locale,
        attributes={key: value for key, value in given.attributes.items() if value is not None},
    )
    try:
        return await contacts.add_unannounced_contact(session, workspace_id, contact)
    except IntegrityError as exc:  # the email was taken since `_check_contact` looked
        raise _invalid(
            "A contact with this email exists; use `contact_id`.", "/contact/email"
        ) from exc


async def _enroll(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    version: SequenceVersion,
    contact_id: uuid.UUID,
    start: datetime,
) -> Enrollment:
    """An enrollment as the API starts one, due at `start`; its own random campaign id keeps
    it clear of the contact's real enrollment in this sequence, if any."""
    repo = EnrollmentRepository(session, workspace_id)
    columns = enrollment_columns(version, start, uuid.uuid4(), SOURCE)
    enrollment_id = await repo.insert_one({**columns, "id": new_id(), "contact_id": contact_id})
    assert enrollment_id is not None  # a fresh campaign id cannot conflict
    return await repo.get_or_404(enrollment_id)


async def _happen(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: uuid.UUID, event: _Scripted
) -> None:
    """The scripted event as ingestion would record it, then the wake-up ingestion does."""
    await events.add_unannounced_event(
        session, workspace_id, contact_id, event.type, event.properties, at=event.at, source=SOURCE
    )
    await EngineRepository(session, workspace_id).wake([(contact_id, event.type)], event.at)


def _event_entry(event: _Scripted) -> SimulationEntry:
    return SimulationEntry(
        at=event.at,
        step_key=None,
        step_type=None,
        outcome="scripted_event",
        detail={"type": event.type, "properties": event.properties},
    )


async def _steps(
    session: AsyncSession, workspace_id: uuid.UUID, enrollment_id: uuid.UUID, offset: int
) -> list[tuple[datetime, int, int, SimulationEntry]]:
    records = SimulationRecords(session, workspace_id)
    steps = await records.timeline(enrollment_id)
    messages = await records.messages(enrollment_id)
    entries = []
    for index, step in enumerate(steps, start=offset):
        message = messages.get(step.message_id) if step.message_id else None
        entry = SimulationEntry(
            at=step.occurred_at,
            step_key=step.step_key,
            step_type=step.step_type,
            outcome=step.outcome,
            detail=step.detail,
            message=_preview(message) if message is not None else None,
        )
        entries.append((step.occurred_at, 1, index, entry))
    return entries


def _preview(message: Message) -> MessagePreview:
    content = message.content or {}
    subject, text = content.get("subject"), content.get("text")
    return MessagePreview(
        channel=message.channel,
        variant=message.variant,
        recipient=message.recipient,
        subject=subject if isinstance(subject, str) else None,
        text=text[:PREVIEW_CHARS] if isinstance(text, str) else None,
        error=message.error,
    )
