"""Experiments on a campaign's send steps with variants: reports, winner declaration
(manual, or automatic from the cron), and the settings of automatic declaration.

A report is computed from the messages at read time (unique contacts per variant) and each
look is folded into the running always-valid state (`experiment_looks`), so its p-value is
the running minimum and its confidence sequence the running intersection.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.audit.service import Actor
from app.campaigns import service as campaigns
from app.core.clock import utcnow
from app.core.errors import Conflict, FieldError, NotFound, Unprocessable
from app.core.ids import new_id
from app.experiments import stats
from app.experiments.repository import (
    DeclarationRepository,
    ExperimentRepository,
    SettingRepository,
    VariantCounts,
)
from app.experiments.schemas import (
    DeclarationOut,
    ExperimentOut,
    IntervalOut,
    SampleSizeOut,
    SettingsOut,
    SettingsUpdate,
    VariantStats,
    WinnerCreate,
)
from app.outbox.catalogue import ExperimentWinnerDeclared
from app.outbox.emit import emit
from app.sequences import service as sequences
from app.sequences.definition import SendStep
from app.sequences.engine.versions import parsed
from app.sequences.enrollments.service import version_by_id

if TYPE_CHECKING:
    from app.campaigns.models import Campaign
    from app.experiments.models import ExperimentDeclaration, ExperimentSetting

DEFAULT_ALPHA = 0.05
DEFAULT_MIN_SAMPLE = 100
CONFIDENCE = 0.95  # of the rate intervals and of the confidence sequence (fixed across looks)


@dataclass(frozen=True)
class ReportQuery:
    metric: str | None = None
    mde: float = 0.1
    power: float = 0.8


@dataclass
class _Context:
    campaign: Campaign
    sequence_id: uuid.UUID
    version_id: uuid.UUID | None
    steps: dict[str, SendStep]  # send steps with variants, in definition order
    declarations: dict[str, ExperimentDeclaration]
    settings: dict[str, ExperimentSetting]


async def list_experiments(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID, query: ReportQuery
) -> list[ExperimentOut]:
    context = await _context(session, workspace_id, campaign_id)
    return [
        await _report(session, workspace_id, context, step, query)
        for step in context.steps.values()
    ]


async def get_experiment(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    step_key: str,
    query: ReportQuery,
) -> ExperimentOut:
    context = await _context(session, workspace_id, campaign_id)
    return await _report(session, workspace_id, context, _step(context, step_key), query)


async def put_settings(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    step_key: str,
    *,
    body: SettingsUpdate,
    actor: Actor,
) -> SettingsOut:
    context = await _context(session, workspace_id, campaign_id)
    _step(context, step_key)
    _check_metric(context.campaign, body.metric)
    now = utcnow()
    values: dict[str, Any] = {
        "id": new_id(),
        **body.model_dump(),
        "created_at": now,
        "updated_at": now,
    }
    setting = await SettingRepository(session, workspace_id).upsert(campaign_id, step_key, values)
    out = _settings_out(setting)
    await audit.record(
        session,
        workspace_id,
        actor,
        "experiment.settings_updated",
        entity_type="campaign",
        entity_id=campaign_id,
        data={"step_key": step_key, **out.model_dump(mode="json")},
    )
    return out


async def declare_winner(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    step_key: str,
    *,
    body: WinnerCreate,
    actor: Actor,
) -> DeclarationOut:
    context = await _context(session, workspace_id, campaign_id)
    step = _step(context, step_key)
    keys = [variant.key for variant in step.variants or []]
    if body.variant not in keys:
        message = f"step {step_key!r} has variants {', '.join(keys)}"
        raise Unprocessable(
            f"Unknown variant {body.variant!r}: {message}.",
            errors=[
                FieldError(
                    pointer="/variant", location="body", message=message, code="unknown_variant"
                )
            ],
        )
    _check_metric(context.campaign, body.metric)
    report = await _report(session, workspace_id, context, step, ReportQuery(metric=body.metric))
    declaration = await _declare(
        session,
        workspace_id,
        context,
        report,
        variant=body.variant,
        apply_to_remaining=body.apply_to_remaining,
        declared_by="manual",
        actor=actor,
    )
    if declaration is None:
        raise Conflict(
            f"Step {step_key!r} of campaign {campaign_id} already has a declared winner.",
            extra={"winner": context.declarations[step_key].variant}
            if step_key in context.declarations
            else None,
        )
    return declaration


async def auto_declare(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID, step_key: str
) -> DeclarationOut | None:
    """The cron's check of one automatic setting: declare the leader when every variant
    has the minimum sample and an always-valid p-value is below alpha (Bonferroni)."""
    try:
        context = await _context(session, workspace_id, campaign_id)
    except (NotFound, Unprocessable):
        return None
    step = context.steps.get(step_key)
    setting = context.settings.get(step_key)
    if step is None or setting is None or not setting.auto_declare:
        return None
    if step_key in context.declarations:
        return None
    report = await _report(session, workspace_id, context, step, ReportQuery(setting.metric))
    if report.status != "significant" or report.leader is None:
        return None
    return await _declare(
        session,
        workspace_id,
        context,
        report,
        variant=report.leader,
        apply_to_remaining=setting.apply_to_remaining,
        declared_by="automatic",
        actor=Actor.system(),
    )


async def applied_winners(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_ids: set[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], str]:
    """For the engine: (campaign, step) -> the declared winner every remaining contact gets."""
    if not campaign_ids:
        return {}
    return await DeclarationRepository(session, workspace_id).applied(campaign_ids)


# -- internals -------------------------------------------------------------------------------


async def _context(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID
) -> _Context:
    campaign = await campaigns.get_campaign(session, workspace_id, campaign_id)
    context = _Context(campaign, campaign.sequence_id or uuid.UUID(int=0), None, {}, {}, {})
    version = await _version(session, workspace_id, campaign)
    if version is not None:
        context.sequence_id, context.version_id = version.sequence_id, version.id
        definition = parsed(version.id, version.sequence_id, version.definition).definition
        for step in definition.steps:
            if isinstance(step, SendStep) and step.variants:
                context.steps[step.key] = step
    declarations = await DeclarationRepository(session, workspace_id).of_campaign(campaign_id)
    context.declarations = {row.step_key: row for row in declarations}
    settings = await SettingRepository(session, workspace_id).of_campaign(campaign_id)
    context.settings = {row.step_key: row for row in settings}
    return context


async def _version(session: AsyncSession, workspace_id: uuid.UUID, campaign: Campaign) -> Any:
    """The version the campaign enrolls on: pinned at launch, else the one it names (or the
    sequence's latest published); None when there is none yet."""
    if campaign.sequence_version_id is not None:
        return await version_by_id(session, workspace_id, campaign.sequence_version_id)
    if campaign.sequence_id is None:
        return None
    try:
        return await sequences.version_for_enrollment(
            session, workspace_id, campaign.sequence_id, campaign.sequence_version
        )
    except (NotFound, Unprocessable):
        return None


def _step(context: _Context, step_key: str) -> SendStep:
    step = context.steps.get(step_key)
    if step is None:
        raise NotFound(
            f"Campaign {context.campaign.id} has no experiment at step {step_key!r} (a send "
            "step with variants)."
        )
    return step


def _check_metric(campaign: Campaign, metric: str) -> None:
    if metric == "conversion" and not campaign.goal:
        message = "the campaign has no goal (event type and window) to convert on"
        raise Unprocessable(
            f"The conversion metric needs a goal: {message}.",
            errors=[
                FieldError(pointer="/metric", location="body", message=message, code="no_goal")
            ],
        )


def _successes(counts: VariantCounts, metric: str) -> int:
    return {
        "open": counts.opened,
        "click": counts.clicked,
        "reply": counts.replied,
        "conversion": counts.converted,
    }[metric]


async def _report(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    context: _Context,
    step: SendStep,
    query: ReportQuery,
) -> ExperimentOut:
    campaign = context.campaign
    declaration = context.declarations.get(step.key)
    setting = context.settings.get(step.key)
    metric = query.metric or (setting.metric if setting else None)
    metric = metric or ("conversion" if campaign.goal else "click")
    alpha = setting.alpha if setting else DEFAULT_ALPHA
    min_sample = setting.min_sample if setting else DEFAULT_MIN_SAMPLE
    before = declaration.declared_at if declaration and declaration.apply_to_remaining else None
    repo = ExperimentRepository(session, workspace_id)
    counts = await repo.variant_counts(
        campaign.id, step.key, before=before, with_conversions=bool(campaign.goal)
    )
    variants = step.variants or []
    control_key = variants[0].key
    control_counts = counts.get(control_key, VariantCounts())
    control = (_successes(control_counts, metric), control_counts.sent)
    now = utcnow()
    rows: list[VariantStats] = []
    for variant in variants:
        found = counts.get(variant.key, VariantCounts())
        arm = (_successes(found, metric), found.sent)
        interval = stats.rate_interval(*arm, confidence=CONFIDENCE)
        row: dict[str, Any] = {
            "key": variant.key,
            "weight": variant.weight,
            "control": variant.key == control_key,
            **vars(found),
            "successes": arm[0],
            "rate": stats.rate(*arm),
            "interval": _interval(interval),
            "lift": None,
            "relative_lift": None,
            "lift_interval": None,
            "p_value_fixed_horizon": None,
            "p_value": None,
            "confidence_sequence": None,
            "probability_to_beat_control": None,
        }
        if variant.key != control_key and arm[1] > 0 and control[1] > 0:
            lift = stats.lift(control, arm, CONFIDENCE)
            assert lift is not None
            sequential = stats.msprt(control, arm, alpha=1 - CONFIDENCE)
            bounds = sequential.interval
            look = await repo.record_look(
                campaign.id,
                step_key=step.key,
                metric=metric,
                variant=variant.key,
                p_value=sequential.p_value,
                interval=(bounds.low, bounds.high) if bounds else None,
                now=now,
            )
            running = None
            if look.interval_low is not None and look.interval_high is not None:
                running = stats.Interval(look.interval_low, look.interval_high)
            row.update(
                lift=lift.absolute,
                relative_lift=lift.relative,
                lift_interval=_interval(lift.interval),
                p_value_fixed_horizon=stats.z_test(control, arm),
                p_value=look.p_value,
                confidence_sequence=_interval(running),
                probability_to_beat_control=stats.probability_to_beat(control, arm),
            )
        rows.append(VariantStats(**row))
    smallest = min(row.sent for row in rows)
    leader = _leader(rows, alpha)
    if declaration is not None:
        status = "winner_declared"
    elif smallest < min_sample:
        status = "collecting"
    elif leader is not None:
        status = "significant"
    else:
        status = "inconclusive"
    baseline = rows[0].rate
    needed = stats.sample_size(baseline, query.mde, alpha, query.power) if baseline else None
    return ExperimentOut(
        campaign_id=campaign.id,
        step_key=step.key,
        channel=step.channel,
        metric=metric,
        status=status,
        alpha=alpha,
        control=control_key,
        variants=rows,
        leader=leader if smallest >= min_sample else None,
        sample_size=SampleSizeOut(
            mde=query.mde,
            alpha=alpha,
            power=query.power,
            baseline=baseline,
            per_variant=needed,
            remaining=max(0, needed - smallest) if needed is not None else None,
        ),
        settings=_settings_out(setting) if setting else None,
        winner=_declaration_out(declaration) if declaration else None,
    )


def _leader(rows: list[VariantStats], alpha: float) -> str | None:
    """The variant to declare, if any: each treatment is tested against control at
    alpha / (number of treatments) (Bonferroni). The best-rated treatment significantly
    above control wins; when every treatment is significantly below control, control wins."""
    treatments = rows[1:]
    corrected = alpha / len(treatments)

    def significant(row: VariantStats) -> bool:
        return row.p_value is not None and row.p_value < corrected

    better = [row for row in treatments if significant(row) and (row.lift or 0) > 0]
    if better:
        return max(better, key=lambda row: (row.rate or 0.0, -rows.index(row))).key
    if all(significant(row) and (row.lift or 0) < 0 for row in treatments):
        return rows[0].key
    return None


async def _declare(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    context: _Context,
    report: ExperimentOut,
    *,
    variant: str,
    apply_to_remaining: bool,
    declared_by: str,
    actor: Actor,
) -> DeclarationOut | None:
    campaign = context.campaign
    winner = next(row for row in report.variants if row.key == variant)
    snapshot = report.model_dump(mode="json", include={"metric", "alpha", "control", "variants"})
    declaration = await DeclarationRepository(session, workspace_id).insert(
        {
            "id": new_id(),
            "campaign_id": campaign.id,
            "sequence_id": context.sequence_id,
            "sequence_version_id": context.version_id,
            "step_key": report.step_key,
            "variant": variant,
            "metric": report.metric,
            "declared_by": declared_by,
            "apply_to_remaining": apply_to_remaining,
            "snapshot": {**snapshot, "p_value": _winner_p(report, winner)},
            "member_id": actor.member_id,
            "api_key_id": actor.api_key_id,
            "declared_at": utcnow(),
        }
    )
    if declaration is None:
        return None
    out = _declaration_out(declaration)
    await audit.record(
        session,
        workspace_id,
        actor,
        "experiment.winner_declared",
        entity_type="campaign",
        entity_id=campaign.id,
        data=out.model_dump(mode="json"),
    )
    await emit(
        session,
        workspace_id,
        ExperimentWinnerDeclared(
            campaign_id=campaign.id,
            sequence_id=context.sequence_id,
            step_key=report.step_key,
            variant=variant,
            metric=report.metric,
            declared_by="manual" if declared_by == "manual" else "automatic",
        ),
    )
    return out


def _winner_p(report: ExperimentOut, winner: VariantStats) -> float | None:
    """The always-valid p-value behind the winner: its own vs control, or for control the
    largest of the treatments' (control won only if all of them lost)."""
    if not winner.control:
        return winner.p_value
    values = [row.p_value for row in report.variants[1:] if row.p_value is not None]
    return max(values) if values else None


def _interval(interval: stats.Interval | None) -> IntervalOut | None:
    return IntervalOut(low=interval.low, high=interval.high) if interval else None


def _settings_out(setting: ExperimentSetting) -> SettingsOut:
    return SettingsOut(
        metric=setting.metric,
        auto_declare=setting.auto_declare,
        min_sample=setting.min_sample,
        alpha=setting.alpha,
        apply_to_remaining=setting.apply_to_remaining,
    )


def _declaration_out(row: ExperimentDeclaration) -> DeclarationOut:
    return DeclarationOut(
        id=row.id,
        campaign_id=row.campaign_id,
        sequence_id=row.sequence_id,
        step_key=row.step_key,
        variant=row.variant,
        metric=row.metric,
        declared_by=row.declared_by,
        apply_to_remaining=row.apply_to_remaining,
        p_value=row.snapshot.get("p_value"),
        declared_at=row.declared_at,
    )
