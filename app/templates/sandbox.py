"""Rendering user templates where a runaway is killed.

Linear templates (see `rendering.sandboxed_fields`) render in the calling process: their work
is bounded by their size and their inputs, and the operation and output bounds apply. Every
other template renders in a small pool of sandbox processes (pebble's `ProcessPool`): a
render past `render_timeout_seconds` has its process killed and replaced, and each process
has an address-space ceiling (`RLIMIT_AS`), so neither a CPU-bound loop nor a memory bomb
can stall or exhaust the API or the worker. The caller awaits the result: the event loop keeps
serving. Measured costs and the reasoning: docs/templates.md.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import resource
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal

from markupsafe import escape
from pebble import ProcessExpired, ProcessFuture, ProcessPool

from app.config import Settings
from app.templates import rendering
from app.templates.rendering import RenderContext, Rendered, RenderError, RenderLimits

# Each process renders this many messages, then is replaced (keeps fragmentation in check).
_TASKS_PER_PROCESS = 10_000


def limits_for(settings: Settings, channel: str) -> RenderLimits:
    """The render budget of one message on `channel`."""
    config = settings.templates
    unit: Literal["bytes", "chars"]
    if channel == "sms":
        size, unit = config.max_sms_chars, "chars"
    elif channel == "webhook":
        size, unit = config.max_webhook_bytes, "bytes"
    else:
        size, unit = config.max_email_bytes, "bytes"
    return RenderLimits(
        max_output=size,
        unit=unit,
        timeout_seconds=config.render_timeout_seconds,
        memory_bytes=config.render_memory_mib * 1024 * 1024,
    )


async def render_bounded(
    content: dict[str, Any], context: RenderContext, limits: RenderLimits, *, processes: int = 2
) -> Rendered:
    """Render `content` within `limits`; raises `RenderError` (`code` `template_limit` with
    `limit` naming the bound: `cpu_time`, `memory`, `output_size`, `integer_size`, ...)."""
    data = context.data()
    sandboxed = rendering.sandboxed_fields(content, data)
    if not sandboxed:
        return rendering.render(content, context, limits)
    arguments = (processes, content, data, limits)
    # Starting the pool (the forkserver, its first processes) blocks for a moment: off the
    # event loop. Once started, scheduling only queues the task.
    if _sandbox.warm:
        future = _sandbox.submit(*arguments)
    else:
        future = await asyncio.to_thread(_sandbox.submit, *arguments)
    try:
        status, value = await asyncio.wrap_future(future)
    except FutureTimeout as exc:
        raise rendering.limit_error(
            sandboxed[0],
            "cpu_time",
            f"Rendering took longer than {limits.timeout_seconds:g} s and was stopped.",
        ) from exc
    except (ProcessExpired, MemoryError) as exc:
        raise rendering.limit_error(
            sandboxed[0], "memory", "The render ran out of its memory budget and was stopped."
        ) from exc
    if status == "error":
        pointer, message, code, limit = value
        raise RenderError(pointer or sandboxed[0], message, code, limit)
    rendered, undefined, urls = value
    return Rendered(_with_links(rendered, urls, context), undefined)


def _with_links(content: dict[str, Any], urls: list[Any], context: RenderContext) -> dict[str, Any]:
    """Marks left by `link(url)` in the sandbox process, replaced by the caller's `link`
    (escaped in `html`, as autoescape would have)."""
    if not urls:
        return content

    def replace(pointer: str, value: str, is_html: bool) -> str:
        def one(match: Any) -> str:
            url = str(context.link(urls[int(match.group(1))]))
            return str(escape(url)) if is_html else url

        return rendering.LINK_MARK.sub(one, value)

    return rendering.map_fields(content, replace)


# -- the process pool ---------------------------------------------------------------------------


def _limit_memory(extra_bytes: int) -> None:
    """In each sandbox process: the address space it has now, plus the render budget."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    ceiling = pages * resource.getpagesize() + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))


class _Sandbox:
    """This process's pool of sandbox processes, started on first use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pool: ProcessPool | None = None
        self.warm = False  # started: scheduling no longer blocks

    def submit(
        self, processes: int, content: dict[str, Any], data: dict[str, Any], limits: RenderLimits
    ) -> ProcessFuture[tuple[str, Any]]:
        future = self._pool(processes, limits.memory_bytes).schedule(
            rendering.render_marked, args=(content, data, limits), timeout=limits.timeout_seconds
        )
        self.warm = True
        return future

    def _pool(self, processes: int, memory_bytes: int) -> ProcessPool:
        with self.lock:
            if self.pool is None or not self.pool.active:
                # forkserver: processes (and replacements of killed ones) fork from a small
                # single-threaded server that has the renderer imported, never from this
                # multi-threaded process.
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["app.templates.rendering"])
                self.pool = ProcessPool(
                    max_workers=processes,
                    max_tasks=_TASKS_PER_PROCESS,
                    initializer=_limit_memory,
                    initargs=(memory_bytes,),
                    context=context,
                )
            return self.pool

    def shutdown(self) -> None:
        with self.lock:
            pool, self.pool, self.warm = self.pool, None, False
        if pool is not None:
            pool.stop()  # type: ignore[no-untyped-call]
            pool.join()


_sandbox = _Sandbox()


def prestart(settings: Settings) -> None:
    """Start the sandbox processes in the background (API start-up): starting them forks, which
    holds this process's GIL for a moment; better then than during the first preview."""
    limits = limits_for(settings, "sms")
    processes = settings.templates.sandbox_processes
    threading.Thread(
        target=_sandbox.submit,
        args=(processes, {"text": "{% for i in [1] %}{% endfor %}"}, {}, limits),
        name="herald-sandbox-prestart",
        daemon=True,
    ).start()


def shutdown() -> None:
    """Stop the sandbox processes (at exit; tests may call it)."""
    _sandbox.shutdown()


atexit.register(shutdown)
