"""Schema bases: request bodies reject unknown fields; responses are plain models."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(ResponseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next page."""

    data: list[T]
    next_cursor: str | None = None
