"""The `herald` command: configuration errors, workspace and key administration."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config import redact_url
from app.devstate import DevState, read_state, write_state

runner = CliRunner()


def test_invalid_configuration_is_a_clear_message() -> None:
    env = {**os.environ, "DATABASE_URL": "mysql://root@localhost/db", "PORT": "seventy"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert "configuration is invalid" in result.stderr
    assert "DATABASE_URL: Value error, must be a postgresql:// URL" in result.stderr
    assert "PORT: Input should be a valid integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_database_url_is_refused(tmp_path: Path) -> None:
    """Long-running processes never start an embedded server of their own, and production
    never falls back to one."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "HERALD_DATABASE_URL"}}
    env["HERALD_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert "DATABASE_URL is not set and herald dev is not running" in result.stderr
    env.update(HERALD_ENVIRONMENT="production", HERALD_CHANNELS__TRACKING_SECRET="x" * 32)
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert "DATABASE_URL is not set" in result.stderr
    assert not (tmp_path / "postgres").exists()


def test_a_stale_dev_state_file_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `herald dev` killed with -9 leaves dev.json behind; its dead pid makes it void."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_state(
        tmp_path, DevState("postgresql://x@/db", "redis://127.0.0.1:1/0", "http://x", dead.pid)
    )
    assert read_state(tmp_path) is None
    write_state(
        tmp_path, DevState("postgresql://x@/db", "redis://127.0.0.1:1/0", "http://x", os.getpid())
    )
    assert read_state(tmp_path) == DevState(
        "postgresql://x@/db", "redis://127.0.0.1:1/0", "http://x", os.getpid()
    )
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path))
    shown = runner.invoke(cli, ["env"])
    assert shown.exit_code == 0
    assert "export DATABASE_URL=postgresql://x@/db" in shown.output


@pytest.mark.usefixtures("app")
def test_workspace_and_key_administration(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    created = runner.invoke(
        cli, ["workspaces", "create", "--name", "Initech", "--owner-email", "bill@initech.example"]
    )
    assert created.exit_code == 0, created.output
    workspace_id = re.search(r"workspace (\S+)", created.output).group(1)  # type: ignore[union-attr]
    assert re.search(r"admin key hk_\S{43}", created.output)

    key = runner.invoke(
        cli,
        [
            "keys",
            "create",
            "--workspace",
            workspace_id,
            "--name",
            "ci",
            "--scope",
            "read",
            "--scope",
            "events:write",
        ],
    )
    assert key.exit_code == 0, key.output
    token = key.output.strip()
    assert token.startswith("hk_")

    listed = runner.invoke(cli, ["keys", "list", "--workspace", workspace_id])
    assert token[:11] in listed.output
    assert "events:write,read" in listed.output
    key_id = next(line.split()[0] for line in listed.output.splitlines() if token[:11] in line)

    revoked = runner.invoke(cli, ["keys", "revoke", key_id, "--workspace", workspace_id])
    assert revoked.exit_code == 0
    relisted = runner.invoke(cli, ["keys", "list", "--workspace", workspace_id])
    assert any(token[:11] in line and "revoked" in line for line in relisted.output.splitlines())


def test_openapi_check_detects_drift(tmp_path: object) -> None:
    from pathlib import Path

    stale = Path(str(tmp_path)) / "openapi.json"
    stale.write_text("{}\n")
    result = runner.invoke(cli, ["openapi", "--check", "--output", str(stale)])
    assert result.exit_code == 1
    written = runner.invoke(cli, ["openapi", "--output", str(stale)])
    assert written.exit_code == 0
    assert runner.invoke(cli, ["openapi", "--check", "--output", str(stale)]).exit_code == 0


def test_printed_urls_hide_passwords_but_not_an_empty_one() -> None:
    assert redact_url("postgresql://u:secret@db/h") == "postgresql://u:***@db/h"
    # The embedded server's socket URL has no password: nothing to hide, nothing to imply.
    assert (
        redact_url("postgresql://postgres:@/herald?host=/x")
        == "postgresql://postgres:@/herald?host=/x"
    )


@pytest.mark.usefixtures("app")
async def test_the_dev_key_is_the_owner_s_even_when_reissued(database_url: str) -> None:
    """`make run` prints a key bound to the owner member; a lost key's replacement is too."""
    from app.admin import admin_session, ensure_dev_key
    from app.workspaces import service

    first, created = await ensure_dev_key(database_url, None)
    assert created
    assert await ensure_dev_key(database_url, first) == (first, False)
    second, reissued = await ensure_dev_key(database_url, "hk_lost")
    assert reissued
    assert second != first
    async with admin_session(database_url) as session:
        principals = [await service.authenticate(session, token) for token in (first, second)]
    owners = {principal.member_id for principal in principals}
    assert len(owners) == 1
    assert None not in owners
