"""Every query of the approvals domain, scoped by workspace."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select, text

from app.approvals.models import ApprovalDecision, ApprovalPolicy, ApprovalRequest
from app.campaigns.models import Campaign
from app.core.pagination import PageParams, PageResult, apply_page, to_page
from app.core.repository import WorkspaceRepository
from app.workspaces.models import Member


class PolicyRepository(WorkspaceRepository[ApprovalPolicy]):
    model = ApprovalPolicy
    noun = "approval policy"

    async def default(self) -> ApprovalPolicy | None:
        statement = self.scoped().where(ApprovalPolicy.is_default.is_(True))
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def clear_default(self, keep: uuid.UUID | None) -> None:
        """Unset the workspace's default (except `keep`), so a new default can be set
        without tripping the one-default-per-workspace index. A transaction-scoped advisory
        lock per workspace serialises concurrent default changes (two new defaults inserted at
        once would otherwise both see none and one would hit the unique index)."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"approval-default:{self.workspace_id}"},
        )
        statement = self.scoped().where(ApprovalPolicy.is_default.is_(True)).with_for_update()
        for policy in (await self.session.execute(statement)).scalars():
            if policy.id != keep:
                policy.is_default = False
        await self.session.flush()


class RequestRepository(WorkspaceRepository[ApprovalRequest]):
    model = ApprovalRequest
    noun = "approval request"

    async def locked_with_campaign(self, request_id: uuid.UUID) -> ApprovalRequest:
        """The request locked, after its campaign: campaign edits lock the campaign and then
        void its request, so taking them in the same order cannot deadlock. The request is
        re-read after the locks (a decision committed while we waited is seen)."""
        request = await self.get_or_404(request_id)
        await self.session.execute(
            select(Campaign.id)
            .where(Campaign.workspace_id == self.workspace_id, Campaign.id == request.campaign_id)
            .with_for_update()
        )
        statement = (
            self.scoped()
            .where(ApprovalRequest.id == request_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(statement)).scalar_one()

    async def open_of_campaign(self, campaign_id: uuid.UUID, round_: int) -> ApprovalRequest | None:
        statement = (
            self.scoped()
            .where(
                ApprovalRequest.campaign_id == campaign_id,
                ApprovalRequest.round == round_,
                ApprovalRequest.status.in_(("pending", "approved")),
            )
            .with_for_update()
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def listing(
        self, params: PageParams, status: str | None, reviewer: uuid.UUID | None
    ) -> PageResult[ApprovalRequest]:
        statement = self.scoped()
        if status is not None:
            statement = statement.where(ApprovalRequest.status == status)
        if reviewer is not None:
            # The current stage's snapshot lists its eligible member ids (as strings).
            current = ApprovalRequest.stages[ApprovalRequest.current_stage]["eligible"]
            statement = statement.where(
                ApprovalRequest.status == "pending", current.contains([str(reviewer)])
            )
        rows = (
            (await self.session.execute(apply_page(statement, ApprovalRequest.id, params)))
            .scalars()
            .all()
        )
        return to_page(rows, params, lambda item: item.id)


class DecisionRepository(WorkspaceRepository[ApprovalDecision]):
    model = ApprovalDecision
    noun = "approval decision"

    async def of_requests(self, request_ids: Sequence[uuid.UUID]) -> list[ApprovalDecision]:
        if not request_ids:
            return []
        statement = (
            self.scoped()
            .where(ApprovalDecision.request_id.in_(request_ids))
            .order_by(ApprovalDecision.created_at, ApprovalDecision.id)
        )
        return list((await self.session.execute(statement)).scalars())

    async def by_reviewer(self, request_id: uuid.UUID, member_id: uuid.UUID) -> bool:
        statement = self.scoped().where(
            ApprovalDecision.request_id == request_id, ApprovalDecision.member_id == member_id
        )
        return (await self.session.execute(statement.limit(1))).first() is not None


class MemberLookup(WorkspaceRepository[Member]):
    model = Member
    noun = "member"

    async def all(self) -> list[Member]:
        statement = self.scoped().order_by(Member.id)
        return list((await self.session.execute(statement)).scalars())

    async def existing(self, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        if not ids:
            return set()
        statement = select(Member.id).where(
            Member.workspace_id == self.workspace_id, Member.id.in_(ids)
        )
        return set((await self.session.execute(statement)).scalars())


class CampaignLookup(WorkspaceRepository[Campaign]):
    model = Campaign
    noun = "campaign"

    async def by_ids(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Campaign]:
        if not ids:
            return {}
        statement = self.scoped().where(Campaign.id.in_(ids))
        return {c.id: c for c in (await self.session.execute(statement)).scalars()}
