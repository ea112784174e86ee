"""`herald dev`: embedded services + migrations + API + worker, supervised as one unit.

Ctrl-C or SIGTERM stops the API and worker, then the embedded Redis and PostgreSQL. If either
child dies, everything stops with a non-zero exit, so a broken dev stack never looks healthy.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx
from pydantic import SecretStr

from app.admin import ensure_dev_key
from app.config import LOOPBACK_NETWORKS, SecuritySettings, Settings, async_database_url, redact_url
from app.core import encryption
from app.devstate import DevState, libpq_url, remove_state, write_state
from app.embedded import EmbeddedPostgres, EmbeddedRedis
from app.migrate import upgrade

READY_TIMEOUT_SECONDS = 60.0


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run_dev(settings: Settings, port: int, data_dir: Path) -> int:
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    data_dir = data_dir.resolve()
    env = dict(os.environ)
    env["PORT"] = str(port)
    env.setdefault("HERALD_LOGGING__JSON_OUTPUT", "false")
    # Local receivers (a webhook catcher on localhost) are the point of a dev setup.
    env.setdefault("HERALD_WEBHOOKS__ALLOWED_NETWORKS", json.dumps(LOOPBACK_NETWORKS))
    postgres = EmbeddedPostgres(data_dir / "postgres")
    redis = EmbeddedRedis(data_dir / "redis")
    children: list[subprocess.Popen[bytes]] = []
    try:
        if settings.database_url is None:
            env["DATABASE_URL"] = postgres.start()
        if settings.redis_url is None:
            env["REDIS_URL"] = redis.start()
        database_url = async_database_url(env["DATABASE_URL"])
        _use_encryption_key(settings, env, data_dir)
        upgrade(database_url)
        key, created = _dev_key(database_url, data_dir / "admin-key")
        for command in ("serve", "worker"):
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "app.cli", command], env=env, start_new_session=True
                )
            )
        base_url = f"http://127.0.0.1:{port}"
        _wait_ready(base_url, children)
        urls = DevState(
            database_url=libpq_url(env["DATABASE_URL"]),
            redis_url=env["REDIS_URL"],
            api_url=base_url,
            pid=os.getpid(),
        )
        write_state(data_dir, urls)
        _print_banner(urls, key, created, data_dir)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("herald dev: a child process exited; stopping.", file=sys.stderr, flush=True)
        return 1
    except _Stop:
        print("herald dev: stopping...", file=sys.stderr, flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        remove_state(data_dir)
        _stop_children(children)
        redis.stop()
        postgres.stop()


def _use_encryption_key(settings: Settings, env: dict[str, str], data_dir: Path) -> None:
    """Without HERALD_SECURITY__ENCRYPTION_KEYS, the key kept in `<data_dir>/encryption-key`
    (created on first start) encrypts stored secrets, for the migration run here and for the
    API and worker children."""
    if settings.security.encryption_keys is not None:
        return
    key = encryption.dev_key(data_dir)
    env[encryption.ENV_VAR] = key
    security = SecuritySettings(encryption_keys=SecretStr(key))
    encryption.configure(settings.model_copy(update={"security": security}))


def _dev_key(database_url: str, key_file: Path) -> tuple[str, bool]:
    saved = key_file.read_text().strip() if key_file.exists() else None
    key, created = asyncio.run(ensure_dev_key(database_url, saved))
    if key != saved:
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
    return key, created


def _wait_ready(base_url: str, children: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise RuntimeError("the API or worker exited during start-up")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not become ready within {READY_TIMEOUT_SECONDS:.0f}s")


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _print_banner(urls: DevState, key: str, created: bool, data_dir: Path) -> None:
    note = "new" if created else "saved"
    base_url = urls.api_url
    print(
        "\n"
        "  Herald is running.\n"
        f"  API:          {base_url}\n"
        f"  Docs:         {base_url}/docs\n"
        f"  Admin key:    {key}   ({note}; kept in {data_dir / 'admin-key'})\n"
        f"  DATABASE_URL: {redact_url(urls.database_url)}\n"
        f"  REDIS_URL:    {urls.redis_url}\n"
        f"  Try:          curl -H 'Authorization: Bearer {key}' {base_url}/v1/workspace\n"
        "  Tools:        herald env | herald psql | herald workspaces create ... (no URLs needed)\n"
        "  Stop:         Ctrl-C\n",
        flush=True,
    )
