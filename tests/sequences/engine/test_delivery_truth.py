"""Delivery truth with real peers and real processes: `herald worker` subprocesses sending
through the SMTP provider, at a finite rate, to a real aiosmtpd server that records when each
email arrived; faults are a SIGKILL of a worker, `pg_ctl restart -m immediate` of the
embedded PostgreSQL and a Redis FLUSHALL.

Real time flows here (the workers run on the wall clock, the subject is what a recipient's
server sees); every wait is a poll of the database or the server with a deadline that fails
the test, never a sleep standing in for an assertion."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from redis.asyncio import Redis
from sqlalchemy import func, select

from app.channels.models import Message
from app.core.state import AppState
from app.sequences.models import Enrollment
from tests.fixtures import factories
from tests.fixtures.channels import free_port
from tests.fixtures.factories import Factory
from tests.fixtures.processes import WorkerProcess, wait_until, worker_env
from tests.fixtures.services import Services
from tests.fixtures.tenants import Tenant
from tests.sequences.engine.fault_support import (
    add_contacts,
    enroll_all,
)

_MESSAGE_ID = re.compile(rb"^Message-ID: <([0-9a-f-]{36})@", re.MULTILINE | re.IGNORECASE)
_SUBJECT = re.compile(rb"^Subject: (\w+)", re.MULTILINE | re.IGNORECASE)
STARTUP_SECONDS = 120  # a worker's imports take ~20 s when the cores are shared


@dataclass
class Receipt:
    message_id: uuid.UUID
    recipient: str
    subject: str
    at: float  # server wall-clock time of the `250` to DATA


@dataclass
class Recorder:
    """The SMTP server's side: every email it accepted, when."""

    port: int
    receipts: list[Receipt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Session, envelope: Envelope
    ) -> str:
        assert isinstance(envelope.content, bytes)
        found = _MESSAGE_ID.search(envelope.content)
        subject = _SUBJECT.search(envelope.content)
        assert found is not None
        assert subject is not None
        receipt = Receipt(
            uuid.UUID(found.group(1).decode()),
            envelope.rcpt_tos[0],
            subject.group(1).decode(),
            time.time(),
        )
        with self.lock:
            self.receipts.append(receipt)
        return "250 OK"

    def snapshot(self) -> list[Receipt]:
        with self.lock:
            return list(self.receipts)


class SmtpServer:
    def __init__(self) -> None:
        self.recorder = Recorder(port=free_port())
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.recorder.port)

    def __enter__(self) -> Recorder:
        self.controller.start()
        return self.recorder

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def _env(database_url: str, services: Services, port: int, rate: int) -> dict[str, str]:
    return worker_env(
        database_url,
        services.redis_url,
        channels__email_provider="smtp",
        channels__smtp__host="127.0.0.1",
        channels__smtp__port=str(port),
        channels__rate_per_second=str(rate),
        channels__sending_lease_seconds="5",
        engine__lease_seconds="5",
        logging__level="WARNING",
    )


async def _sequence(client: httpx.AsyncClient, tenant: Tenant, timeout: str) -> str:
    first = await factories.email_template(client, tenant, "First")
    nudge = await factories.email_template(client, tenant, "Nudge")
    definition = {
        "steps": [
            {"key": "first", "type": "send", "channel": "email", "template_id": first},
            {
                "key": "reply",
                "type": "wait_for_event",
                "event_type": "email.replied",
                "timeout": timeout,
                "on_event": "thanks",
                "on_timeout": "nudge",
            },
            {"key": "nudge", "type": "send", "channel": "email", "template_id": nudge},
            {"key": "done", "type": "exit", "reason": "nudged"},
            {"key": "thanks", "type": "exit", "reason": "replied"},
        ]
    }
    return await factories.published_sequence(client, tenant, definition)


async def _finished(factory: Factory, count: int) -> bool:
    async with factory() as session:
        live = await session.scalar(
            select(func.count())
            .select_from(Enrollment)
            .where(Enrollment.state.in_(("active", "waiting")))
        )
        total = await session.scalar(select(func.count()).select_from(Enrollment))
    return int(live or 0) == 0 and int(total or 0) == count


async def _messages(factory: Factory) -> dict[uuid.UUID, Message]:
    async with factory() as session:
        return {row.id: row for row in (await session.execute(select(Message))).scalars()}


def _is_replier(address: str) -> bool:
    return int(address.split("@", maxsplit=1)[0].removeprefix("c")) % 3 == 0


