"""`/docs` and `/redoc` need nothing but this service: every page and asset comes from it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urljoin, urlparse

import httpx
import pytest

from app.config import Settings
from app.main import create_app

# src/href attributes, and url(...) in CSS.
_REFERENCES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""")
_EXTERNAL_HOSTS = ("fonts.googleapis.com", "fonts.gstatic.com", "cdn.jsdelivr.net", "unpkg.com")


@pytest.fixture
async def docs_client() -> AsyncIterator[httpx.AsyncClient]:
    # The docs need no database: the app is built without its lifespan.
    app = create_app(Settings(database_url=None, redis_url=None))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
        yield client


def references(page: str) -> list[str]:
    return [a or b for a, b in _REFERENCES.findall(page) if not (a or b).startswith("data:")]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_page_and_every_asset_it_references_come_from_the_service(
    docs_client: httpx.AsyncClient, page: str
) -> None:
    answer = await docs_client.get(page)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    found = references(answer.text)
    assert len(found) >= 2  # the bundle and the favicon (and Swagger UI's stylesheet)
    assert "/openapi.json" in answer.text
    for reference in found:
        url = urlparse(urljoin(f"http://herald.test{page}", reference))
        assert url.netloc == "herald.test", f"{page} references another host: {reference}"
        asset = await docs_client.get(url.path)
        assert asset.status_code == 200, reference
        assert len(asset.content) > 1000, reference
        if url.path.endswith(".css"):
            for inner in references(asset.text):
                assert not urlparse(inner).netloc, f"{reference} loads {inner}"
    for host in _EXTERNAL_HOSTS:
        assert host not in answer.text


@pytest.mark.parametrize("bundle", ["swagger-ui-bundle.js", "redoc.standalone.js"])
async def test_the_bundles_load_nothing_from_a_cdn(
    docs_client: httpx.AsyncClient, bundle: str
) -> None:
    source = (await docs_client.get(f"/docs/assets/{bundle}")).text
    for host in ("cdn.redoc.ly", "cdn.jsdelivr.net", "unpkg.com", "fonts.googleapis.com"):
        assert host not in source


async def test_the_document_the_pages_load_is_served(docs_client: httpx.AsyncClient) -> None:
    answer = await docs_client.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.json()["webhooks"]


async def test_swagger_ui_does_not_call_the_online_validator(
    docs_client: httpx.AsyncClient,
) -> None:
    page = (await docs_client.get("/docs")).text
    assert '"validatorUrl": null' in page


async def test_no_docs_pages_when_disabled() -> None:
    settings = Settings(database_url=None, redis_url=None)
    settings.http.docs_enabled = False
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/docs/assets/swagger-ui-bundle.js")).status_code == 404
