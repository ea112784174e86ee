from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from app.audit.service import Actor
from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.schemas import Page
from app.experiments import service
from app.experiments.schemas import (
    DeclarationOut,
    ExperimentOut,
    Metric,
    SettingsOut,
    SettingsUpdate,
    WinnerCreate,
)
from app.experiments.service import ReportQuery

router = APIRouter(prefix="/v1", tags=["Experiments"])
Reader = Annotated[Principal, Caller("metrics", "read")]
Writer = Annotated[Principal, Caller("campaigns", "write")]
StepKeyPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$", description="The send step's key.")
]


def report_query(
    metric: Annotated[
        Metric | None,
        Query(
            description="Metric to judge on (default: the step's setting, else `conversion` "
            "with a campaign goal, else `click`)."
        ),
    ] = None,
    mde: Annotated[
        float,
        Query(
            gt=0,
            le=10,
            allow_inf_nan=False,
            description="Minimum detectable effect for `sample_size`, relative to control's rate "
            "(0.1 = +10%).",
        ),
    ] = 0.1,
    power: Annotated[
        float,
        Query(ge=0.5, lt=1, allow_inf_nan=False, description="Power for `sample_size`."),
    ] = 0.8,
) -> ReportQuery:
    return ReportQuery(metric=metric, mde=mde, power=power)


Report = Annotated[ReportQuery, Depends(report_query)]
_FIGURES = (
    "Per variant: unique contacts sent (exposures), opened, clicked, replied and converted; the "
    "metric's rate with a 95% Wilson interval; absolute and relative lift over control (the "
    "first variant) with its fixed-horizon interval; the fixed-horizon z-test p-value "
    "(reference only: valid for one planned look); the ALWAYS-VALID p-value and 95% confidence "
    "sequence of the lift (mSPRT, running over looks: safe to check at any time); the "
    "probability to beat control (Beta posteriors). Also the sample size per variant a "
    "fixed-horizon test needs for the relative lift `mde`, the status, the automatic "
    "declaration settings and the declared winner. Method and sources: docs/experiments.md."
)


@router.get(
    "/campaigns/{campaign_id}/experiments",
    summary="List a campaign's experiments",
    description="One experiment per send step with variants of the campaign's sequence "
    "version. " + _FIGURES,
    response_model=Page[ExperimentOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def list_experiments(
    campaign_id: uuid.UUID, session: Session, principal: Reader, query: Report
) -> Page[ExperimentOut]:
    found = await service.list_experiments(session, principal.workspace_id, campaign_id, query)
    return Page[ExperimentOut](data=found, next_cursor=None)


@router.get(
    "/campaigns/{campaign_id}/experiments/{step_key}",
    summary="Get one experiment",
    description="The experiment of one send step with variants (404 for another step). " + _FIGURES,
    response_model=ExperimentOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_experiment(
    campaign_id: uuid.UUID,
    step_key: StepKeyPath,
    session: Session,
    principal: Reader,
    query: Report,
) -> ExperimentOut:
    return await service.get_experiment(
        session, principal.workspace_id, campaign_id, step_key, query
    )


@router.post(
    "/campaigns/{campaign_id}/experiments/{step_key}/winner",
    # Where the 201's Location points (app/core/locations.py).
    openapi_extra={"x-location": "/v1/campaigns/{campaign_id}/experiments/{step_key}"},
    summary="Declare a winner",
    description=(
        "Record `variant` as the step's winner on `metric` (one winner per step: 409 when "
        "declared already). With `apply_to_remaining`, every contact reaching the step from "
        "now on gets the winner. Audited; emits `experiment.winner_declared`. 422 for an "
        "unknown variant or the `conversion` metric without a campaign goal."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=DeclarationOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def declare_winner(
    campaign_id: uuid.UUID,
    step_key: StepKeyPath,
    body: WinnerCreate,
    session: Session,
    principal: Writer,
) -> DeclarationOut:
    return await service.declare_winner(
        session,
        principal.workspace_id,
        campaign_id,
        step_key,
        body=body,
        actor=Actor.of(principal),
    )


@router.put(
    "/campaigns/{campaign_id}/experiments/{step_key}/settings",
    summary="Set automatic declaration",
    description=(
        "The step's experiment settings: the `metric`, and with `auto_declare` a check every "
        "minute declares the leader once every variant has `min_sample` exposures and an "
        "always-valid p-value is below `alpha` (Bonferroni-corrected across treatments), "
        "applying it to the remaining contacts with `apply_to_remaining`. Audited."
    ),
    response_model=SettingsOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def put_settings(
    campaign_id: uuid.UUID,
    step_key: StepKeyPath,
    body: SettingsUpdate,
    session: Session,
    principal: Writer,
) -> SettingsOut:
    return await service.put_settings(
        session,
        principal.workspace_id,
        campaign_id,
        step_key,
        body=body,
        actor=Actor.of(principal),
    )
