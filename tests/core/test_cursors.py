"""Signed cursors (app/core/pagination.py), bound to their list and its filters.

Regression (issue 16): cursors were bare ids; a modified cursor answered 200 and a contacts
cursor paged other lists."""

from __future__ import annotations

import base64
import re
import uuid

import httpx
import pytest

from app.core.pagination import CursorScope, InvalidCursor, cursor_key
from tests.fixtures.tenants import Tenant

INVALID = "https://herald.dev/problems/invalid-cursor"


async def _contacts(client: httpx.AsyncClient, tenant: Tenant, count: int) -> None:
    for index in range(count):
        response = await client.post(
            "/v1/contacts",
            json={"email": f"c{index}-{uuid.uuid4().hex[:6]}@acme.example"},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text


async def _next_cursor(
    client: httpx.AsyncClient, tenant: Tenant, path: str, **params: str | int
) -> str:
    response = await client.get(path, params={"limit": 1, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    cursor: str = response.json()["next_cursor"]
    assert cursor is not None
    return cursor


def _assert_invalid(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == INVALID


async def test_a_cursor_pages_its_own_list_and_is_url_safe(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _contacts(client, tenant, 3)
    cursor = await _next_cursor(client, tenant, "/v1/contacts")
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,64}", cursor)
    # `limit` may change between pages; the filters may not.
    second = await client.get(
        "/v1/contacts", params={"limit": 5, "cursor": cursor}, headers=tenant.headers
    )
    assert second.status_code == 200, second.text
    assert len(second.json()["data"]) == 2


async def test_a_modified_cursor_is_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _contacts(client, tenant, 2)
    cursor = await _next_cursor(client, tenant, "/v1/contacts")
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for position in (1, 8, 16, len(raw) - 1):  # the id, and the tag
        forged = bytearray(raw)
        forged[position] ^= 0x01
        text = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
        response = await client.get("/v1/contacts", params={"cursor": text}, headers=tenant.headers)
        _assert_invalid(response)
    # A bare id, as cursors were before: refused too.
    bare = base64.urlsafe_b64encode(bytes(raw[1:17])).rstrip(b"=").decode()
    _assert_invalid(
        await client.get("/v1/contacts", params={"cursor": bare}, headers=tenant.headers)
    )


async def test_a_cursor_of_another_list_or_other_filters_is_refused(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _contacts(client, tenant, 3)
    cursor = await _next_cursor(client, tenant, "/v1/contacts")
    for path in ("/v1/campaigns", "/v1/templates", "/v1/events", "/v1/segments"):
        response = await client.get(path, params={"cursor": cursor}, headers=tenant.headers)
        _assert_invalid(response)
    filtered = await _next_cursor(
        client, tenant, "/v1/contacts", created_after="2000-01-01T00:00:00Z"
    )
    for params in (
        {},
        {"created_after": "2000-01-01T00:00:01Z"},
        {"created_after": "2000-01-01T00:00:00Z", "email": "x@acme.example"},
    ):
        response = await client.get(
            "/v1/contacts", params={**params, "cursor": filtered}, headers=tenant.headers
        )
        _assert_invalid(response)
    same = await client.get(
        "/v1/contacts",
        params={"created_after": "2000-01-01T00:00:00Z", "cursor": filtered},
        headers=tenant.headers,
    )
    assert same.status_code == 200


async def test_a_cursor_is_bound_to_its_path_ids(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """Segment A's member cursor does not page segment B's members."""
    await _contacts(client, tenant, 2)
    contacts = (await client.get("/v1/contacts", headers=tenant.headers)).json()["data"]
    segments = []
    for name in ("A", "B"):
        created = await client.post(
            "/v1/segments", json={"name": name, "kind": "static"}, headers=tenant.headers
        )
        segment_id = created.json()["id"]
        await client.post(
            f"/v1/segments/{segment_id}/members",
            json={"contact_ids": [c["id"] for c in contacts]},
            headers=tenant.headers,
        )
        segments.append(segment_id)
    cursor = await _next_cursor(client, tenant, f"/v1/segments/{segments[0]}/members")
    own = await client.get(
        f"/v1/segments/{segments[0]}/members", params={"cursor": cursor}, headers=tenant.headers
    )
    assert own.status_code == 200
    _assert_invalid(
        await client.get(
            f"/v1/segments/{segments[1]}/members",
            params={"cursor": cursor},
            headers=tenant.headers,
        )
    )


def test_a_cursor_signed_with_another_secret_is_refused() -> None:
    position = uuid.uuid4()
    ours = CursorScope(key=cursor_key("one secret"), binding=b"/v1/contacts")
    theirs = CursorScope(key=cursor_key("another secret"), binding=b"/v1/contacts")
    assert ours.open(ours.seal(position)) == position
    with pytest.raises(InvalidCursor):
        ours.open(theirs.seal(position))
    for junk in ("", "!!", "A" * 64, "AQ"):
        with pytest.raises(InvalidCursor):
            ours.open(junk)
