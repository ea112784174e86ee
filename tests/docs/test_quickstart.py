"""docs/quickstart.md, run as written: its requests against the app, a real aiosmtpd server as
the mail catcher, a real arq worker (burst mode) doing what `make run`'s worker does between the
requests, and the clock moved instead of waited for."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select

from app.config import Settings, SmtpSettings
from app.core.clock import clock
from app.core.db import transaction
from app.core.jobs import enqueue
from app.core.state import AppState
from app.sequences.models import Enrollment
from tests.docs.markdown import ROOT, blocks
from tests.docs.requests import documented_json, run_example, shape_mismatches
from tests.fixtures import worker as harness
from tests.fixtures.channels import SmtpSink
from tests.fixtures.tenants import Tenant

QUICKSTART = ROOT / "docs" / "quickstart.md"


def catcher_settings(settings: Settings, sink: SmtpSink) -> Settings:
    """What step 0 sets: HERALD_CHANNELS__EMAIL_PROVIDER=smtp, HERALD_CHANNELS__SMTP__PORT."""
    channels = settings.channels.model_copy(
        update={"email_provider": "smtp", "smtp": SmtpSettings(port=sink.port, timeout_seconds=5)}
    )
    return settings.model_copy(update={"channels": channels})


async def worker_catches_up(state: AppState, settings: Settings) -> None:
    """What the running worker does on its own within a second or two: the campaign scan (a
    launch), the engine scan (due steps, sends), the metrics fold, each with the jobs it
    enqueues, in that order (as consecutive ticks of their crons would)."""
    for task in ("campaigns_scan", "engine_scan", "fold_metrics"):
        async with transaction(state.session_factory, state.queue) as session:
            enqueue(session, task, job_key=(uuid.uuid4(),))
        await harness.run_jobs(settings)


async def test_the_quickstart_runs_as_written(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    smtp_sink: SmtpSink,
) -> None:
    clock.freeze()
    worker = catcher_settings(settings, smtp_sink)
    variables: dict[str, str] = {}
    last: httpx.Response | None = None
    ran: list[str] = []
    for block in blocks(QUICKSTART):
        if block.marker == "response":
            assert last is not None
            problems = shape_mismatches(documented_json(block), last.json())
            assert not problems, f"{block.where}: {problems}"
            continue
        if block.marker != "example" or "skip" in block.options:
            continue
        if block.options.get("id") == "stats":
            await worker_catches_up(state, worker)  # the fold runs every second
        last = (await run_example(client, block, tenant.token, variables))[-1]
        ran.append(block.options.get("id", block.where))
        clock.advance(timedelta(seconds=2))
        await worker_catches_up(state, worker)
        if block.options.get("id") == "launch":
            await launched_and_sent(client, tenant, smtp_sink, variables)
        if block.options.get("id") == "stats":
            totals = last.json()["totals"]
            assert (totals["enrolled"], totals["sent"], totals["exited"]) == (2, 2, 1)
            assert totals["clicked"] == {"unique": 1, "total": 1}
            # As the page explains: no provider delivery or reply reports from a catcher.
            assert totals["replied"] == {"unique": 0, "total": 1}
            assert totals["delivered"] == 0
    assert {"launch", "reply", "stats"} <= set(ran)

    # Three days of silence: Grace gets the nudge, Ada (who replied) does not.
    clock.advance(timedelta(days=3, minutes=1))
    await worker_catches_up(state, worker)
    recipients = [mail["To"] for mail in smtp_sink.emails()]
    assert sorted(recipients) == ["ada@example.com", "grace@example.com", "grace@example.com"]
    async with state.session_factory() as session:
        states = {
            str(row.contact_id): (row.state, row.exit_reason)
            for row in (
                await session.execute(
                    select(Enrollment).where(
                        Enrollment.campaign_id == uuid.UUID(variables["CAMPAIGN_ID"])
                    )
                )
            ).scalars()
        }
    assert states[variables["ADA_ID"]] == ("exited", "finished")
    assert sorted(states.values()) == [("exited", "finished"), ("exited", "finished")]


async def launched_and_sent(
    client: httpx.AsyncClient, tenant: Tenant, sink: SmtpSink, variables: dict[str, str]
) -> None:
    """Step 8's promises: running, two emails caught, each with a tracked link that works."""
    campaign = await client.get(f"/v1/campaigns/{variables['CAMPAIGN_ID']}", headers=tenant.headers)
    assert campaign.json()["status"] == "running", campaign.text
    caught = sink.emails()
    assert sorted(mail["To"] for mail in caught) == ["ada@example.com", "grace@example.com"]
    ada = next(mail for mail in caught if mail["To"] == "ada@example.com")
    assert ada["Subject"] == "Welcome, Ada"
    assert ada["List-Unsubscribe"]
    html = ada.get_body(("html",))
    assert html is not None
    body = html.get_content()
    assert "/v1/t/o/" in body  # the open pixel
    link = re.search(r'href="(http://127\.0\.0\.1:\d+(/v1/t/c/[^"]+))"', body)
    assert link, body
    # Step 9's click: the tracked link redirects to the real page and records the click.
    followed = await client.get(link.group(2))
    assert followed.status_code in (302, 303, 307), followed.text
    assert followed.headers["location"] == "https://acme.example/start"
