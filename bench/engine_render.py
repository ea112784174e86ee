"""Render cost per message, the engine worker's largest cost (docs/benchmarks.md, Engine;
docs/templates.md, Sandbox and limits).

Times `render_message` (as a claim calls it) on bench/engine.py's email template, which is
linear and so renders in the worker's own process, then on the same template with a loop
added to its html, which sends it to a sandbox process (the round trip is the sandbox's cost
per render), one message at a time and 100 at a time; then the signed links alone.
Usage: `uv run --no-sync python -m bench.engine_render [--messages 10000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import app.models  # noqa: F401 - complete mappers for Contact outside the API
from app.channels.tracking import message_links
from app.config import get_settings
from app.contacts.models import Contact
from app.core.clock import utcnow
from app.sequences.engine.render import render_message
from app.templates import rendering, sandbox
from bench.engine import EMAIL

LOOPED = {**EMAIL, "html": EMAIL["html"] + "{% for i in [1, 2] %}<i>{{ i }}</i>{% endfor %}"}


async def per_message_us(
    run: Callable[[int], Awaitable[Any]], count: int, concurrency: int = 1
) -> float:
    await run(0)  # compile and cache the template, start the sandbox
    started = time.perf_counter()
    for first in range(0, count, concurrency):
        await asyncio.gather(*(run(n) for n in range(first, min(first + concurrency, count))))
    return (time.perf_counter() - started) / count * 1e6


async def measure(count: int) -> None:
    settings, now = get_settings(), utcnow()
    contacts = [
        Contact(
            id=uuid.uuid4(),
            workspace_id=uuid.uuid4(),
            email=f"e{n}@bench.example",
            external_id=f"e-{n}",
            attributes={"first_name": f"Ada {n}"},
            created_at=now,
            updated_at=now,
        )
        for n in range(1000)
    ]
    data = rendering.RenderContext(contact={"attributes": {"first_name": "Ada"}}).data()
    assert rendering.sandboxed_fields(EMAIL, data) == []
    assert rendering.sandboxed_fields(LOOPED, data) == ["/html"]

    def runner(content: dict[str, Any]) -> Callable[[int], Awaitable[Any]]:
        async def render(n: int) -> Any:
            result = await render_message(
                settings, uuid.uuid4(), contacts[n % 1000], ("email", content)
            )
            assert result.error is None, result.error
            return result

        return render

    inline = await per_message_us(runner(EMAIL), count)
    print(f"render_message, linear template (in-process): {inline:.0f} us per message")
    for concurrency in (1, 100):
        isolated = await per_message_us(runner(LOOPED), count, concurrency)
        print(
            f"render_message, looping template (sandbox process), {concurrency} at a time: "
            f"{isolated:.0f} us per message"
        )
    links = await per_message_us(_links(settings), count)
    print(f"message_links alone (signed tracking and unsubscribe tokens): {links:.0f} us")
    sandbox.shutdown()


def _links(settings: Any) -> Callable[[int], Awaitable[Any]]:
    async def links(_n: int) -> Any:
        return message_links(settings, uuid.uuid4())

    return links


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    asyncio.run(measure(parser.parse_args().messages))


if __name__ == "__main__":
    main()
