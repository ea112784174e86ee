"""Every query of the templates domain, scoped by workspace."""

from __future__ import annotations

from app.core.repository import VersionRepository, WorkspaceRepository
from app.templates.models import Template, TemplateVersion


class TemplateRepository(WorkspaceRepository[Template]):
    model = Template
    noun = "template"


class TemplateVersionRepository(VersionRepository[TemplateVersion]):
    model = TemplateVersion
    noun = "template version"
    parent = "template_id"
