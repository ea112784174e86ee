"""SMTP provider benchmark: delivery batches of 200 messages through `SmtpProvider.send_many`
to a local aiosmtpd server with STARTTLS and AUTH (a trustme CA), as a relay would ask. Not a
test: prints messages/s and the connections the server saw. Docs: docs/benchmarks.md (SMTP).

The server runs in its own thread (aiosmtpd's Controller), on the same 2 cores: the figures
compare client strategies on one machine, not a real relay's latency (which connection reuse
helps far more: every saved handshake is several round trips).

Usage: `uv run --no-sync python -m bench.smtp [--messages 2000] [--max-connections 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from app.channels.providers.base import OutboundMessage
from app.channels.providers.smtp import SmtpProvider
from app.config import SmtpSettings
from app.embedded import free_port

BATCH = 200  # messages per `deliver_batch` job (app/channels/tasks.py)


class Sink:
    def __init__(self) -> None:
        self.received = 0
        self.peers: set[Any] = set()

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Session, envelope: Envelope
    ) -> str:
        self.received += 1
        self.peers.add(session.peer)
        return "250 OK"


def accept(server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> Any:
    assert isinstance(data, LoginPassword)
    return AuthResult(success=data.login == b"bench", handled=False, auth_data=data)


def message(index: int) -> OutboundMessage:
    return OutboundMessage(
        id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        channel="email",
        recipient=f"r{index}@bench.example",
        content={
            "from": "news@bench.example",
            "subject": "Hello",
            "text": "Hi",
            "html": "<p>Hi</p>",
        },
        unsubscribe_url="https://herald.example/v1/unsubscribe/x",
    )


async def run(port: int, ca_file: str, messages: int, max_connections: int) -> float:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=port,
        security="starttls",
        username="bench",
        password=SecretStr("secret"),
        ca_file=ca_file,
        max_connections=max_connections,
    )
    started = time.perf_counter()
    for first in range(0, messages, BATCH):
        provider = SmtpProvider(settings, "news@bench.example")  # one per delivery job
        batch = [message(i) for i in range(first, min(first + BATCH, messages))]
        outcomes = await provider.send_many(batch)
        failed = [o.error for o in outcomes if o.error is not None]
        assert not failed, failed[:3]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--max-connections", type=int, default=20)
    args = parser.parse_args()
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = Path(tempfile.mkdtemp(prefix="herald-bench-smtp-")) / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    sink = Sink()
    port = free_port()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=accept,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    try:
        seconds = asyncio.run(run(port, str(ca_file), args.messages, args.max_connections))
    finally:
        controller.stop()
    print(
        f"SMTP STARTTLS + AUTH, batches of {BATCH}, max_connections {args.max_connections}: "
        f"{args.messages:,} messages in {seconds:.2f} s = {args.messages / seconds:,.0f} msg/s, "
        f"{len(sink.peers):,} connections, {sink.received:,} received"
    )


if __name__ == "__main__":
    main()
