"""The `herald` command."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from app.config import Settings, redact_url

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


def load_settings() -> Settings:
    """Settings validated up front, with a readable message instead of a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo("Herald configuration is invalid:", err=True)
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            typer.echo(f"  - {field}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


def _database_url(settings: Settings) -> str:
    try:
        return settings.require_database_url()
    except RuntimeError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@cli.command()
def dev(
    port: Annotated[int | None, typer.Option(help="API port (default: $PORT or 8000).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Embedded data folder.")] = None,
) -> None:
    """Run API + worker, on embedded PostgreSQL and Redis unless DATABASE_URL/REDIS_URL are set."""
    from app.devserver import run_dev

    settings = load_settings()
    raise typer.Exit(run_dev(settings, port or settings.port, data_dir or Path(settings.data_dir)))


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
    url = _database_url(settings)
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
    created = asyncio.run(create_workspace(_database_url(settings), name, owner_email, owner_name))
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
    token = asyncio.run(create_key(_database_url(settings), workspace, name, scope, member))
    typer.echo(token)


@keys_cli.command("list")
def keys_list(workspace: Annotated[uuid.UUID, typer.Option(help="Workspace id.")]) -> None:
    """List a workspace's keys (prefixes only)."""
    from app.admin import list_keys

    settings = load_settings()
    for line in asyncio.run(list_keys(_database_url(settings), workspace)):
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
    try:
        pushed = asyncio.run(revoke_key(_database_url(settings), redis_url, workspace, key_id))
    except AppError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked {key_id}")
    if not pushed:
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
    try:
        counts = asyncio.run(reencrypt_secrets(_database_url(settings)))
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
    differences = asyncio.run(recount_command(_database_url(settings), scope, fix=fix))
    for d in differences:
        key = " ".join(f"{k}={v}" for k, v in d.key.items())
        typer.echo(f"{key} {d.metric}: stored {d.stored} recounted {d.recounted}")
    if not differences:
        typer.echo("metrics agree with the raw rows")
        return
    typer.echo(f"{len(differences)} differences" + (" (fixed)" if fix else ""))
    raise typer.Exit(1)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
