"""Every query of the sequences API (definitions and versions), scoped by workspace."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import Text, and_, cast, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.core.repository import VersionRepository, WorkspaceRepository
from app.segments.repository import SegmentRepository
from app.sequences.models import LIVE_STATES, Enrollment, Sequence, SequenceVersion
from app.templates.models import Template, TemplateVersion
from app.templates.repository import TemplateRepository


async def signing_secrets_by_id(
    session: AsyncSession, sequence_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Sequence id -> its signing secret (decrypted by the column type), across workspaces:
    for delivery, whose ids come from the messages it claimed, never from a request."""
    result = await session.execute(
        select(Sequence.id, Sequence.signing_secret).where(Sequence.id.in_(list(sequence_ids)))
    )
    return {row[0]: row[1] for row in result}


class SequenceRepository(WorkspaceRepository[Sequence]):
    model = Sequence
    noun = "sequence"

    async def for_edit_or_404(self, sequence_id: uuid.UUID) -> Sequence:
        """The row locked FOR NO KEY UPDATE: edits serialise with each other and with a
        delete (FOR UPDATE), but enrollments being inserted (their foreign key takes KEY
        SHARE on the sequence) do not wait for an edit."""
        statement = self.scoped().where(Sequence.id == sequence_id).with_for_update(key_share=True)
        found = (await self.session.execute(statement)).scalar_one_or_none()
        if found is None:
            raise NotFound(f"No sequence with id {sequence_id}.")
        return found

    async def has_live_enrollments(self, sequence_id: uuid.UUID) -> bool:
        statement = select(
            exists().where(
                Enrollment.workspace_id == self.workspace_id,
                Enrollment.sequence_id == sequence_id,
                Enrollment.state.in_(LIVE_STATES),
            )
        )
        return bool((await self.session.execute(statement)).scalar())

    async def mentioning(self, resource_id: uuid.UUID) -> list[Sequence]:
        """Sequences whose draft or any published version names this id (a template or a
        segment). Ids are unique strings, so a text search of the stored definitions is
        exact; old versions count because enrollments on them still run."""
        needle = str(resource_id)
        in_version = exists().where(
            SequenceVersion.workspace_id == self.workspace_id,
            SequenceVersion.sequence_id == Sequence.id,
            cast(SequenceVersion.definition, Text).contains(needle),
        )
        statement = (
            self.scoped()
            .where(or_(cast(Sequence.definition, Text).contains(needle), in_version))
            .order_by(Sequence.id)
        )
        return list((await self.session.execute(statement)).scalars().all())


class SequenceVersionRepository(VersionRepository[SequenceVersion]):
    model = SequenceVersion
    noun = "sequence version"
    parent = "sequence_id"


class ReferenceLookup:
    """Templates and segments a definition names, one query each."""

    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.templates = TemplateRepository(session, workspace_id)
        self.segments = SegmentRepository(session, workspace_id)

    async def templates_by_id(
        self, ids: Collection[uuid.UUID], *, lock: bool = False
    ) -> dict[uuid.UUID, tuple[Template, uuid.UUID | None]]:
        """Each template with the id of its current published version (None if unpublished).

        `lock` (publishing): FOR KEY SHARE on the templates, so a template cannot be deleted
        under the version being published; edits of the templates do not wait for it."""
        if not ids:
            return {}
        statement = (
            self.templates.scoped()
            .add_columns(TemplateVersion.id)
            .outerjoin(
                TemplateVersion,
                and_(
                    TemplateVersion.template_id == Template.id,
                    TemplateVersion.number == Template.published_version,
                ),
            )
            .where(Template.id.in_(list(ids)))
        )
        if lock:
            statement = statement.with_for_update(of=Template, read=True, key_share=True)
        rows = (await self.templates.session.execute(statement)).all()
        return {template.id: (template, version_id) for template, version_id in rows}

    async def existing_segments(self, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        return {segment.id for segment in await self.segments.by_ids(ids)}
