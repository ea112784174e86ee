"""The `herald` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from pydantic import ValidationError

from app.config import Settings, async_database_url, redact_url
from app.devstate import embedded_postgres_for_command, libpq_url, read_state

cli = typer.Typer(help="Herald: campaign orchestration on Postgres + Redis.", no_args_is_help=True)
workspaces_cli = typer.Typer(help="Create workspaces.", no_args_is_help=True)
keys_cli = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
cli.add_typer(workspaces_cli, name="workspaces")
cli.add_typer(keys_cli, name="keys")
metrics_cli = typer.Typer(help="Campaign metrics administration.", no_args_is_help=True)
cli.add_typer(metrics_cli, name="metrics")
secrets_cli = typer.Typer(help="Keys encrypting stored secrets.", no_args_is_help=True)
cli.add_typer(secrets_cli, name="secrets")

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def load_settings(*, use_dev_state: bool = True) -> Settings:
    """Settings validated up front, with a readable message instead of a traceback.

    When `DATABASE_URL` / `REDIS_URL` are unset and `herald dev` is running, its embedded
    servers are used (put in the environment, so child processes such as uvicorn see them too).
    """
    if use_dev_state:
        _adopt_dev_servers()
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo("Herald configuration is invalid:", err=True)
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            typer.echo(f"  - {field}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


def _data_dir() -> Path:
    return Path(os.environ.get("HERALD_DATA_DIR", Settings.model_fields["data_dir"].default))


def _adopt_dev_servers() -> None:
    names = {
        "database": ("DATABASE_URL", "HERALD_DATABASE_URL"),
        "redis": ("REDIS_URL", "HERALD_REDIS_URL"),
    }
    if any(name in os.environ for pair in names.values() for name in pair):
        return
    running = read_state(_data_dir())
    if running is not None:
        os.environ["DATABASE_URL"] = running.database_url
        os.environ["REDIS_URL"] = running.redis_url


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The database a one-shot command works on: `DATABASE_URL`, else the running `herald dev`'s
    (adopted by load_settings), else the embedded PostgreSQL started for this command alone."""
    if settings.database_url is not None:
        yield settings.require_database_url()
        return
    if settings.environment == "production" or not _embedded_available():
        typer.echo(str(_missing_database()), err=True)
        raise typer.Exit(2)
    data_dir = Path(settings.data_dir)
    typer.echo(
        f"herald dev is not running: using the embedded PostgreSQL in {data_dir / 'postgres'} "
        "for this command.",
        err=True,
    )
    with embedded_postgres_for_command(data_dir) as url:
        yield async_database_url(url)


def _embedded_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pgserver") is not None


def _missing_database() -> str:
    return "DATABASE_URL is not set and herald dev is not running (start it with `make run`)."


def _database_url(settings: Settings) -> str:
    """For long-running processes (serve, worker): never an embedded server of their own."""
    if settings.database_url is None:
        typer.echo(_missing_database(), err=True)
        raise typer.Exit(2)
    return settings.require_database_url()


@cli.command()
def dev(
    port: Annotated[int | None, typer.Option(help="API port (default: $PORT or 8000).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Embedded data folder.")] = None,
) -> None:
    """Run API + worker, on embedded PostgreSQL and Redis unless DATABASE_URL/REDIS_URL are set."""
    from app.devserver import run_dev

    settings = load_settings(use_dev_state=False)
    running = read_state(data_dir or Path(settings.data_dir))
    if running is not None:
        typer.echo(
            f"herald dev is already running (pid {running.pid}, {running.api_url}).", err=True
        )
        raise typer.Exit(1)
    raise typer.Exit(run_dev(settings, port or settings.port, data_dir or Path(settings.data_dir)))


