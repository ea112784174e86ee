"""Privilege ceilings over every admin route (docs/api.md, "Privilege ceilings").

The matrix runs each action with each kind of caller on a fresh workspace and asserts the
status; the named tests below it are the cases observed in issue 16 and the last-owner rules.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import transaction
from app.workspaces.models import ApiKey, Member
from app.workspaces.repository import MemberRepository
from tests.fixtures.tenants import Tenant, make_key, make_tenant

PROBLEM = "application/problem+json"
CEILING = "https://herald.dev/problems/privilege-ceiling"
LAST_OWNER = "https://herald.dev/problems/last-owner"
FORBIDDEN = "https://herald.dev/problems/forbidden"  # the scope check itself


@dataclass
class World:
    """One workspace with an owner (the tenant's key), an admin and an editor."""

    client: httpx.AsyncClient
    tenant: Tenant
    admin_id: uuid.UUID
    editor_id: uuid.UUID

    async def endpoint_id(self) -> str:
        """A webhook endpoint, made by the owner (only for the actions that need one)."""
        endpoint = await self.client.post(
            "/v1/webhook-endpoints",
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]},
            headers=self.tenant.headers,
        )
        assert endpoint.status_code == 201, endpoint.text
        return str(endpoint.json()["id"])

    def path_of(self, who: str) -> uuid.UUID:
        return {"owner": self.tenant.owner_id, "admin": self.admin_id, "editor": self.editor_id}[
            who
        ]


async def add_member(
    factory: async_sessionmaker[AsyncSession], tenant: Tenant, role: str, email: str
) -> uuid.UUID:
    async with transaction(factory) as session:
        member = MemberRepository(session, tenant.workspace_id).add(
            Member(email=email, name=role.title(), role=role, reviewer_roles=[])
        )
        await session.flush()
        return member.id


async def new_world(
    client: httpx.AsyncClient, factory: async_sessionmaker[AsyncSession], name: str
) -> World:
    tenant = await make_tenant(factory, name)
    admin_id = await add_member(factory, tenant, "admin", "admin@acme.example")
    editor_id = await add_member(factory, tenant, "editor", "editor@acme.example")
    return World(client, tenant, admin_id, editor_id)


# Callers: (scopes, the member the key is bound to: "owner" / "admin" / "editor" / None).
CALLERS: dict[str, tuple[list[str], str | None]] = {
    "owner": (["admin"], "owner"),
    "admin_member": (["admin"], "admin"),
    "unbound_admin": (["admin"], None),
    "members_admin": (["members:admin"], None),
    "members_admin_as_editor": (["members:admin"], "editor"),
    "keys_admin": (["api_keys:admin"], None),
    "keys_admin_as_editor": (["api_keys:admin", "contacts:write"], "editor"),
    "write": (["write"], None),
    "read": (["read"], None),
}

Action = Callable[[World, dict[str, str]], Awaitable[httpx.Response]]


def _post(path: str, body: object) -> Action:
    async def act(w: World, headers: dict[str, str]) -> httpx.Response:
        return await w.client.post(path.format(w=w), json=body, headers=headers)

    return act


def _patch_member(who: str, body: object) -> Action:
    async def act(w: World, headers: dict[str, str]) -> httpx.Response:
        return await w.client.patch(f"/v1/members/{w.path_of(who)}", json=body, headers=headers)

    return act


def _delete_member(who: str) -> Action:
    async def act(w: World, headers: dict[str, str]) -> httpx.Response:
        return await w.client.delete(f"/v1/members/{w.path_of(who)}", headers=headers)

    return act


def _create_key(scopes: list[str], bound_to: str | None) -> Action:
    async def act(w: World, headers: dict[str, str]) -> httpx.Response:
        body: dict[str, object] = {"name": "new", "scopes": scopes}
        if bound_to is not None:
            body["member_id"] = str(w.path_of(bound_to))
        return await w.client.post("/v1/api-keys", json=body, headers=headers)

    return act


async def _revoke_owner_key(w: World, headers: dict[str, str]) -> httpx.Response:
    keys = await w.client.get("/v1/api-keys", headers=w.tenant.headers)
    owner_key = next(k for k in keys.json()["data"] if k["name"] == "Owner admin key")
    return await w.client.delete(f"/v1/api-keys/{owner_key['id']}", headers=headers)


