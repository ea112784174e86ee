"""The OpenAPI 3.1 `webhooks` section, generated from the event catalogue.

One entry per event type: the request Herald POSTs (the versioned envelope with that type's
`data` schema and example), the Standard Webhooks headers, and what the receiver's answer means.
"""

# No `from __future__ import annotations`: FastAPI must see the per-type body model itself.
from datetime import datetime
from typing import Any, Literal

from fastapi import FastAPI, Header
from pydantic import BaseModel, ConfigDict, Field, create_model

from app.outbox.catalogue import CATALOGUE, EXAMPLE_TIME, EventData, envelope

_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Received (any 2xx): the delivery succeeded."},
    "410": {"description": "Gone: the endpoint is disabled at once."},
    "429": {"description": "Slow down: the next attempt waits for `Retry-After`."},
    "default": {
        "description": "Any other answer (3xx included: redirects are never followed), a "
        "timeout (15 s) or a connection error is retried: about now, 5 s, 5 min, 30 min, "
        "2 h, 5 h, 10 h, 10 h, with jitter."
    },
}


def _example(data: type[EventData]) -> dict[str, Any]:
    return envelope(data.model_validate(data.EXAMPLE), EXAMPLE_TIME)


def _envelope_model(data: type[EventData]) -> type[BaseModel]:
    name = "Webhook" + "".join(part.title() for part in data.TYPE.replace("_", ".").split("."))
    return create_model(
        name,
        __config__=ConfigDict(json_schema_extra={"examples": [_example(data)]}),
        type=(Literal[data.TYPE], Field(description="The event type.")),  # type: ignore[arg-type]
        version=(int, Field(description="Payload version of this type.", examples=[data.VERSION])),
        timestamp=(datetime, Field(description="When the change happened (RFC 3339, UTC).")),
        data=(data, ...),
    )


def register_webhooks(app: FastAPI) -> None:
    for event_type, data in sorted(CATALOGUE.items()):
        model = _envelope_model(data)

        async def receiver(
            body: model,  # type: ignore[valid-type]
            webhook_id: str = Header(description="Stable per event: deduplicate on it."),
            webhook_timestamp: int = Header(description="Unix seconds of this attempt."),
            webhook_signature: str = Header(
                description="`v1,<base64 HMAC-SHA256 of id.timestamp.body>`; two during a "
                "secret rotation, space-separated."
            ),
        ) -> None:
            """Documentation only: Herald calls the receiver, never this function."""

        receiver.__name__ = "webhook_" + event_type.replace(".", "_")
        app.webhooks.add_api_route(
            event_type,
            receiver,
            methods=["POST"],
            summary=data.SUMMARY,
            description=f"{data.DESCRIPTION}\n\nPayload version {data.VERSION}.",
            tags=["Webhook events"],
            responses=_ANSWERS,
            generate_unique_id_function=lambda route: route.name,
        )
