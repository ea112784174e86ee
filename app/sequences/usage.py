"""What in the sequences domain uses resources of lower domains (registered by app/wiring.py
with `app.core.usage`)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.usage import User
from app.sequences.repository import SequenceVersionRepository


async def template_users(
    session: AsyncSession, workspace_id: uuid.UUID, template_id: uuid.UUID
) -> list[User]:
    """Published sequence versions that send the template: their enrollments still send it."""
    versions = await SequenceVersionRepository(session, workspace_id).sending_template(template_id)
    return [
        User("sequence_version", version.id, f"{name} v{version.number}", "published")
        for version, name in versions
    ]
