"""Sequences API: CRUD with ETags, the signing secret, publishing pinned immutable versions,
deletion guarded by live enrollments, `version_for_enrollment`, scopes."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import utcnow
from app.core.egress import GuardPolicy
from app.core.errors import NotFound, Unprocessable
from app.sequences import service
from app.sequences.models import Enrollment, Sequence
from app.sequences.schemas import SequenceUpdate
from app.sequences.service import version_for_enrollment
from app.templates.models import TemplateVersion
from tests.fixtures.rows import contact_row, insert_rows
from tests.fixtures.tenants import Tenant, make_key
from tests.sequences.helpers import create_sequence, publish_template, template, welcome

SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$")


async def _welcome(client: httpx.AsyncClient, tenant: Tenant) -> tuple[str, str, dict[str, Any]]:
    first, second = await template(client, tenant), await template(client, tenant)
    return first, second, welcome(first, second)


async def test_crud_and_etag(client: httpx.AsyncClient, tenant: Tenant) -> None:
    _, _, definition = await _welcome(client, tenant)
    response = await client.post(
        "/v1/sequences",
        json={"name": "Onboarding", "description": "First week", "definition": definition},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["version"] == 1
    assert body["published_version"] is None
    assert body["description"] == "First week"
    assert body["definition"]["steps"][1]["timeout"] == "P3D"
    assert response.headers["etag"] == body["etag"] == f'"{body["id"]}.1"'
    assert response.headers["location"] == f"/v1/sequences/{body['id']}"
    url = f"/v1/sequences/{body['id']}"

    got = await client.get(url, headers=tenant.headers)
    assert got.status_code == 200
    assert got.headers["etag"] == body["etag"]
    assert got.json()["definition"] == body["definition"]

    patched = await client.patch(
        url,
        json={"name": "Onboarding v2", "description": None},
        headers={**tenant.headers, "If-Match": body["etag"]},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2
    assert patched.json()["description"] is None
    same = await client.patch(url, json={"definition": definition}, headers=tenant.headers)
    assert same.json()["version"] == 2  # nothing changed: no bump

    stale = await client.patch(
        url, json={"name": "Lost"}, headers={**tenant.headers, "If-Match": body["etag"]}
    )
    assert stale.status_code == 412
    assert stale.json()["current_etag"] == patched.json()["etag"]
    stale_delete = await client.delete(url, headers={**tenant.headers, "If-Match": body["etag"]})
    assert stale_delete.status_code == 412

    deleted = await client.delete(
        url, headers={**tenant.headers, "If-Match": patched.json()["etag"]}
    )
    assert deleted.status_code == 204
    assert (await client.get(url, headers=tenant.headers)).status_code == 404


async def test_patch_refuses_null_name_or_definition(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await create_sequence(client, tenant, {"steps": [{"key": "d", "type": "exit"}]})
    url = f"/v1/sequences/{created['id']}"
    response = await client.patch(
        url, json={"name": None, "definition": None}, headers=tenant.headers
    )
    assert response.status_code == 422
    assert {e["pointer"] for e in response.json()["errors"]} == {"/name", "/definition"}
    bad = await client.patch(
        url, json={"definition": {"steps": [{"key": "d", "type": "wat"}]}}, headers=tenant.headers
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"].startswith("/definition/steps/0")
    assert (await client.get(url, headers=tenant.headers)).json()["version"] == 1


async def test_list_pages_and_filters_by_name(client: httpx.AsyncClient, tenant: Tenant) -> None:
    exit_only = {"steps": [{"key": "d", "type": "exit"}]}
    for name in ("Onboarding", "Win-back 50%", "Re-onboarding"):
        await create_sequence(client, tenant, exit_only, name=name)
    first = await client.get("/v1/sequences?limit=2", headers=tenant.headers)
    assert [s["name"] for s in first.json()["data"]] == ["Re-onboarding", "Win-back 50%"]
    cursor = first.json()["next_cursor"]
    rest = await client.get(f"/v1/sequences?limit=2&cursor={cursor}", headers=tenant.headers)
    assert [s["name"] for s in rest.json()["data"]] == ["Onboarding"]
    assert rest.json()["next_cursor"] is None
    named = await client.get("/v1/sequences?name=ONBOARD", headers=tenant.headers)
    assert [s["name"] for s in named.json()["data"]] == ["Re-onboarding", "Onboarding"]
    literal = await client.get("/v1/sequences", params={"name": "0%"}, headers=tenant.headers)
    assert [s["name"] for s in literal.json()["data"]] == ["Win-back 50%"]
    none = await client.get("/v1/sequences", params={"name": "_"}, headers=tenant.headers)
    assert none.json()["data"] == []
    nul = await client.get("/v1/sequences", params={"name": "a\x00"}, headers=tenant.headers)
    assert nul.status_code == 422
    assert nul.json()["errors"][0]["pointer"] == "/name"


async def test_signing_secret_is_shown_once_and_rotates(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    created = await create_sequence(client, tenant, {"steps": [{"key": "d", "type": "exit"}]})
    secret = created["signing_secret"]
    assert SECRET.match(secret)
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    url = f"/v1/sequences/{created['id']}"
    reads = [
        await client.get(url, headers=tenant.headers),
        await client.get("/v1/sequences", headers=tenant.headers),
        await client.patch(url, json={"name": "Renamed"}, headers=tenant.headers),
    ]
    for response in reads:
        assert "signing_secret" not in response.text
        assert secret not in response.text

    rotated = await client.post(f"{url}/signing-secret", headers=tenant.headers)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["signing_secret"]
    assert rotated.json()["sequence_id"] == created["id"]
    assert SECRET.match(new)
    assert new != secret
    assert new not in (await client.get(url, headers=tenant.headers)).text
    async with session_factory() as session:
        stored = await session.scalar(
            select(Sequence.signing_secret).where(Sequence.id == uuid.UUID(created["id"]))
        )
    assert stored == new


async def test_publish_normalises_and_pins_templates(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    first, second, definition = await _welcome(client, tenant)
    third = await template(client, tenant)
    definition["steps"][2] = {
        "key": "follow_up",
        "type": "send",
        "channel": "email",
        "variants": [
            {"key": "a", "template_id": second, "weight": 3},
            {"key": "b", "template_id": third},
        ],
    }
    sequence = await create_sequence(client, tenant, definition)
    url = f"/v1/sequences/{sequence['id']}"

    published = await client.post(f"{url}/publish", headers=tenant.headers)
    assert published.status_code == 201, published.text
    version = published.json()
    assert version["number"] == 1
    assert version["sequence_id"] == sequence["id"]
    stored = version["definition"]
    assert stored["entry"] == "welcome"
    welcome_step, _, follow_up, _ = stored["steps"]
    assert welcome_step["next"] == "await_reply"
    assert follow_up["next"] == "done"
    pins = {first: await _version_id(session_factory, tenant, first, 1)}
    pins[second] = await _version_id(session_factory, tenant, second, 1)
    pins[third] = await _version_id(session_factory, tenant, third, 1)
    assert welcome_step["template_version_id"] == pins[first]
    for variant in follow_up["variants"]:
        assert variant["template_version_id"] == pins[variant["template_id"]]
    assert "template_version_id" not in follow_up

    got = await client.get(url, headers=tenant.headers)
    assert got.json()["published_version"] == 1
    assert got.json()["version"] == sequence["version"]  # publishing is not an edit
    assert got.json()["definition"] == sequence["definition"]  # the draft stays as written

    # Nothing changed: no new version.
    again = await client.post(f"{url}/publish", headers=tenant.headers)
    assert again.status_code == 409
    assert "unchanged since version 1" in again.json()["detail"]

    # A template's new version is picked up by the next publish; version 1 keeps its pin.
    await client.patch(
        f"/v1/templates/{first}",
        json={"content": {"subject": "New", "text": "New"}},
        headers=tenant.headers,
    )
    await publish_template(client, tenant, first)
    second_version = await client.post(f"{url}/publish", headers=tenant.headers)
    assert second_version.status_code == 201, second_version.text
    assert second_version.json()["number"] == 2
    new_pin = second_version.json()["definition"]["steps"][0]["template_version_id"]
    assert new_pin == await _version_id(session_factory, tenant, first, 2)
    old = await client.get(f"{url}/versions/1", headers=tenant.headers)
    assert old.status_code == 200
    assert old.json() == version

    # An edited draft publishes as version 3.
    renamed = {**definition, "settings": {"default_timezone": "UTC"}}
    await client.patch(url, json={"definition": renamed}, headers=tenant.headers)
    third_version = await client.post(f"{url}/publish", headers=tenant.headers)
    assert third_version.json()["number"] == 3

    listed = await client.get(f"{url}/versions?limit=2", headers=tenant.headers)
    assert [v["number"] for v in listed.json()["data"]] == [3, 2]
    cursor = listed.json()["next_cursor"]
    rest = await client.get(f"{url}/versions?limit=2&cursor={cursor}", headers=tenant.headers)
    assert [v["number"] for v in rest.json()["data"]] == [1]
    assert (await client.get(f"{url}/versions/4", headers=tenant.headers)).status_code == 404


async def _version_id(
    factory: async_sessionmaker[AsyncSession], tenant: Tenant, template_id: str, number: int
) -> str:
    """The id of a template's published version (the templates API shows numbers only)."""
    async with factory() as session:
        found = await session.scalar(
            select(TemplateVersion.id).where(
                TemplateVersion.workspace_id == tenant.workspace_id,
                TemplateVersion.template_id == uuid.UUID(template_id),
                TemplateVersion.number == number,
            )
        )
    assert found is not None
    return str(found)


