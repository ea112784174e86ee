"""Budget and spend: entries recorded by API, and where the campaign stands against its
budget (spent, remaining, pacing, over-budget)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.audit.service import Actor
from app.campaigns.models import Campaign, SpendEntry
from app.campaigns.repository import CampaignRepository, SpendRepository
from app.campaigns.schemas import SpendCreate
from app.core.clock import utcnow
from app.core.errors import Conflict, FieldError, Unprocessable
from app.core.pagination import PageParams, PageResult
from app.outbox import emit
from app.outbox.catalogue import BudgetOverspent

FRACTION_DIGITS = 4


@dataclass(frozen=True)
class BudgetStatus:
    campaign_id: uuid.UUID
    currency: str | None
    budget: Decimal | None
    spent: Decimal
    remaining: Decimal | None
    spent_fraction: float | None
    elapsed_fraction: float | None
    pacing: float | None
    over_budget: bool


async def record_spend(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    body: SpendCreate,
    actor: Actor,
) -> SpendEntry:
    campaign = await CampaignRepository(session, workspace_id).locked_or_404(campaign_id)
    if campaign.status == "archived":
        raise Conflict(
            "An archived campaign is read-only.",
            extra={"current_status": "archived", "allowed": []},
        )
    if campaign.budget_currency is None:
        raise Unprocessable(
            "The campaign has no budget: set `budget` (amount and currency) before recording "
            "spend.",
            errors=[
                FieldError(
                    pointer="/currency",
                    location="body",
                    message="no budget currency",
                    code="no_budget",
                )
            ],
        )
    if body.currency != campaign.budget_currency:
        message = f"the campaign's budget is in {campaign.budget_currency}, not {body.currency}."
        raise Unprocessable(
            f"Spend must be in the budget's currency: {message}",
            errors=[
                FieldError(
                    pointer="/currency", location="body", message=message, code="currency_mismatch"
                )
            ],
        )
    entry = SpendEntry(
        campaign_id=campaign.id,
        amount=body.amount,
        currency=body.currency,
        spent_on=body.date,
        channel=body.channel,
        note=body.note,
        created_at=utcnow(),
    )
    SpendRepository(session, workspace_id).add(entry)
    await session.flush()
    await audit.record(
        session,
        workspace_id,
        actor,
        "campaign.spend_recorded",
        entity_type="campaign",
        entity_id=campaign.id,
        data={
            "spend_entry_id": str(entry.id),
            "amount": str(entry.amount),
            "currency": entry.currency,
            "date": entry.spent_on.isoformat(),
            "channel": entry.channel,
        },
    )
    await _overspent(session, campaign, entry)
    return entry


async def _overspent(session: AsyncSession, campaign: Campaign, entry: SpendEntry) -> None:
    """`budget.overspent` from the entry that first takes spend over the budget: spend
    before it was within, after it is over (the campaign row is locked, so entries are
    counted one at a time; a later entry while already over emits nothing)."""
    budget = campaign.budget_amount
    if budget is None:
        return
    spent = await SpendRepository(session, campaign.workspace_id).total(campaign.id)
    if not spent - entry.amount <= budget < spent:
        return
    data = BudgetOverspent(
        campaign_id=campaign.id, budget=budget, spent=spent, currency=entry.currency
    )
    await emit.emit(session, campaign.workspace_id, data, occurred_at=entry.created_at)


async def list_spend(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID, params: PageParams
) -> PageResult[SpendEntry]:
    await CampaignRepository(session, workspace_id).get_or_404(campaign_id)
    return await SpendRepository(session, workspace_id).of_campaign(campaign_id, params)


async def budget_status(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID
) -> BudgetStatus:
    campaign = await CampaignRepository(session, workspace_id).get_or_404(campaign_id)
    spent = await SpendRepository(session, workspace_id).total(campaign_id)
    return compute(campaign, spent, utcnow())


def compute(campaign: Campaign, spent: Decimal, now: datetime) -> BudgetStatus:
    """Pacing compares the share of the budget spent with the share of the schedule elapsed:
    1.0 is on plan, 1.5 spends half again as fast, null when either share is unknown or no
    time has elapsed yet."""
    budget = campaign.budget_amount
    elapsed = elapsed_fraction(campaign.start_at, campaign.end_at, now)
    spent_fraction = pacing = None
    if budget is not None and budget > 0:
        share = float(spent / budget)
        spent_fraction = round(share, FRACTION_DIGITS)
        if elapsed:
            pacing = round(share / elapsed, FRACTION_DIGITS)
    return BudgetStatus(
        campaign_id=campaign.id,
        currency=campaign.budget_currency,
        budget=budget,
        spent=spent,
        remaining=None if budget is None else budget - spent,
        spent_fraction=spent_fraction,
        elapsed_fraction=None if elapsed is None else round(elapsed, FRACTION_DIGITS),
        pacing=pacing,
        over_budget=budget is not None and spent > budget,
    )


def elapsed_fraction(start: datetime | None, end: datetime | None, now: datetime) -> float | None:
    if start is None or end is None or end <= start:
        return None
    share = (now - start) / (end - start)
    return min(max(share, 0.0), 1.0)
