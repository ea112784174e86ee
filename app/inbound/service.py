"""`POST /v1/inbound/{provider}`: authenticate the raw body, split it into items, check each
on its own, hand the good ones to `app.channels.outcomes`. Stateless; the caller owns the
transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.outcomes import ProviderEvent, apply_provider_events
from app.config import InboundProviderSettings, Settings
from app.core.clock import utcnow
from app.core.errors import BadRequest, FieldError, NotFound, Unprocessable, pointer_for
from app.inbound.schemas import MAX_BATCH, InboundEvent
from app.inbound.signatures import verify

# As for the event API: clocks drift, more than this ahead is a provider bug.
FUTURE_TOLERANCE = timedelta(minutes=5)


def provider_settings(settings: Settings, provider: str) -> InboundProviderSettings:
    config = settings.inbound.providers.get(provider)
    if config is None:
        raise NotFound(f"No inbound provider named {provider!r} is configured.")
    return config


async def receive(
    session: AsyncSession,
    settings: Settings,
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """The `InboundAnswer` shape. 404 unknown provider, 401 bad signature (checked before
    the body is even parsed), 400 / 422 for a body that is not one event or a batch."""
    config = provider_settings(settings, provider)
    now = utcnow()
    delivery_id = verify(config, headers, body, now)
    items, prefix = _split(body)
    results: list[dict[str, Any] | None] = [None] * len(items)
    reports: list[ProviderEvent] = []
    for index, raw in enumerate(items):
        pointer = prefix.format(index=index)
        try:
            event = InboundEvent.model_validate(raw)
        except ValidationError as exc:
            results[index] = _invalid(index, _errors(pointer, exc))
            continue
        occurred_at = event.occurred_at or now
        if occurred_at > now + FUTURE_TOLERANCE:
            error = FieldError(
                pointer=f"{pointer}/occurred_at",
                location="body",
                message="is more than 5 minutes in the future",
                code="future_timestamp",
            )
            results[index] = _invalid(index, [error.model_dump()])
            continue
        event_id = event.event_id
        if event_id is None and delivery_id is not None:
            # A Standard Webhooks retry keeps its webhook-id: resending is harmless.
            event_id = delivery_id if prefix == "" else f"{delivery_id}/{index}"
        reports.append(
            ProviderEvent(
                index=index,
                kind=event.type,
                message_id=event.herald_id,
                provider_message_id=event.provider_message_id,
                occurred_at=occurred_at,
                event_id=event_id,
                # A bounce the provider did not classify is taken as permanent.
                bounce_type=event.bounce_type or ("hard" if event.type == "bounced" else None),
                reason=event.reason,
                url=event.url,
            )
        )
    statuses = await apply_provider_events(session, provider, reports)
    for report in reports:
        status = statuses[report.index]
        answer: dict[str, Any] = {"index": report.index, "status": status}
        if status == "unknown_message":
            field_name = "message_id" if report.message_id is not None else "provider_message_id"
            answer["errors"] = [
                {
                    "pointer": f"{prefix.format(index=report.index)}/{field_name}",
                    "location": "body",
                    "message": "no email message with this id",
                    "code": "unknown_message",
                }
            ]
        results[report.index] = answer
    done = [result for result in results if result is not None]
    counts = {"accepted": 0, "duplicate": 0, "unknown_message": 0, "invalid": 0}
    for result in done:
        counts[result["status"]] += 1
    return {
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "unknown": counts["unknown_message"],
        "invalid": counts["invalid"],
        "results": done,
    }


def _split(body: bytes) -> tuple[list[Any], str]:
    """The items and the pointer prefix of each (`/events/{index}`, or `` for one event)."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadRequest("The body is not valid JSON.") from exc
    if not isinstance(document, dict):
        raise _shape('The body must be a JSON object: one event, or `{"events": [...]}`.', "")
    if "events" not in document:
        return [document], ""
    events = document["events"]
    if len(document) != 1:
        extra = sorted(key for key in document if key != "events")[0]
        raise _shape("A batch body has only `events`.", f"/{extra}", "extra_forbidden")
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_BATCH:
        raise _shape(f"`events` must be a list of 1 to {MAX_BATCH} events.", "/events")
    return events, "/events/{index}"


def _shape(detail: str, pointer: str, code: str = "invalid_shape") -> Unprocessable:
    return Unprocessable(
        detail,
        errors=[FieldError(pointer=pointer, location="body", message=detail, code=code)],
    )


def _errors(prefix: str, exc: ValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        _, pointer = pointer_for(("body", *error["loc"]))
        errors.append(
            {
                "pointer": prefix + pointer,
                "location": "body",
                "message": str(error["msg"]),
                "code": str(error["type"]),
            }
        )
    return errors


def _invalid(index: int, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"index": index, "status": "invalid", "errors": errors}
