"""What campaigns need from a review process, stated by campaigns and provided from above.

Approvals sit above campaigns in the domain graph (they read campaigns, segments and
sequences to show reviewers what they approve). Campaigns only need three things from
them, named here as a protocol that the approvals domain implements and `app/wiring.py`
registers: whether a policy exists, opening a review round when a campaign is submitted,
and voiding the open round when reviewed content changes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor

if TYPE_CHECKING:
    from app.campaigns.models import Campaign


class ReviewDesk(Protocol):
    async def policy_exists(
        self, session: AsyncSession, workspace_id: uuid.UUID, policy_id: uuid.UUID
    ) -> bool: ...

    async def open_request(
        self, session: AsyncSession, campaign: Campaign, actor: Actor, now: datetime
    ) -> None:
        """A submitted campaign's review round; may approve at once (no policy) through
        `transitions.approval_finished`."""

    async def void_open(
        self, session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID, now: datetime
    ) -> None: ...


_desk: ReviewDesk | None = None


def register_review_desk(desk: ReviewDesk) -> None:
    global _desk  # noqa: PLW0603 - one registration per process, by app/wiring.py
    _desk = desk


def review_desk() -> ReviewDesk:
    if _desk is None:
        raise RuntimeError("No review desk registered (app/wiring.py registers approvals').")
    return _desk
