"""`herald dev` end to end: embedded services, migrations, API, worker, printed key, clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from app.embedded import free_port

KEY_LINE = re.compile(r"Admin key:\s+(hk_[A-Za-z0-9_-]{43})")


class DevProcess:
    def __init__(self, data_dir: Path, port: int, log_path: Path) -> None:
        # As a newcomer runs it: no services, no encryption key (dev makes and keeps one).
        unset = {"DATABASE_URL", "REDIS_URL", "HERALD_SECURITY__ENCRYPTION_KEYS"}
        env = {k: v for k, v in os.environ.items() if k not in unset}
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "dev",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
        )
        self.lines: list[str] = []
        self.key: str | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            match = KEY_LINE.search(line)
            if match:
                self.key = match.group(1)
                self.ready.set()
        self.ready.set()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.log.close()


@pytest.mark.slow
def test_herald_dev_runs_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    log_path = tmp_path / "dev.log"
    first = DevProcess(data_dir, port, log_path)
    try:
        assert first.ready.wait(timeout=180), log_path.read_text()
        assert first.key, "".join(first.lines) + log_path.read_text()
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/readyz").status_code == 200
        workspace = httpx.get(
            f"{base}/v1/workspace", headers={"Authorization": f"Bearer {first.key}"}
        )
        assert workspace.status_code == 200
        assert workspace.json()["name"] == "Default workspace"
        assert httpx.get(f"{base}/docs").status_code == 200
        assert any(f"{base}/docs" in line for line in first.lines)
        banner = "".join(first.lines)
        assert "DATABASE_URL: postgresql://" in banner
        assert "REDIS_URL:    redis://127.0.0.1:" in banner
        _dev_tools_reach_the_running_servers(data_dir, base)
        endpoint = httpx.post(
            f"{base}/v1/webhook-endpoints",
            json={"url": "http://127.0.0.1:9/hook"},
            headers={"Authorization": f"Bearer {first.key}"},
        )
        assert endpoint.status_code == 201, endpoint.text
        assert (data_dir / "encryption-key").exists()
    finally:
        assert first.stop() == 0, log_path.read_text()
    assert not (data_dir / "dev.json").exists()
    _dev_tools_after_dev_stopped(data_dir)

    # Everything it started is gone: the port is closed and PostgreSQL has shut down.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")
    assert not (data_dir / "postgres" / "postmaster.pid").exists()

    # A restart keeps the data and the key.
    second = DevProcess(data_dir, port, log_path)
    try:
        assert second.ready.wait(timeout=180), log_path.read_text()
        assert second.key == first.key
        response = httpx.get(
            f"http://127.0.0.1:{port}/v1/members", headers={"Authorization": f"Bearer {second.key}"}
        )
        assert [m["email"] for m in response.json()["data"]] == ["owner@example.com"]
        # The stored secret still decrypts: the restart reused the kept encryption key.
        test_send = httpx.post(
            f"http://127.0.0.1:{port}/v1/webhook-endpoints/{endpoint.json()['id']}/test",
            headers={"Authorization": f"Bearer {second.key}"},
            timeout=30,
        )
        assert test_send.status_code == 200, test_send.text
    finally:
        assert second.stop() == 0, log_path.read_text()


def herald(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A `herald` command as a user runs it in the project folder: no URLs in the environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "HERALD_DATABASE_URL", "HERALD_REDIS_URL"}
    }
    env["HERALD_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _dev_tools_reach_the_running_servers(data_dir: Path, base: str) -> None:
    shown = herald(data_dir, "env")
    assert shown.returncode == 0, shown.stderr
    exported = dict(
        line.removeprefix("export ").split("=", 1) for line in shown.stdout.splitlines()
    )
    assert exported["DATABASE_URL"].strip("'").startswith("postgresql://")
    assert exported["REDIS_URL"].strip("'").startswith("redis://127.0.0.1:")
    assert exported["HERALD_API_URL"] == base

    # The documented way to make a second workspace, with no URL copied by hand.
    created = herald(
        data_dir, "workspaces", "create", "--name", "Initech", "--owner-email", "b@i.example"
    )
    assert created.returncode == 0, created.stderr
    assert "not running" not in created.stderr  # it used dev's servers, not its own
    key = re.search(r"admin key (hk_\S+)", created.stdout).group(1)  # type: ignore[union-attr]
    workspace = httpx.get(f"{base}/v1/workspace", headers={"Authorization": f"Bearer {key}"})
    assert workspace.json()["name"] == "Initech"

    counted = herald(data_dir, "psql", "-tA", "-c", "select count(*) from workspaces")
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.strip() == "2"

    # A second `herald dev` on the same data is refused instead of fighting over the servers.
    again = herald(data_dir, "dev", "--port", "1")
    assert again.returncode == 1
    assert "already running" in again.stderr


def _dev_tools_after_dev_stopped(data_dir: Path) -> None:
    shown = herald(data_dir, "env")
    assert shown.returncode == 1
    assert "herald dev is not running" in shown.stderr

    # One-shot commands start the embedded PostgreSQL for themselves, and stop it after.
    listed = herald(data_dir, "psql", "-tA", "-c", "select name from workspaces order by name")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["Default", "workspace", "Initech"]
    assert "herald dev is not running: using the embedded PostgreSQL" in listed.stderr
    migrated = herald(data_dir, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
