"""Metrics benchmark through HTTP (issue 7 item 7), on the campaign `bench/metrics.py seed`
generated (1M messages, ~3M events):

- `reads`: stats and time-series latency under an open-loop load at a fixed arrival rate
  (default 200 requests/s): request i is sent at t0 + i / rate whether or not earlier ones
  have answered, and its latency is measured from that scheduled instant (no coordinated
  omission: a stalled server shows up as latency, not as a lower rate). One scenario at a time.
- `ingest`: `POST /v1/events/batch` (bench/audience_ingest.py's batches: 1,000 events over
  random existing contacts, a quarter of them `purchase`, the campaign's goal type, so queued
  for metrics) with the metrics queue trigger enabled vs disabled (`ALTER TABLE events
  DISABLE TRIGGER`), alternating; after each enabled run the queued events are folded and
  timed (fold throughput).

The API runs as a real server (`herald serve`, uvicorn) against BENCH_DATABASE_URL and an
embedded Redis. Usage: `BENCH_DATABASE_URL=... uv run --no-sync python -m bench.metrics_load
[reads] [ingest] [--rate 200] [--seconds 20] [--rounds 3] [--api-workers 2] [--live]
[--state /tmp/herald-bench-metrics.json]`. `--live` keeps the campaign changing during the
reads (one click and one fold per second, in a separate process), so cached views are
recomputed once per second per API process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from app.config import async_database_url
from app.core.db import create_engine, create_session_factory
from app.embedded import EmbeddedRedis, free_port
from bench import audience_ingest
from bench.metrics import START, fold, vacuum_metrics
from bench.support import api_env, wait_ready

RANGE = "from=2030-01-01T00:00:00Z&to=2030-01-17T00:00:00Z"


def scenarios(campaign: str) -> dict[str, str]:
    base = f"/v1/campaigns/{campaign}/stats"
    return {
        "stats": base,
        "stats group_by=variant": f"{base}?group_by=variant",
        "timeseries day (16 buckets)": f"{base}/timeseries?bucket=day&{RANGE}",
        "timeseries hour (384 buckets)": f"{base}/timeseries?bucket=hour&{RANGE}",
    }


class RawPool:
    """Keep-alive HTTP/1.1 connections for fixed GETs: a request costs the client a write and
    a read, not httpx's pool bookkeeping (which, with hundreds of requests waiting for a
    connection, made the client the bottleneck at 200 requests/s)."""

    def __init__(self, host: str, port: int, token: str, size: int) -> None:
        self.host, self.port, self.token, self.size = host, port, token, size
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )

    async def open(self) -> None:
        for _ in range(self.size):
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def close(self) -> None:
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()

    async def get(self, path: str) -> int:
        reader, writer = await self.idle.get()
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Authorization: Bearer {self.token}\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            reader, writer = await asyncio.open_connection(self.host, self.port)
            status = 0
        self.idle.put_nowait((reader, writer))
        return status


async def open_loop(pool: RawPool, path: str, rate: float, seconds: float) -> dict[str, float]:
    """Send `rate` requests/s for `seconds`; latency from each request's scheduled instant."""
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)

    async def one(scheduled: float) -> None:
        nonlocal errors
        status = await pool.get(path)
        latencies.append(time.perf_counter() - scheduled)
        if status != 200:
            errors += 1

    tasks = []
    started = time.perf_counter()
    for i in range(total):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    sent_in = time.perf_counter() - started
    await asyncio.gather(*tasks)
    ordered = sorted(latencies)
    return {
        "achieved_rate": total / sent_in,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "max_ms": ordered[-1] * 1000,
        "errors": float(errors),
        "requests": float(total),
    }


async def reads(
    base_url: str,
    state: dict[str, Any],
    rate: float,
    seconds: float,
    rounds: int,
    *,
    api_cpu: Callable[[], float],
) -> None:
    address = httpx.URL(base_url)
    pool = RawPool(address.host, address.port or 80, state["token"], 32)
    await pool.open()
    try:
        for name, path in scenarios(state["campaign_id"]).items():
            await open_loop(pool, path, min(rate, 50), 2)  # warm-up
            runs = []
            for _ in range(rounds):
                cpu_before = api_cpu()
                runs.append(await open_loop(pool, path, rate, seconds))
                runs[-1]["cpu_ms"] = (api_cpu() - cpu_before) * 1000 / runs[-1]["requests"]
            for figures in runs:
                print(
                    f"  {name}: {figures['achieved_rate']:.0f} req/s sent, "
                    f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
                    f"max {figures['max_ms']:.0f} ms, {figures['errors']:.0f} non-200, "
                    f"API CPU {figures['cpu_ms']:.1f} ms/request "
                    f"(load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
            p50 = statistics.median(r["p50_ms"] for r in runs)
            p99 = statistics.median(r["p99_ms"] for r in runs)
            print(f"= {name}: median of {rounds}: p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)
    finally:
        await pool.close()


async def change_every_second(database_url: str, campaign_id: str) -> None:
    """`--live`: what a running campaign does to the read cache. Once a second, one message
    of the campaign gets clicked (a delta through the capture trigger) and the fold runs (as
    the worker's cron does), so every cached view's signature changes every second and each
    API process recomputes each view once per second."""
    engine = create_engine(async_database_url(database_url), pool_size=2)
    factory = create_session_factory(engine)
    click = text(
        "UPDATE messages SET first_clicked_at = now() WHERE id = ("
        " SELECT id FROM messages WHERE campaign_id = :campaign AND first_clicked_at IS NULL"
        " LIMIT 1)"
    )
    try:
        while True:
            started = time.perf_counter()
            async with engine.begin() as conn:
                await conn.execute(click, {"campaign": campaign_id})
            await fold(factory)
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - started)))
    finally:
        await engine.dispose()


