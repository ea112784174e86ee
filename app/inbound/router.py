"""Inbound provider events: `POST /v1/inbound/{provider}` (see docs/inbound.md).

No API key: the provider signs the raw body with the secret configured for it
(`HERALD_INBOUND__PROVIDERS`), so the route reads the bytes itself instead of letting
FastAPI parse them; the signature is checked before anything else is."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic_core import to_json

from app.config import Settings
from app.core.deps import Session
from app.core.openapi import problem_responses
from app.inbound import service
from app.inbound.schemas import InboundAnswer, request_body_schema

router = APIRouter(prefix="/v1", tags=["Inbound"])

Provider = Annotated[
    str,
    Path(
        min_length=1,
        max_length=50,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The provider's name, as configured in `HERALD_INBOUND__PROVIDERS`.",
    ),
]


def _responses() -> dict[int | str, dict[str, Any]]:
    responses = problem_responses(400, 401, 404, 413, 415, 422)
    responses[400]["description"] = "The body is not valid JSON."
    responses[401]["description"] = (
        "A signature header is missing or malformed, no signature matches the body, or the "
        "timestamp is outside the provider's tolerance. `detail` says which."
    )
    responses[404]["description"] = "No provider of that name is configured."
    responses[422]["description"] = (
        'The body is neither one event nor `{"events": [...]}` with 1-1,000 items (bad '
        "items of a valid body are answered per item instead)."
    )
    return responses


@router.post(
    "/inbound/{provider}",
    summary="Receive provider events",
    description=(
        "Delivery reports from an email provider: `delivered`, `bounced` (`hard` / `soft`), "
        '`complained`, `opened`, `clicked`, `replied`, one event or `{"events": [...]}` '
        "(1-1,000). No API key: the request must be signed with the provider's secret, "
        "either Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) "
        "or Herald's HMAC scheme (`X-Herald-Timestamp`, `X-Herald-Signature: "
        "sha256=<hex HMAC-SHA256(secret, timestamp + '.' + body)>`), as configured per "
        "provider. Each event names a message (`message_id` or `provider_message_id`) and "
        "becomes an `email.*` event on its contact (waits and exit rules see it), updates "
        "the message, and emits `message.*` webhooks; hard bounces and complaints suppress "
        "the address and exit the contact's enrollments. `event_id` (or the `webhook-id`) "
        "deduplicates: a resend changes nothing. Answers 200 with one result per item "
        "(`accepted`, `duplicate`, `unknown_message`, `invalid`): one bad item never fails "
        "the others. See docs/inbound.md."
    ),
    response_model=InboundAnswer,
    responses=_responses(),
    openapi_extra={
        "security": [],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": request_body_schema()}},
        },
    },
)
async def receive_provider_events(
    provider: Provider, request: Request, session: Session
) -> Response:
    settings: Settings = request.app.state.herald.settings
    body = await request.body()
    answer = await service.receive(session, settings, provider, request.headers, body)
    # Serialised directly (shape: InboundAnswer), as the event batch answer is.
    return Response(to_json(answer), media_type="application/json")
