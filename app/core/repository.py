"""Repository base: every query starts from the caller's workspace.

A repository cannot be built without a workspace id, and every helper here adds the
workspace filter, so "forgot the tenant filter" is not a bug a domain can write.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ForeignKey, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Mapped, declared_attr, mapped_column

from app.core.db import IdMixin
from app.core.errors import NotFound
from app.core.pagination import PageParams, PageResult, apply_page, to_page


class WorkspaceScoped:
    """Mixin for tenant-owned rows."""

    @declared_attr
    def workspace_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805 - SQLAlchemy declared_attr
        return mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)


class WorkspaceEntity(IdMixin, WorkspaceScoped):
    """A tenant-owned row with its own UUIDv7 id (what `WorkspaceRepository` serves)."""


M = TypeVar("M", bound=WorkspaceEntity)


class WorkspaceRepository(Generic[M]):
    model: type[M]
    noun: str = "resource"

    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        if not isinstance(workspace_id, uuid.UUID):
            raise TypeError("a workspace repository needs the caller's workspace id")
        self.session = session
        self.workspace_id = workspace_id

    def scoped(self) -> Select[M]:
        return select(self.model).where(self.model.workspace_id == self.workspace_id)

    async def get(self, item_id: uuid.UUID) -> M | None:
        result = await self.session.execute(self.scoped().where(self.model.id == item_id))
        return result.scalar_one_or_none()

    async def get_or_404(self, item_id: uuid.UUID) -> M:
        item = await self.get(item_id)
        if item is None:
            raise NotFound(f"No {self.noun} with id {item_id}.")
        return item

    async def get_for_update(self, item_id: uuid.UUID) -> M | None:
        """The row, locked until commit, so concurrent changes to it serialise."""
        statement = self.scoped().where(self.model.id == item_id).with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def locked_or_404(self, item_id: uuid.UUID) -> M:
        item = await self.get_for_update(item_id)
        if item is None:
            raise NotFound(f"No {self.noun} with id {item_id}.")
        return item

    async def page(self, params: PageParams, *conditions: Any) -> PageResult[M]:
        statement = apply_page(self.scoped().where(*conditions), self.model.id, params)
        rows = (await self.session.execute(statement)).scalars().all()
        return to_page(rows, params, lambda item: item.id)

    def add(self, item: M) -> M:
        item.workspace_id = self.workspace_id
        self.session.add(item)
        return item


class VersionRepository(WorkspaceRepository[M]):
    """Immutable versions numbered 1, 2, ... per parent (template, sequence versions)."""

    parent: str  # the column holding the parent's id

    def _of(self, parent_id: uuid.UUID) -> Any:
        return getattr(self.model, self.parent) == parent_id

    async def by_number(self, parent_id: uuid.UUID, number: int) -> M | None:
        statement = self.scoped().where(self._of(parent_id), self.model.number == number)  # type: ignore[attr-defined]
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def of_parent(self, parent_id: uuid.UUID, params: PageParams) -> PageResult[M]:
        return await self.page(params, self._of(parent_id))


# A list's time-range filter: (`<field>_after` inclusive, `<field>_before` exclusive).
Window = tuple[datetime | None, datetime | None]


def window_clauses(column: InstrumentedAttribute[datetime | None], window: Window) -> list[Any]:
    """The WHERE clauses of a time-range filter (docs/api.md "Time-range filters")."""
    start, end = window
    clauses: list[Any] = []
    if start is not None:
        clauses.append(column >= start)
    if end is not None:
        clauses.append(column < end)
    return clauses
