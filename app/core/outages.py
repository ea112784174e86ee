"""Telling a dependency outage (PostgreSQL or Redis unreachable, restarting, or dropping the
connection) from a bug.

The API answers an outage with 503 + `Retry-After` (app/core/middleware.py) and the worker
retries the job after a back-off (app/worker/resilience.py); anything else stays a 500 / a
failed job. The failure can surface in many shapes, depending on where it hits:

- connecting: `ConnectionRefusedError` (server down), `OSError` "Multiple exceptions" (every
  address refused), `TimeoutError`, asyncpg `CannotConnectNowError` (starting or shutting
  down), `TooManyConnectionsError`;
- in use: asyncpg `ConnectionDoesNotExistError` / `InterfaceError` "connection is closed",
  `AdminShutdownError` / `CrashShutdownError`, wrapped by SQLAlchemy in a `DBAPIError`
  (`connection_invalidated`);
- waiting: SQLAlchemy's pool `TimeoutError` (every connection busy or being re-established);
- Redis: `redis.exceptions.ConnectionError` (includes `BusyLoadingError`) and `TimeoutError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType

import asyncpg
import redis.exceptions
from sqlalchemy import exc as sa_exc

RETRY_AFTER_SECONDS = 1

# asyncpg errors that mean "no usable server connection", whatever SQL was running.
_ASYNCPG_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up / shutting down
    asyncpg.exceptions.AdminShutdownError,  # 57P01: fast or immediate shutdown
    asyncpg.exceptions.CrashShutdownError,  # 57P02
    asyncpg.exceptions.TooManyConnectionsError,  # 53300
)
_REDIS_OUTAGES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
# Plain OS errors count only when raised by a storage client, not by our own file handling.
_DRIVER_MODULES = ("asyncpg", "redis", "sqlalchemy", "arq")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, DBAPIError originals and group members."""
    pending, seen = [exc], set[int]()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (current.__cause__, current.__context__, getattr(current, "orig", None)):
            if isinstance(linked, BaseException):
                pending.append(linked)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)


def _raised_by_driver(tb: TracebackType | None) -> bool:
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in _DRIVER_MODULES:
            return True
        tb = tb.tb_next
    return False


def is_outage(exc: BaseException) -> bool:
    """True when `exc` (or anything it wraps) says PostgreSQL or Redis could not be used."""
    for current in _chain(exc):
        if isinstance(current, _ASYNCPG_OUTAGES + _REDIS_OUTAGES):
            return True
        if isinstance(current, asyncpg.exceptions.InterfaceError) and "closed" in str(current):
            return True  # "connection is closed"; other interface errors are bugs
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa_exc.TimeoutError):  # the pool's checkout timeout
            return True
        if isinstance(current, ConnectionError):  # refused, reset, aborted, broken pipe
            return True
        if isinstance(current, OSError) and _raised_by_driver(current.__traceback__):
            return True  # includes TimeoutError and "Multiple exceptions: ... refused"
    return False
