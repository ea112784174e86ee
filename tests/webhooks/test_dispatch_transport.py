"""The attempt path's transport details that the delivery throughput work relies on
(docs/benchmarks.md, "Webhooks"): keep-alive to the pinned address, the shared client's
cookie jar untouched by receivers, header composition, and httpcore's async-library probe
without sniffio. A real local HTTP/1.1 keep-alive receiver counts connections."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from httpcore._synchronization import current_async_library

from app.core.clock import utcnow
from app.core.egress import GuardPolicy, guarded_post
from app.core.signing import new_secret
from app.webhooks.dispatch.sender import Target, attempt

LOOPBACK = GuardPolicy((ipaddress.ip_network("127.0.0.0/8"),), {})


@dataclass
class KeepAlive:
    """Answers 200 with a `Set-Cookie` to every request, keeping the connection open."""

    port: int = 0
    connections: int = 0
    heads: list[list[tuple[str, str]]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = []
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers.append((name.strip().lower(), value.strip()))
                self.heads.append(headers)
                length = int(dict(headers).get("content-length", "0"))
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                    b"Set-Cookie: tenant=secret; Path=/\r\n\r\nok"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def keep_alive() -> AsyncIterator[KeepAlive]:
    receiver = KeepAlive()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    async with server:
        yield receiver
        server.close()


async def test_attempts_reuse_one_connection_to_the_pinned_address() -> None:
    async with keep_alive() as receiver, httpx.AsyncClient() as http:
        target = Target(uuid.uuid4(), f"http://127.0.0.1:{receiver.port}/hook", (new_secret(),))
        for _ in range(3):
            result = await attempt(
                http,
                target,
                uuid.uuid4(),
                {"type": "x"},
                now=utcnow(),
                timeout=5.0,
                policy=LOOPBACK,
            )
            assert result.outcome == "success", result

        assert len(receiver.heads) == 3
        assert receiver.connections == 1


async def test_a_receivers_cookie_never_reaches_the_shared_client() -> None:
    async with keep_alive() as receiver, httpx.AsyncClient() as http:
        url = f"http://127.0.0.1:{receiver.port}/hook"
        for _ in range(2):
            answer = await guarded_post(
                http, url, content=b"{}", headers={}, timeout=5.0, policy=LOOPBACK
            )
            assert answer.headers["set-cookie"] == "tenant=secret; Path=/"

        assert len(http.cookies) == 0
        assert all("cookie" not in dict(head) for head in receiver.heads)


async def test_headers_are_the_clients_defaults_the_callers_then_the_guards() -> None:
    overrides = GuardPolicy(LOOPBACK.allowed_networks, {"hooks.example": "127.0.0.1"})
    async with (
        keep_alive() as receiver,
        httpx.AsyncClient(headers={"X-Default": "d", "User-Agent": "client/1"}) as http,
    ):
        await guarded_post(
            http,
            f"http://hooks.example:{receiver.port}/hook",
            content=b"{}",
            headers={"user-agent": "Herald-Webhooks/1", "Host": "evil.example", "X-A": "1"},
            timeout=5.0,
            policy=overrides,
        )

        [head] = receiver.heads
        names = [name for name, _ in head]
        assert len(names) == len(set(names)), head  # nothing doubled
        headers = dict(head)
        assert headers["host"] == f"hooks.example:{receiver.port}"
        assert headers["user-agent"] == "Herald-Webhooks/1"
        assert headers["x-default"] == "d"
        assert headers["x-a"] == "1"
        assert headers["content-length"] == "2"


async def test_httpcore_still_sees_asyncio() -> None:
    # app.core.egress records sniffio's absence; httpcore must keep working on asyncio.
    assert current_async_library() == "asyncio"
