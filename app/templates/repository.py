"""Every query of the templates domain, scoped by workspace."""

from __future__ import annotations

import uuid

from sqlalchemy import Text, cast, select

from app.core.repository import VersionRepository, WorkspaceRepository
from app.sequences.models import SequenceVersion
from app.templates.models import Template, TemplateVersion


class TemplateRepository(WorkspaceRepository[Template]):
    model = Template
    noun = "template"

    async def pinned_by_sequences(self, template_id: uuid.UUID) -> bool:
        """Whether a published sequence version sends this template (ids are unique
        strings, so a text search of the stored definition is exact)."""
        statement = select(SequenceVersion.id).where(
            SequenceVersion.workspace_id == self.workspace_id,
            cast(SequenceVersion.definition, Text).contains(str(template_id)),
        )
        return (await self.session.execute(statement.limit(1))).first() is not None


class TemplateVersionRepository(VersionRepository[TemplateVersion]):
    model = TemplateVersion
    noun = "template version"
    parent = "template_id"
