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
from arq.jobs import Job
from sqlalchemy.ext.asyncio import AsyncSession

_BUFFER_KEY = "herald.pending_jobs"


@dataclass(frozen=True)
class PendingJob:
    function: str
    job_id: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    defer_by_seconds: float | None = None
    again_if_taken: bool = False


def job_id_for(function: str, *parts: object) -> str:
    """A deterministic job id: the function plus the identity of the work."""
    return ":".join([function, *(str(part) for part in parts)])


def enqueue(
    session: AsyncSession,
    function: str,
    *args: Any,
    job_key: tuple[object, ...],
    defer_by_seconds: float | None = None,
    again_if_taken: bool = False,
    **kwargs: Any,
) -> None:
    """Buffer a job for after commit. `again_if_taken` is for drain jobs (one id per
    workspace or endpoint, draining rows until none are left): arq refuses an id whose job
    is queued *or still running*, and a running drain may already have made its last check,
    so the rows this transaction committed would wait for the next sweep. When refused, the
    job is also enqueued once more under `<id>:again`, which starts after this commit."""
    buffer: list[PendingJob] = session.info.setdefault(_BUFFER_KEY, [])
    job_id = job_id_for(function, *job_key)
    buffer.append(PendingJob(function, job_id, args, kwargs, defer_by_seconds, again_if_taken))


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
            queued = await self._enqueue(job, job.job_id)
            if queued is None and job.again_if_taken:
                await self._enqueue(job, f"{job.job_id}:again")

    async def _enqueue(self, job: PendingJob, job_id: str) -> Job | None:
        return await self.redis.enqueue_job(
            job.function,
            *job.args,
            _job_id=job_id,
            _queue_name=self.queue_name,
            _defer_by=job.defer_by_seconds,
            **job.kwargs,
        )
