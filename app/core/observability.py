"""Prometheus metrics. Request metrics are per API process; queue depth and job outcomes
are read from Redis at scrape time, so any API process reports the whole cluster's jobs."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import cast

from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis

JOB_COUNTS_KEY = "herald:metrics:jobs"

HTTP_REQUESTS = Counter(
    "herald_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "herald_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
QUEUE_DEPTH = Gauge("herald_queue_depth", "Jobs waiting in the arq queue")
JOBS = Gauge("herald_jobs_total", "Jobs finished by all workers", ["function", "outcome"])
# Sends by channel and outcome, counted by delivery into Redis (app/channels/delivery.py).
SENDS_KEY = "herald:metrics:sends"
SENDS = Gauge("herald_messages_total", "Message deliveries by all workers", ["channel", "outcome"])
# Step lateness (claim time minus due time), recorded by workers into Redis, cumulative
# buckets exposed like a Prometheus histogram's.
LATENESS_KEY = "herald:metrics:step_lateness"
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
STEP_LATENESS = Gauge(
    "herald_step_lateness_seconds_bucket",
    "Engine steps claimed no later than `le` seconds after they were due (all workers)",
    ["le"],
)


async def record_job(redis: Redis, function: str, outcome: str) -> None:
    await cast(Awaitable[int], redis.hincrby(JOB_COUNTS_KEY, f"{function}|{outcome}", 1))


async def record_lateness(redis: Redis, seconds: list[float]) -> None:
    if not seconds:
        return
    counts: dict[str, int] = {}
    for value in seconds:
        label = next((str(b) for b in LATENESS_BUCKETS if value <= b), "+Inf")
        counts[label] = counts.get(label, 0) + 1
    pipe = redis.pipeline(transaction=False)
    for label, count in counts.items():
        pipe.hincrby(LATENESS_KEY, label, count)
    await pipe.execute()


async def job_counts(redis: Redis) -> dict[bytes, bytes]:
    return await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(JOB_COUNTS_KEY))


async def refresh_job_metrics(redis: Redis, queue_name: str) -> None:
    QUEUE_DEPTH.set(await redis.zcard(queue_name))
    lateness = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(LATENESS_KEY))
    running = 0
    for label in [*(str(b) for b in LATENESS_BUCKETS), "+Inf"]:
        running += int(lateness.get(label.encode(), 0))
        STEP_LATENESS.labels(le=label).set(running)
    sends = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(SENDS_KEY))
    for field, value in sends.items():
        channel, _, outcome = field.decode().partition("|")
        SENDS.labels(channel=channel, outcome=outcome).set(int(value))
    counts = await job_counts(redis)
    for field, value in counts.items():
        function, _, outcome = field.decode().partition("|")
        JOBS.labels(function=function, outcome=outcome).set(int(value))
