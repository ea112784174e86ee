"""Templates API: CRUD with ETags, locking, publishing immutable versions, previews."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.fixtures.rows import contact_row, insert_rows
from tests.fixtures.tenants import Tenant, make_key

EMAIL = {
    "subject": "Hi {{ contact.attributes.first_name | default('friend') }}",
    "html": "<p>{{ attributes.note }}</p>",
    "text": "{{ attributes.note }}",
    "from_email": "news@acme.example",
}


async def create(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Welcome")
    body.setdefault("channel", "email")
    body.setdefault("content", EMAIL)
    response = await client.post("/v1/templates", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_crud_and_etag(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/templates",
        json={"name": "Welcome", "channel": "email", "content": EMAIL},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["version"] == 1
    assert body["locked"] is False
    assert body["content"] == EMAIL
    assert body["published_version"] is None
    assert response.headers["etag"] == body["etag"] == f'"{body["id"]}.1"'
    assert response.headers["location"] == f"/v1/templates/{body['id']}"
    url = f"/v1/templates/{body['id']}"

    got = await client.get(url, headers=tenant.headers)
    assert got.status_code == 200
    assert got.headers["etag"] == body["etag"]

    await create(client, tenant, name="Ping", channel="sms", content={"text": "Hi"})
    listed = await client.get("/v1/templates", headers=tenant.headers)
    assert [t["name"] for t in listed.json()["data"]] == ["Ping", "Welcome"]
    sms = await client.get("/v1/templates?channel=sms&limit=1", headers=tenant.headers)
    assert [t["name"] for t in sms.json()["data"]] == ["Ping"]

    patched = await client.patch(
        url, json={"name": "Welcome v2"}, headers={**tenant.headers, "If-Match": body["etag"]}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2

    stale = await client.patch(
        url, json={"name": "Lost"}, headers={**tenant.headers, "If-Match": body["etag"]}
    )
    assert stale.status_code == 412
    assert stale.json()["current_etag"] == patched.json()["etag"]
    stale_delete = await client.delete(url, headers={**tenant.headers, "If-Match": body["etag"]})
    assert stale_delete.status_code == 412

    deleted = await client.delete(url, headers=tenant.headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=tenant.headers)).status_code == 404


async def test_content_validated_per_channel(client: httpx.AsyncClient, tenant: Tenant) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("email", {"html": "<p>x</p>"}, "/content/subject"),
        ("email", {"subject": "x"}, "/content"),
        ("sms", {"text": "x", "html": "y"}, "/content/html"),
        ("webhook", {"payload": "nope"}, "/content/payload"),
    ]
    for channel, content, pointer in cases:
        response = await client.post(
            "/v1/templates",
            json={"name": "Bad", "channel": channel, "content": content},
            headers=tenant.headers,
        )
        assert response.status_code == 422, (channel, content)
        assert pointer in [e["pointer"] for e in response.json()["errors"]], response.json()


async def test_syntax_errors_are_422_with_a_pointer(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.post(
        "/v1/templates",
        json={"name": "Bad", "channel": "email",
              "content": {"subject": "ok", "text": "line\n{% if %}"}},
        headers=tenant.headers,
    )  # fmt: skip
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["pointer"] == "/content/text"
    assert error["code"] == "syntax_error"
    assert "line 2" in error["message"]

    webhook = await client.post(
        "/v1/templates",
        json={"name": "Hook", "channel": "webhook",
              "content": {"payload": {"a": [{"b": "{{ x"}]}}},
        headers=tenant.headers,
    )  # fmt: skip
    assert webhook.status_code == 422
    assert webhook.json()["errors"][0]["pointer"] == "/content/payload/a/0/b"

    template = await create(client, tenant)
    patched = await client.patch(
        f"/v1/templates/{template['id']}",
        json={"content": {"subject": "{{ }}", "text": "x"}},
        headers=tenant.headers,
    )
    assert patched.status_code == 422
    assert patched.json()["errors"][0]["pointer"] == "/content/subject"


async def test_locked_templates_refuse_edits_and_deletion(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    template = await create(client, tenant)
    url = f"/v1/templates/{template['id']}"
    locked = await client.post(f"{url}/lock", headers=tenant.headers)
    assert locked.status_code == 200
    assert locked.json()["locked"] is True
    assert locked.json()["version"] == 2

    assert (await client.patch(url, json={"name": "x"}, headers=tenant.headers)).status_code == 409
    assert (await client.delete(url, headers=tenant.headers)).status_code == 409
    # Publishing a locked template is fine: it doesn't change the draft.
    assert (await client.post(f"{url}/publish", headers=tenant.headers)).status_code == 201

    unlocked = await client.post(f"{url}/unlock", headers=tenant.headers)
    assert unlocked.json()["locked"] is False
    assert (await client.patch(url, json={"name": "x"}, headers=tenant.headers)).status_code == 200
    assert (await client.delete(url, headers=tenant.headers)).status_code == 204


async def test_publish_creates_immutable_versions(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    template = await create(
        client,
        tenant,
        channel="sms",
        content={"text": "v1 {{ contct.email }} {{ unsubscribe_link }}"},
    )
    url = f"/v1/templates/{template['id']}"
    first = await client.post(f"{url}/publish", headers=tenant.headers)
    assert first.status_code == 201, first.text
    assert first.json()["number"] == 1
    assert first.json()["undefined_fields"] == ["contct", "unsubscribe_link"]

    edited = await client.patch(url, json={"content": {"text": "v2 {{ contact.emial }}"}},
                                headers=tenant.headers)  # fmt: skip
    assert edited.status_code == 200
    assert edited.json()["published_version"] == 1
    second = await client.post(f"{url}/publish", headers=tenant.headers)
    assert second.json()["number"] == 2
    assert second.json()["undefined_fields"] == ["contact.emial"]

    v1 = await client.get(f"{url}/versions/1", headers=tenant.headers)
    assert v1.status_code == 200
    assert v1.json()["content"] == {"text": "v1 {{ contct.email }} {{ unsubscribe_link }}"}
    listed = await client.get(f"{url}/versions?limit=1", headers=tenant.headers)
    assert [v["number"] for v in listed.json()["data"]] == [2]
    rest = await client.get(
        f"{url}/versions?cursor={listed.json()['next_cursor']}", headers=tenant.headers
    )
    assert [v["number"] for v in rest.json()["data"]] == [1]
    assert (await client.get(f"{url}/versions/3", headers=tenant.headers)).status_code == 404


async def test_open_attributes_are_not_undefined(client: httpx.AsyncClient, tenant: Tenant) -> None:
    content = {
        "subject": "{{ contact.attributes.first_name }} {{ attributes.anything.deep }}",
        "text": "{% set n = 2 %}{% for i in range(n) %}{{ i }}{% endfor %}{{ campaign.name }}"
        "{{ link('https://acme.example') }} {{ unsubscribe_url }} {{ contact.email }}",
    }
    template = await create(client, tenant, content=content)
    published = await client.post(f"/v1/templates/{template['id']}/publish", headers=tenant.headers)
    assert published.json()["undefined_fields"] == []


async def preview(
    client: httpx.AsyncClient, tenant: Tenant, template_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"/v1/templates/{template_id}/preview", json=body, headers=tenant.headers
    )


async def test_preview_existing_and_hypothetical_contacts(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    row = contact_row(tenant.workspace_id, email="ana@acme.example",
                      attributes={"first_name": "Ana", "note": "<b>5 & 6</b>"})  # fmt: skip
    await insert_rows(session_factory, contacts=[row])
    template = await create(client, tenant)

    existing = await preview(client, tenant, template["id"], {"contact_id": str(row["id"])})
    assert existing.status_code == 200, existing.text
    body = existing.json()
    assert body["version"] is None
    assert body["channel"] == "email"
    assert body["content"]["subject"] == "Hi Ana"
    assert body["content"]["html"] == "<p>&lt;b&gt;5 &amp; 6&lt;/b&gt;</p>"  # autoescaped
    assert body["content"]["text"] == "<b>5 & 6</b>"  # not escaped
    assert body["content"]["from_email"] == "news@acme.example"
    assert body["undefined_fields"] == []

    made_up = await preview(client, tenant, template["id"], {"contact": {"email": "x@y.example"}})
    assert made_up.status_code == 200
    assert made_up.json()["content"]["subject"] == "Hi friend"  # `default`
    assert made_up.json()["undefined_fields"] == ["note"]

    neither = await preview(client, tenant, template["id"], {})
    assert neither.status_code == 422
    missing = await preview(client, tenant, template["id"], {"contact_id": str(template["id"])})
    assert missing.status_code == 404


async def test_preview_a_published_version(client: httpx.AsyncClient, tenant: Tenant) -> None:
    payload = {"v": "one {{ contact.email }}", "n": 1}
    template = await create(client, tenant, channel="webhook", content={"payload": payload})
    url = f"/v1/templates/{template['id']}"
    await client.post(f"{url}/publish", headers=tenant.headers)
    await client.patch(url, json={"content": {"payload": {"v": "two"}}}, headers=tenant.headers)
    contact = {"contact": {"email": "a@b.example"}}
    draft = await preview(client, tenant, template["id"], contact)
    assert draft.json()["content"] == {"payload": {"v": "two"}}
    v1 = await preview(client, tenant, template["id"], {**contact, "version": 1})
    assert v1.json()["content"] == {"payload": {"v": "one a@b.example", "n": 1}}
    assert v1.json()["version"] == 1
    assert (
        await preview(client, tenant, template["id"], {**contact, "version": 9})
    ).status_code == 404


async def test_sandbox_escapes_are_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for source in (
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ contact.__class__ }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{{ 'x' * 1000000000 }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{% for i in range(10000) %}{{ 'x' * 100 }}{% endfor %}",
    ):
        template = await create(client, tenant, channel="sms", content={"text": source})
        response = await preview(client, tenant, template["id"], {"contact": {}})
        assert response.status_code == 422, (source, response.text)
        assert response.json()["errors"][0]["pointer"] == "/content/text"


async def test_scopes(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    template = await create(client, tenant)
    token = await make_key(session_factory, tenant, ["templates:read"])
    reader = {"Authorization": f"Bearer {token}"}
    url = f"/v1/templates/{template['id']}"
    assert (await client.get(url, headers=reader)).status_code == 200
    assert (
        await client.post(f"{url}/preview", json={"contact": {}}, headers=reader)
    ).status_code == 200
    assert (await client.patch(url, json={"name": "x"}, headers=reader)).status_code == 403
    assert (await client.post(f"{url}/publish", headers=reader)).status_code == 403


async def test_a_template_pinned_by_a_published_sequence_cannot_be_deleted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    from tests.fixtures import factories

    pinned = await factories.email_template(client, tenant, "Pinned")
    free = await factories.email_template(client, tenant, "Free")
    steps = [{"key": "hi", "type": "send", "channel": "email", "template_id": pinned}]
    await factories.published_sequence(client, tenant, {"steps": steps})
    refused = await client.delete(f"/v1/templates/{pinned}", headers=tenant.headers)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/in-use")
    assert "sequence 'Seq'" in refused.json()["detail"]
    assert (await client.delete(f"/v1/templates/{free}", headers=tenant.headers)).status_code == 204
