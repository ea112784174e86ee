"""Turning documented request examples (curl commands, raw HTTP) into requests against the app,
and checking their answers.

Shell understood: `NAME=value` assignments, `$NAME` / `${NAME}` / `$(uuidgen)`, backslash line
continuations, `-d @- <<EOF` here-documents, and `NAME=$(curl ... | jq -r .field)` captures, so
the quickstart's copy-paste commands run as written. `$KEY` is always the test tenant's key.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema_rs

from app.core.clock import utcnow
from tests.docs.markdown import HTTP_REQUEST_LINE, Block

DATE = re.compile(r"\$\(date -u \+([^)\s]*)\)")
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")
CAPTURE = re.compile(r"^(\w+)=\$\((.*)\)$", re.DOTALL)
JQ = re.compile(r"\|\s*jq\s+-r\s+'?([.\w\[\]]+)'?\s*$")
ASSIGNMENT = re.compile(r"^(\w+)=(\S*)(\s+#.*)?$")
URL = re.compile(r"^(?:https?://)?[^/\s]*(/.*)?$")
IGNORED_FLAGS = {"-s", "-S", "-sS", "-Ss", "-i", "-f", "--fail", "--silent", "--show-error", "-N"}


class ExampleError(AssertionError):
    pass


@dataclass
class DocRequest:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    capture: tuple[str, str] | None = None  # (variable, jq path) to set from the answer


def substitute(text: str, variables: dict[str, str], where: str) -> str:
    text = text.replace("$(uuidgen)", str(uuid.uuid4()))
    # `$(date -u +FORMAT)`: the app's clock, so a test that moves it moves "now" here too.
    text = DATE.sub(lambda match: utcnow().strftime(match.group(1)), text)

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise ExampleError(f"{where}: ${name} is not set by an earlier example")
        return variables[name]

    return VARIABLE.sub(value, text)


def statements(text: str) -> list[tuple[str, str | None]]:
    """Shell statements, each with its here-document body (if any)."""
    lines = text.splitlines()
    result: list[tuple[str, str | None]] = []
    index = 0
    while index < len(lines):
        statement = lines[index]
        index += 1
        while statement.endswith("\\") and index < len(lines):
            statement = statement[:-1] + " " + lines[index].strip()
            index += 1
        heredoc: str | None = None
        marker = HEREDOC.search(statement)
        if marker:
            body: list[str] = []
            while index < len(lines) and lines[index].strip() != marker.group(1):
                body.append(lines[index])
                index += 1
            index += 1
            heredoc = "\n".join(body)
            statement = HEREDOC.sub("", statement)
        if re.match(r"^\w+=\$\(", statement) and not statement.rstrip().endswith(")"):
            while index < len(lines) and lines[index].strip() != ")":
                statement += " " + lines[index].strip()
                index += 1
            index += 1
            statement += ")"
        if statement.strip() and not statement.strip().startswith("#"):
            result.append((statement.strip(), heredoc))
    return result


def parse_curl(command: str, heredoc: str | None, where: str) -> DocRequest:
    args = shlex.split(command, comments=True)
    if not args or args[0] != "curl":
        raise ExampleError(f"{where}: not a curl command: {command!r}")
    method: str | None = None
    headers: dict[str, str] = {}
    body: str | None = None
    path: str | None = None
    items = iter(args[1:])
    for arg in items:
        if arg in ("-H", "--header"):
            name, _, value = next(items).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data", "--data-raw", "--data-binary", "--json"):
            data = next(items)
            body = heredoc if data == "@-" else data
            if arg == "--json":
                headers.setdefault("Content-Type", "application/json")
        elif arg in ("-X", "--request"):
            method = next(items)
        elif arg in IGNORED_FLAGS:
            continue
        elif arg.startswith("-"):
            raise ExampleError(f"{where}: curl option {arg} is not understood by the docs test")
        else:
            match = URL.match(arg)
            if match is None:
                raise ExampleError(f"{where}: cannot read the URL {arg!r}")
            path = match.group(1) or "/"
    if path is None:
        raise ExampleError(f"{where}: curl without a URL")
    return DocRequest(method or ("POST" if body is not None else "GET"), path, headers, body)


def shell_request(
    block: Block, statement: str, heredoc: str | None, variables: dict[str, str]
) -> DocRequest | None:
    """The request a statement makes (None for an assignment, which updates `variables`).
    Called statement by statement, so a capture is usable by the next command."""
    capture = CAPTURE.match(statement)
    if capture:
        inner = capture.group(2).strip()
        jq = JQ.search(inner)
        if jq is None:
            raise ExampleError(f"{block.where}: a capture needs `| jq -r .field`")
        command = substitute(inner[: jq.start()], variables, block.where)
        body = substitute(heredoc, variables, block.where) if heredoc is not None else None
        request = parse_curl(command, body, block.where)
        request.capture = (capture.group(1), jq.group(1))
        return request
    assignment = ASSIGNMENT.match(statement)
    if assignment and "curl" not in statement:
        if assignment.group(1) != "KEY":  # the test's own key stands for the printed one
            variables[assignment.group(1)] = substitute(assignment.group(2), variables, block.where)
        return None
    command = substitute(statement, variables, block.where)
    body = substitute(heredoc, variables, block.where) if heredoc is not None else None
    return parse_curl(command, body, block.where)


def parse_shell(block: Block, variables: dict[str, str]) -> list[DocRequest]:
    """The block's requests, all at once (a capture's variable is not set until it runs)."""
    found = [shell_request(block, *pair, variables) for pair in statements(block.text)]
    return [request for request in found if request is not None]


def parse_http(block: Block, variables: dict[str, str]) -> list[DocRequest]:
    lines = substitute(block.text, variables, block.where).strip().splitlines()
    match = HTTP_REQUEST_LINE.match(lines[0].strip())
    if match is None:
        raise ExampleError(f"{block.where}: an http block starts with `METHOD /path`")
    headers: dict[str, str] = {}
    index = 1
    while index < len(lines) and re.match(r"^[\w-]+:\s", lines[index]):
        name, _, value = lines[index].partition(":")
        headers[name.strip()] = value.strip()
        index += 1
    body = "\n".join(lines[index:]).strip() or None
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    return [DocRequest(match.group(1), match.group(2), headers, body)]


def parse(block: Block, variables: dict[str, str]) -> list[DocRequest]:
    if block.info == "http" or HTTP_REQUEST_LINE.match(block.text.strip()):
        return parse_http(block, variables)
    return parse_shell(block, variables)


def jq_path(document: Any, path: str) -> Any:
    """`.a.b`, `.data[0].id`: the subset of jq a capture uses."""
    value = document
    for name, index in re.findall(r"\.(\w+)|\[(\d+)\]", path):
        value = value[name] if name else value[int(index)]
    return value


async def run_example(
    http: httpx.AsyncClient, block: Block, key: str, variables: dict[str, str]
) -> list[httpx.Response]:
    """Send the block's requests in order and check each answer's status and media type; a
    capture sets its variable before the next statement is read."""
    expected = [int(code) for code in block.options.get("status", "").split(",") if code]
    variables["KEY"] = key
    responses: list[httpx.Response] = []
    for request in _requests(block, variables):
        if len(responses) == len(expected):
            raise ExampleError(
                f"{block.where}: more requests than status={block.options.get('status')}"
            )
        responses.append(
            await _send(http, block, request, key, expected[len(responses)], variables)
        )
    if len(responses) != len(expected):
        raise ExampleError(
            f"{block.where}: {len(responses)} requests but status={block.options.get('status')}"
        )
    return responses


def _requests(block: Block, variables: dict[str, str]) -> Iterator[DocRequest]:
    if block.info == "http" or HTTP_REQUEST_LINE.match(block.text.strip()):
        yield from parse_http(block, variables)
        return
    for statement, heredoc in statements(block.text):
        request = shell_request(block, statement, heredoc, variables)
        if request is not None:
            yield request


async def _send(
    http: httpx.AsyncClient,
    block: Block,
    request: DocRequest,
    key: str,
    status: int,
    variables: dict[str, str],
) -> httpx.Response:
    headers = dict(request.headers)
    # Raw HTTP examples leave the key out for brevity; curl examples show it.
    if "Authorization" in headers or block.info == "http":
        headers["Authorization"] = f"Bearer {key}"
    response = await http.request(
        request.method, request.path, headers=headers, content=request.body
    )
    label = f"{block.where}: {request.method} {request.path}"
    if response.status_code != status:
        raise ExampleError(
            f"{label} answered {response.status_code}, the doc says {status}: {response.text[:800]}"
        )
    media = response.headers.get("content-type", "")
    if status >= 400 and not media.startswith("application/problem+json"):
        raise ExampleError(f"{label}: an error answer must be problem+json, got {media}")
    problems = schema_mismatches(request.method, request.path, response)
    if problems:
        raise ExampleError(f"{label}: the answer disagrees with the OpenAPI document: {problems}")
    if request.capture is not None:
        name, path = request.capture
        try:
            variables[name] = str(jq_path(response.json(), path))
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise ExampleError(f"{label}: no {path} in the answer ({error})") from None
    return response


def shape_mismatches(expected: Any, actual: Any, pointer: str = "") -> list[str]:
    """Where `actual` lacks the structure `expected` shows: every key of every documented
    object is present (recursively), and documented lists are lists (their first item is
    compared with each actual item)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [
                f"{pointer or '/'}: an object in the doc, {type(actual).__name__} in the answer"
            ]
        problems = [f"{pointer}/{name}: missing" for name in expected if name not in actual]
        for name, value in expected.items():
            if name in actual:
                problems += shape_mismatches(value, actual[name], f"{pointer}/{name}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{pointer or '/'}: a list in the doc, {type(actual).__name__} in the answer"]
        if expected and isinstance(expected[0], dict):
            return [
                p for item in actual for p in shape_mismatches(expected[0], item, f"{pointer}/*")
            ]
    return []


