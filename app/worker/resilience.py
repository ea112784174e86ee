"""Jobs ride out a PostgreSQL or Redis outage instead of failing.

arq marks a job that raises as failed, for good (only `Retry` and a cancellation re-queue
it), and logs a traceback per job: during a 6 s database restart that was every job of the
moment, lost, and a wall of tracebacks. Here every job coroutine is wrapped:

- a queued job that hits an outage (app/core/outages.py) raises arq's `Retry` with a short
  back-off (0.5 s, doubling, capped at `HERALD_WORKER__OUTAGE_RETRY_MAX_SECONDS`), so it runs
  again, with the same arguments, soon after the database is back; it did not commit (the
  failure aborted its transaction), so the retry neither loses nor doubles its work;
- a cron job (periodic sweeps, the engine scan) just ends: its next tick is the retry, and
  a retried cron run would pile up behind the next tick;
- the worker logs the first failure of an outage and the recovery, once each, not a
  traceback per job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Iterable
from typing import Any

import structlog
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from arq.worker import Function, Retry, Worker, func

from app.core.outages import is_outage

log = structlog.get_logger("herald.worker")

FIRST_RETRY_SECONDS = 0.5


class OutageLog:
    """One warning when an outage starts and one when it ends, per worker process.

    The outage ends when something that failed in it (a job, or the worker's own polling of
    Redis) succeeds again: a job that needs only Redis succeeding while PostgreSQL is down
    does not end it."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.failing: set[str] = set()
        self.retried = 0

    def failed(self, what: str, exc: BaseException) -> None:
        self.retried += 1
        self.failing.add(what)
        if self.since is None:
            self.since = time.monotonic()
            log.warning(
                "storage_unavailable",
                job=what,
                error=f"{type(exc).__name__}: {exc}",
                action="jobs back off and retry until PostgreSQL and Redis answer again",
            )

    def succeeded(self, what: str) -> None:
        if self.since is None or what not in self.failing:
            return
        log.warning(
            "storage_recovered",
            outage_seconds=round(time.monotonic() - self.since, 2),
            retries=self.retried,
        )
        self.since, self.failing, self.retried = None, set(), 0


def retry_delay(job_try: int, cap_seconds: float) -> float:
    """0.5 s, 1 s, 2 s, ... capped: a job resumes within `cap_seconds` of the recovery."""
    return min(FIRST_RETRY_SECONDS * 2.0 ** min(max(job_try - 1, 0), 16), cap_seconds)


def _resilient(
    coroutine: WorkerCoroutine, name: str, outages: OutageLog, *, cap_seconds: float, cron: bool
) -> WorkerCoroutine:
    @functools.wraps(coroutine)
    async def run(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            result = await coroutine(ctx, *args, **kwargs)
        except Exception as exc:
            if not is_outage(exc):
                raise
            outages.failed(name, exc)
            if cron:
                return None  # the next tick runs it again
            delay = retry_delay(int(ctx.get("job_try", 1)), cap_seconds)
            raise Retry(defer=delay) from exc
        outages.succeeded(name)
        return result

    return run


def resilient_functions(
    functions: Iterable[Any], outages: OutageLog, cap_seconds: float
) -> list[Function]:
    wrapped = []
    for function in map(func, functions):
        coroutine = _resilient(
            function.coroutine, function.name, outages, cap_seconds=cap_seconds, cron=False
        )
        wrapped.append(dataclasses.replace(function, coroutine=coroutine))
    return wrapped


def resilient_cron_jobs(
    cron_jobs: Iterable[CronJob], outages: OutageLog, cap_seconds: float
) -> list[CronJob]:
    return [
        dataclasses.replace(
            job,
            coroutine=_resilient(
                job.coroutine, job.name, outages, cap_seconds=cap_seconds, cron=True
            ),
        )
        for job in cron_jobs
    ]


class ResilientWorker(Worker):
    """arq's Worker, but an outage of Redis (or PostgreSQL, met by its bookkeeping) pauses the
    polling loop with a back-off instead of ending the process with a traceback. Jobs that
    were running keep their in-progress mark until it expires, then run again."""

    def __init__(self, *args: Any, outages: OutageLog, outage_cap_seconds: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.outages = outages
        self.outage_cap_seconds = outage_cap_seconds
        self.poll_failures = 0

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except Exception as exc:
            if not is_outage(exc):
                raise
            self.poll_failures += 1
            self.outages.failed("poll", exc)
            await asyncio.sleep(retry_delay(self.poll_failures, self.outage_cap_seconds))
            return
        self.poll_failures = 0
        self.outages.succeeded("poll")
