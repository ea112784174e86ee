"""Import rows, their stored file chunks, progress counters and per-row errors."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app.contacts.models import ContactImport, ContactImportChunk, ContactImportError
from app.core.repository import WorkspaceRepository


def _storable(text: str) -> str:
    """Row errors may quote the file (a field named by a JSON key): PostgreSQL text cannot
    hold NUL or lone surrogates, and one such row must not fail the whole import."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True)
class RowError:
    row_number: int
    field: str
    message: str


@dataclass(frozen=True)
class Progress:
    processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0


class ImportRepository(WorkspaceRepository[ContactImport]):
    model = ContactImport
    noun = "import"

    async def add_chunk(self, import_id: uuid.UUID, seq: int, data: bytes) -> None:
        await self.session.execute(
            insert(ContactImportChunk).values(import_id=import_id, seq=seq, data=data)
        )

    async def chunk(self, import_id: uuid.UUID, seq: int) -> bytes | None:
        result = await self.session.execute(
            select(ContactImportChunk.data)
            .join(ContactImport, ContactImport.id == ContactImportChunk.import_id)
            .where(
                ContactImport.workspace_id == self.workspace_id,
                ContactImportChunk.import_id == import_id,
                ContactImportChunk.seq == seq,
            )
        )
        return result.scalar_one_or_none()

    async def claim(self, import_id: uuid.UUID, now: datetime) -> bool:
        """Start (or restart, after a worker died mid-way) a queued or running import."""
        result = await self.session.execute(
            update(ContactImport)
            .where(
                ContactImport.workspace_id == self.workspace_id,
                ContactImport.id == import_id,
                ContactImport.status.in_(("queued", "running")),
            )
            .values(
                status="running",
                started_at=now,
                updated_at=now,
                processed_rows=0,
                created_count=0,
                updated_count=0,
                unchanged_count=0,
                failed_count=0,
                error=None,
            )
            .returning(ContactImport.id)
        )
        if result.scalar_one_or_none() is None:
            return False
        await self.session.execute(
            delete(ContactImportError).where(ContactImportError.import_id == import_id)
        )
        return True

    async def add_progress(self, import_id: uuid.UUID, delta: Progress, now: datetime) -> None:
        table = ContactImport
        await self.session.execute(
            update(table)
            .where(table.workspace_id == self.workspace_id, table.id == import_id)
            .values(
                processed_rows=table.processed_rows + delta.processed,
                created_count=table.created_count + delta.created,
                updated_count=table.updated_count + delta.updated,
                unchanged_count=table.unchanged_count + delta.unchanged,
                failed_count=table.failed_count + delta.failed,
                updated_at=now,
            )
        )

    async def finish(
        self, import_id: uuid.UUID, status: str, error: str | None, now: datetime
    ) -> None:
        await self.session.execute(
            update(ContactImport)
            .where(ContactImport.workspace_id == self.workspace_id, ContactImport.id == import_id)
            .values(
                status=status,
                error=error,
                total_rows=ContactImport.processed_rows,
                finished_at=now,
                updated_at=now,
            )
        )

    async def add_errors(self, import_id: uuid.UUID, errors: Sequence[RowError]) -> None:
        if not errors:
            return
        statement = pg_insert(ContactImportError).values(
            [
                {
                    "import_id": import_id,
                    "row_number": e.row_number,
                    "field": _storable(e.field)[:200],
                    "message": _storable(e.message),
                }
                for e in errors
            ]
        )
        await self.session.execute(statement.on_conflict_do_nothing())

    async def error_rows(
        self, import_id: uuid.UUID, after_row: int | None, limit: int
    ) -> list[tuple[int, list[dict[str, Any]]]]:
        """Errors grouped by row, in file order, `limit` rows from after `after_row`."""
        statement = (
            select(
                ContactImportError.row_number,
                func.jsonb_agg(
                    func.jsonb_build_object(
                        "field", ContactImportError.field, "message", ContactImportError.message
                    )
                ),
            )
            .join(ContactImport, ContactImport.id == ContactImportError.import_id)
            .where(
                ContactImport.workspace_id == self.workspace_id,
                ContactImportError.import_id == import_id,
            )
            .group_by(ContactImportError.row_number)
            .order_by(ContactImportError.row_number)
            .limit(limit)
        )
        if after_row is not None:
            statement = statement.where(ContactImportError.row_number > after_row)
        result = await self.session.execute(statement)
        return [(row[0], row[1]) for row in result]
