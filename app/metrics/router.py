"""Campaign metrics endpoints: stats, time series and the live stream (server-sent events)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.grammar import QueryInstant
from app.core.openapi import COMMON_ERRORS, SSE_ITEM_SCHEMA, document_model, problem_responses
from app.core.state import app_state
from app.metrics import live, service
from app.metrics.schemas import (
    STATS_EVENT_EXAMPLE,
    Bucket,
    CampaignStats,
    CampaignTimeseries,
    GroupBy,
    SeriesGroupBy,
    StatsEvent,
)

router = APIRouter(prefix="/v1", tags=["Metrics"])
Reader = Annotated[Principal, Caller("campaigns", "read")]

_STREAM_EXAMPLE = (
    "retry: 1000\n\n"
    + live.format_event("snapshot", 41, STATS_EVENT_EXAMPLE).decode()
    + ": heartbeat\n\n"
    + live.format_event("stats", 42, STATS_EVENT_EXAMPLE).decode()
)


@router.get(
    "/campaigns/{campaign_id}/stats",
    summary="Campaign stats",
    description=(
        "Totals of a campaign: enrolled, completed, exited, unsubscribed, sent, delivered, "
        "bounced, failed, unknown, opened / clicked / replied (unique = messages with at least "
        "one, total = every event), converted and revenue, with rates (denominators in each "
        "field's description; a zero denominator gives null). `group_by` adds one row per step, "
        "per step and variant, per channel, or per include segment (current members). Figures "
        "are exact at any moment: folded rollups plus the changes not yet folded."
    ),
    response_model=CampaignStats,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def campaign_stats(
    campaign_id: uuid.UUID,
    session: Session,
    principal: Reader,
    group_by: Annotated[GroupBy | None, Query(description="Add a breakdown.")] = None,
) -> Response:
    body = await service.campaign_stats_json(session, principal.workspace_id, campaign_id, group_by)
    return Response(body, media_type="application/json")


@router.get(
    "/campaigns/{campaign_id}/stats/timeseries",
    summary="Campaign stats over time",
    description=(
        "The campaign's figures per `hour` (UTC hours) or per `day` (midnight to midnight in the "
        "campaign's timezone, DST-aware), for every bucket whose start lies in [`from`, `to`); "
        "empty buckets are included. `from` defaults to the launch (or creation), `to` to now. "
        "`group_by` gives one series per step, per step and variant, or per channel. At most "
        "2,000 buckets per request (422 beyond)."
    ),
    response_model=CampaignTimeseries,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def campaign_timeseries(
    campaign_id: uuid.UUID,
    *,
    request: Request,
    session: Session,
    principal: Reader,
    bucket: Annotated[Bucket, Query(description="Bucket size.")] = "day",
    start: Annotated[
        QueryInstant | None, Query(alias="from", description="Range start (inclusive, RFC 3339).")
    ] = None,
    end: Annotated[
        QueryInstant | None, Query(alias="to", description="Range end (exclusive, RFC 3339).")
    ] = None,
    group_by: Annotated[SeriesGroupBy | None, Query(description="One series per group.")] = None,
) -> Response:
    config = service.metrics_settings(app_state(request).settings)
    body = await service.campaign_timeseries_json(
        session,
        principal.workspace_id,
        campaign_id,
        config,
        bucket=bucket,
        start=start,
        end=end,
        group_by=group_by,
    )
    return Response(body, media_type="application/json")


_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "A `text/event-stream`: `snapshot` (current totals, on connect or after missed "
            "events), `stats` (totals after a change, within about a second), `: heartbeat` "
            "comments. Each event's `data` is a StatsEvent."
        ),
        "content": {
            "text/event-stream": {
                "schema": {"type": "string"},
                # Each event's `data` (OpenAPI 3.2 `itemSchema`, as an extension in 3.1).
                SSE_ITEM_SCHEMA: document_model(StatsEvent),
                "example": _STREAM_EXAMPLE,
            }
        },
    },
    **problem_responses(*COMMON_ERRORS, 404, 422),
}


@router.get(
    "/campaigns/{campaign_id}/stream",
    summary="Live campaign counters (SSE)",
    description=(
        "Server-sent events with the campaign's totals: a `snapshot` on connect, then a "
        "`stats` event after every change (published when the metrics fold runs, every "
        "second), and a heartbeat comment every 15 s. Event ids increase per campaign: "
        "reconnect with `Last-Event-ID` and, if ids were missed, the stream starts with a fresh "
        "`snapshot`; if none were, it resumes without one. The `data` of each event is a "
        "`StatsEvent` object."
    ),
    response_class=StreamingResponse,
    responses=_STREAM_RESPONSES,
)
async def campaign_stream(
    campaign_id: uuid.UUID,
    request: Request,
    session: Session,
    principal: Reader,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=32, description="Resume after this id."),
    ] = None,
) -> StreamingResponse:
    state = app_state(request)
    config = service.metrics_settings(state.settings)
    await service.require_campaign(session, principal.workspace_id, campaign_id)
    pubsub = state.redis.pubsub()
    try:
        # Subscribe, then read the id, then the totals: a change after the id read arrives as
        # an event; one before it is in the snapshot.
        await pubsub.subscribe(live.channel(campaign_id))
        current = await live.current_id(state.redis, campaign_id)
        first = None
        if live.parse_last_event_id(last_event_id) != current:
            totals = await service.campaign_totals(session, principal.workspace_id, campaign_id)
            data = StatsEvent(campaign_id=campaign_id, totals=totals).model_dump(mode="json")
            first = live.format_event("snapshot", current, data)
    except BaseException:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        raise
    body = live.relay(pubsub, first, current, config.heartbeat_seconds)
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
