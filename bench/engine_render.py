"""Render cost per message, the engine worker's largest cost (docs/benchmarks.md, Engine).

Times `render_message` (as a claim calls it) on bench/engine.py's email template for 10,000
messages, then the same with `sys.settrace` made a no-op, which switches off the render time
limit's tracer in `app.templates.rendering._bounded` (for measurement only), and the signed
links alone. Usage: `uv run --no-sync python -m bench.engine_render [--messages 10000]`.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import app.models  # noqa: F401 - complete mappers for Contact outside the API
from app.channels.tracking import message_links
from app.config import get_settings
from app.contacts.models import Contact
from app.core.clock import utcnow
from app.sequences.engine.render import render_message
from bench.engine import EMAIL


def per_message_us(run: Callable[[int], Any], count: int) -> float:
    run(0)  # compile and cache the template first
    started = time.perf_counter()
    for n in range(count):
        run(n)
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    count = parser.parse_args().messages
    settings, now, template = get_settings(), utcnow(), ("email", EMAIL)
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

    def render(n: int) -> Any:
        return render_message(settings, uuid.uuid4(), contacts[n % 1000], template)

    print(f"render_message: {per_message_us(render, count):.0f} us per message")
    settrace = sys.settrace
    sys.settrace = lambda _function: None
    try:
        untraced = per_message_us(render, count)
    finally:
        sys.settrace = settrace
    print(f"render_message without the time-limit tracer: {untraced:.0f} us per message")
    links = per_message_us(lambda _n: message_links(settings, uuid.uuid4()), count)
    print(f"message_links alone (signed tracking and unsubscribe tokens): {links:.0f} us")


if __name__ == "__main__":
    main()