def _ignore_signal(signum: int, frame: FrameType | None) -> None:
    """Installed under uvicorn's own handlers; only runs for the re-raised stop signal."""


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: $PORT or 8000).")] = None,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
) -> None:
    """Run the HTTP API (stateless; run as many as you like)."""
    import uvicorn

    settings = load_settings()
    _database_url(settings)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again against
    # the handler it found, so the default one would end us with -15 after a clean stop.
    # A stop that was asked for and completed is a success: exit 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _ignore_signal)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or settings.http.host,
        port=port or settings.port,
        workers=workers,
        access_log=False,
        proxy_headers=True,
        # Live SSE streams never end on their own: don't let them hold a shutdown.
        timeout_graceful_shutdown=10,
        log_level=settings.logging.level.lower(),
    )


@cli.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty.")] = False,
) -> None:
    """Run an arq worker (run as many as you like)."""
    from app.worker.settings import build_worker

    settings = load_settings()
    _database_url(settings)
    build_worker(settings, burst=burst).run()


@cli.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations (run before starting new API/worker versions)."""
    from app.migrate import upgrade

    settings = load_settings()
    with database_url(settings) as url:
        typer.echo(f"Migrating {redact_url(url)} to {revision}")
        upgrade(url, revision)


@cli.command()
def openapi(
    check: Annotated[bool, typer.Option(help="Fail if the committed file is stale.")] = False,
    output: Annotated[Path, typer.Option(help="Where to write.")] = OPENAPI_PATH,
) -> None:
    """Write openapi/openapi.json from the app (or check it is current)."""
    from app.main import create_app

    document = render_openapi(create_app(Settings(database_url=None, redis_url=None)))
    if check:
        current = output.read_text() if output.exists() else ""
        if current != document:
            typer.echo(f"{output} is stale: run `herald openapi` and commit it.", err=True)
            raise typer.Exit(1)
        typer.echo(f"{output} is current.")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document)
    typer.echo(f"Wrote {output}")


def render_openapi(app: object) -> str:
    from fastapi import FastAPI

    assert isinstance(app, FastAPI)
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@workspaces_cli.command("create")
def workspaces_create(
    name: Annotated[str, typer.Option(help="Workspace name.")],
    owner_email: Annotated[str, typer.Option(help="Owner's email.")],
    owner_name: Annotated[str, typer.Option(help="Owner's name.")] = "Owner",
) -> None:
    """Create a workspace with its owner and print an admin key (shown once)."""
    from app.admin import create_workspace

    settings = load_settings()
    with database_url(settings) as url:
        created = asyncio.run(create_workspace(url, name, owner_email, owner_name))
    typer.echo(f"workspace {created.workspace.id}\nadmin key {created.key.token}")


@keys_cli.command("create")
def keys_create(
    workspace: Annotated[uuid.UUID, typer.Option(help="Workspace id.")],
    name: Annotated[str, typer.Option(help="Key name.")],
    scope: Annotated[list[str], typer.Option(help="Scope; repeat for several.")],
    member: Annotated[uuid.UUID | None, typer.Option(help="Bind to a member.")] = None,
) -> None:
    """Create an API key and print it (shown once)."""
    from app.admin import create_key

    settings = load_settings()
    with database_url(settings) as url:
        token = asyncio.run(create_key(url, workspace, name, scope, member))
    typer.echo(token)


@keys_cli.command("list")
def keys_list(workspace: Annotated[uuid.UUID, typer.Option(help="Workspace id.")]) -> None:
    """List a workspace's keys (prefixes only)."""
    from app.admin import list_keys

    settings = load_settings()
    with database_url(settings) as url:
        lines = asyncio.run(list_keys(url, workspace))
    for line in lines:
        typer.echo(line)


@keys_cli.command("revoke")
def keys_revoke(
    key_id: Annotated[uuid.UUID, typer.Argument(help="Key id.")],
    workspace: Annotated[uuid.UUID, typer.Option(help="Workspace id.")],
) -> None:
    """Revoke a key; it stops working on the next request."""
    from app.admin import revoke_key

    settings = load_settings()
    from app.core.errors import AppError

    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    with database_url(settings) as url:
        try:
            pushed = asyncio.run(revoke_key(url, redis_url, workspace, key_id))
        except AppError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"revoked {key_id}")
    # No Redis configured and no dev running: no API process holds the key in its cache.
    if not pushed and redis_url is not None:
        typer.echo(
            "warning: Redis not reachable; running API processes stop accepting the key "
            "within 60 s (their principal cache TTL).",
            err=True,
        )


