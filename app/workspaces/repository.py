from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.repository import WorkspaceRepository
from app.workspaces.models import ApiKey, Member, Workspace

# last_used_at is advisory; writing it at most once a minute keeps reads write-free.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class WorkspaceStore:
    """Workspaces are the tenants themselves, so they are looked up by their own id."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, workspace_id: uuid.UUID) -> Workspace | None:
        return await self.session.get(Workspace, workspace_id)

    async def settings_of(self, workspace_id: uuid.UUID) -> dict[str, Any] | None:
        result = await self.session.execute(
            select(Workspace.settings).where(Workspace.id == workspace_id)
        )
        return result.scalar_one_or_none()

    def add(self, workspace: Workspace) -> Workspace:
        self.session.add(workspace)
        return workspace

    async def first(self) -> Workspace | None:
        result = await self.session.execute(select(Workspace).order_by(Workspace.id).limit(1))
        return result.scalar_one_or_none()


class MemberRepository(WorkspaceRepository[Member]):
    model = Member
    noun = "member"

    async def by_email(self, email: str) -> Member | None:
        result = await self.session.execute(self.scoped().where(Member.email == email))
        return result.scalar_one_or_none()

    async def first_owner(self) -> Member | None:
        result = await self.session.execute(
            self.scoped().where(Member.role == "owner").order_by(Member.id).limit(1)
        )
        return result.scalar_one_or_none()

    async def owners_for_update(self) -> list[Member]:
        """The owners, locked until commit (ownership changes serialise on them)."""
        statement = self.scoped().where(Member.role == "owner").order_by(Member.id)
        result = await self.session.execute(statement.with_for_update())
        return list(result.scalars().all())


class ApiKeyRepository(WorkspaceRepository[ApiKey]):
    model = ApiKey
    noun = "API key"

    async def revoke_for_member(self, member_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.workspace_id == self.workspace_id,
                ApiKey.member_id == member_id,
                ApiKey.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )

    async def live_admin_keys_of(self, member_ids: list[uuid.UUID]) -> int:
        """How many unrevoked keys with the workspace-wide `admin` scope these members hold."""
        statement = select(func.count()).where(
            ApiKey.workspace_id == self.workspace_id,
            ApiKey.member_id.in_(member_ids),
            ApiKey.revoked_at.is_(None),
            ApiKey.scopes.contains(["admin"]),
        )
        return int((await self.session.execute(statement)).scalar_one())


class ApiKeyLookup:
    """Authentication runs before the workspace is known: it finds the key by its hash."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        result = await self.session.execute(select(ApiKey).where(ApiKey.key_hash == key_hash))
        return result.scalar_one_or_none()

    async def touch(self, key_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(
                    ApiKey.last_used_at.is_(None),
                    ApiKey.last_used_at < now - LAST_USED_RESOLUTION,
                ),
            )
            .values(last_used_at=now)
        )
