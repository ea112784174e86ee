"""arq's own job rate, the yardstick for the engine: a no-op function on a queue of its own.

`measure_noop_rate` fills the queue from the bench process, then drains it with N arq worker
processes at once, each `python -m bench.engine_noop REDIS_URL QUEUE`: one arq worker in burst
mode (same `max_jobs`, `poll_delay` and `keep_result=0` as Herald's worker). Each process
prints `ready` once imported and waits for `go` on stdin, so start-up is not timed; when the
queue is drained it prints the number of jobs it ran and waits for stdin to close, so the bench
can read every process's CPU from /proc before they exit.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import IO, Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker, func

from app.config import get_settings
from bench.audience_ingest import cpu_seconds

NOOP = "noop"


async def noop(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
    return None


async def enqueue_noops(redis_url: str, queue: str, count: int, chunk: int = 500) -> None:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        for first in range(0, count, chunk):
            jobs = await asyncio.gather(
                *(
                    pool.enqueue_job(NOOP, _job_id=f"noop:{n}", _queue_name=queue)
                    for n in range(first, min(first + chunk, count))
                )
            )
            if any(job is None for job in jobs):  # a job (or its result) with that id exists
                raise RuntimeError(f"arq refused some no-op jobs on {queue}: flush Redis first")
    finally:
        await pool.aclose()


def measure_noop_rate(
    redis_url: str, queue: str, count: int, processes: int = 1
) -> tuple[int, float, float]:
    """Enqueue `count` no-op jobs, drain them with `processes` worker processes at once:
    (jobs run, seconds from `go` until the last process has drained, CPU seconds of all the
    worker processes while draining, from /proc)."""
    asyncio.run(enqueue_noops(redis_url, queue, count))
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.engine_noop", redis_url, queue],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for worker in workers:
            _expect(worker, "ready")
        cpu = cpu_seconds(lambda: {worker.pid for worker in workers})
        cpu_before, started = cpu(), time.perf_counter()
        for worker in workers:
            _pipe(worker.stdin).write("go\n")
            _pipe(worker.stdin).flush()
        jobs = sum(int(_expect(worker)) for worker in workers)
        elapsed, used = time.perf_counter() - started, cpu() - cpu_before
        for worker in workers:
            _pipe(worker.stdin).close()  # let it exit
        for worker in workers:
            if worker.wait(timeout=30) != 0:
                raise subprocess.CalledProcessError(worker.returncode, worker.args)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return jobs, elapsed, used


def _pipe(stream: IO[str] | None) -> IO[str]:
    assert stream is not None
    return stream


def _expect(worker: subprocess.Popen[str], wanted: str | None = None) -> str:
    """The worker's next line on stdout (`wanted` if given); fails if it died instead."""
    line = _pipe(worker.stdout).readline().strip()
    if not line or (wanted is not None and line != wanted):
        raise RuntimeError(f"no-op worker {worker.pid} said {line!r}, expected {wanted or 'jobs'}")
    return line


async def drain(redis_url: str, queue: str) -> int:
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
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":  # blocks the loop: nothing else runs yet
        raise SystemExit(1)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    return worker.jobs_complete


def main() -> None:
    jobs = asyncio.run(drain(sys.argv[1], sys.argv[2]))
    print(jobs, flush=True)
    sys.stdin.read()  # until the bench has read this process's CPU and closes stdin


if __name__ == "__main__":
    main()