async def test_publish_refuses_an_invalid_draft_listing_every_error(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    draft = await template(client, tenant, publish=False)
    definition = {
        "steps": [
            {"key": "a", "type": "send", "channel": "email", "template_id": draft},
            {"key": "b", "type": "update_contact", "attributes": {"x": 1}, "next": "ghost"},
        ]
    }
    sequence = await create_sequence(client, tenant, definition)
    url = f"/v1/sequences/{sequence['id']}"
    response = await client.post(f"{url}/publish", headers=tenant.headers)
    assert response.status_code == 422
    assert {(e["pointer"], e["code"]) for e in response.json()["errors"]} == {
        ("/definition/steps/0/template_id", "template_unpublished"),
        ("/definition/steps/1/next", "unknown_step"),
    }
    report = await client.get(f"{url}/validation", headers=tenant.headers)
    assert report.json()["errors"] == response.json()["errors"]
    versions = await client.get(f"{url}/versions", headers=tenant.headers)
    assert versions.json()["data"] == []


async def test_publish_honours_if_match(client: httpx.AsyncClient, tenant: Tenant) -> None:
    sequence = await create_sequence(client, tenant, {"steps": [{"key": "d", "type": "exit"}]})
    url = f"/v1/sequences/{sequence['id']}"
    await client.patch(url, json={"name": "Changed"}, headers=tenant.headers)
    stale = await client.post(
        f"{url}/publish", headers={**tenant.headers, "If-Match": sequence["etag"]}
    )
    assert stale.status_code == 412
    current = (await client.get(url, headers=tenant.headers)).json()["etag"]
    fresh = await client.post(f"{url}/publish", headers={**tenant.headers, "If-Match": current})
    assert fresh.status_code == 201, fresh.text


async def test_delete_refuses_live_enrollments(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    sequence = await create_sequence(client, tenant, {"steps": [{"key": "d", "type": "exit"}]})
    url = f"/v1/sequences/{sequence['id']}"
    version = (await client.post(f"{url}/publish", headers=tenant.headers)).json()
    contact = contact_row(tenant.workspace_id, email="ana@acme.example")
    await insert_rows(session_factory, contacts=[contact])
    now = utcnow()
    async with session_factory() as session, session.begin():
        session.add(
            Enrollment(
                workspace_id=tenant.workspace_id,
                sequence_id=uuid.UUID(sequence["id"]),
                sequence_version_id=uuid.UUID(version["id"]),
                contact_id=contact["id"],
                source="api",
                state="waiting",
                step_key="d",
                step_entered_at=now,
                next_action_at=now,
                started_at=now,
                updated_at=now,
            )
        )

    refused = await client.delete(url, headers=tenant.headers)
    assert refused.status_code == 409
    assert (await client.get(url, headers=tenant.headers)).status_code == 200

    async with session_factory() as session, session.begin():
        await session.execute(update(Enrollment).values(state="completed", finished_at=now))
    assert (await client.delete(url, headers=tenant.headers)).status_code == 204
    async with session_factory() as session:
        assert await session.scalar(select(Enrollment.id)) is None  # cascaded with the sequence


async def test_version_for_enrollment(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    sequence = await create_sequence(client, tenant, {"steps": [{"key": "d", "type": "exit"}]})
    sequence_id = uuid.UUID(sequence["id"])
    async with session_factory() as session:
        with pytest.raises(Unprocessable, match="no published version"):
            await version_for_enrollment(session, tenant.workspace_id, sequence_id, None)
        with pytest.raises(NotFound):
            await version_for_enrollment(session, tenant.workspace_id, uuid.uuid4(), None)
    url = f"/v1/sequences/{sequence['id']}"
    await client.post(f"{url}/publish", headers=tenant.headers)
    await client.patch(
        url, json={"definition": {"steps": [{"key": "e", "type": "exit"}]}}, headers=tenant.headers
    )
    await client.post(f"{url}/publish", headers=tenant.headers)
    async with session_factory() as session:
        latest = await version_for_enrollment(session, tenant.workspace_id, sequence_id, None)
        first = await version_for_enrollment(session, tenant.workspace_id, sequence_id, 1)
        assert (latest.number, first.number) == (2, 1)
        assert latest.definition["steps"][0]["key"] == "e"
        with pytest.raises(Unprocessable, match="no published version 3"):
            await version_for_enrollment(session, tenant.workspace_id, sequence_id, 3)


async def test_read_scope_cannot_write(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    sequence = await create_sequence(client, tenant, {"steps": [{"key": "d", "type": "exit"}]})
    url = f"/v1/sequences/{sequence['id']}"
    await client.post(f"{url}/publish", headers=tenant.headers)
    reader = {
        "Authorization": f"Bearer {await make_key(session_factory, tenant, ['sequences:read'])}"
    }
    for path in ("", "/validation", "/versions", "/versions/1"):
        assert (await client.get(f"{url}{path}", headers=reader)).status_code == 200, path
    assert (await client.get("/v1/sequences", headers=reader)).status_code == 200
    body = {"name": "x", "definition": {"steps": [{"key": "d", "type": "exit"}]}}
    writes = [
        await client.post("/v1/sequences", json=body, headers=reader),
        await client.patch(url, json={"name": "x"}, headers=reader),
        await client.delete(url, headers=reader),
        await client.post(f"{url}/publish", headers=reader),
        await client.post(f"{url}/signing-secret", headers=reader),
    ]
    assert [r.status_code for r in writes] == [403] * 5
    other_area = {
        "Authorization": f"Bearer {await make_key(session_factory, tenant, ['templates:write'])}"
    }
    assert (await client.get(url, headers=other_area)).status_code == 403


async def test_edits_do_not_block_enrollments_but_delete_does(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """An edit or publish holds FOR NO KEY UPDATE, which an enrollment's foreign key (KEY
    SHARE on the sequence) does not wait for; a delete holds FOR UPDATE, which it does."""
    sequence = await create_sequence(client, tenant, {"steps": [{"key": "d", "type": "exit"}]})
    sequence_id = uuid.UUID(sequence["id"])
    key_share = (
        select(Sequence.id)
        .where(Sequence.id == sequence_id)
        .with_for_update(read=True, key_share=True)
    )
    body = SequenceUpdate(name="Edited")
    async with session_factory() as editor, editor.begin():
        guard = GuardPolicy()
        await service.update_sequence(
            editor, tenant.workspace_id, sequence_id, body, None, destinations=guard
        )
        await service.publish(editor, tenant.workspace_id, sequence_id, None, guard)
        async with session_factory() as enrolling, enrolling.begin():
            await enrolling.execute(text("SET LOCAL lock_timeout = '5s'"))
            assert await enrolling.scalar(key_share) == sequence_id
    async with session_factory() as deleter, deleter.begin():
        await service.delete_sequence(deleter, tenant.workspace_id, sequence_id, None)
        async with session_factory() as enrolling, enrolling.begin():
            await enrolling.execute(text("SET LOCAL lock_timeout = '50ms'"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await enrolling.execute(key_share)
        await deleter.rollback()
