"""The docs test catches drift: a wrong status, a missing field, a broken link, an unmarked
example (each checked on a small page written here)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.docs.markdown import anchors, blocks, links
from tests.docs.requests import (
    ExampleError,
    openapi_document,
    parse,
    run_example,
    schema_mismatches,
    shape_mismatches,
)
from tests.fixtures.tenants import Tenant

PAGE = """# Trying things

<!-- example: status=201 -->
```sh
EMAIL=ada@example.com
CONTACT_ID=$(curl -sS localhost:8000/v1/contacts \\
  -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
  -d @- <<EOF | jq -r .id
{"email": "$EMAIL"}
EOF
)
```

<!-- example: status=404 -->
```sh
curl -H "Authorization: Bearer $KEY" localhost:8000/v1/contacts/$CONTACT_ID
```

```sh
curl localhost:8000/v1/workspace
```
"""


def write_page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text)
    return page


def test_a_capture_with_a_here_document_is_understood(tmp_path: Path) -> None:
    page = write_page(tmp_path, PAGE)
    try:
        first, second, unmarked = blocks(page)
    finally:
        page.unlink()
    variables: dict[str, str] = {"KEY": "k"}
    [request] = parse(first, variables)
    assert (request.method, request.path) == ("POST", "/v1/contacts")
    assert request.body == '{"email": "ada@example.com"}'
    assert request.capture == ("CONTACT_ID", ".id")
    assert first.options == {"status": "201"}
    assert unmarked.is_request
    assert unmarked.marker is None  # the docs test reports it
    with pytest.raises(ExampleError, match=r"\$CONTACT_ID is not set"):
        parse(second, variables)


async def test_a_wrong_status_fails_with_the_answer(
    tmp_path: Path, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    page = write_page(tmp_path, PAGE)
    try:
        first, second, _ = blocks(page)
    finally:
        page.unlink()
    variables: dict[str, str] = {}
    [created] = await run_example(client, first, tenant.token, variables)
    assert variables["CONTACT_ID"] == created.json()["id"]
    # The contact exists, so the documented 404 is wrong: the test says so.
    with pytest.raises(ExampleError, match="answered 200, the doc says 404"):
        await run_example(client, second, tenant.token, variables)


def test_a_documented_field_the_answer_lacks_is_reported() -> None:
    documented = {"data": [{"id": "…", "email": "…"}], "next_cursor": None}
    answered = {"data": [{"id": "1"}], "next_cursor": None}
    assert shape_mismatches(documented, answered) == ["/data/*/email: missing"]
    assert shape_mismatches(documented, {"data": [], "next_cursor": "x"}) == []


def test_anchors_and_links_are_read_as_github_does(tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        "# Top\n## Rate limits (429)\n## Rate limits (429)\n"
        "See [it](#rate-limits-429) and [that](api.md#nope) and `[code](x.md)`.\n",
    )
    try:
        assert anchors(page) == {"top", "rate-limits-429", "rate-limits-429-1"}
        assert [target for _, target in links(page)] == ["#rate-limits-429", "api.md#nope"]
    finally:
        page.unlink()


def test_an_answer_is_checked_against_the_openapi_document() -> None:
    wrong_shape = httpx.Response(200, json={"name": "Acme"})
    problems = schema_mismatches("GET", "/v1/workspace", wrong_shape)
    assert any("is a required property" in problem for problem in problems), problems
    assert schema_mismatches("GET", "/v1/workspace", httpx.Response(418, json={})) == [
        "status 418 is not documented (documented: "
        + str(sorted(openapi_document()["paths"]["/v1/workspace"]["get"]["responses"]))
        + ")"
    ]
    assert schema_mismatches("GET", "/v1/nowhere", httpx.Response(200)) == [
        "no OpenAPI operation serves GET /v1/nowhere"
    ]
