"""Open pixel, click redirect and one-click unsubscribe through the API (no API key)."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from app.channels.tracking import make_token, message_links
from app.config import Settings
from app.core.clock import clock
from tests.fixtures.channels import Outbox
from tests.fixtures.tenants import Tenant

# The pattern requested for app/main.py UPLOAD_PATHS (form bodies allowed on this route).


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def _events(client: httpx.AsyncClient, tenant: Tenant, contact_id: Any) -> list[Any]:
    answer = await client.get(f"/v1/events?contact_id={contact_id}", headers=tenant.headers)
    assert answer.status_code == 200
    data: list[Any] = answer.json()["data"]
    return data


async def test_open_pixel_records_an_event_and_the_first_open_once(
    client: httpx.AsyncClient, settings: Settings, tenant: Tenant, outbox: Outbox
) -> None:
    first = clock.freeze()
    message = await outbox.message()
    pixel = message_links(settings, message.id).open_pixel_url

    answer = await client.get(f"/v1/t/o/{_token(pixel)}")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/gif"
    assert answer.content.startswith(b"GIF89a")
    clock.advance(timedelta(hours=1))
    assert (await client.get(f"/v1/t/o/{_token(pixel)}")).status_code == 200

    stored = await outbox.get(message.id)
    assert stored.first_opened_at == first
    events = await _events(client, tenant, message.contact_id)
    assert [event["type"] for event in events] == ["email.opened", "email.opened"]
    assert events[0]["properties"] == {"message_id": str(message.id), "step_key": "welcome"}


async def test_click_redirects_to_the_signed_url_and_records_it(
    client: httpx.AsyncClient, settings: Settings, tenant: Tenant, outbox: Outbox
) -> None:
    first = clock.freeze()
    message = await outbox.message()
    target = "https://shop.acme.example/spring?utm_source=herald&x=1#top"
    tracked = message_links(settings, message.id).link(target)
    assert tracked != target

    answer = await client.get(f"/v1/t/c/{_token(tracked)}")

    assert answer.status_code == 302
    assert answer.headers["location"] == target
    clock.advance(timedelta(minutes=5))
    await client.get(f"/v1/t/c/{_token(tracked)}")
    assert (await outbox.get(message.id)).first_clicked_at == first
    events = await _events(client, tenant, message.contact_id)
    assert [event["type"] for event in events] == ["email.clicked", "email.clicked"]
    assert events[0]["properties"]["url"] == target


def test_only_web_links_are_rewritten(settings: Settings) -> None:
    link = message_links(settings, uuid.uuid4()).link
    assert link("mailto:ana@acme.example") == "mailto:ana@acme.example"
    assert link("#section") == "#section"


async def test_tampered_foreign_and_wrong_kind_tokens_are_404(
    client: httpx.AsyncClient, settings: Settings, outbox: Outbox
) -> None:
    clock.freeze()
    message = await outbox.message()
    links = message_links(settings, message.id)
    click = _token(links.link("https://acme.example/a"))
    # Swap the URL inside the token, keeping the signature: not ours any more.
    raw = base64.urlsafe_b64decode(click + "=" * (-len(click) % 4))
    forged_raw = raw.replace(b"acme.example/a", b"evil.example/a")
    forged = base64.urlsafe_b64encode(forged_raw).rstrip(b"=").decode()
    other_secret = settings.model_copy(
        update={
            "channels": settings.channels.model_copy(
                update={"tracking_secret": SecretStr("another-secret")}
            )
        }
    )
    foreign = make_token(other_secret, "click", message.id, "https://evil.example/")

    for path in (
        f"/v1/t/c/{forged}",
        f"/v1/t/c/{foreign}",
        f"/v1/t/c/{_token(links.open_pixel_url)}",  # an open token is not a click token
        f"/v1/t/o/{_token(links.unsubscribe_url)}",
        "/v1/t/o/not-a-token",
        "/v1/t/c/AAAA",
        f"/v1/unsubscribe/{_token(links.open_pixel_url)}",
    ):
        answer = await client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"
    assert (await outbox.get(message.id)).first_clicked_at is None
    not_base64url = await client.get("/v1/t/c/%F0%9F%98%80")
    assert not_base64url.status_code == 422
    assert not_base64url.headers["content-type"] == "application/problem+json"


async def _consent(client: httpx.AsyncClient, tenant: Tenant, contact_id: Any) -> list[Any]:
    answer = await client.get(
        f"/v1/contacts/{contact_id}/consent/history?channel=email", headers=tenant.headers
    )
    assert answer.status_code == 200
    data: list[Any] = answer.json()["data"]
    return data


async def _suppressed(client: httpx.AsyncClient, tenant: Tenant, address: str) -> bool:
    answer = await client.post(
        "/v1/suppressions/check",
        json={"channel": "email", "addresses": [address]},
        headers=tenant.headers,
    )
    assert answer.status_code == 200
    return bool(answer.json()["results"][0]["suppressed"])


async def test_get_shows_a_page_and_changes_nothing(
    client: httpx.AsyncClient, settings: Settings, tenant: Tenant, outbox: Outbox
) -> None:
    message = await outbox.message()
    token = _token(message_links(settings, message.id).unsubscribe_url)

    answer = await client.get(f"/v1/unsubscribe/{token}")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert f'action="/v1/unsubscribe/{token}"' in answer.text
    assert 'method="post"' in answer.text
    assert await _consent(client, tenant, message.contact_id) == []
    assert (await outbox.enrollment(message.enrollment_id)).state == "active"


async def test_one_click_post_unsubscribes_suppresses_and_exits(
    client: httpx.AsyncClient, settings: Settings, tenant: Tenant, outbox: Outbox
) -> None:
    message = await outbox.message()
    token = _token(message_links(settings, message.id).unsubscribe_url)
    assert message.recipient is not None

    answer = await client.post(f"/v1/unsubscribe/{token}")  # no key, no body

    assert answer.status_code == 200
    assert answer.json() == {"unsubscribed": True, "channel": "email"}
    [change] = await _consent(client, tenant, message.contact_id)
    assert (change["status"], change["source"]) == ("unsubscribed", "one_click")
    assert change["ip"] == "127.0.0.1"
    assert await _suppressed(client, tenant, message.recipient)
    enrollment = await outbox.enrollment(message.enrollment_id)
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "unsubscribed")

    # Idempotent: again (JSON body, browser Accept) -> 200, nothing new recorded.
    again = await client.post(f"/v1/unsubscribe/{token}", json={}, headers={"Accept": "text/html"})
    assert again.status_code == 200
    assert again.headers["content-type"].startswith("text/html")
    assert len(await _consent(client, tenant, message.contact_id)) == 1


async def test_one_click_post_accepts_the_rfc8058_form_body(
    client: httpx.AsyncClient, settings: Settings, outbox: Outbox
) -> None:
    message = await outbox.message()
    token = _token(message_links(settings, message.id).unsubscribe_url)

    answer = await client.post(
        f"/v1/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert answer.status_code == 200