class Replier:
    """Contacts `c<3k>` reply 0.3 s after their server received the first email: the event
    is ingested once that instant has passed, with that `occurred_at`. `answered` keeps when
    the API had recorded each reply (the engine can only act on a reply it has)."""

    def __init__(self, client: httpx.AsyncClient, tenant: Tenant):
        self.client = client
        self.tenant = tenant
        self.seen = 0
        self.answered: dict[str, float] = {}
        self.pending: list[Receipt] = []

    async def step(self, receipts: list[Receipt]) -> None:
        for receipt in receipts[self.seen :]:
            if receipt.subject == "First" and _is_replier(receipt.recipient):
                self.pending.append(receipt)
        self.seen = len(receipts)
        now = time.time()
        due = [r for r in self.pending if r.at + 0.3 <= now]
        self.pending = [r for r in self.pending if r.at + 0.3 > now]
        for start in range(0, len(due), 1000):
            chunk = due[start : start + 1000]
            events = [
                {
                    "email": r.recipient,
                    "type": "email.replied",
                    "occurred_at": datetime.fromtimestamp(r.at + 0.3, UTC).isoformat(),
                }
                for r in chunk
            ]
            answer = await self.client.post(
                "/v1/events/batch", json={"events": events}, headers=self.tenant.headers
            )
            assert answer.status_code == 200, answer.text
            assert {item["status"] for item in answer.json()["results"]} <= {"accepted"}
            answered = time.time()
            self.answered.update((r.recipient, answered) for r in chunk)


@pytest.mark.slow
async def test_repliers_never_get_the_follow_up_and_nothing_overtakes_at_the_rate_limit(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    session_factory: Factory,
    database_url: str,
    services: Services,
    tmp_path: Path,
) -> None:
    """1,500 contacts at 100/s: the first emails alone are a 15 s backlog, nearly four times
    the 4 s reply window. The window runs from each email's acceptance."""
    contacts, rate, window = 1500, 100, 4.0
    sequence_id = await _sequence(client, tenant, f"PT{int(window)}S")
    await add_contacts(session_factory, tenant.workspace_id, contacts, "c")
    with SmtpServer() as server:
        worker = WorkerProcess(_env(database_url, services, server.port, rate), tmp_path / "w.log")
        try:
            await enroll_all(state, tenant.workspace_id, sequence_id)
            await wait_until(lambda: _any(server), STARTUP_SECONDS, "a first email")
            replier = Replier(client, tenant)
            deadline = time.monotonic() + 240
            checked = 0.0
            while True:
                assert time.monotonic() < deadline, f"not finished (log: {tmp_path / 'w.log'})"
                await replier.step(server.snapshot())
                if time.monotonic() - checked > 0.5:  # the database is read twice a second
                    checked = time.monotonic()
                    if await _finished(session_factory, contacts):
                        break
                await asyncio.sleep(0.02)
        finally:
            worker.stop()
        receipts = server.snapshot()

    rows = await _messages(session_factory)
    by_contact: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for receipt in receipts:
        by_contact[receipt.recipient][rows[receipt.message_id].step_key].append(receipt.at)
    assert len(by_contact) == contacts
    first_of = {
        receipt.recipient: rows[receipt.message_id]
        for receipt in receipts
        if rows[receipt.message_id].step_key == "first"
    }
    followed_up, late_replies = 0, 0
    for address, steps in by_contact.items():
        assert len(steps["first"]) == 1, address  # once, never twice
        assert len(steps.get("nudge", [])) <= 1, address
        if address in replier.answered:
            sent_at = first_of[address].sent_at
            assert sent_at is not None
            if replier.answered[address] < sent_at.timestamp() + window:
                # The reply was recorded before the window (from sent_at) closed: it wins.
                assert "nudge" not in steps, f"{address} replied in time and got the follow-up"
                continue
            late_replies += 1  # this test's own replier was late (a starved CPU)
        if "nudge" not in steps:
            continue
        (first_at,), (nudge_at,) = steps["first"], steps["nudge"]
        assert nudge_at - first_at >= window, (address, nudge_at - first_at)
        followed_up += 1
    assert len(replier.answered) == contacts // 3
    # Nearly every reply reached the API within its window; otherwise the run proved little.
    assert late_replies <= contacts // 30, late_replies
    assert followed_up == contacts - contacts // 3 + late_replies
    assert {row.status for row in rows.values()} == {"sent"}
    # Each sent_at is that email's own acceptance (within the server's receipt and the
    # recorder's write), not the claim of a batch.
    for receipt in receipts:
        sent_at = rows[receipt.message_id].sent_at
        assert sent_at is not None
        assert -0.05 <= sent_at.timestamp() - receipt.at < 2.0
    # The rate while the first emails were a backlog.
    firsts = sorted(r.at for r in receipts if rows[r.message_id].step_key == "first")
    during = [r.at for r in receipts if firsts[0] <= r.at <= firsts[-1]]
    achieved = (len(during) - 1) / (firsts[-1] - firsts[0])
    # Never above the limit (no burst per second). How close to it one worker gets is
    # CPU-bound (4-5 ms of worker CPU per email with its engine passes) and the suite shares
    # two cores: the >= 95 % target is measured by bench/engine.py part (d), not here.
    assert achieved <= 1.02 * rate, f"{achieved:.1f}/s of {rate}/s"


