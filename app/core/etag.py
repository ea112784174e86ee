"""ETags and `If-Match` for resources edited by several people (segments, campaigns,
sequences, templates).

A resource keeps an integer `version` bumped on every edit of its editable state. Its ETag is
strong and derived from its id and that version: `"<id>.<version>"`. Server-maintained
fields (counters, refresh times) do not bump the version, so they never make an edit stale.

`If-Match` is optional: without it an edit applies ("last write wins"); with it, the edit
applies only when one of the listed tags (or `*`) matches the current ETag, otherwise 412.
Weak tags (`W/"..."`) are compared by their opaque part, which is lenient but never wrong here:
the tag is computed from the version only.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import Header, Response

from app.core.errors import BadRequest, PreconditionFailed
from app.core.openapi import COMMON_ERRORS, problem_responses

# One entity tag (RFC 9110 section 8.8.3): optional W/ then a quoted string of etagc chars.
_ENTITY_TAG = re.compile(r'\s*(?:W/)?"([\x21\x23-\x7e]*)"\s*')
MAX_IF_MATCH_LENGTH = 1024

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=MAX_IF_MATCH_LENGTH,
        description=(
            "Optional. The `ETag` you last read; the edit is refused with 412 when the resource "
            "changed since. `*` matches any current version."
        ),
    ),
]


def make_etag(resource_id: uuid.UUID, version: int) -> str:
    return f'"{resource_id}.{version}"'


def set_etag(response: Response, resource_id: uuid.UUID, version: int) -> None:
    response.headers["ETag"] = make_etag(resource_id, version)


def parse_if_match(value: str) -> list[str] | None:
    """The opaque tags of an `If-Match` value; None for `*`. Malformed values are a 400."""
    stripped = value.strip()
    if stripped == "*":
        return None
    tags: list[str] = []
    for part in _split_tags(stripped):
        match = _ENTITY_TAG.fullmatch(part)
        if match is None:
            raise BadRequest(
                'The `If-Match` header must be `*` or a list of entity tags like `"<etag>"`.'
            )
        tags.append(match.group(1))
    return tags


def check_if_match(if_match: str | None, resource_id: uuid.UUID, version: int) -> None:
    """Raise 412 when `If-Match` is present and matches neither `*` nor the current ETag."""
    if if_match is None:
        return
    tags = parse_if_match(if_match)
    if tags is None:
        return
    current = make_etag(resource_id, version)
    if current.strip('"') not in tags:
        raise PreconditionFailed(
            f"The resource changed since you read it: its current ETag is {current}. "
            "Fetch it again, re-apply your edit and retry.",
            extra={"current_etag": current},
        )


def _split_tags(value: str) -> list[str]:
    """Split on commas outside quotes (a tag may contain commas, never a double quote)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def responses_with_etag(noun: str, status: int, *errors: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for an operation answering `status` with an `ETag` header."""
    responses = problem_responses(*COMMON_ERRORS, *errors)
    responses[status] = {
        "headers": {
            "ETag": {
                "description": f"The {noun}'s current entity tag; send it as `If-Match` to edit.",
                "schema": {"type": "string"},
            }
        }
    }
    return responses
