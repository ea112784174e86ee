"""Every model, imported once so `Base.metadata` is complete (Alembic, drift test)."""

from app.core.db import Base
from app.core.idempotency import IdempotencyRecord
from app.workspaces.models import ApiKey, Member, Workspace

__all__ = ["ApiKey", "Base", "IdempotencyRecord", "Member", "Workspace"]
