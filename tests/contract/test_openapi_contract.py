"""The OpenAPI document is a contract a client can be generated from (docs/api.md).

These checks look at the generated document as a whole, so an endpoint added later is held to
the same rules without anyone listing it here.
"""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

from app.config import Settings
from app.core.schemas import RequestModel, ResponseModel
from app.main import create_app
from tests.fixtures import contract as checks

PROBLEM = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    openapi: dict[str, Any] = create_app(Settings(database_url=None, redis_url=None)).openapi()
    return openapi


def _all_subclasses(base: type[BaseModel]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for sub in base.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)


def test_component_names_carry_no_module_path(document: dict[str, Any]) -> None:
    assert checks.schema_name_problems(document) == []


def test_no_two_api_models_share_a_name() -> None:
    create_app(Settings(database_url=None, redis_url=None))
    models: list[type[BaseModel]] = [
        model
        for model in _all_subclasses(RequestModel) + _all_subclasses(ResponseModel)
        if model.__module__.startswith("app.") and "[" not in model.__name__
    ]
    assert len(models) > 100
    assert checks.model_collisions(models) == []


def test_the_name_checks_catch_collisions() -> None:
    class MemberOut(ResponseModel):
        pass

    first = MemberOut
    MemberOut.__module__ = "elsewhere.segments"

    class MemberOut(ResponseModel):  # type: ignore[no-redef]
        pass

    MemberOut.__module__ = "elsewhere.workspaces"
    assert len(checks.model_collisions([first, MemberOut])) == 1
    broken: dict[str, Any] = {"components": {"schemas": {"app__x__MemberOut": {}}}}
    assert len(checks.schema_name_problems(broken)) == 1


def test_every_example_validates_against_its_schema(document: dict[str, Any]) -> None:
    assert checks.invalid_examples(document) == []


