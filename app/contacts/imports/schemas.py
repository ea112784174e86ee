from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from app.core.schemas import ResponseModel

_EXAMPLE_TIME = "2026-11-22T09:30:00Z"


class ImportOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b80",
                    "status": "completed",
                    "format": "csv",
                    "filename": "crm-export.csv",
                    "size_bytes": 1832551,
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "total_rows": 20000,
                    "processed_rows": 20000,
                    "created_count": 19950,
                    "updated_count": 30,
                    "unchanged_count": 12,
                    "failed_count": 8,
                    "errors_truncated": False,
                    "error": None,
                    "created_at": _EXAMPLE_TIME,
                    "updated_at": _EXAMPLE_TIME,
                    "started_at": _EXAMPLE_TIME,
                    "finished_at": _EXAMPLE_TIME,
                }
            ]
        },
    )

    id: uuid.UUID
    status: Literal["queued", "running", "completed", "failed"]
    format: Literal["csv", "ndjson"]
    filename: str | None
    size_bytes: int
    sha256: str = Field(description="SHA-256 of the uploaded bytes, hex.")
    total_rows: int = Field(description="Rows in the file; known once the import finished.")
    processed_rows: int = Field(description="Rows read so far (good and bad).")
    created_count: int
    updated_count: int
    unchanged_count: int = Field(description="Rows whose contact already had these values.")
    failed_count: int = Field(description="Rows rejected; see the errors endpoint.")
    errors_truncated: bool = Field(
        description="More rows failed than are stored (the first 1,000 failed rows are)."
    )
    error: str | None = Field(description="Why the import failed, when `status` is `failed`.")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class FieldProblem(ResponseModel):
    field: str = Field(description="`email`, `attributes.plan`, ... or `row` for the row.")
    message: str


class ImportRowErrorOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "row_number": 17,
                    "errors": [
                        {"field": "email", "message": "value is not a valid email address"},
                        {"field": "timezone", "message": "timezone must be an IANA name"},
                    ],
                }
            ]
        }
    )

    row_number: int = Field(description="Line in the file where the row starts (1-based).")
    errors: list[FieldProblem]
