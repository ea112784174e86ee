"""Structured logs: JSON lines with the request id bound from contextvars."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure_logging(
    level: str = "INFO", json_output: bool = True, stream: TextIO | None = None
) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    # arq logs two lines per job at INFO; the engine's scans run every second, so those
    # lines would drown everything else. Failures are still logged (by `counted` and at
    # WARNING by arq), and job outcomes are counted in /metrics. DEBUG shows them all.
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    logging.getLogger("arq.worker").setLevel(quiet)
