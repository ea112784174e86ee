"""Audit log response shapes and list filters (the log is read-only over the API)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from app.core.schemas import ResponseModel

# `campaign.submitted` (exact) or `campaign.*` (every action starting with `campaign.`).
ACTION_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?$"
ActionFilter = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=ACTION_PATTERN)
]
EntityType = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")]
RequestId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
]

_EVENT_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b90"
_CAMPAIGN_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b91"
_MEMBER_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b92"
_KEY_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b93"
_EXAMPLE: dict[str, Any] = {
    "id": _EVENT_ID,
    "occurred_at": "2026-11-22T09:30:00Z",
    "actor": {"type": "member", "member_id": _MEMBER_ID, "api_key_id": _KEY_ID},
    "action": "campaign.updated",
    "entity_type": "campaign",
    "entity_id": _CAMPAIGN_ID,
    "changes": {"name": {"before": "Spring sale", "after": "Spring sale (EU)"}},
    "data": None,
    "request_id": "5f0c6a2b9d8e4f71",
}
_KEY_USE_EXAMPLE: dict[str, Any] = {
    **_EXAMPLE,
    "actor": {"type": "key", "member_id": None, "api_key_id": _KEY_ID},
    "action": "api.patch",
    "changes": None,
    "data": {
        "path": f"/v1/campaigns/{_CAMPAIGN_ID}",
        "route": "/v1/campaigns/{campaign_id}",
        "status": 200,
    },
}


@dataclass(frozen=True)
class AuditFilters:
    """List filters; `action` ending in `.*` is a prefix match."""

    action: str | None = None
    entity_type: str | None = None
    entity_id: uuid.UUID | None = None
    member_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None
    request_id: str | None = None


class ActorOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"type": "member", "member_id": _MEMBER_ID, "api_key_id": _KEY_ID}]
        }
    )

    type: Literal["member", "key", "system"] = Field(
        description="`member`: a key bound to a member; `key`: an unbound key; `system`: a job."
    )
    member_id: uuid.UUID | None = Field(description="The member (kept after they leave).")
    api_key_id: uuid.UUID | None = Field(description="The API key used, if any.")


class AuditEventOut(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE, _KEY_USE_EXAMPLE]})

    id: uuid.UUID
    occurred_at: datetime
    actor: ActorOut
    action: str = Field(description="What happened, e.g. `campaign.submitted` or `api.post`.")
    entity_type: str = Field(description="The kind of thing it happened to, e.g. `campaign`.")
    entity_id: uuid.UUID | None = Field(description="The thing it happened to, when it has one.")
    changes: dict[str, Any] | None = Field(
        description="For edits: `{field: {before, after}}` of the fields that changed."
    )
    data: dict[str, Any] | None = Field(description="Action-specific details.")
    request_id: str | None = Field(
        description="The `X-Request-Id` of the API request that caused it (none for jobs)."
    )
