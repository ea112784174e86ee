"""Event ingestion benchmark: POST /v1/events/batch through the full HTTP stack.

Starts embedded PostgreSQL + Redis (or uses BENCH_DATABASE_URL / BENCH_REDIS_URL), creates a
workspace and N contacts in-database, starts one uvicorn API process, and drives it with
concurrent clients each sending batches of events (new client `event_id`s, contacts picked at
random, so every batch also moves `last_activity_at`). Prints events/s and request p50/p99.

Usage: `uv run --no-sync python -m bench.audience_ingest [--seconds 20] [--concurrency 4]
[--batch-size 1000] [--contacts 100000]`. `run()` can also drive an already running server.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from app.admin import admin_session, create_workspace
from app.config import async_database_url
from app.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from app.migrate import upgrade
from bench.support import api_env, wait_ready

TYPES = ("page.viewed", "form.submitted", "purchase", "app.opened")


def batch_body(run_id: str, serial: int, size: int, contacts: int, rng: random.Random) -> bytes:
    """One request body, built as text: the client must stay cheap next to the server."""
    items = []
    for i in range(size):
        kind = TYPES[i % len(TYPES)]
        revenue = f',"revenue":{rng.randint(1, 500)}.5' if kind == "purchase" else ""
        items.append(
            f'{{"external_id":"c-{rng.randrange(contacts)}","type":"{kind}",'
            f'"event_id":"{run_id}-{serial}-{i}","source":"bench",'
            f'"properties":{{"path":"/pricing","plan":"pro"{revenue}}}}}'
        )
    return ('{"events":[' + ",".join(items) + "]}").encode()


async def drive(
    base_url: str,
    token: str,
    seconds: float,
    concurrency: int,
    *,
    batch_size: int,
    contacts: int,
    probes: dict[str, Callable[[], float]] | None = None,
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    run_id = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    counts = {"accepted": 0, "duplicates": 0, "rejected": 0, "errors": 0}
    serial = 0
    rng = random.Random(7)

    async def client_loop(client: httpx.AsyncClient, deadline: float) -> None:
        nonlocal serial
        while time.perf_counter() < deadline:
            serial += 1
            body = batch_body(run_id, serial, batch_size, contacts, rng)
            started = time.perf_counter()
            response = await client.post("/v1/events/batch", content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                counts["errors"] += 1
                continue
            answer = response.json()
            for key in ("accepted", "duplicates", "rejected"):
                counts[key] += answer[key]

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        # warm-up: connections, prepared statements, caches
        await asyncio.gather(*(client_loop(client, time.perf_counter() + 2) for _ in range(2)))
        latencies.clear()
        counts.update(accepted=0, duplicates=0, rejected=0, errors=0)
        probes = probes or {}
        cpu_before = {name: probe() for name, probe in probes.items()}
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client, started + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = {
            f"{name}_cpu_ms_per_1k_events": (probe() - cpu_before[name])
            * 1e6
            / max(counts["accepted"], 1)
            for name, probe in probes.items()
        }
    ordered = sorted(latencies) or [0.0]
    return {
        **cpu,
        "events_per_second": counts["accepted"] / elapsed,
        "requests": float(len(latencies)),
        "accepted": float(counts["accepted"]),
        "duplicates": float(counts["duplicates"]),
        "rejected": float(counts["rejected"]),
        "errors": float(counts["errors"]),
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "seconds": elapsed,
    }


def cpu_seconds(roots: Callable[[], set[int]]) -> Callable[[], float]:
    """CPU time (user + system) of some processes and their direct children, from /proc:
    a cost per event that stays meaningful when other work shares the machine."""
    tick = os.sysconf("SC_CLK_TCK")

    def probe() -> float:
        pids = roots()
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry.name) in pids or int(fields[1]) in pids:
                total += int(fields[11]) + int(fields[12])
        return total / tick

    return probe


def postmaster_pids(directory: Path) -> set[int]:
    return {int(path.read_text().split()[0]) for path in directory.rglob("postmaster.pid")}


def run(  # noqa: PLR0917 - the signature the benchmark suite calls
    base_url: str,
    token: str,
    seconds: float,
    concurrency: int,
    batch_size: int = 1000,
    contacts: int = 100_000,
) -> dict[str, float]:
    """Drive a running server whose workspace has contacts `c-0` .. `c-{contacts-1}` (unknown
    ones are created on the fly when the workspace allows it)."""
    return asyncio.run(
        drive(base_url, token, seconds, concurrency, batch_size=batch_size, contacts=contacts)
    )


async def seed_contacts(database_url: str, workspace_id: uuid.UUID, count: int) -> None:
    """Contacts made in-database (set-wise), so the benchmark measures events only."""
    async with admin_session(database_url) as session:
        await session.execute(
            text(
                """
                INSERT INTO contacts (id, workspace_id, external_id, email, attributes,
                                      created_at, updated_at)
                SELECT gen_random_uuid(), :ws, 'c-' || n, 'c' || n || '@bench.example',
                       jsonb_build_object('plan', 'pro'), now(), now()
                FROM generate_series(0, :count - 1) AS n
                """
            ),
            {"ws": workspace_id, "count": count},
        )
    async with admin_session(database_url) as session:
        await session.execute(text("ANALYZE contacts"))


def gc_frozen_app() -> Any:
    """`create_app()` with the start-up heap moved out of the garbage collector's sight
    (`gc.freeze()`): what `--gc-freeze` measures, proposed for `app/main.py`."""
    from app.main import create_app

    app = create_app()
    gc.freeze()
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn processes")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="serve through gc_frozen_app (gc.freeze() after start-up) instead of `herald serve`",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-ingest-"))
    postgres, redis = EmbeddedPostgres(workdir / "pg"), EmbeddedRedis(workdir / "redis")
    database_url = os.environ.get("BENCH_DATABASE_URL") or postgres.start("herald_bench")
    redis_url = os.environ.get("BENCH_REDIS_URL") or redis.start()
    api: subprocess.Popen[bytes] | None = None
    try:
        url = async_database_url(database_url)
        upgrade(url)
        created = asyncio.run(create_workspace(url, "Bench", "o@bench.example", "O"))
        asyncio.run(seed_contacts(url, created.workspace.id, args.contacts))
        port = free_port()
        env = api_env(database_url, redis_url, port)
        command = [sys.executable, "-m", "app.cli", "serve", "--workers", str(args.api_workers)]
        if args.gc_freeze:
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "bench.audience_ingest:gc_frozen_app",
                "--port",
                str(port),
                "--workers",
                str(args.api_workers),
                "--no-access-log",
                "--log-level",
                "warning",
            ]
        api = subprocess.Popen(command, env=env)
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url)
        print(
            f"POST /v1/events/batch: {args.batch_size} events per request, "
            f"{args.concurrency} concurrent clients, {args.seconds:.0f} s, "
            f"{args.api_workers} API process(es){' with gc.freeze()' if args.gc_freeze else ''}, "
            f"{args.contacts:,} contacts, "
            f"{os.cpu_count()} CPUs"
        )
        probes = {"api": cpu_seconds(lambda: {api.pid} if api else set())}
        if not os.environ.get("BENCH_DATABASE_URL"):
            probes["postgres"] = cpu_seconds(lambda: postmaster_pids(workdir / "pg"))
        figures = asyncio.run(
            drive(
                base_url,
                created.key.token,
                args.seconds,
                args.concurrency,
                batch_size=args.batch_size,
                contacts=args.contacts,
                probes=probes,
            )
        )
        print(
            f"{figures['events_per_second']:10.0f} events/s   "
            f"p50 {figures['p50_ms']:7.1f} ms   p99 {figures['p99_ms']:7.1f} ms   "
            f"({figures['requests']:.0f} requests, {figures['accepted']:.0f} accepted, "
            f"{figures['rejected']:.0f} rejected, {figures['errors']:.0f} non-200)"
        )
        costs = {k: v for k, v in figures.items() if k.endswith("_cpu_ms_per_1k_events")}
        if costs:
            print(
                "CPU per 1,000 events: "
                + ", ".join(f"{k.split('_cpu')[0]} {v:.0f} ms" for k, v in costs.items())
                + f"; on {os.cpu_count()} dedicated cores that bounds ingestion at "
                f"~{(os.cpu_count() or 1) * 1e6 / sum(costs.values()):.0f} events/s"
            )
    finally:
        if api is not None:
            api.terminate()
            api.wait()
        redis.stop()
        postgres.stop()


if __name__ == "__main__":
    main()
