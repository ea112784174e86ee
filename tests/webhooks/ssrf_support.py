"""SSRF test peers: a local HTTP listener (IPv4 and, when the host has it, IPv6 loopback)
that counts every TCP connection it accepts, optionally over TLS with a certificate made by
the `openssl` command for a chosen name."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Listener:
    port4: int = 0
    port6: int | None = None  # None: the host has no IPv6 loopback
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    # Answer one header byte at a time, forever (a peer that keeps every read alive).
    drip: bool = False
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port4}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        current = asyncio.current_task()
        if current is not None:
            self.handlers.add(current)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Request(method, target, headers, body))
            if self.drip:
                while True:
                    writer.write(b"H")
                    await writer.drain()
                    await asyncio.sleep(0.05)  # the peer is slow; the test waits on nothing
            extra = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
            writer.write(
                f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(self.body)}\r\n"
                f"Connection: close\r\n{extra}\r\n".encode()
                + self.body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@asynccontextmanager
async def listening(tls: ssl.SSLContext | None = None) -> AsyncIterator[Listener]:
    listener = Listener()
    servers = [await asyncio.start_server(listener.handle, "127.0.0.1", 0, ssl=tls)]
    listener.port4 = servers[0].sockets[0].getsockname()[1]
    if ipv6_loopback():
        servers.append(await asyncio.start_server(listener.handle, "::1", 0, ssl=tls))
        listener.port6 = servers[1].sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
        for handler in listener.handlers:
            handler.cancel()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Trusts only this certificate; checks host names (as the default context does)."""
        return ssl.create_default_context(cafile=str(self.cert))


def self_signed(folder: Path, name: str) -> Certificate | None:
    """A certificate for DNS name `name` (None when `openssl` is not installed)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)