async def _transfer_to_admin(w: World, headers: dict[str, str]) -> httpx.Response:
    return await w.client.post(
        f"/v1/members/{w.admin_id}/transfer-ownership", json={}, headers=headers
    )


def _endpoint(method: str, suffix: str = "", body: object = None) -> Action:
    async def act(w: World, headers: dict[str, str]) -> httpx.Response:
        url = f"/v1/webhook-endpoints/{await w.endpoint_id()}{suffix}"
        return await w.client.request(method, url, json=body, headers=headers)

    return act


async def _list_keys(w: World, headers: dict[str, str]) -> httpx.Response:
    return await w.client.get("/v1/api-keys", headers=headers)


async def _rename_workspace(w: World, headers: dict[str, str]) -> httpx.Response:
    return await w.client.patch("/v1/workspace", json={"name": "Renamed"}, headers=headers)


WS_ADMINS = ("owner", "admin_member", "unbound_admin")
MEMBER_ADMINS_AS_ADMIN = (*WS_ADMINS, "members_admin")

# action -> (how, {caller: status}); any caller not named answers 403.
MATRIX: dict[str, tuple[Action, dict[str, int]]] = {
    "create member owner": (
        _post("/v1/members", {"email": "n@acme.example", "name": "N", "role": "owner"}),
        {"owner": 201},
    ),
    "create member admin": (
        _post("/v1/members", {"email": "n@acme.example", "name": "N", "role": "admin"}),
        dict.fromkeys(MEMBER_ADMINS_AS_ADMIN, 201),
    ),
    "create member editor": (
        _post("/v1/members", {"email": "n@acme.example", "name": "N", "role": "editor"}),
        dict.fromkeys((*MEMBER_ADMINS_AS_ADMIN, "members_admin_as_editor"), 201),
    ),
    "demote the last owner": (_patch_member("owner", {"role": "viewer"}), {"owner": 409}),
    "rename the owner": (_patch_member("owner", {"name": "Olivia"}), {"owner": 200}),
    "promote editor to owner": (_patch_member("editor", {"role": "owner"}), {"owner": 200}),
    "promote editor to admin": (
        _patch_member("editor", {"role": "admin"}),
        dict.fromkeys(MEMBER_ADMINS_AS_ADMIN, 200),
    ),
    "demote admin to viewer": (
        _patch_member("admin", {"role": "viewer"}),
        dict.fromkeys(MEMBER_ADMINS_AS_ADMIN, 200),
    ),
    "demote editor to viewer": (
        _patch_member("editor", {"role": "viewer"}),
        dict.fromkeys((*MEMBER_ADMINS_AS_ADMIN, "members_admin_as_editor"), 200),
    ),
    "remove the last owner": (_delete_member("owner"), {"owner": 409}),
    "remove an admin": (_delete_member("admin"), dict.fromkeys(MEMBER_ADMINS_AS_ADMIN, 204)),
    "remove an editor": (
        _delete_member("editor"),
        dict.fromkeys((*MEMBER_ADMINS_AS_ADMIN, "members_admin_as_editor"), 204),
    ),
    "transfer ownership": (_transfer_to_admin, {"owner": 200}),
    "create key admin": (_create_key(["admin"], None), dict.fromkeys(WS_ADMINS, 201)),
    "create key write": (_create_key(["write"], None), dict.fromkeys(WS_ADMINS, 201)),
    "create key contacts:write": (
        _create_key(["contacts:write"], None),
        dict.fromkeys(WS_ADMINS, 201),
    ),
    "create key contacts:write for editor": (
        _create_key(["contacts:write"], "editor"),
        dict.fromkeys((*WS_ADMINS, "keys_admin_as_editor"), 201),
    ),
    "create key api_keys:read": (
        _create_key(["api_keys:read"], None),
        dict.fromkeys((*WS_ADMINS, "keys_admin"), 201),
    ),
    "create key bound to owner": (_create_key(["read"], "owner"), {"owner": 201}),
    "create key bound to admin": (
        _create_key(["read"], "admin"),
        dict.fromkeys(WS_ADMINS, 201),
    ),
    "revoke the last owner key": (_revoke_owner_key, {"owner": 409}),
    "list keys": (
        _list_keys,
        dict.fromkeys((*WS_ADMINS, "keys_admin", "keys_admin_as_editor"), 200),
    ),
    "workspace settings": (_rename_workspace, dict.fromkeys(WS_ADMINS, 200)),
    "webhook endpoint create": (
        _post("/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/x", "event_types": ["*"]}),
        dict.fromkeys((*WS_ADMINS, "write"), 201),
    ),
    "webhook endpoint edit": (
        _endpoint("PATCH", body={"description": "x"}),
        dict.fromkeys((*WS_ADMINS, "write"), 200),
    ),
    "webhook endpoint rotate secret": (
        _endpoint("POST", "/rotate-secret", {}),
        dict.fromkeys((*WS_ADMINS, "write"), 200),
    ),
    "webhook endpoint delete": (
        _endpoint("DELETE"),
        dict.fromkeys((*WS_ADMINS, "write"), 204),
    ),
}