def documented_json(block: Block) -> Any:
    try:
        return json.loads(block.text)
    except json.JSONDecodeError as error:
        raise ExampleError(f"{block.where}: the documented response is not JSON: {error}") from None


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    from app.config import Settings
    from app.main import create_app

    document: dict[str, Any] = create_app(Settings(database_url=None, redis_url=None)).openapi()
    return document


def _operation(method: str, path: str) -> dict[str, Any] | None:
    """The OpenAPI operation serving `path` (literal segments beat placeholders)."""
    candidates = []
    for template, operations in openapi_document()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            candidates.append((template.count("{"), operations[method.lower()]))
    if not candidates:
        return None
    operation: dict[str, Any] = min(candidates, key=lambda item: item[0])[1]
    return operation


def schema_mismatches(method: str, path: str, response: httpx.Response) -> list[str]:
    """What in the answer disagrees with the OpenAPI document: an undocumented status, or a
    JSON body its documented schema rejects."""
    operation = _operation(method, path.split("?", 1)[0])
    if operation is None:
        return [f"no OpenAPI operation serves {method} {path}"]
    documented = operation.get("responses", {})
    answer = documented.get(str(response.status_code)) or documented.get("default")
    if answer is None:
        return [
            f"status {response.status_code} is not documented (documented: {sorted(documented)})"
        ]
    media = response.headers.get("content-type", "").split(";")[0]
    schema = answer.get("content", {}).get(media, {}).get("schema")
    if schema is None or not media.endswith("json"):
        return []
    validator = jsonschema_rs.Draft202012Validator(
        {**schema, "components": openapi_document().get("components", {})}
    )
    return [
        f"{error.instance_path}: {error.message}"
        for error in validator.iter_errors(response.json())
    ]