async def _any(server: Recorder) -> bool:
    return bool(server.snapshot())


@pytest.mark.slow
async def test_a_killed_worker_a_database_restart_and_a_redis_flush_lose_and_double_nothing(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    session_factory: Factory,
    database_url: str,
    services: Services,
    redis: Redis,
    tmp_path: Path,
) -> None:
    """1,000 contacts, two emails each with a 1 s wait between, at 200/s through two
    workers. Faults while the backlog lasts; afterwards every contact has exactly its two
    messages, each received at most once, and only the emails whose DATA was in flight when
    the worker died may be `unknown`."""
    contacts, rate = 1000, 200
    first = await factories.email_template(client, tenant, "First")
    second = await factories.email_template(client, tenant, "Second")
    sequence_id = await factories.published_sequence(
        client,
        tenant,
        {
            "steps": [
                {"key": "first", "type": "send", "channel": "email", "template_id": first},
                {"key": "pause", "type": "wait", "duration": "PT1S"},
                {"key": "second", "type": "send", "channel": "email", "template_id": second},
            ]
        },
    )
    await add_contacts(session_factory, tenant.workspace_id, contacts, "c")
    log_path = tmp_path / "workers.log"
    with SmtpServer() as server:
        env = _env(database_url, services, server.port, rate)
        steady, victim = WorkerProcess(env, log_path), WorkerProcess(env, log_path)
        try:
            await enroll_all(state, tenant.workspace_id, sequence_id)

            async def received(count: int) -> bool:
                return len(server.snapshot()) >= count

            await wait_until(lambda: received(300), STARTUP_SECONDS, f"300 emails ({log_path})")
            victim.kill()  # mid-send: up to one email per SMTP connection in flight
            killed_at = datetime.now(UTC)
            await wait_until(lambda: received(700), 60, f"700 emails ({log_path})")
            faults = [(killed_at, killed_at)]
            if services.postgres is not None:
                restart_began = datetime.now(UTC)
                services.postgres.restart_immediately()
                faults.append((restart_began, datetime.now(UTC)))
                # This process' pooled connections died too: drop them without a goodbye
                # (closing a dead socket can raise BrokenPipeError).
                await state.engine.dispose(close=False)
            await wait_until(lambda: received(1100), 60, f"1,100 emails ({log_path})")
            await redis.flushall()
            await wait_until(
                lambda: _finished(session_factory, contacts), 180, f"every enrollment ({log_path})"
            )
        finally:
            victim.stop()
            steady.stop()
        receipts = server.snapshot()

    rows = await _messages(session_factory)
    copies: dict[uuid.UUID, int] = defaultdict(int)
    for receipt in receipts:
        copies[receipt.message_id] += 1
    assert max(copies.values()) == 1  # 0 duplicated
    per_enrollment: dict[uuid.UUID, set[str]] = defaultdict(set)
    unknown = 0
    for row in rows.values():
        assert row.step_key not in per_enrollment[row.enrollment_id]
        per_enrollment[row.enrollment_id].add(row.step_key)
        if row.status == "unknown":
            unknown += 1
            assert row.error is not None
            assert "DATA in flight" in row.error
            # It was with the SMTP server when a fault struck (the worker died, or the
            # database went away under the sending job): handed over (claimed) shortly before
            # the fault, its outcome not recorded. Never a message that was only queued.
            assert row.offered_at is not None
            assert any(
                began - timedelta(seconds=10) < row.offered_at <= ended for began, ended in faults
            ), (row.id, row.offered_at, faults)
            continue
        assert row.status == "sent", (row.id, row.status, row.error)
        assert copies[row.id] == 1, row.id  # 0 lost
    assert len(per_enrollment) == contacts
    assert all(steps == {"first", "second"} for steps in per_enrollment.values())
    # One SIGKILL: the killed worker's in-flight emails (one per connection, 20) and those
    # the server had accepted but the worker had not recorded yet (outcome writes lag on a
    # loaded box); a few seconds of sending at most, never the backlog.
    assert unknown <= 20 + 2 * rate
    async with session_factory() as session:
        states = dict(
            (
                await session.execute(
                    select(Enrollment.state, func.count()).group_by(Enrollment.state)
                )
            ).all()
        )
    assert states == {"completed": contacts}