async def set_trigger(database_url: str, enabled: bool) -> None:
    engine = create_engine(async_database_url(database_url), pool_size=1)
    action = "ENABLE" if enabled else "DISABLE"
    async with engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE events {action} TRIGGER metrics_queue_events_insert"))
    await engine.dispose()


async def fold_queued(database_url: str) -> tuple[int, float]:
    engine = create_engine(async_database_url(database_url), pool_size=2)
    started = time.perf_counter()
    events = await fold(create_session_factory(engine))
    elapsed = time.perf_counter() - started
    await vacuum_metrics(engine)
    await engine.dispose()
    return events, elapsed


def ingest(
    database_url: str, base_url: str, state: dict[str, Any], seconds: float, rounds: int
) -> None:
    rates: dict[bool, list[float]] = {True: [], False: []}
    folds: list[float] = []
    for _ in range(rounds):
        for enabled in (True, False):
            asyncio.run(set_trigger(database_url, enabled))
            figures = audience_ingest.run(
                base_url, state["token"], seconds, 4, contacts=state["messages"]
            )
            rates[enabled].append(figures["events_per_second"])
            label = "with" if enabled else "without"
            print(
                f"  ingest {label} the metrics trigger: {figures['events_per_second']:,.0f}"
                f" events/s, p50 {figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms,"
                f" {figures['errors']:.0f} non-200 (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
            if enabled:
                events, elapsed = asyncio.run(fold_queued(database_url))
                folds.append(events / elapsed if elapsed else 0.0)
                print(
                    f"  fold of {events:,} queued events: {elapsed:.2f} s"
                    f" ({folds[-1]:,.0f} events/s)",
                    flush=True,
                )
    asyncio.run(set_trigger(database_url, True))
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print(
        f"= ingest median of {rounds}: {off:,.0f} events/s without, {on:,.0f} with the"
        f" trigger ({off / on:.2f}x slower); fold {statistics.median(folds):,.0f} events/s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", nargs="*", default=["reads", "ingest"], choices=["reads", "ingest"])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--ingest-seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--state", type=Path, default=Path("/tmp/herald-bench-metrics.json"))
    parser.add_argument(
        "--live",
        action="store_true",
        help="reads while the campaign changes every second (a click + a fold, in a separate"
        " process)",
    )
    parser.add_argument("--changer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL")
    if not database_url:
        raise SystemExit("set BENCH_DATABASE_URL to the database bench/metrics.py seeded")
    state = json.loads(args.state.read_text())
    if args.changer:
        asyncio.run(change_every_second(database_url, state["campaign_id"]))
        return
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-metrics-"))
    redis = EmbeddedRedis(workdir / "redis")
    redis_url = redis.start()
    api: subprocess.Popen[bytes] | None = None
    changer: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        env = api_env(database_url, redis_url, port)
        command = [sys.executable, "-m", "app.cli", "serve", "--workers", str(args.api_workers)]
        api = subprocess.Popen(command, env=env)
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url, 120)
        print(
            f"{args.api_workers} API process(es), {os.cpu_count()} CPUs, campaign"
            f" {state['campaign_id']} ({state['messages']:,} messages), data from {START:%F}",
            flush=True,
        )
        if args.live:
            changer = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.metrics_load",
                    "reads",  # argparse refuses the list default of an empty `what`
                    "--changer",
                    "--state",
                    str(args.state),
                ]
            )
        if "reads" in args.what:
            live = ", the campaign changing every second" if args.live else ""
            print(
                f"reads at {args.rate:.0f} requests/s, {args.seconds:.0f} s per run{live}",
                flush=True,
            )
            api_cpu = audience_ingest.cpu_seconds(lambda: {api.pid} if api else set())
            asyncio.run(
                reads(base_url, state, args.rate, args.seconds, args.rounds, api_cpu=api_cpu)
            )
        if "ingest" in args.what:
            ingest(database_url, base_url, state, args.ingest_seconds, args.rounds)
    finally:
        for process in (changer, api):
            if process is not None:
                process.terminate()
                process.wait()
        redis.stop()


if __name__ == "__main__":
    main()
