"""Enqueue-after-commit around arq.

Services call `enqueue(session, ...)`; the job waits in the session until the transaction
commits (`flush`) or is dropped on rollback (`discard`). Job ids are deterministic, so the
same logical job enqueued twice runs once while the first is queued or kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

_BUFFER_KEY = "herald.pending_jobs"


@dataclass(frozen=True)
class PendingJob:
    function: str
    job_id: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    defer_by_seconds: float | None = None


def job_id_for(function: str, *parts: object) -> str:
    """A deterministic job id: the function plus the identity of the work."""
    return ":".join([function, *(str(part) for part in parts)])


def enqueue(
    session: AsyncSession,
    function: str,
    *args: Any,
    job_key: tuple[object, ...],
    defer_by_seconds: float | None = None,
    **kwargs: Any,
) -> None:
    buffer: list[PendingJob] = session.info.setdefault(_BUFFER_KEY, [])
    buffer.append(
        PendingJob(function, job_id_for(function, *job_key), args, kwargs, defer_by_seconds)
    )


@contextmanager
def no_new_jobs(session: AsyncSession) -> Iterator[None]:
    """Drop every job buffered inside this block (a dry run must enqueue nothing)."""
    buffer: list[PendingJob] = session.info.setdefault(_BUFFER_KEY, [])
    before = len(buffer)
    try:
        yield
    finally:
        del buffer[before:]


class JobQueue:
    def __init__(self, redis: ArqRedis, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name

    def attach(self, session: AsyncSession) -> None:
        session.info[_BUFFER_KEY] = []

    def discard(self, session: AsyncSession) -> None:
        session.info.pop(_BUFFER_KEY, None)

    def pending(self, session: AsyncSession) -> list[PendingJob]:
        return list(session.info.get(_BUFFER_KEY, []))

    async def flush(self, session: AsyncSession) -> None:
        jobs: list[PendingJob] = session.info.pop(_BUFFER_KEY, [])
        for job in jobs:
            await self.redis.enqueue_job(
                job.function,
                *job.args,
                _job_id=job.job_id,
                _queue_name=self.queue_name,
                _defer_by=job.defer_by_seconds,
                **job.kwargs,
            )