@pytest.mark.parametrize("action", list(MATRIX))
async def test_privilege_matrix(
    client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession], action: str
) -> None:
    """One row of the matrix: the action by each kind of caller, each in its own workspace
    (so one caller's success cannot change what the next one finds)."""
    act, expected = MATRIX[action]
    statuses: dict[str, int] = {}
    for caller, (scopes, bound_to) in CALLERS.items():
        world = await new_world(client, session_factory, f"Matrix {caller}")
        if caller == "owner":
            headers = world.tenant.headers
        else:
            member = None if bound_to is None else world.path_of(bound_to)
            token = await make_key(session_factory, world.tenant, scopes, member)
            headers = {"Authorization": f"Bearer {token}"}
        response = await act(world, headers)
        statuses[caller] = response.status_code
        if response.status_code >= 400:
            assert response.headers["content-type"] == PROBLEM, (caller, response.text)
        if response.status_code == 403:
            assert response.json()["type"] in {CEILING, FORBIDDEN}, (caller, response.text)
        if response.status_code == 409:
            assert response.json()["type"] == LAST_OWNER, (caller, response.text)
    assert statuses == {caller: expected.get(caller, 403) for caller in CALLERS}


# -- The cases observed in issue 16 -------------------------------------------------------


async def _key(
    factory: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    scopes: list[str],
    member_id: uuid.UUID | None = None,
) -> dict[str, str]:
    return {"Authorization": f"Bearer {await make_key(factory, tenant, scopes, member_id)}"}


