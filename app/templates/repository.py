"""Every query of the templates domain, scoped by workspace."""

from __future__ import annotations

import uuid

from app.core.pagination import PageParams, PageResult, apply_page, to_page
from app.core.repository import WorkspaceRepository
from app.templates.models import Template, TemplateVersion


class TemplateRepository(WorkspaceRepository[Template]):
    model = Template
    noun = "template"


class TemplateVersionRepository(WorkspaceRepository[TemplateVersion]):
    model = TemplateVersion
    noun = "template version"

    async def by_number(self, template_id: uuid.UUID, number: int) -> TemplateVersion | None:
        statement = self.scoped().where(
            TemplateVersion.template_id == template_id, TemplateVersion.number == number
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def of_template(
        self, template_id: uuid.UUID, params: PageParams
    ) -> PageResult[TemplateVersion]:
        statement = apply_page(
            self.scoped().where(TemplateVersion.template_id == template_id),
            TemplateVersion.id,
            params,
        )
        rows = (await self.session.execute(statement)).scalars().all()
        return to_page(rows, params, lambda item: item.id)
