"""Launch validation: every reason an approved campaign cannot be scheduled, at once."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.lifecycle import launch
from app.campaigns.repository import References
from app.core.errors import FieldError

if TYPE_CHECKING:
    from app.campaigns.models import Campaign
    from app.sequences.models import SequenceVersion

# A start this far in the past still counts as "now" (clients compute now before sending).
START_GRACE = timedelta(minutes=5)


def _error(pointer: str, message: str, code: str) -> FieldError:
    return FieldError(pointer=pointer, location="body", message=message, code=code)


async def launch_problems(
    session: AsyncSession, campaign: Campaign, now: datetime
) -> list[FieldError]:
    """Every reason the campaign cannot be scheduled, at once (pointers into the campaign)."""
    problems: list[FieldError] = []
    version = await _published_version(session, campaign, problems)
    if not campaign.channels:
        problems.append(_error("/channels", "no channel is configured.", "no_channels"))
    if version is not None:
        for channel in sorted(_send_channels(version) - set(campaign.channels or [])):
            problems.append(
                _error(
                    "/channels",
                    f"the sequence sends `{channel}` messages but `{channel}` is not among "
                    "the campaign's channels.",
                    "channel_not_configured",
                )
            )
    if campaign.start_at is None:
        problems.append(_error("/start_at", "a start time is required.", "missing"))
    elif campaign.start_at < now - START_GRACE:
        problems.append(_error("/start_at", "the start time is in the past.", "start_in_past"))
    if campaign.end_at is not None and campaign.end_at <= max(campaign.start_at or now, now):
        problems.append(
            _error("/end_at", "the end time must be after the start and now.", "end_too_early")
        )
    if campaign.type == "one_off":
        problems += await _audience_problems(session, campaign, now)
    return problems


async def _published_version(
    session: AsyncSession, campaign: Campaign, problems: list[FieldError]
) -> SequenceVersion | None:
    if campaign.sequence_id is None:
        problems.append(_error("/sequence_id", "no sequence is set.", "missing"))
        return None
    refs = References(session, campaign.workspace_id)
    sequence = await refs.sequence(campaign.sequence_id)
    number = campaign.sequence_version
    if sequence is not None and number is None:
        number = sequence.published_version
    version = None
    if sequence is not None and number is not None:
        version = await refs.sequence_version(campaign.sequence_id, number)
    if version is None:
        message = "the sequence has no published version" + (
            f" {campaign.sequence_version}." if campaign.sequence_version else "."
        )
        if sequence is None:
            message = f"the sequence {campaign.sequence_id} no longer exists."
        problems.append(_error("/sequence_id", message, "sequence_not_published"))
    return version


def _send_channels(version: SequenceVersion) -> set[str]:
    return {
        str(step["channel"])
        for step in version.definition.get("steps", [])
        if step.get("type") == "send" and "channel" in step
    }


async def _audience_problems(
    session: AsyncSession, campaign: Campaign, now: datetime
) -> list[FieldError]:
    if not campaign.include_segments:
        return [_error("/include_segments", "no audience segment is set.", "empty_audience")]
    known = await References(session, campaign.workspace_id).existing_segments(
        [uuid.UUID(str(s)) for s in campaign.include_segments]
    )
    if len(known) < len(set(campaign.include_segments)):
        return [_error("/include_segments", "a segment no longer exists.", "unknown_segment")]
    if await launch.audience_size(session, campaign, now) == 0:
        return [
            _error(
                "/include_segments",
                "the audience is empty (after exclusions, suppressions and consent).",
                "empty_audience",
            )
        ]
    return []