async def test_members_admin_cannot_demote_then_remove_the_owner(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    headers = await _key(session_factory, tenant, ["members:admin"])
    demote = await client.patch(
        f"/v1/members/{tenant.owner_id}", json={"role": "viewer"}, headers=headers
    )
    assert demote.status_code == 403
    assert demote.json()["type"] == CEILING
    assert "owner" in demote.json()["detail"]
    remove = await client.delete(f"/v1/members/{tenant.owner_id}", headers=headers)
    assert remove.status_code == 403
    owner = await client.get(f"/v1/members/{tenant.owner_id}", headers=tenant.headers)
    assert owner.status_code == 200
    assert owner.json()["role"] == "owner"


async def test_members_admin_cannot_create_an_owner(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    headers = await _key(session_factory, tenant, ["members:admin"])
    response = await client.post(
        "/v1/members",
        json={"email": "mallory@acme.example", "name": "Mallory", "role": "owner"},
        headers=headers,
    )
    assert response.status_code == 403
    assert response.json()["type"] == CEILING
    members = await client.get("/v1/members", headers=tenant.headers)
    assert [m["email"] for m in members.json()["data"]] == ["owner@acme.example"]


@pytest.mark.parametrize("scopes", [["admin"], ["write"], ["contacts:write"], ["members:read"]])
async def test_api_keys_admin_cannot_create_a_key_beyond_its_scopes(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
    scopes: list[str],
) -> None:
    headers = await _key(session_factory, tenant, ["api_keys:admin"])
    response = await client.post(
        "/v1/api-keys", json={"name": "escalate", "scopes": scopes}, headers=headers
    )
    assert response.status_code == 403
    assert response.json()["type"] == CEILING
    assert scopes[0] in response.json()["detail"]
    async with session_factory() as session:
        names = (await session.execute(select(ApiKey.name))).scalars().all()
    assert "escalate" not in names


async def test_an_area_admin_grants_lower_levels_of_its_area(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    headers = await _key(session_factory, tenant, ["api_keys:admin", "contacts:write"])
    response = await client.post(
        "/v1/api-keys",
        json={"name": "ok", "scopes": ["api_keys:read", "contacts:read", "contacts:write"]},
        headers=headers,
    )
    assert response.status_code == 201, response.text


async def test_an_editor_cannot_mint_an_unbound_key_to_outrank_itself(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    editor = await add_member(session_factory, tenant, "editor", "ed@acme.example")
    headers = await _key(session_factory, tenant, ["api_keys:admin", "members:admin"], editor)
    unbound = await client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["members:admin"]}, headers=headers
    )
    assert unbound.status_code == 403
    promote = await client.patch(f"/v1/members/{editor}", json={"role": "admin"}, headers=headers)
    assert promote.status_code == 403


async def test_a_demotion_takes_effect_on_the_next_request(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    admin = await add_member(session_factory, tenant, "admin", "ad@acme.example")
    headers = await _key(session_factory, tenant, ["members:admin"], admin)
    new = {"email": "n@acme.example", "name": "N", "role": "admin"}
    assert (await client.post("/v1/members", json=new, headers=headers)).status_code == 201
    demoted = await client.patch(
        f"/v1/members/{admin}", json={"role": "editor"}, headers=tenant.headers
    )
    assert demoted.status_code == 200
    again = {**new, "email": "m@acme.example"}
    assert (await client.post("/v1/members", json=again, headers=headers)).status_code == 403


# -- The last owner -----------------------------------------------------------------------


async def test_the_last_owner_cannot_demote_or_remove_themselves(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    demote = await client.patch(
        f"/v1/members/{tenant.owner_id}", json={"role": "admin"}, headers=tenant.headers
    )
    assert demote.status_code == 409
    body = demote.json()
    assert demote.headers["content-type"] == PROBLEM
    assert body["type"] == LAST_OWNER
    assert "last owner" in body["detail"]
    remove = await client.delete(f"/v1/members/{tenant.owner_id}", headers=tenant.headers)
    assert remove.status_code == 409
    assert remove.json()["type"] == LAST_OWNER


async def test_with_two_owners_one_can_step_down_but_not_both(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    second = await client.post(
        "/v1/members",
        json={"email": "co@acme.example", "name": "Co", "role": "owner"},
        headers=tenant.headers,
    )
    assert second.status_code == 201
    co_id = uuid.UUID(second.json()["id"])
    co_headers = await _key(session_factory, tenant, ["admin"], co_id)
    # An owner removes another owner; the remaining one is then the last.
    removed = await client.delete(f"/v1/members/{tenant.owner_id}", headers=co_headers)
    assert removed.status_code == 204
    last = await client.patch(f"/v1/members/{co_id}", json={"role": "admin"}, headers=co_headers)
    assert last.status_code == 409
    assert last.json()["type"] == LAST_OWNER


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    co_id = await add_member(session_factory, tenant, "owner", "co@acme.example")
    co_headers = await _key(session_factory, tenant, ["admin"], co_id)
    answers = await asyncio.gather(
        client.patch(f"/v1/members/{co_id}", json={"role": "admin"}, headers=tenant.headers),
        client.patch(f"/v1/members/{tenant.owner_id}", json={"role": "admin"}, headers=co_headers),
    )
    # The changes serialise: the second reads its caller's role after the first committed,
    # and its caller is no longer an owner.
    assert sorted(a.status_code for a in answers) == [200, 403]
    async with session_factory() as session:
        owners = (await session.execute(select(Member.id).where(Member.role == "owner"))).all()
    assert len(owners) == 1


async def test_the_last_owner_keeps_an_admin_key(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    keys = await client.get("/v1/api-keys", headers=tenant.headers)
    owner_key_id = keys.json()["data"][0]["id"]
    refused = await client.delete(f"/v1/api-keys/{owner_key_id}", headers=tenant.headers)
    assert refused.status_code == 409
    assert refused.json()["type"] == LAST_OWNER
    # With a second admin key for the owner, the first can go (the caller revokes itself).
    spare = await client.post(
        "/v1/api-keys",
        json={"name": "spare", "scopes": ["admin"], "member_id": str(tenant.owner_id)},
        headers=tenant.headers,
    )
    assert spare.status_code == 201
    revoked = await client.delete(f"/v1/api-keys/{owner_key_id}", headers=tenant.headers)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    spare_headers = {"Authorization": f"Bearer {spare.json()['key']}"}
    refused_again = await client.delete(f"/v1/api-keys/{spare.json()['id']}", headers=spare_headers)
    assert refused_again.status_code == 409


async def test_keys_admin_cannot_revoke_a_key_above_it(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    writer = await client.post(
        "/v1/api-keys", json={"name": "w", "scopes": ["write"]}, headers=tenant.headers
    )
    headers = await _key(session_factory, tenant, ["api_keys:admin"])
    refused = await client.delete(f"/v1/api-keys/{writer.json()['id']}", headers=headers)
    assert refused.status_code == 403
    assert refused.json()["type"] == CEILING
    # Its own key it may always revoke.
    own = await client.get("/v1/api-keys", headers=headers)
    own_id = next(k["id"] for k in own.json()["data"] if k["scopes"] == ["api_keys:admin"])
    assert (await client.delete(f"/v1/api-keys/{own_id}", headers=headers)).status_code == 200


# -- Ownership transfer -------------------------------------------------------------------


async def test_transfer_ownership(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dana = await add_member(session_factory, tenant, "editor", "dana@acme.example")
    response = await client.post(
        f"/v1/members/{dana}/transfer-ownership",
        json={"previous_owner_role": "editor"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["owner"]["id"] == str(dana)
    assert body["owner"]["role"] == "owner"
    assert body["previous_owner"]["id"] == str(tenant.owner_id)
    assert body["previous_owner"]["role"] == "editor"
    new_key = body["owner_key"]
    assert new_key["scopes"] == ["admin"]
    assert new_key["member_id"] == str(dana)
    new_headers = {"Authorization": f"Bearer {new_key['key']}"}
    # The new owner administers; the previous one now acts as an editor.
    me = await client.get("/v1/members", headers=new_headers)
    assert me.status_code == 200
    back = await client.post(
        f"/v1/members/{tenant.owner_id}/transfer-ownership", json={}, headers=tenant.headers
    )
    assert back.status_code == 403
    assert back.json()["type"] == CEILING
    # A second transfer to the current owner is a conflict.
    again = await client.post(f"/v1/members/{dana}/transfer-ownership", headers=new_headers)
    assert again.status_code == 409


async def test_transfer_without_issuing_a_key(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dana = await add_member(session_factory, tenant, "admin", "dana@acme.example")
    response = await client.post(
        f"/v1/members/{dana}/transfer-ownership",
        json={"issue_owner_key": False},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    assert response.json()["owner_key"] is None
    assert response.json()["previous_owner"]["role"] == "admin"


async def test_transfer_refuses_an_unbound_admin_key(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dana = await add_member(session_factory, tenant, "admin", "dana@acme.example")
    headers = await _key(session_factory, tenant, ["admin"])
    response = await client.post(f"/v1/members/{dana}/transfer-ownership", headers=headers)
    assert response.status_code == 403
    assert response.json()["type"] == CEILING


async def test_transfer_to_another_workspace_member_is_404(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    theirs = await add_member(session_factory, other_tenant, "admin", "eve@other.example")
    response = await client.post(
        f"/v1/members/{theirs}/transfer-ownership", json={}, headers=tenant.headers
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    async with session_factory() as session:
        result = await session.execute(select(Member.id, Member.role))
        roles = {row.id: row.role for row in result}
    assert roles[theirs] == "admin"
    assert roles[tenant.owner_id] == "owner"


async def test_transfer_with_an_unknown_field_is_422(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dana = await add_member(session_factory, tenant, "admin", "dana@acme.example")
    response = await client.post(
        f"/v1/members/{dana}/transfer-ownership",
        json={"previous_owner_role": "owner"},
        headers=tenant.headers,
    )
    assert response.status_code == 422
