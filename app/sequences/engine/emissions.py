"""Webhook events of enrollments (`enrollment.*`): payload builders and the set-wise
emission of ends (completed / exited), shared by the engine, exits, the enrollments API and
launches. Everything is emitted in the caller's transaction (`app.outbox.emit`). A launch's
`enrollment.started` rows are built set-wise by a query (`started_rows`, in
app/sequences/enrollments/repository.py).

Failures (`on_send_failure: fail`, render errors) are reported as `enrollment.exited` with
their reason: the catalogue has no separate failed type.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.outbox import emit
from app.outbox.catalogue import EnrollmentCompleted, EnrollmentExited, EnrollmentStarted
from app.sequences.enrollments.repository import VersionLookup

FINISHED = ("completed", "exited", "failed")
# Published versions never change: their numbers can be kept for the life of the process.
_numbers: dict[uuid.UUID, int] = {}


@dataclass(frozen=True)
class Ended:
    """One enrollment that just ended: `state` completed, exited or failed."""

    enrollment_id: uuid.UUID
    contact_id: uuid.UUID
    sequence_id: uuid.UUID
    sequence_version_id: uuid.UUID
    campaign_id: uuid.UUID | None
    state: str
    reason: str | None


async def version_numbers(
    session: AsyncSession, workspace_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, int]:
    missing = [item for item in set(ids) if item not in _numbers]
    if missing:
        _numbers.update(await VersionLookup(session, workspace_id).numbers(missing))
    return {item: _numbers[item] for item in ids if item in _numbers}


def ended_types(ended: Sequence[Ended]) -> set[str]:
    return {
        EnrollmentCompleted.TYPE if item.state == "completed" else EnrollmentExited.TYPE
        for item in ended
    }


async def ended_emissions(
    session: AsyncSession, workspace_id: uuid.UUID, ended: Sequence[Ended], now: datetime
) -> list[emit.Emission]:
    """The payloads (one version-number lookup for versions not seen before)."""
    numbers = await version_numbers(
        session, workspace_id, {item.sequence_version_id for item in ended}
    )
    emissions: list[emit.Emission] = []
    for item in ended:
        fields: dict[str, Any] = {
            "enrollment_id": item.enrollment_id,
            "contact_id": item.contact_id,
            "sequence_id": item.sequence_id,
            "sequence_version": numbers.get(item.sequence_version_id, 0),
            "campaign_id": item.campaign_id,
        }
        data: EnrollmentCompleted | EnrollmentExited
        if item.state == "completed":
            data = EnrollmentCompleted.model_validate(fields)
        else:
            data = EnrollmentExited.model_validate({**fields, "reason": item.reason or item.state})
        emissions.append(emit.Emission(workspace_id, data, now))
    return emissions


async def emit_ended(
    session: AsyncSession, workspace_id: uuid.UUID, ended: Sequence[Ended], now: datetime
) -> int:
    """`enrollment.completed` / `enrollment.exited` for these ends (nothing to build, and
    no query, when there are none)."""
    if not ended:
        return 0

    async def build() -> list[emit.Emission]:
        return await ended_emissions(session, workspace_id, ended, now)

    return await emit.emit_lazy(session, [workspace_id], ended_types(ended), build)


def started_data(enrollment: Any, version_number: int) -> EnrollmentStarted:
    return EnrollmentStarted(
        enrollment_id=enrollment.id,
        contact_id=enrollment.contact_id,
        sequence_id=enrollment.sequence_id,
        sequence_version=version_number,
        campaign_id=enrollment.campaign_id,
    )
