"""HTTP foundation benchmark: authenticated reads and idempotent writes through the full stack.

Starts embedded PostgreSQL + Redis (or uses BENCH_DATABASE_URL / BENCH_REDIS_URL), one uvicorn
API process, and drives it with N concurrent httpx clients. Prints requests/s and latency
percentiles. Usage: `uv run python -m bench.foundation [--seconds 10] [--concurrency 32]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from app.admin import create_workspace
from app.config import async_database_url
from app.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from app.migrate import upgrade
from bench.support import api_env, wait_ready


async def drive(
    base_url: str, headers: dict[str, str], seconds: float, concurrency: int, scenario: str
) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if scenario == "healthz":
                response = await client.get("/healthz")
                assert response.status_code == 200
            elif scenario == "write":
                response = await client.post(
                    "/v1/members",
                    json={"email": f"{uuid.uuid4().hex}@bench.example", "name": "Bench"},
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
                assert response.status_code == 201, response.text
            else:
                response = await client.get("/v1/workspace", headers=headers)
                assert response.status_code == 200, response.text
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies


WRK_POST_SCRIPT = """
local next_thread = 0
function setup(thread)
  next_thread = next_thread + 1
  thread:set("tid", next_thread)
end
counter = 0
request = function()
  counter = counter + 1
  local id = string.format("%d-%d-%d", os.time(), tid, counter)
  wrk.headers["Idempotency-Key"] = id
  return wrk.format("POST", "/v1/members", nil,
    '{"email": "' .. id .. '@bench.example", "name": "Bench"}')
end
"""


def run_wrk(base_url: str, token: str, seconds: float, concurrency: int, scenario: str) -> str:
    """wrk (C, from Debian's package) drives the server without a Python client's overhead."""
    command = ["wrk", "-t2", f"-c{concurrency}", f"-d{int(seconds)}s", "--latency"]
    if scenario != "healthz":
        command += ["-H", f"Authorization: Bearer {token}"]
    if scenario == "write":
        script = Path(tempfile.mkdtemp()) / "post.lua"
        script.write_text(WRK_POST_SCRIPT)
        command += ["-H", "Content-Type: application/json", "-s", str(script)]
    path = {"healthz": "/healthz", "read": "/v1/workspace", "write": ""}[scenario]
    output = subprocess.run(
        [*command, base_url + path], capture_output=True, text=True, check=True
    ).stdout
    wanted = ("Requests/sec", "50%", "99%", "Non-2xx")
    return "  ".join(
        line.strip() for line in output.splitlines() if line.strip().startswith(wanted)
    )


def report(name: str, latencies: list[float], seconds: float) -> None:
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[int(len(ordered) * 0.99)] * 1000
    print(
        f"{name:<34} {len(ordered) / seconds:8.0f} req/s   p50 {p50:6.1f} ms   "
        f"p99 {p99:6.1f} ms   mean {statistics.mean(ordered) * 1000:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--httpx", action="store_true", help="drive with httpx even if wrk exists")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    postgres, redis = EmbeddedPostgres(workdir / "pg"), EmbeddedRedis(workdir / "redis")
    database_url = os.environ.get("BENCH_DATABASE_URL") or postgres.start("herald_bench")
    redis_url = os.environ.get("BENCH_REDIS_URL") or redis.start()
    api: subprocess.Popen[bytes] | None = None
    try:
        upgrade(async_database_url(database_url))
        created = asyncio.run(
            create_workspace(async_database_url(database_url), "Bench", "o@bench.example", "O")
        )
        headers = {"Authorization": f"Bearer {created.key.token}"}
        port = free_port()
        env = api_env(database_url, redis_url, port)
        api = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env)
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url)
        print(f"concurrency {args.concurrency}, {args.seconds:.0f} s per scenario, 1 API process")
        scenarios = (
            ("GET /healthz (no auth, no I/O)", "healthz"),
            ("GET /v1/workspace (auth+ratelimit)", "read"),
            ("POST /v1/members + Idempotency-Key", "write"),
        )
        use_wrk = shutil.which("wrk") is not None and not args.httpx
        print("driver:", "wrk" if use_wrk else "httpx (Python; the client is the bottleneck)")
        for name, scenario in scenarios:
            if use_wrk:
                figures = run_wrk(
                    base_url, created.key.token, args.seconds, args.concurrency, scenario
                )
                print(f"{name:<36} {figures}")
                continue
            latencies = asyncio.run(
                drive(base_url, headers, args.seconds, args.concurrency, scenario)
            )
            report(name, latencies, args.seconds)
    finally:
        if api is not None:
            api.terminate()
            api.wait()
        redis.stop()
        postgres.stop()


if __name__ == "__main__":
    main()
