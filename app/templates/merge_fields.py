"""`campaign.*` merge fields (docs/templates.md, Merge fields).

Campaigns sit above templates and sequences in the domain graph, so they register how their
merge fields are loaded here (`app/campaigns/merge_fields.py`); previews and the engine ask
through `campaign_fields` without importing up.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

CampaignFieldsLoader = Callable[
    [AsyncSession, uuid.UUID, Collection[uuid.UUID]], Awaitable[dict[uuid.UUID, dict[str, Any]]]
]
_loaders: list[CampaignFieldsLoader] = []


def register_campaign_fields(loader: CampaignFieldsLoader) -> None:
    _loaders[:] = [loader]


async def campaign_fields(
    session: AsyncSession, workspace_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """`campaign.*` of each of `ids` found in the workspace (one query; none for no ids)."""
    if not ids or not _loaders:
        return {}
    return await _loaders[0](session, workspace_id, ids)
