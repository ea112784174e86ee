"""HTTP semantics over every route: `Allow` on 405 and OPTIONS, literal sub-paths never taken
as ids, and CORS configured by the environment (none by default)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, routing

from app.config import HttpSettings, Settings
from app.main import create_app
from tests.fixtures.clients import client_for
from tests.fixtures.problems import assert_problem

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SAMPLE_ID = "0190f3c8-8d2e-7b61-9a55-000000000000"


def _methods_by_template(app: FastAPI) -> dict[str, set[str]]:
    by_template: dict[str, set[str]] = defaultdict(set)
    for context in routing.iter_route_contexts(app.routes):
        if context.path_format and context.methods:
            by_template[context.path_format].update(context.methods)
    return by_template


def _concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", SAMPLE_ID, template)


def _allow(response: httpx.Response) -> set[str]:
    return {method.strip() for method in response.headers["allow"].split(",")}


# Nothing here reaches the database: a wrong method or OPTIONS is answered before any handler.
@pytest.fixture(scope="module")
def bare_app() -> FastAPI:
    return create_app(Settings(database_url=None, redis_url=None))


@pytest.fixture
async def bare(bare_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(bare_app) as http:
        yield http


async def test_options_answers_every_route_with_its_allow(
    bare: httpx.AsyncClient, bare_app: FastAPI
) -> None:
    templates = _methods_by_template(bare_app)
    assert len(templates) > 90
    wrong = {}
    for template, methods in templates.items():
        response = await bare.options(_concrete(template))
        if response.status_code != 204 or _allow(response) != methods | {"OPTIONS"}:
            wrong[template] = (response.status_code, response.headers.get("allow"))
    assert wrong == {}


async def test_405_lists_every_method_of_the_path(
    bare: httpx.AsyncClient, bare_app: FastAPI
) -> None:
    """Observed: `Allow` named only the first matching route's method (e.g. GET on a path
    that also takes PATCH and DELETE)."""
    wrong = {}
    for template, methods in _methods_by_template(bare_app).items():
        for method in set(METHODS) - methods:
            response = await bare.request(method, _concrete(template))
            if response.status_code != 405 or _allow(response) != methods | {"OPTIONS"}:
                wrong[(method, template)] = (response.status_code, response.headers.get("allow"))
    assert wrong == {}


async def test_a_405_is_a_problem_naming_the_method(bare: httpx.AsyncClient) -> None:
    response = await bare.put(f"/v1/campaigns/{SAMPLE_ID}")
    problem = assert_problem(response, 405, "method-not-allowed")
    assert "PUT" in str(problem["detail"])
    assert _allow(response) == {"GET", "PATCH", "OPTIONS"}


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/events/batch", {"POST", "OPTIONS"}),
        ("/v1/suppressions/check", {"POST", "OPTIONS"}),
    ],
)
async def test_observed_literal_sub_paths_are_405_not_invalid_ids(
    bare: httpx.AsyncClient, path: str, allow: set[str]
) -> None:
    """Observed: `GET /v1/events/batch` answered 422 "invalid id" (matched `{event_id}`)."""
    response = await bare.get(path)
    assert_problem(response, 405, "method-not-allowed")
    assert _allow(response) == allow


def test_the_route_table_has_literal_paths_next_to_id_paths(bare_app: FastAPI) -> None:
    """The enumeration below is only meaningful while such overlaps exist."""
    templates = _methods_by_template(bare_app)
    assert "/v1/events/batch" in templates
    assert "/v1/events/{event_id}" in templates


async def test_no_literal_segment_is_swallowed_by_another_methods_id_route(
    bare: httpx.AsyncClient, bare_app: FastAPI
) -> None:
    """For every template with a literal segment where another template has a parameter,
    every method the literal one lacks answers 405 with the literal template's `Allow`."""
    templates = _methods_by_template(bare_app)
    swallowed = {}
    checked = 0
    for template, methods in templates.items():
        path = _concrete(template)
        rivals = [
            other
            for other in templates
            if other != template
            and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", other), path)
            and other.count("{") > template.count("{")
        ]
        if not rivals:
            continue
        for method in set(METHODS) - methods:
            checked += 1
            response = await bare.request(method, path)
            if response.status_code != 405 or _allow(response) != methods | {"OPTIONS"}:
                swallowed[(method, template)] = (response.status_code, rivals)
    assert checked >= 10
    assert swallowed == {}


async def test_no_cors_headers_by_default(bare: httpx.AsyncClient) -> None:
    response = await bare.get("/healthz", headers={"Origin": "https://app.example.com"})
    assert response.status_code == 200
    assert not any(name.startswith("access-control-") for name in response.headers)
    preflight = await bare.options(
        "/v1/contacts",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )
    # Not a CORS answer: the plain OPTIONS one.
    assert preflight.status_code == 204
    assert "access-control-allow-origin" not in preflight.headers


ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def cors_app() -> FastAPI:
    http = HttpSettings(cors_allowed_origins=[ORIGIN])
    return create_app(Settings(database_url=None, redis_url=None, http=http))


@pytest.fixture
async def cors(cors_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(cors_app) as http:
        yield http


async def test_cors_preflight_from_an_allowed_origin(cors: httpx.AsyncClient) -> None:
    response = await cors.options(
        "/v1/contacts",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    allowed_methods = response.headers["access-control-allow-methods"]
    assert {"GET", "POST", "PATCH", "DELETE"} <= {m.strip() for m in allowed_methods.split(",")}
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    for name in ("authorization", "content-type", "idempotency-key"):
        assert name in allowed_headers
    assert int(response.headers["access-control-max-age"]) > 0


async def test_cors_preflight_from_another_origin_is_refused(cors: httpx.AsyncClient) -> None:
    response = await cors.options(
        "/v1/contacts",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_cors_simple_request_exposes_herald_headers(cors: httpx.AsyncClient) -> None:
    response = await cors.get("/v1/nothing-here", headers={"Origin": ORIGIN})
    assert response.status_code == 404  # errors carry CORS headers too, so browsers read them
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"x-request-id", "retry-after", "idempotent-replayed", "location", "etag"} <= exposed
    assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= exposed
    other = await cors.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_cors_origins_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "HERALD_HTTP__CORS_ALLOWED_ORIGINS", '["https://a.example","https://b.example"]'
    )
    assert Settings().http.cors_allowed_origins == ["https://a.example", "https://b.example"]


def test_cors_origins_must_be_origins() -> None:
    with pytest.raises(ValueError, match="origin"):
        HttpSettings(cors_allowed_origins=["https://a.example/path"])
