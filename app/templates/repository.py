"""Every query of the templates domain, scoped by workspace."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import select

from app.core.repository import VersionRepository, WorkspaceRepository
from app.templates.models import Template, TemplateVersion


class TemplateRepository(WorkspaceRepository[Template]):
    model = Template
    noun = "template"


class TemplateVersionRepository(VersionRepository[TemplateVersion]):
    model = TemplateVersion
    noun = "template version"
    parent = "template_id"

    async def contents(
        self, ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[str, dict[str, Any]]]:
        """(channel, content) of each of these versions found in the workspace."""
        result = await self.session.execute(
            select(TemplateVersion.id, TemplateVersion.channel, TemplateVersion.content).where(
                TemplateVersion.workspace_id == self.workspace_id, TemplateVersion.id.in_(list(ids))
            )
        )
        return {version_id: (channel, content) for version_id, channel, content in result}
