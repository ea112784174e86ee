"""arq's own job rate, the yardstick for the engine: a no-op function on a queue of its own.

`enqueue_noops` fills the queue from the bench process; `python -m bench.engine_noop REDIS_URL
QUEUE` runs one arq worker in burst mode (same `max_jobs`, `poll_delay` and `keep_result=0` as
Herald's worker) until the queue is drained and prints `jobs seconds cpu_seconds` on stdout.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker, func

from app.config import get_settings

NOOP = "noop"


async def noop(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
    return None


async def enqueue_noops(redis_url: str, queue: str, count: int, chunk: int = 500) -> None:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        for first in range(0, count, chunk):
            await asyncio.gather(
                *(
                    pool.enqueue_job(NOOP, _job_id=f"noop:{n}", _queue_name=queue)
                    for n in range(first, min(first + chunk, count))
                )
            )
    finally:
        await pool.aclose()


def measure_noop_rate(redis_url: str, queue: str, count: int) -> tuple[int, float, float]:
    """Enqueue `count` no-op jobs, drain them with one worker process: (jobs, seconds, CPU
    seconds of the worker while draining)."""
    asyncio.run(enqueue_noops(redis_url, queue, count))
    output = subprocess.run(
        [sys.executable, "-m", "bench.engine_noop", redis_url, queue],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    jobs, seconds, cpu = output.split()
    return int(jobs), float(seconds), float(cpu)


async def drain(redis_url: str, queue: str) -> tuple[int, float, float]:
    # Built inside the running loop: arq's Worker binds the loop it is created in.
    worker = Worker(
        functions=[func(noop, name=NOOP, keep_result=0)],
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=queue,
        burst=True,
        max_jobs=get_settings().worker.max_jobs,
        poll_delay=0.1,
        handle_signals=False,
    )
    started, cpu = time.perf_counter(), time.process_time()
    try:
        await worker.async_run()
    finally:
        await worker.close()
    return worker.jobs_complete, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    jobs, elapsed, cpu = asyncio.run(drain(sys.argv[1], sys.argv[2]))
    print(jobs, f"{elapsed:.3f}", f"{cpu:.3f}")


if __name__ == "__main__":
    main()
