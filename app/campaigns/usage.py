"""Campaigns report what they use (sequences, segments, approval policies) to the owners'
delete checks and `GET .../usage` endpoints, through app/core/usage.py's registry."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign
from app.campaigns.repository import CampaignRepository
from app.core.usage import UsageRef, register_usage_finder


def _ref(campaign: Campaign, via: str, kind: str = "campaign") -> UsageRef:
    return UsageRef.model_validate(
        {
            "kind": kind,
            "id": campaign.id,
            "name": campaign.name,
            "status": campaign.status,
            "via": via,
        }
    )


async def _sequence_users(
    session: AsyncSession, workspace_id: uuid.UUID, sequence_id: uuid.UUID
) -> list[UsageRef]:
    campaigns = await CampaignRepository(session, workspace_id).using_sequence(sequence_id)
    return [_ref(campaign, "sequence_id") for campaign in campaigns]


async def _segment_users(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID
) -> list[UsageRef]:
    found: list[UsageRef] = []
    for campaign in await CampaignRepository(session, workspace_id).using_segment(segment_id):
        named = str(segment_id)
        if named in map(str, campaign.include_segments):
            found.append(_ref(campaign, "include_segments"))
        if named in map(str, campaign.exclude_segments):
            found.append(_ref(campaign, "exclude_segments"))
        if campaign.trigger and str(campaign.trigger.get("segment_id")) == named:
            found.append(_ref(campaign, "trigger.segment_id", kind="trigger"))
    return found


async def _policy_users(
    session: AsyncSession, workspace_id: uuid.UUID, policy_id: uuid.UUID
) -> list[UsageRef]:
    campaigns = await CampaignRepository(session, workspace_id).using_policy(policy_id)
    return [_ref(campaign, "approval_policy_id") for campaign in campaigns]


def register() -> None:
    """Called once per process by app/wiring.py."""
    register_usage_finder("sequence", "campaigns", _sequence_users)
    register_usage_finder("segment", "campaigns", _segment_users)
    register_usage_finder("approval_policy", "campaigns", _policy_users)
