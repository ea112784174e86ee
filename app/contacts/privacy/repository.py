"""Queries for export and erasure: everything keyed by one contact, scoped by workspace."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import bindparam, delete, func, literal, or_, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.models import ContactImport, ContactImportError
from app.core.db import rowcount
from app.core.idempotency import IdempotencyRecord

ERASED_TEXT = "[erased]"


class PrivacyRepository:
    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    # --- erasure ---------------------------------------------------------------------------

    async def scrub_import_errors(self, needles: Collection[str]) -> int:
        """Import error messages quoting one of `needles` (case-insensitive) are replaced."""
        if not needles:
            return 0
        message = func.lower(ContactImportError.message)
        result = await self.session.execute(
            update(ContactImportError)
            .where(
                ContactImportError.import_id == ContactImport.id,
                ContactImport.workspace_id == self.workspace_id,
                or_(*(func.strpos(message, needle.lower()) > 0 for needle in needles)),
            )
            .values(message=ERASED_TEXT)
        )
        return rowcount(result)

    async def forget_stored_responses(self, needles: Collection[str]) -> int:
        """Idempotency replays (kept 24 h) whose stored body quotes one of `needles`.

        Forgetting a record only means a retry with that key runs again."""
        if not needles:
            return 0
        body = IdempotencyRecord.response_body
        # Case-insensitive, like the other scrubs: a response may echo an address as the
        # client sent it (`/v1/suppressions/check`). Bytes compared in `escape` encoding,
        # lowercased (ASCII case folding, never fails on partial UTF-8).
        content = func.lower(func.encode(body, "escape"))
        result = await self.session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.workspace_id == self.workspace_id,
                body.is_not(None),
                or_(
                    *(
                        func.strpos(content, func.lower(func.encode(literal(n.encode()), "escape")))
                        > 0
                        for n in needles
                    )
                ),
            )
        )
        return rowcount(result)

    async def forget_finished_import_files(self, needles: Collection[str]) -> int:
        """Drop the stored file of finished imports that contain one of `needles`.

        Chunks are searched with the start of the next chunk appended, so an address cut
        by a chunk boundary is still found; bytes are compared in `escape` encoding,
        lowercased (case-insensitive for ASCII, never fails on partial UTF-8 sequences).
        Queued and running imports still need their file and are left alone."""
        if not needles:
            return 0
        names = [f"n{index}" for index in range(len(needles))]
        matches = " OR ".join(
            f"strpos(content, lower(encode(convert_to(:{name}, 'UTF8'), 'escape'))) > 0"
            for name in names
        )
        overlap = max(len(needle.encode()) for needle in needles)
        statement = text(
            f"""
            WITH windows AS (
                SELECT c.import_id,
                       lower(encode(c.data || coalesce(substring(
                           lead(c.data) OVER (PARTITION BY c.import_id ORDER BY c.seq)
                           FROM 1 FOR :overlap), ''::bytea), 'escape')) AS content
                FROM contact_import_chunks c
                JOIN contact_imports i ON i.id = c.import_id
                WHERE i.workspace_id = :workspace_id AND i.status IN ('completed', 'failed')
            )
            DELETE FROM contact_import_chunks
            WHERE import_id IN (SELECT import_id FROM windows WHERE {matches})
            RETURNING import_id
            """  # only generated parameter names are interpolated above
        ).bindparams(
            bindparam("workspace_id", self.workspace_id),
            bindparam("overlap", overlap),
            *(bindparam(name, needle) for name, needle in zip(names, needles, strict=True)),
        )
        removed = await self.session.execute(statement)
        return len({row[0] for row in removed.all()})
