"""Bodies nested too deeply for the JSON reader: 422 `too_deep` with a pointer.

Python's JSON decoder recurses once per nesting level and gives up near the interpreter's
recursion limit (about 1,000 levels) with a RecursionError, which FastAPI turns into a bare
400 "There was an error parsing the body". RequestGuardMiddleware keeps a JSON body's chunks
in the scope (`BODY_CHUNKS`); when parsing failed that way, the error handler asks
`too_deep_problem` for a 422 naming where the nesting passes `REPORTED_DEPTH` levels. Bodies
that parse are checked by their models (a segment rule nests at most 8 levels, also
`too_deep`), so nothing here runs on the normal path.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.core.errors import FieldError, problem_response

BODY_CHUNKS = "herald.body_chunks"
REPORTED_DEPTH = 64

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


def deep_pointer(text: str, limit: int = REPORTED_DEPTH) -> str | None:
    """JSON pointer of the first container opened deeper than `limit` levels, else None.

    Tolerant of invalid JSON: only strings and structural characters are read."""
    stack: list[list[Any]] = []  # [kind, current key (object) or index (array)]
    last_string = ""
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            if len(stack) >= limit:
                return "".join("/" + _escape(key) for _, key in stack)
            stack.append([token, 0 if token == "[" else ""])
        elif token in ("]", "}"):
            if stack:
                stack.pop()
        elif token == ",":
            if stack and stack[-1][0] == "[":
                stack[-1][1] += 1
        elif token == ":":
            if stack and stack[-1][0] == "{":
                stack[-1][1] = last_string
        else:
            try:
                last_string = str(json.loads(token))
            except ValueError:
                last_string = token[1:-1]
    return None


def _escape(key: object) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def too_deep_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse | None:
    """The 422 for a body the JSON reader gave up on for its depth, else None."""
    if exc.status_code != 400 or not isinstance(exc.__cause__, RecursionError):
        return None
    chunks: list[bytes] | None = request.scope.get(BODY_CHUNKS)
    if not chunks:
        return None
    pointer = deep_pointer(b"".join(chunks).decode("utf-8", errors="replace")) or ""
    message = (
        f"The body nests too deeply to be read (about 1,000 levels is the limit of the JSON "
        f"reader); here it passes {REPORTED_DEPTH} levels. Rules and conditions nest at most a "
        "few levels."
    )
    return problem_response(
        422,
        f"The request body nests too deeply: {message}",
        errors=[FieldError(pointer=pointer, location="body", message=message, code="too_deep")],
    )
