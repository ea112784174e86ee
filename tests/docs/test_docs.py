"""The docs are tested against the code: request examples run against the app, relative links
resolve, the configuration page lists exactly the settings, and every API operation is
mentioned somewhere in the docs. A doc that drifts from the code fails here."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from app.config import Settings
from tests.docs.markdown import ROOT, anchors, blocks, documents, links
from tests.docs.requests import documented_json, run_example, shape_mismatches
from tests.fixtures.tenants import Tenant

# Pages whose examples need more than the API (a worker, a moving clock, an SMTP server): each
# has its own test that runs the same examples with those in place.
DRIVEN_BY_THEIR_OWN_TEST = {"docs/quickstart.md": "tests/docs/test_quickstart.py"}


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def pages_with_examples() -> list[str]:
    return [
        relative(path)
        for path in documents()
        if any(block.marker == "example" for block in blocks(path))
        and relative(path) not in DRIVEN_BY_THEIR_OWN_TEST
    ]


def test_every_request_example_is_marked() -> None:
    """An example nobody runs is an example that rots: it is run, or skipped with a reason."""
    unmarked = [
        block.where
        for path in documents()
        for block in blocks(path)
        if block.is_request and block.marker != "example"
    ]
    assert not unmarked, f"request examples without an <!-- example: ... --> marker: {unmarked}"
    unexplained = [
        block.where
        for path in documents()
        for block in blocks(path)
        if block.marker == "example"
        and "skip" in block.options
        and not block.options["skip"].strip()
    ]
    assert not unexplained, f'skipped examples need a reason: skip="...": {unexplained}'


async def run_page(client: httpx.AsyncClient, path: Path, key: str) -> None:
    variables: dict[str, str] = {}
    last: httpx.Response | None = None
    for block in blocks(path):
        if block.marker == "example" and "skip" not in block.options:
            last = (await run_example(client, block, key, variables))[-1]
        elif block.marker == "response":
            assert last is not None, f"{block.where}: a response with no example before it"
            problems = shape_mismatches(documented_json(block), last.json())
            assert not problems, f"{block.where}: the answer differs from the doc: {problems}"


@pytest.mark.parametrize("page", pages_with_examples())
async def test_request_examples_answer_as_documented(
    page: str, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    # $KEY is the owner-bound admin key, as `make run` prints it.
    await run_page(client, ROOT / page, tenant.token)


def test_relative_links_resolve() -> None:
    broken: list[str] = []
    for path in documents():
        for line, target in links(path):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            destination = (path.parent / file_part).resolve() if file_part else path
            where = f"{relative(path)}:{line} -> {target}"
            if not destination.exists():
                broken.append(f"{where}: no such file")
            elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                broken.append(f"{where}: no such heading")
    assert not broken, "\n".join(broken)


def settings_variables(model: type[BaseModel] = Settings, prefix: str = "HERALD_") -> set[str]:
    """Every environment variable the settings read, from the pydantic-settings model itself:
    nested sections become `HERALD_SECTION__FIELD`, aliases count as they are spelt."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        section = _section(info.annotation)
        if section is not None:
            names |= settings_variables(section, f"{prefix}{name.upper()}__")
            continue
        aliases = getattr(info.validation_alias, "choices", None)
        if aliases:
            names |= {str(alias) for alias in aliases}
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


def _section(annotation: Any) -> type[BaseModel] | None:
    """The settings section a field holds (`X` or `X | None`); a dict of models (inbound
    providers) is one JSON variable, not a section."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (dict, list):
        return None
    for argument in typing.get_args(annotation):
        if isinstance(argument, type) and issubclass(argument, BaseModel):
            return argument
    return None


def documented_variables() -> set[str]:
    """Names in the first column of docs/configuration.md's tables; `HERALD_A__B__C` /
    `__D` spells `HERALD_A__B__D` too."""
    names: set[str] = set()
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        if not line.startswith("|") or line.startswith("| ---"):
            continue
        first_cell = line.split("|")[1]
        tokens = re.findall(r"`([A-Z_][A-Z0-9_]*)`", first_cell)
        base = ""
        for token in tokens:
            if token.startswith("__") and base:
                names.add(base + token)
            else:
                names.add(token)
                base = token.rsplit("__", 1)[0] if "__" in token else ""
    names.discard("Variable")
    return names


def test_configuration_page_lists_exactly_the_settings() -> None:
    in_code, in_docs = settings_variables(), documented_variables()
    assert not in_code - in_docs, (
        f"settings missing from docs/configuration.md: {sorted(in_code - in_docs)}"
    )
    assert not in_docs - in_code, (
        f"docs/configuration.md names unknown settings: {sorted(in_docs - in_code)}"
    )


def normalised(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/"))


def test_every_operation_is_mentioned_in_the_docs() -> None:
    """Each operation appears in some page as `METHOD /v1/path` (placeholders spelt freely)."""
    from app.main import create_app

    document = create_app(Settings(database_url=None, redis_url=None)).openapi()
    text = "\n".join(path.read_text() for path in documents())
    mentioned = {
        (method, normalised(path))
        for method, path in re.findall(r"\b(GET|POST|PUT|PATCH|DELETE)\s+`?(/[\w/{}.\-]*)", text)
    }
    missing = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
        and (method.upper(), normalised(path)) not in mentioned
    ]
    assert not missing, f"operations no doc page mentions: {missing}"
