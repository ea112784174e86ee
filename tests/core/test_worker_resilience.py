"""Job wrappers that turn an outage into a back-off (the live version, a real worker through
PostgreSQL and Redis outages, is in tests/test_outages_live.py)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.exceptions
from arq import cron
from arq.worker import Retry, func

from app.config import Settings
from app.worker.resilience import (
    OutageLog,
    ResilientWorker,
    resilient_cron_jobs,
    resilient_functions,
    retry_delay,
)
from app.worker.settings import build_worker


async def _refused(ctx: dict[str, Any]) -> None:
    raise ConnectionRefusedError(111, "Connect call failed")


async def _bug(ctx: dict[str, Any]) -> None:
    raise ValueError("a bug")


async def _fine(ctx: dict[str, Any]) -> str:
    return "ok"


def test_back_off_doubles_up_to_the_cap() -> None:
    assert [retry_delay(n, 2.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert retry_delay(10_000, 5.0) == 5.0


async def test_a_job_meeting_an_outage_is_retried_and_a_bug_still_fails() -> None:
    outages = OutageLog()
    refused, bug, fine = resilient_functions(
        [func(_refused, name="refused"), _bug, _fine], outages, 2.0
    )
    with pytest.raises(Retry) as retried:
        await refused.coroutine({"job_try": 3})
    assert retried.value.defer_score == 2000  # ms: 0.5 s doubled twice, at the cap
    assert outages.since is not None
    with pytest.raises(ValueError, match="a bug"):
        await bug.coroutine({"job_try": 1})
    assert await fine.coroutine({"job_try": 1}) == "ok"
    assert outages.since is not None  # `_fine` never failed: it does not end the outage
    assert refused.name == "refused"


async def test_a_cron_job_meeting_an_outage_waits_for_its_next_tick() -> None:
    outages = OutageLog()

    async def tick(ctx: dict[str, Any]) -> None:
        raise redis.exceptions.ConnectionError("Error 111")

    (wrapped,) = resilient_cron_jobs([cron(tick, second={0})], outages, 2.0)
    assert await wrapped.coroutine({}) is None
    assert outages.since is not None


def test_the_worker_drains_on_sigterm_and_tolerates_outages(settings: Settings) -> None:
    worker = build_worker(settings, handle_signals=False, cron_jobs=[])
    assert isinstance(worker, ResilientWorker)
    assert worker._job_completion_wait == settings.worker.shutdown_grace_seconds == 30
    assert worker.max_tries == settings.worker.max_tries