@secrets_cli.command("generate-key")
def secrets_generate_key() -> None:
    """Print a new Fernet key for HERALD_SECURITY__ENCRYPTION_KEYS."""
    from app.core.encryption import generate_key

    typer.echo(generate_key())


@secrets_cli.command("reencrypt")
def secrets_reencrypt() -> None:
    """Re-encrypt every stored secret with the first key of HERALD_SECURITY__ENCRYPTION_KEYS
    (after a rotation; then the old keys can be removed)."""
    from app.admin import reencrypt_secrets
    from app.core.encryption import SecretsUnreadable

    settings = load_settings()
    with database_url(settings) as url:
        try:
            counts = asyncio.run(reencrypt_secrets(url))
        except SecretsUnreadable as exc:
            typer.echo(f"error: {exc} Nothing was changed.", err=True)
            raise typer.Exit(1) from None
    for column, rows in counts.items():
        typer.echo(f"{column}: {rows} re-encrypted")


@metrics_cli.command("recount")
def metrics_recount(
    workspace: Annotated[uuid.UUID | None, typer.Option(help="Only this workspace.")] = None,
    campaign: Annotated[uuid.UUID | None, typer.Option(help="Only this campaign.")] = None,
    fix: Annotated[bool, typer.Option(help="Rewrite rollups from the recount.")] = False,
) -> None:
    """Recount metrics from raw rows and compare with the rollups; exit 1 on differences."""
    from app.metrics.admin import recount_command
    from app.metrics.repository import Scope

    if campaign is not None and workspace is None:
        typer.echo("--campaign needs --workspace", err=True)
        raise typer.Exit(2)
    settings = load_settings()
    scope = Scope(workspace, campaign)
    with database_url(settings) as url:
        differences = asyncio.run(recount_command(url, scope, fix=fix))
    for d in differences:
        key = " ".join(f"{k}={v}" for k, v in d.key.items())
        typer.echo(f"{key} {d.metric}: stored {d.stored} recounted {d.recounted}")
    if not differences:
        typer.echo("metrics agree with the raw rows")
        return
    typer.echo(f"{len(differences)} differences" + (" (fixed)" if fix else ""))
    raise typer.Exit(1)


@cli.command("env")
def env_command() -> None:
    """Print the running `herald dev`'s DATABASE_URL and REDIS_URL (`eval "$(herald env)"`)."""
    settings = load_settings(use_dev_state=False)
    running = read_state(Path(settings.data_dir))
    if running is None:
        typer.echo("herald dev is not running (start it with `make run`).", err=True)
        raise typer.Exit(1)
    for name, value in (
        ("DATABASE_URL", running.database_url),
        ("REDIS_URL", running.redis_url),
        ("HERALD_API_URL", running.api_url),
    ):
        typer.echo(f"export {name}={shlex.quote(value)}")


@cli.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql_command(context: typer.Context) -> None:
    """Open psql on the database (extra arguments go to psql, e.g. `herald psql -c 'select 1'`)."""
    settings = load_settings()
    executable = _psql_executable()
    if executable is None:
        typer.echo(
            "psql not found: install the PostgreSQL client (e.g. postgresql-client).", err=True
        )
        raise typer.Exit(2)
    with database_url(settings) as url:
        code = subprocess.call([executable, libpq_url(url), *context.args])
    raise typer.Exit(code)


def _psql_executable() -> str | None:
    """pgserver's own psql when installed (it matches the embedded server's version), else the
    one on PATH."""
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        return shutil.which("psql")
    bundled = POSTGRES_BIN_PATH / "psql"
    return str(bundled) if bundled.exists() else shutil.which("psql")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
