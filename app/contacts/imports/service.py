"""Bulk contact imports: store the upload, then a job parses, validates and upserts it.

The upload is streamed into `contact_import_chunks` (PostgreSQL, so any worker can read it)
while its SHA-256 and size are computed; nothing holds the whole file in memory. The job
streams the chunks back in order, parses incrementally, validates each row with the API's
own `ContactUpsert` model and upserts good rows in batches with the same set-wise upsert
as `POST /v1/contacts/upsert`, committing progress after every batch.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.imports.parser import Decoder, ImportFileError, ParsedRow, parser_for
from app.contacts.imports.repository import ImportRepository, Progress, RowError
from app.contacts.models import ContactImport
from app.contacts.repository import UpsertRow
from app.contacts.schemas import ContactUpsert
from app.contacts.service import upsert_row, upsert_rows
from app.core.clock import utcnow
from app.core.errors import FieldError, Unprocessable, UnsupportedMediaType
from app.core.jobs import enqueue
from app.core.pagination import InvalidCursor, PageParams, PageResult
from app.core.schemas import check_text

TASK = "run_contact_import"
CHUNK_BYTES = 1_048_576
PARSE_SLICE_BYTES = 65_536
BATCH_ROWS = 1_000
MAX_STORED_ERROR_ROWS = 1_000
MEDIA_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
}

OpenSession = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def file_format(content_type: str | None) -> str:
    media_type, _, params = (content_type or "").partition(";")
    fmt = MEDIA_TYPES.get(media_type.strip().lower())
    charset = params.strip().lower().removeprefix("charset=").strip('"')
    if fmt is None or (params.strip() and charset not in ("utf-8", "utf8")):
        raise UnsupportedMediaType(
            "Upload the file as the raw body with `Content-Type: text/csv` or "
            "`application/x-ndjson` (UTF-8)."
        )
    return fmt


async def create_import(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    content_type: str | None,
    filename: str | None,
    body: AsyncIterator[bytes],
) -> ContactImport:
    fmt = file_format(content_type)
    if filename is not None:
        try:
            check_text(filename)
        except ValueError as exc:
            raise Unprocessable(
                "The filename is invalid.",
                errors=[
                    FieldError(
                        pointer="/filename",
                        location="query",
                        message=str(exc),
                        code="invalid_character",
                    )
                ],
            ) from exc
    imports = ImportRepository(session, workspace_id)
    now = utcnow()
    record = imports.add(
        ContactImport(
            status="queued",
            format=fmt,
            filename=filename,
            size_bytes=0,
            sha256="",
            total_rows=0,
            processed_rows=0,
            created_count=0,
            updated_count=0,
            unchanged_count=0,
            failed_count=0,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    digest, size, seq, pending = hashlib.sha256(), 0, 0, bytearray()
    async for piece in body:
        digest.update(piece)
        size += len(piece)
        pending += piece
        while len(pending) >= CHUNK_BYTES:
            await imports.add_chunk(record.id, seq, bytes(pending[:CHUNK_BYTES]))
            del pending[:CHUNK_BYTES]
            seq += 1
    if pending:
        await imports.add_chunk(record.id, seq, bytes(pending))
    if size == 0:
        raise Unprocessable("The file is empty.")
    record.size_bytes = size
    record.sha256 = digest.hexdigest()
    await session.flush()
    enqueue(session, TASK, str(workspace_id), str(record.id), job_key=(record.id,))
    return record


async def list_imports(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams
) -> PageResult[ContactImport]:
    return await ImportRepository(session, workspace_id).page(params)


async def get_import(
    session: AsyncSession, workspace_id: uuid.UUID, import_id: uuid.UUID
) -> ContactImport:
    return await ImportRepository(session, workspace_id).get_or_404(import_id)


@dataclass(frozen=True)
class RowErrors:
    row_number: int
    errors: list[dict[str, str]]


async def list_errors(
    session: AsyncSession, workspace_id: uuid.UUID, import_id: uuid.UUID, params: PageParams
) -> PageResult[RowErrors]:
    """Rows in file order. The cursor carries the last row number (as an opaque UUID)."""
    imports = ImportRepository(session, workspace_id)
    await imports.get_or_404(import_id)
    after = params.after_id.int if params.after_id is not None else None
    if after is not None and after >= 2**31:
        raise InvalidCursor
    rows = await imports.error_rows(import_id, after, params.limit + 1)
    items = [RowErrors(number, errors) for number, errors in rows]
    if len(items) > params.limit:
        items = items[: params.limit]
        return PageResult(items, params.cursor_for(uuid.UUID(int=items[-1].row_number)))
    return PageResult(items, None)


def errors_truncated(record: ContactImport) -> bool:
    return record.failed_count > MAX_STORED_ERROR_ROWS


@dataclass
class _Run:
    """One pass over an import file: pending rows and errors, flushed batch by batch."""

    open_session: OpenSession
    workspace_id: uuid.UUID
    import_id: uuid.UUID
    rows: list[tuple[int, UpsertRow]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    failed_rows: int = 0
    stored_error_rows: int = 0

    def take(self, parsed: ParsedRow) -> None:
        problems = parsed.errors
        if parsed.data is not None and not problems:
            try:
                contact = ContactUpsert.model_validate(parsed.data)
            except ValidationError as exc:
                problems = [(_field(e["loc"]), e["msg"]) for e in exc.errors()]
            else:
                self.rows.append((parsed.row_number, upsert_row(contact)))
                return
        self._fail(parsed.row_number, problems)

    def _fail(self, row_number: int, problems: list[tuple[str, str]]) -> None:
        self.failed_rows += 1
        if self.stored_error_rows >= MAX_STORED_ERROR_ROWS:
            return
        self.stored_error_rows += 1
        seen: set[str] = set()
        for name, message in problems:
            if name not in seen:  # one message per field and row
                seen.add(name)
                self.errors.append(RowError(row_number, name, message))

    @property
    def pending(self) -> int:
        return len(self.rows) + self.failed_rows

    async def flush(self) -> None:
        if not self.rows and not self.failed_rows:
            return
        invalid = self.failed_rows
        async with self.open_session() as session:
            counts = {"created": 0, "updated": 0, "unchanged": 0}
            if self.rows:
                results = await upsert_rows(session, self.workspace_id, [r for _, r in self.rows])
                for (number, _), result in zip(self.rows, results, strict=True):
                    if result.outcome in counts:
                        counts[result.outcome] += 1
                    else:
                        self._fail(number, [(result.field or "row", result.message or "conflict")])
            imports = ImportRepository(session, self.workspace_id)
            await imports.add_errors(self.import_id, self.errors)
            delta = Progress(
                processed=len(self.rows) + invalid,
                failed=self.failed_rows,
                **counts,
            )
            await imports.add_progress(self.import_id, delta, utcnow())
        self.rows, self.errors, self.failed_rows = [], [], 0


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "row"


async def run_import(
    open_session: OpenSession, workspace_id: uuid.UUID, import_id: uuid.UUID
) -> None:
    """Process an import end to end; each batch commits its rows and progress together."""
    async with open_session() as session:
        imports = ImportRepository(session, workspace_id)
        if not await imports.claim(import_id, utcnow()):
            return  # finished already (a duplicate job), or gone
        record = await imports.get_or_404(import_id)
        fmt = record.format
    run = _Run(open_session, workspace_id, import_id)
    status, reason = "completed", None
    try:
        await _consume(run, fmt)
    except ImportFileError as exc:
        await run.flush()  # rows read before the unreadable part still land
        status, reason = "failed", str(exc)
    except Exception:
        status, reason = "failed", "An internal error stopped the import; it was logged."
        raise
    finally:
        async with open_session() as session:
            await ImportRepository(session, workspace_id).finish(
                import_id, status, reason, utcnow()
            )


async def _consume(run: _Run, fmt: str) -> None:
    decoder, parser, seq = Decoder(), parser_for(fmt), 0
    while True:
        async with run.open_session() as session:
            data = await ImportRepository(session, run.workspace_id).chunk(run.import_id, seq)
        if data is None:
            break
        seq += 1
        # Parse a chunk in slices so at most a slice's worth of parsed rows is in memory.
        for start in range(0, len(data), PARSE_SLICE_BYTES):
            text = decoder.decode(data[start : start + PARSE_SLICE_BYTES])
            for parsed in parser.feed(text):
                run.take(parsed)
                if run.pending >= BATCH_ROWS:
                    await run.flush()
            decoder.raise_if_failed()
    text = decoder.decode(b"", final=True)
    decoder.raise_if_failed()
    for parsed in parser.feed(text) + parser.finish():
        run.take(parsed)
    await run.flush()
