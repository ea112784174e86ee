"""The campaign as templates see it (`campaign.*`), registered with the templates domain."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign
from app.campaigns.repository import CampaignRepository


def merge_fields(campaign: Campaign) -> dict[str, Any]:
    """Exactly `app.templates.rendering.CAMPAIGN_FIELDS`; times in RFC 3339 (UTC)."""
    return {
        "id": str(campaign.id),
        "name": campaign.name,
        "description": campaign.description,
        "objective": campaign.objective,
        "type": campaign.type,
        "timezone": campaign.timezone,
        "start_at": campaign.start_at.isoformat() if campaign.start_at else None,
        "end_at": campaign.end_at.isoformat() if campaign.end_at else None,
        "tags": list(campaign.tags or []),
    }


async def load_merge_fields(
    session: AsyncSession, workspace_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    campaigns = await CampaignRepository(session, workspace_id).by_ids(ids)
    return {campaign.id: merge_fields(campaign) for campaign in campaigns}
