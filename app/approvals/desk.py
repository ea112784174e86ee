"""The approvals domain as campaigns see it (`app/campaigns/reviews.py`'s ReviewDesk)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from app.approvals import service
from app.approvals.repository import PolicyRepository

if TYPE_CHECKING:
    from app.audit.service import Actor
    from app.campaigns.models import Campaign


class ApprovalsDesk:
    async def policy_exists(
        self, session: AsyncSession, workspace_id: uuid.UUID, policy_id: uuid.UUID
    ) -> bool:
        return await PolicyRepository(session, workspace_id).get(policy_id) is not None

    async def open_request(
        self, session: AsyncSession, campaign: Campaign, actor: Actor, now: datetime
    ) -> None:
        await service.open_request(session, campaign, actor, now)

    async def void_open(
        self, session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID, now: datetime
    ) -> None:
        await service.void_open(session, workspace_id, campaign_id, now)
