"""Requests as reviewers see them: the round's stages and decisions plus the campaign's
context (objective, owner, budget, channels, dates, audience, sequence), assembled from a
few batched reads for a whole page (the reads: `context_repository.py`)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from app.approvals.context_repository import ReviewContextReads
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

if TYPE_CHECKING:  # read through CampaignLookup (a repository); only named here
    from app.campaigns.models import Campaign


def _ids(values: Sequence[object]) -> list[uuid.UUID]:
    return [uuid.UUID(str(v)) for v in values]


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
    reads = ReviewContextReads(session, workspace_id)
    segments = await reads.segments(segment_ids)
    return _Context(
        {id_: name for id_, (name, _) in segments.items()},
        {id_: count for id_, (_, count) in segments.items()},
        await reads.sequence_names(sequence_ids),
        await reads.member_names(owner_ids),
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