def test_an_invalid_example_is_caught(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["Problem"]
    broken = {"components": {"schemas": {"Problem": {**schema, "examples": [{"type": 1}]}}}}
    assert len(checks.invalid_examples(broken)) >= 4  # wrong type, missing title/status/detail
    extra = {**schema["examples"][0], "not_sent": 1}
    closed = {**schema, "additionalProperties": None}
    del closed["additionalProperties"]
    broken = {"components": {"schemas": {"Problem": {**closed, "examples": [extra]}}}}
    assert checks.invalid_examples(broken) != []


def test_every_error_answer_is_a_problem(document: dict[str, Any]) -> None:
    wrong = []
    for path, method, operation in checks.operations(document):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                content = response.get("content", {})
                media = content.get("application/problem+json", {})
                if list(content) != ["application/problem+json"] or media.get("schema") != PROBLEM:
                    wrong.append(f"{method.upper()} {path} {status}")
    assert wrong == []
    problem = document["components"]["schemas"]["Problem"]
    for member in ("request_id", "errors", "allowed", "current_status"):
        assert member in problem["properties"]
    field_error = document["components"]["schemas"]["FieldError"]
    assert "pointer" in field_error["required"]


def test_statuses_match_what_each_operation_can_answer(document: dict[str, Any]) -> None:
    wrong = []
    for path, method, operation in checks.operations(document):
        statuses = set(operation["responses"])
        label = f"{method.upper()} {path}"
        if "requestBody" not in operation and statuses & {"413", "415"}:
            wrong.append(f"{label}: 413/415 without a body")
        if operation["security"]:
            if not {"401", "403", "429", "503"} <= statuses:
                wrong.append(f"{label}: auth, rate limit or 503 undocumented")
            if method == "post" and "409" not in statuses:
                wrong.append(f"{label}: in-flight Idempotency-Key 409 undocumented")
    assert wrong == []


def _header_names(response: dict[str, Any]) -> set[str]:
    return set(response.get("headers", {}))


def test_headers_are_declared(document: dict[str, Any]) -> None:
    wrong = []
    for path, method, operation in checks.operations(document):
        label = f"{method.upper()} {path}"
        parameters = [p.get("$ref", "") for p in operation.get("parameters", [])]
        authenticated = bool(operation["security"])
        idempotency = "#/components/parameters/IdempotencyKey"
        if method == "post" and authenticated and idempotency not in parameters:
            wrong.append(f"{label}: no Idempotency-Key parameter")
        for status, response in operation["responses"].items():
            names = _header_names(response)
            if "X-Request-Id" not in names:
                wrong.append(f"{label} {status}: no X-Request-Id")
            if status in ("429", "503") and "Retry-After" not in names:
                wrong.append(f"{label} {status}: no Retry-After")
            if status == "201" and "Location" not in names:
                wrong.append(f"{label} {status}: no Location")
            if authenticated and status.startswith("2"):
                if not {"RateLimit", "RateLimit-Policy"} <= names:
                    wrong.append(f"{label} {status}: no RateLimit headers")
                if method == "post" and "Idempotent-Replayed" not in names:
                    wrong.append(f"{label} {status}: no Idempotent-Replayed")
    assert wrong == []
    assert document["components"]["parameters"]["IdempotencyKey"]["in"] == "header"


def test_public_operations_and_webhooks_say_they_need_no_credentials(
    document: dict[str, Any],
) -> None:
    public = [
        f"{method.upper()} {path}"
        for path, method, operation in checks.operations(document)
        if operation["security"] == []
    ]
    assert "GET /healthz" in public
    assert "POST /v1/unsubscribe/{token}" in public
    assert all("security" in op for _, _, op in checks.operations(document))
    for name, item in document["webhooks"].items():
        for operation in item.values():
            assert operation["security"] == [], name


def test_every_list_is_a_page_with_a_cursor(document: dict[str, Any]) -> None:
    pages = [
        name
        for name, schema in document["components"]["schemas"].items()
        if schema.get("properties", {}).get("data", {}).get("type") == "array"
    ]
    assert len(pages) > 20
    assert [
        n for n in pages if "next_cursor" not in document["components"]["schemas"][n]["properties"]
    ] == []


def _inline_enums(node: Any, path: str, found: list[str]) -> None:
    if isinstance(node, dict):
        if "enum" in node and path.count("/") > 3:
            found.append(path)
        for key, value in node.items():
            _inline_enums(value, f"{path}/{key}", found)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _inline_enums(value, f"{path}/{index}", found)


def test_enums_are_named_components(document: dict[str, Any]) -> None:
    found: list[str] = []
    _inline_enums(document, "", found)
    # Header schemas are documentation only; every body and parameter enum is a component.
    assert [p for p in found if not p.startswith("/components/headers/")] == []
    schemas = document["components"]["schemas"]
    for name in ("Channel", "MessageChannel", "Role", "CampaignStatus", "MessageStatus"):
        assert schemas[name]["enum"], name


def test_responses_mirror_the_request_types(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    campaign = schemas["CampaignOut"]["properties"]
    assert campaign["goal"]["anyOf"][0] == {"$ref": "#/components/schemas/Goal"}
    assert campaign["kpis"]["items"] == {"$ref": "#/components/schemas/Kpi"}
    assert campaign["reentry"]["$ref"] == "#/components/schemas/Reentry"
    assert "EventTrigger" in str(campaign["trigger"])
    assert "CampaignBudget" in str(campaign["budget"])
    definition = schemas["SequenceOut"]["properties"]["definition"]
    assert definition["$ref"] == "#/components/schemas/SequenceDefinition"
    assert "EmailContent" in str(schemas["TemplateOut"]["properties"]["content"])


def test_rest_tags_and_the_webhooks_section_have_distinct_titles(
    document: dict[str, Any],
) -> None:
    tags = {tag["name"] for tag in document["tags"]}
    assert "Webhooks" not in tags  # the title Redoc and Swagger UI give the `webhooks` section
    assert {"Webhook endpoints", "Webhook events"} <= tags


def test_local_times_are_documented_and_checked_without_an_offset() -> None:
    """`09:00` is RFC 3339 `partial-time`; a window mixing `09:00` and `17:00Z` is a 422,
    not a comparison of a naive and an aware time (found by schemathesis once the schema
    said what the field takes)."""
    from pydantic import ValidationError

    from app.sequences.definition import TimeWindow

    with pytest.raises(ValidationError, match="without an offset"):
        TimeWindow.model_validate({"start": "09:00", "end": "17:00Z"})
    assert TimeWindow.model_validate({"start": "09:00", "end": "17:00"}).end.hour == 17
