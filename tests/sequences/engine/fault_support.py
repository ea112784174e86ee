"""Helpers for the engine fault tests: real `herald worker` processes, set-wise contacts and
enrollments, polling the database for an outcome (with a deadline that fails the test, never
a sleep standing in for a timer), and clean tables between hypothesis examples."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

from sqlalchemy import func, select, text

from app.contacts.models import Contact
from app.core.db import transaction
from app.core.state import AppState
from app.models import Base
from app.sequences.enrollments.service import enroll_contacts
from app.sequences.models import Enrollment, SequenceVersion
from tests.sequences.engine.support import Factory

WORKER_COMMAND = (sys.executable, "-m", "app.cli", "worker")
POLL_SECONDS = 0.05  # how often a condition is re-read; not a timer of the system under test


class WorkerProcess:
    """One `herald worker` subprocess; its output goes to a log file kept for diagnostics."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log: IO[bytes] = log_path.open("ab")
        self.process = subprocess.Popen(
            [*WORKER_COMMAND],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, whatever it holds is abandoned mid-flight."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time (no orphan either way)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(timeout=30)
        self.log.close()


def worker_env(database_url: str, redis_url: str, **settings: str) -> dict[str, str]:
    """The test's environment with the test services and `HERALD_*` overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update({"DATABASE_URL": database_url, "REDIS_URL": redis_url})
    env.update({f"HERALD_{key.upper()}": value for key, value in settings.items()})
    return env


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Re-read `check` until it holds; fail the test once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:.0f} s: {what}")
        await asyncio.sleep(POLL_SECONDS)


async def add_contacts(factory: Factory, workspace_id: uuid.UUID, count: int, tag: str) -> None:
    async with transaction(factory) as session:
        session.add_all(
            Contact(workspace_id=workspace_id, email=f"{tag}{i}@example.com") for i in range(count)
        )


async def enroll_all(
    state: AppState, workspace_id: uuid.UUID, sequence_id: str, source: str = "fault-test"
) -> list[uuid.UUID]:
    """Every contact of the workspace, set-wise (INSERT ... SELECT, as a launch does)."""
    async with transaction(state.session_factory, state.queue) as session:
        version = (
            await session.execute(
                select(SequenceVersion)
                .where(SequenceVersion.sequence_id == uuid.UUID(sequence_id))
                .order_by(SequenceVersion.number.desc())
                .limit(1)
            )
        ).scalar_one()
        contacts = select(Contact.id).where(Contact.workspace_id == workspace_id)
        return await enroll_contacts(
            session, workspace_id, version, contacts, campaign_id=None, source=source
        )


async def count_enrollments(factory: Factory, state: str) -> int:
    async with factory() as session:
        found = await session.scalar(
            select(func.count()).select_from(Enrollment).where(Enrollment.state == state)
        )
        return int(found or 0)


async def truncate_all(state: AppState) -> None:
    """What the `_isolate` fixture does after a test: empty tables, empty Redis."""
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    async with state.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await state.redis.flushdb()
