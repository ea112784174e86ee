"""ETag / If-Match helpers (app/core/etag.py)."""

from __future__ import annotations

import uuid

import pytest

from app.core.errors import BadRequest, PreconditionFailed
from app.core.etag import check_if_match, make_etag, parse_if_match

ID = uuid.UUID("0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b70")


def test_etag_is_strong_and_versioned() -> None:
    assert make_etag(ID, 3) == f'"{ID}.3"'
    assert make_etag(ID, 3) != make_etag(ID, 4)
    assert make_etag(ID, 3) != make_etag(uuid.uuid4(), 3)


@pytest.mark.parametrize(
    ("header", "tags"),
    [
        ("*", None),
        (' "a" ', ["a"]),
        ('"a", W/"b",   "c,d"', ["a", "b", "c,d"]),
    ],
)
def test_parse_if_match(header: str, tags: list[str] | None) -> None:
    assert parse_if_match(header) == tags


@pytest.mark.parametrize("header", ["a", '"a', '"a" "b"', "W/a", '"a",,', ""])
def test_malformed_if_match_is_400(header: str) -> None:
    with pytest.raises(BadRequest):
        parse_if_match(header)


def test_check_if_match() -> None:
    check_if_match(None, ID, 2)
    check_if_match("*", ID, 2)
    check_if_match(make_etag(ID, 2), ID, 2)
    check_if_match(f"W/{make_etag(ID, 2)}", ID, 2)
    with pytest.raises(PreconditionFailed) as stale:
        check_if_match(make_etag(ID, 1), ID, 2)
    assert stale.value.extra == {"current_etag": make_etag(ID, 2)}
