"""`/docs` and `/redoc` render in a real browser with no network (`make docs-check`).

Debian's Chromium, headless, driven by playwright-core (tools/contract/docs-check.mjs), loads
the pages from a real local server; every other host fails to resolve and any request to one
is recorded and refused. Skipped, with the reason shown, when Chromium or Node.js is absent
(`make docs-deps` installs Chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from tests.fixtures import contract as checks

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"Chromium is not installed at {CHROMIUM} (run `make docs-deps`)"
    return checks.node_tools_available()


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture(scope="module")
def docs_server() -> Iterator[str]:
    app = create_app(Settings(database_url=None, redis_url=None))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)  # real server start-up, not a clock under test
    assert httpx.get(f"{base}/docs").status_code == 200
    yield base
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def rendered(docs_server: str) -> dict[str, Any]:
    checks.install_node_tools()
    os.environ["CHROMIUM"] = CHROMIUM  # read by docs-check.mjs
    result = checks.node_tool("node", "docs-check.mjs", docs_server, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    openapi: dict[str, Any] = create_app(Settings(database_url=None, redis_url=None)).openapi()
    return openapi


def test_nothing_is_requested_from_another_host(rendered: dict[str, Any]) -> None:
    assert rendered["external"] == []
    assert rendered["errors"] == []


def test_swagger_ui_shows_every_operation_and_webhook_event(
    rendered: dict[str, Any], document: dict[str, Any]
) -> None:
    swagger = rendered["swagger"]
    operations = list(checks.operations(document))
    assert swagger["operations"] == len(operations) + len(document["webhooks"])
    for event in document["webhooks"]:
        assert event in swagger["text"]
    for path, _, _ in operations[:20]:
        assert path in swagger["text"]


def test_redoc_shows_every_operation_and_webhook_event(
    rendered: dict[str, Any], document: dict[str, Any]
) -> None:
    redoc = rendered["redoc"]
    operations = list(checks.operations(document))
    assert redoc["operations"] == len(operations) + len(document["webhooks"])
    for event in document["webhooks"]:
        assert event in redoc["text"]
    for _, _, operation in operations[:20]:
        assert operation["summary"] in redoc["text"]
