""" "What uses this": references to a sequence, segment, template or approval policy.

A resource is owned by a lower domain (segments, templates, sequences, approvals) but used by
higher ones (campaigns, sequences, triggers). The higher domains register a finder here for
each kind they can use; the owner asks `find_usage` before a delete (409 `in-use` naming the
users) and serves `GET .../{id}/usage` from the same answer, so the two never disagree and no
lower domain imports a higher one.

Which states count as "using" is each finder's decision, documented in docs/errors.md:
campaigns count until they are finished (completed, cancelled, archived), except for a
sequence, which every campaign that ran or will run it keeps as its record.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, Conflict
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.schemas import ResponseModel

UsedKind = Literal["sequence", "segment", "template", "approval_policy"]
UserKind = Literal["campaign", "sequence", "segment", "trigger"]


_EXAMPLE_USER: dict[str, Any] = {
    "kind": "campaign",
    "id": "0190f3c8-8d2e-7b61-9a55-000000000002",
    "name": "Spring sale",
    "status": "scheduled",
    "via": "include_segments",
}


class UsageRef(ResponseModel):
    """One thing that uses the resource."""

    kind: UserKind = Field(
        description="`campaign`, `sequence`, `segment`, or `trigger` (a triggered campaign's "
        "trigger; `id` and `name` are the campaign's)"
    )
    id: uuid.UUID
    name: str
    status: str | None = Field(
        None, description="The user's status where it has one (a campaign's status)"
    )
    via: str = Field(
        description="How it uses the resource, e.g. `sequence_id`, `include_segments`, "
        "`definition`, `rule`"
    )


class UsageOut(ResponseModel):
    """Everything that uses a resource; it can be deleted when `used_by` is empty."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-000000000001",
                    "kind": "segment",
                    "in_use": True,
                    "used_by": [_EXAMPLE_USER],
                }
            ]
        }
    }

    id: uuid.UUID = Field(description="The resource asked about")
    kind: UsedKind
    in_use: bool = Field(description="Whether a delete would be refused with 409 `in-use`")
    used_by: list[UsageRef]


UsageFinder = Callable[[AsyncSession, uuid.UUID, uuid.UUID], Awaitable[list[UsageRef]]]

_FINDERS: dict[UsedKind, dict[str, UsageFinder]] = {}


def register_usage_finder(kind: UsedKind, name: str, finder: UsageFinder) -> None:
    """`finder(session, workspace_id, resource_id)` lists the users it knows of (scoped to
    the workspace); registering the same name again replaces it."""
    _FINDERS.setdefault(kind, {})[name] = finder


async def find_usage(
    session: AsyncSession, workspace_id: uuid.UUID, kind: UsedKind, resource_id: uuid.UUID
) -> UsageOut:
    used_by: list[UsageRef] = []
    for finder in _FINDERS.get(kind, {}).values():
        used_by.extend(await finder(session, workspace_id, resource_id))
    used_by.sort(key=lambda ref: (ref.kind, ref.name, str(ref.id), ref.via))
    return UsageOut(id=resource_id, kind=kind, in_use=bool(used_by), used_by=used_by)


class InUse(Conflict):
    slug, title = "in-use", "Resource in use"


_NOUNS: dict[UsedKind, str] = {
    "sequence": "Sequence",
    "segment": "Segment",
    "template": "Template",
    "approval_policy": "Approval policy",
}


async def refuse_if_used(
    session: AsyncSession, workspace_id: uuid.UUID, kind: UsedKind, resource_id: uuid.UUID
) -> None:
    """409 `in-use` naming every user (`used_by`, as in `GET .../usage`) when anything
    uses the resource."""
    usage = await find_usage(session, workspace_id, kind, resource_id)
    if not usage.in_use:
        return
    shown = usage.used_by[:10]
    names = "; ".join(f"{ref.kind} {ref.name!r} ({ref.id}) via {ref.via}" for ref in shown)
    more = f" and {len(usage.used_by) - len(shown)} more" if len(usage.used_by) > 10 else ""
    raise InUse(
        f"{_NOUNS[kind]} {resource_id} is in use by {names}{more}. Remove those references "
        f"first (GET its /usage lists them).",
        extra={"used_by": [ref.model_dump(mode="json") for ref in usage.used_by]},
    )


_IN_USE_EXAMPLE = {
    "type": PROBLEM_BASE + "in-use",
    "title": "Resource in use",
    "status": 409,
    "detail": "Segment 0190f3c8-8d2e-7b61-9a55-000000000001 is in use by campaign 'Spring "
    "sale' (0190f3c8-8d2e-7b61-9a55-000000000002) via include_segments. Remove those "
    "references first (GET its /usage lists them).",
    "request_id": "5f0c6a2b9d8e4f71",
    "used_by": [_EXAMPLE_USER],
}


def delete_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A delete's documented errors: the common ones, 404, and 409 `in-use` (with `used_by`)
    besides `statuses`."""
    responses = problem_responses(*COMMON_ERRORS, 404, 409, *statuses)
    conflict = responses[409]
    conflict["description"] = (
        "The resource is in use (`in-use`, with `used_by` as in `GET .../usage`), or "
        "another conflict with its current state."
    )
    conflict["content"][PROBLEM_MEDIA_TYPE]["example"] = _IN_USE_EXAMPLE
    return responses


USAGE_RESPONSES = problem_responses(*COMMON_ERRORS, 404, 422)


def usage_description(noun: str, users: str) -> str:
    return (
        f"Everything that uses this {noun} ({users}): the same list a `DELETE` answers with "
        "409 `in-use` while it is not empty. Another workspace's id is 404."
    )
