from __future__ import annotations

import io
import json

import structlog

from app.config import get_settings
from app.core.logging import configure_logging


def test_log_lines_are_json_with_the_request_id() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json_output=True, stream=stream)
    try:
        structlog.contextvars.bind_contextvars(request_id="req-42")
        structlog.get_logger("test").info("request", status=200)
    finally:
        structlog.contextvars.clear_contextvars()
        configure_logging("WARNING")
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["event"] == "request"
    assert line["request_id"] == "req-42"
    assert line["level"] == "info"
    assert line["status"] == 200
    assert "timestamp" in line


def test_settings_never_print_secrets() -> None:
    settings = get_settings().model_copy()
    from pydantic import SecretStr

    settings = settings.model_copy(
        update={"database_url": SecretStr("postgresql://u:hunter2@h/db")}
    )
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())
