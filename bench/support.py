"""What every benchmark needs to run a real `herald serve` against chosen services."""

from __future__ import annotations

import os
import time

import httpx


def api_env(database_url: str, redis_url: str, port: int) -> dict[str, str]:
    """The API's environment for a benchmark: rate limit out of the way, quiet logs."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PORT": str(port),
        "HERALD_HTTP__RATE_LIMIT_PER_MINUTE": "100000000",
        "HERALD_LOGGING__LEVEL": "WARNING",
    }


def wait_ready(base_url: str, timeout_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API did not become ready")
