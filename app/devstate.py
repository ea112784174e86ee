"""Where a running `herald dev` says which embedded servers it uses, so the other `herald`
commands (and `herald env`, `herald psql`) reach them without the user copying URLs.

`herald dev` writes `<data dir>/dev.json` once its servers are up and removes it when it stops.
A file left behind by a killed `herald dev` is ignored: its process id is no longer alive.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_FILE = "dev.json"


@dataclass(frozen=True)
class DevState:
    database_url: str
    redis_url: str
    api_url: str
    pid: int


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def write_state(data_dir: Path, state: DevState) -> None:
    path = state_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(state), indent=2) + "\n")
    temporary.chmod(0o600)
    temporary.replace(path)


def remove_state(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(data_dir).unlink()


def read_state(data_dir: Path) -> DevState | None:
    """The running `herald dev`'s servers, or None when none is running."""
    try:
        raw = json.loads(state_path(data_dir).read_text())
        state = DevState(
            database_url=str(raw["database_url"]),
            redis_url=str(raw["redis_url"]),
            api_url=str(raw["api_url"]),
            pid=int(raw["pid"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if _alive(state.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


@contextlib.contextmanager
def embedded_postgres_for_command(data_dir: Path) -> Iterator[str]:
    """The dev database for one command when `herald dev` is not running: the embedded
    PostgreSQL is started (or joined, if another command has it up) and stopped afterwards."""
    from app.embedded import EmbeddedPostgres

    postgres = EmbeddedPostgres(data_dir / "postgres")
    try:
        yield postgres.start()
    finally:
        postgres.stop()


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL as psql and other libpq clients spell it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)
