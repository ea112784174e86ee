"""Every model, imported once so `Base.metadata` is complete (Alembic, drift test)."""

from app.contacts.models import (
    ConsentChange,
    Contact,
    ContactConsent,
    ContactImport,
    ContactImportChunk,
    ContactImportError,
    Suppression,
)
from app.core.db import Base
from app.core.idempotency import IdempotencyRecord
from app.events.models import Event
from app.segments.models import (
    Segment,
    SegmentCountSnapshot,
    SegmentDirtyContact,
    SegmentMembership,
    SegmentMembershipChange,
)
from app.templates.models import Template, TemplateVersion
from app.workspaces.models import ApiKey, Member, Workspace

__all__ = [
    "ApiKey",
    "Base",
    "ConsentChange",
    "Contact",
    "ContactConsent",
    "ContactImport",
    "ContactImportChunk",
    "ContactImportError",
    "Event",
    "IdempotencyRecord",
    "Member",
    "Segment",
    "SegmentCountSnapshot",
    "SegmentDirtyContact",
    "SegmentMembership",
    "SegmentMembershipChange",
    "Suppression",
    "Template",
    "TemplateVersion",
    "Workspace",
]
