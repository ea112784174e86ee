"""Requests as reviewers see them: the round's stages and decisions plus the campaign's
context (objective, owner, budget, channels, dates, audience, sequence), loaded in a few
batched queries for a whole page."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.approvals.models import ApprovalDecision, ApprovalRequest
from app.approvals.repository import CampaignLookup, DecisionRepository
from app.approvals.schemas import (
    CampaignContext,
    DecisionOut,
    RequestOut,
    SegmentRef,
    SequenceRef,
    StageOut,
)
from app.campaigns.models import Campaign
from app.segments.models import Segment
from app.sequences.models import Sequence as SequenceModel
from app.workspaces.models import Member


def _ids(values: Sequence[object]) -> list[uuid.UUID]:
    return [uuid.UUID(str(v)) for v in values]


async def _names(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    model: type[Segment] | type[SequenceModel] | type[Member],
    ids: set[uuid.UUID],
) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    statement = select(model.id, model.name).where(
        model.workspace_id == workspace_id, model.id.in_(ids)
    )
    return {row.id: row.name for row in await session.execute(statement)}


async def _segment_counts(
    session: AsyncSession, workspace_id: uuid.UUID, ids: set[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not ids:
        return {}
    statement = select(Segment.id, Segment.member_count).where(
        Segment.workspace_id == workspace_id, Segment.id.in_(ids)
    )
    return {row.id: row.member_count for row in await session.execute(statement)}


class _Context:
    def __init__(
        self,
        segments: dict[uuid.UUID, str],
        counts: dict[uuid.UUID, int],
        sequences: dict[uuid.UUID, str],
        owners: dict[uuid.UUID, str],
    ) -> None:
        self.segments, self.counts, self.sequences, self.owners = (
            segments,
            counts,
            sequences,
            owners,
        )

    def segment_refs(self, ids: Sequence[object]) -> list[SegmentRef]:
        return [
            SegmentRef(id=i, name=self.segments.get(i), member_count=self.counts.get(i))
            for i in _ids(ids)
        ]

    def of(self, campaign: Campaign) -> CampaignContext:
        sequence = None
        if campaign.sequence_id is not None:
            sequence = SequenceRef(
                id=campaign.sequence_id,
                name=self.sequences.get(campaign.sequence_id),
                version=campaign.sequence_version,
            )
        owner = campaign.owner_member_id
        budget = campaign.budget_amount
        return CampaignContext(
            id=campaign.id,
            name=campaign.name,
            description=campaign.description,
            objective=campaign.objective,
            status=campaign.status,
            type=campaign.type,
            owner_member_id=owner,
            owner_name=self.owners.get(owner) if owner is not None else None,
            budget_amount=None if budget is None else f"{budget:.2f}",
            budget_currency=campaign.budget_currency,
            channels=list(campaign.channels or []),
            start_at=campaign.start_at,
            end_at=campaign.end_at,
            timezone=campaign.timezone,
            include_segments=self.segment_refs(campaign.include_segments or []),
            exclude_segments=self.segment_refs(campaign.exclude_segments or []),
            sequence=sequence,
        )


async def _context(
    session: AsyncSession, workspace_id: uuid.UUID, campaigns: Sequence[Campaign]
) -> _Context:
    segment_ids = {i for c in campaigns for i in _ids([*c.include_segments, *c.exclude_segments])}
    sequence_ids = {c.sequence_id for c in campaigns if c.sequence_id is not None}
    owner_ids = {c.owner_member_id for c in campaigns if c.owner_member_id is not None}
    return _Context(
        await _names(session, workspace_id, Segment, segment_ids),
        await _segment_counts(session, workspace_id, segment_ids),
        await _names(session, workspace_id, SequenceModel, sequence_ids),
        await _names(session, workspace_id, Member, owner_ids),
    )


def _request_out(
    request: ApprovalRequest,
    decisions: list[ApprovalDecision],
    campaign: CampaignContext | None,
) -> RequestOut:
    return RequestOut(
        id=request.id,
        campaign_id=request.campaign_id,
        round=request.round,
        status=request.status,
        current_stage=request.current_stage,
        stage_started_at=request.stage_started_at,
        created_at=request.created_at,
        decided_at=request.decided_at,
        stages=[StageOut.model_validate(stage) for stage in request.stages],
        decisions=[DecisionOut.model_validate(d) for d in decisions],
        campaign=campaign,
    )


async def present(
    session: AsyncSession, workspace_id: uuid.UUID, requests: Sequence[ApprovalRequest]
) -> list[RequestOut]:
    campaigns = await CampaignLookup(session, workspace_id).by_ids(
        [r.campaign_id for r in requests]
    )
    context = await _context(session, workspace_id, list(campaigns.values()))
    by_request: dict[uuid.UUID, list[ApprovalDecision]] = defaultdict(list)
    for decision in await DecisionRepository(session, workspace_id).of_requests(
        [r.id for r in requests]
    ):
        by_request[decision.request_id].append(decision)
    return [
        _request_out(
            request,
            by_request[request.id],
            context.of(campaigns[request.campaign_id])
            if request.campaign_id in campaigns
            else None,
        )
        for request in requests
    ]
