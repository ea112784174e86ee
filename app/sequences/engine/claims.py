"""Claiming and advancing a batch of due enrollments in one transaction.

The claim is a conditional `SELECT ... FOR UPDATE SKIP LOCKED` of rows still live and due;
exit rules, consent, suppressions and frequency caps are read in the same transaction, after
the lock, so anything committed before the claim (a reply, an unsubscribe, a send by another
sequence) is seen. Messages are unique per (enrollment, step, visit): a job that runs twice
cannot create a second one.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.ids import new_id
from app.outbox import emit
from app.outbox.catalogue import MessageFailed
from app.sequences.definition import SendStep, WebhookStep
from app.sequences.engine.emissions import (
    FINISHED,
    Ended,
    emit_ended,
    ended_emissions,
    ended_types,
)
from app.sequences.engine.facts import load_facts, template_contents
from app.sequences.engine.repository import EngineRepository
from app.sequences.engine.runner import Pass, PassOutput, enter_step
from app.sequences.engine.variants import declared_winners
from app.sequences.engine.versions import ParsedVersion, cached, parsed
from app.sequences.models import Enrollment
from app.templates.merge_fields import campaign_fields


@dataclass
class BatchResult:
    advanced: int = 0
    message_ids: list[uuid.UUID] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)  # seconds past due, per claim


async def advance_batch(
    session: AsyncSession,
    settings: Settings,
    workspace_id: uuid.UUID,
    ids: Collection[uuid.UUID],
    now: datetime,
) -> BatchResult:
    repo = EngineRepository(session, workspace_id)
    enrollments = await repo.claim_due(ids, now)
    claimed = {enrollment.id for enrollment in enrollments}
    await repo.release_leases(set(ids) - claimed)  # not due yet, or held by another job
    if not enrollments:
        return BatchResult()
    versions = await _versions(repo, {e.sequence_version_id for e in enrollments})
    facts = await load_facts(repo, {e.contact_id for e in enrollments}, versions.values(), now)
    facts.winners = await declared_winners(session, workspace_id, enrollments, versions)
    facts.step_messages = await repo.step_messages(enrollments)
    output = PassOutput()
    pins = {pin for version in versions.values() for pin in version.pins.values()}
    output.templates = await template_contents(session, workspace_id, pins)
    campaign_ids = {e.campaign_id for e in enrollments if e.campaign_id is not None}
    output.campaigns = await campaign_fields(session, workspace_id, campaign_ids)
    result = BatchResult(advanced=len(enrollments))
    for enrollment in enrollments:
        due = enrollment.next_action_at or now
        result.lateness.append((now - due).total_seconds())
        version = versions[enrollment.sequence_version_id]
        await Pass(
            session=session,
            repo=repo,
            settings=settings,
            enrollment=enrollment,
            version=version,
            facts=facts,
            output=output,
            now=now,
        ).run()
        enrollment.lease_until = None
        enrollment.updated_at = now
    inserted = await repo.insert_messages(output.messages)
    await repo.insert_steps(output.steps)
    result.message_ids = [
        row["id"] for row in output.messages if row["id"] in inserted and row["status"] == "queued"
    ]
    await _emit_batch(
        session, workspace_id, enrollments=enrollments, output=output, inserted=inserted, now=now
    )
    return result


async def _emit_batch(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    enrollments: Collection[Enrollment],
    output: PassOutput,
    inserted: set[uuid.UUID],
    now: datetime,
) -> None:
    """The batch's webhook events in one call: enrollments that ended in this pass, and
    messages that failed before any send (render errors). Nothing ended or failed: no query."""
    ended = [_ended(enrollment) for enrollment in enrollments if enrollment.state in FINISHED]
    failed = [row for row in output.messages if row["status"] == "failed" and row["id"] in inserted]
    if not ended and not failed:
        return
    types = ended_types(ended) | ({MessageFailed.TYPE} if failed else set())

    async def build() -> list[emit.Emission]:
        emissions = await ended_emissions(session, workspace_id, ended, now)
        emissions += [
            emit.Emission(
                workspace_id, emit.message_data(MessageFailed, row, error=row["error"]), now
            )
            for row in failed
        ]
        return emissions

    await emit.emit_lazy(session, [workspace_id], types, build)


def _ended(enrollment: Enrollment) -> Ended:
    return Ended(
        enrollment.id,
        enrollment.contact_id,
        enrollment.sequence_id,
        enrollment.sequence_version_id,
        enrollment.campaign_id,
        enrollment.state,
        enrollment.exit_reason,
    )


async def skip_due_sends(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    ids: Collection[uuid.UUID],
    now: datetime,
    reason: str,
) -> int:
    """Pass over the send / webhook step each of these enrollments has due (a campaign
    resumed with `overdue: skip`): a `skipped` timeline row, and the next step becomes due
    now. Other due steps (a wait that ended, a wait_for_event that timed out) are left to
    run. Returns how many sends were skipped."""
    repo = EngineRepository(session, workspace_id)
    enrollments = await repo.claim_due(ids, now)
    versions = await _versions(repo, {e.sequence_version_id for e in enrollments})
    rows: list[dict[str, object]] = []
    completed: list[Ended] = []
    for enrollment in enrollments:
        version = versions[enrollment.sequence_version_id]
        step = version.steps.get(enrollment.step_key or "")
        if not isinstance(step, SendStep | WebhookStep):
            continue
        rows.append(
            {
                "id": new_id(),
                "workspace_id": workspace_id,
                "enrollment_id": enrollment.id,
                "step_key": step.key,
                "step_type": step.type,
                "visit": enrollment.step_visit,
                "outcome": "skipped",
                "detail": {"reason": reason},
                "due_at": enrollment.next_action_at,
                "occurred_at": now,
                "message_id": None,
            }
        )
        enter_step(enrollment, step.next, now)
        if step.next is None:  # nothing after it: the enrollment is done
            enrollment.state, enrollment.finished_at, enrollment.next_action_at = (
                "completed",
                now,
                None,
            )
            completed.append(_ended(enrollment))
        enrollment.updated_at = now
    await repo.insert_steps(rows)
    await emit_ended(session, workspace_id, completed, now)
    return len(rows)


async def _versions(repo: EngineRepository, ids: set[uuid.UUID]) -> dict[uuid.UUID, ParsedVersion]:
    found = {version_id: cached(version_id) for version_id in ids}
    known = {key: value for key, value in found.items() if value is not None}
    missing = ids - set(known)
    for row in await repo.versions(missing) if missing else []:
        known[row.id] = parsed(row.id, row.sequence_id, row.definition)
    return known
