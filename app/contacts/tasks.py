"""arq tasks of this domain (registered in app/worker/settings.py)."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from typing import Any

from arq.cron import CronJob
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.imports.service import run_import
from app.core.tasks import counted, task_session
from app.core.worker_context import WorkerContext


@counted
async def run_contact_import(ctx: WorkerContext, workspace_id: str, import_id: str) -> None:
    """Process one uploaded import; each batch commits in its own task session."""

    def open_session() -> AbstractAsyncContextManager[AsyncSession]:
        return task_session(ctx)

    await run_import(open_session, uuid.UUID(workspace_id), uuid.UUID(import_id))


TASKS: list[Any] = [run_contact_import]
CRON_JOBS: list[CronJob] = []
