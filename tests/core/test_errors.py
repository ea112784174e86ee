"""Every failure is RFC 9457 problem+json with a request id and no internals."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.config import HttpSettings, Settings
from app.main import create_app
from tests.fixtures.clients import client_for
from tests.fixtures.problems import assert_problem
from tests.fixtures.tenants import Tenant


async def test_unknown_route_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/nothing-here"), 404, "not-found")


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.put("/v1/workspace", json={}, headers=tenant.headers)
    assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["allow"]


async def test_malformed_json_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/members",
        content=b'{"email": ',
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert_problem(response, 400, "malformed-json")


async def test_non_json_body_is_415(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/members",
        content=b"email=a@b.c",
        headers={**tenant.headers, "content-type": "text/plain"},
    )
    assert_problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize(
    "path", ["/v1/campaigns?tag=a%00b", "/v1/contacts?email=x%00@y.z", "/v1/templates?n%00=1"]
)
async def test_nul_in_a_query_parameter_is_422_naming_it(
    client: httpx.AsyncClient, tenant: Tenant, path: str
) -> None:
    # PostgreSQL text cannot hold NUL: a filter carrying one used to reach the driver (500).
    response = await client.get(path, headers=tenant.headers)
    problem = assert_problem(response, 422, "validation-error")
    name = path.split("?", 1)[1].split("=", 1)[0].replace("%00", "\\u0000")
    assert f"`{name}`" in str(problem["detail"])
    assert problem["errors"] == [
        {
            "pointer": f"/{name}",
            "location": "query",
            "message": "must not contain NUL characters (\\u0000)",
            "code": "string_pattern_mismatch",
        }
    ]


async def test_wrong_types_in_path_and_query_are_422(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    problem = assert_problem(
        await client.get("/v1/members/not-a-uuid", headers=tenant.headers), 422, "validation-error"
    )
    errors = problem["errors"]
    assert isinstance(errors, list)
    assert [(e["pointer"], e["location"], e["code"]) for e in errors] == [
        ("/member_id", "path", "uuid_parsing")
    ]
    assert_problem(
        await client.get("/v1/members", params={"limit": 0}, headers=tenant.headers),
        422,
        "validation-error",
    )


@pytest.fixture
async def small_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update={"http": HttpSettings(max_body_bytes=1024)}))

    @app.get("/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("password=hunter2 in the database URL")

    async with app.router.lifespan_context(app):
        yield app


async def test_body_over_limit_is_413(small_app: FastAPI, tenant: Tenant) -> None:
    body = b'{"name": "' + b"x" * 2000 + b'"}'
    async with client_for(small_app) as http:
        declared = await http.post(
            "/v1/members",
            content=body,
            headers={**tenant.headers, "content-type": "application/json"},
        )
        assert_problem(declared, 413, "payload-too-large")

        async def chunks() -> AsyncIterator[bytes]:
            for index in range(0, len(body), 256):
                yield body[index : index + 256]

        streamed = await http.post(
            "/v1/members",
            content=chunks(),
            headers={**tenant.headers, "content-type": "application/json"},
        )
        assert "content-length" not in streamed.request.headers
        assert_problem(streamed, 413, "payload-too-large")


async def test_unexpected_error_is_500_without_internals(small_app: FastAPI) -> None:
    async with client_for(small_app) as http:
        response = await http.get("/boom")
    problem = assert_problem(response, 500, "internal-error")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "request_id" in str(problem["detail"])


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    replaced = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"
    assert len(replaced.headers["x-request-id"]) == 32


def test_extension_members_cannot_replace_rfc_9457_members() -> None:
    """Observed: a 409 put the campaign's status string in `status`, which RFC 9457 reserves
    for the numeric HTTP status; every producer goes through `problem_response`."""
    from app.core.errors import problem_response

    with pytest.raises(ValueError, match="status"):
        problem_response(409, "Cannot launch.", extra={"status": "running"})
    fine = problem_response(409, "Cannot launch.", extra={"current_status": "running"})
    assert b'"status":409' in fine.body
