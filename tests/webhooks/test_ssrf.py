"""The SSRF guard with the guard ON (no loopback allowed) unless a test says otherwise: every
refused input is refused by `check_url` and by `guarded_post`, and a real local listener sees
no connection; DNS rebinding, redirects, the allowed path (Host, SNI, body), limits, and
webhook steps. Address classes and URL parsing: test_ssrf_addresses.py."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from app.channels.delivery import deliver
from app.channels.providers.base import OutboundMessage, PermanentError
from app.channels.providers.webhook import WebhookProvider
from app.config import LOOPBACK_NETWORKS, Settings, WebhookSettings
from app.core.clock import clock
from app.core.egress import (
    MAX_RESPONSE_BYTES,
    MAX_URL_LENGTH,
    DestinationRefused,
    DestinationUnresolved,
    GuardPolicy,
    check_url,
    guarded_post,
)
from app.core.state import AppState
from app.core.worker_context import WorkerContext
from tests.fixtures.channels import Outbox, outbox
from tests.webhooks.ssrf_support import Listener, listening, self_signed

__all__ = ["outbox"]  # fixture used below

# The guard as production runs it, plus one configured name that points inside.
GUARDED = GuardPolicy(resolve_overrides={"internal.example": "10.0.0.5"})
LOOPBACK = GuardPolicy.from_settings(WebhookSettings(allowed_networks=LOOPBACK_NETWORKS))


def with_overrides(policy: GuardPolicy, overrides: Mapping[str, str]) -> GuardPolicy:
    return GuardPolicy(policy.allowed_networks, overrides)


async def post(
    url: str, policy: GuardPolicy, http: httpx.AsyncClient | None = None, timeout: float = 5.0
) -> httpx.Response:
    if http is not None:
        return await guarded_post(
            http, url, content=b'{"n":1}', headers={}, timeout=timeout, policy=policy
        )
    async with httpx.AsyncClient() as own:
        return await post(url, policy, own, timeout)


def fill(template: str, listener: Listener) -> str:
    return template.format(p4=listener.port4, p6=listener.port6 or listener.port4)


# --- the refused inputs: no connection ------------------------------------------------------

REFUSED = [
    ("http://127.0.0.1:{p4}/hook", "127.0.0.1, a loopback address"),
    ("http://169.254.169.254:{p4}/latest/meta-data/", "169.254.169.254, a link-local address"),
    ("http://[::1]:{p6}/hook", "::1, a loopback address"),
    ("http://0x7f000001:{p4}/hook", "127.0.0.1, a loopback address"),
    ("http://2130706433:{p4}/hook", "127.0.0.1, a loopback address"),
    ("http://[::ffff:127.0.0.1]:{p4}/hook", "127.0.0.1, a loopback address"),
    ("http://0177.0.0.1:{p4}/hook", "127.0.0.1, a loopback address"),
    ("http://127.1:{p4}/hook", "127.0.0.1, a loopback address"),
    ("http://0.0.0.0:{p4}/hook", "0.0.0.0, an unspecified address"),
    ("http://[::]:{p6}/hook", ":: ?, an unspecified address"),
    ("http://10.0.0.5:{p4}/hook", "10.0.0.5, a private address"),
    ("http://172.16.0.1:{p4}/hook", "172.16.0.1, a private address"),
    ("http://192.168.1.1:{p4}/hook", "192.168.1.1, a private address"),
    ("http://100.64.0.1:{p4}/hook", "100.64.0.1, a shared"),
    ("http://224.0.0.1:{p4}/hook", "224.0.0.1, a multicast address"),
    ("http://internal.example:{p4}/hook", "internal.example resolves to 10.0.0.5, a private"),
    ("http://localhost:{p4}/hook", "localhost resolves to .*a loopback address"),
    ("http://[2002:7f00:1::]:{p4}/hook", "embeds 127.0.0.1, a loopback address"),
    ("http://[64:ff9b::7f00:1]:{p4}/hook", "embeds 127.0.0.1, a loopback address"),
    ("http://[fe80::1%25lo]:{p6}/hook", "a link-local address"),
    ("ftp://127.0.0.1:{p4}/hook", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://127.0.0.1:{p4}/_GET", "only http and https"),
    ("http:///hook", "no host"),
    ("http://:{p4}/hook", "no host"),
    ("http://user:pass@127.0.0.1:{p4}/hook", "credentials"),
    ("http://evil.example\\@127.0.0.1:{p4}/hook", "credentials"),
    ("http://%31%32%37.0.0.1:{p4}/hook", "not a valid host name"),
    ("http://127.0.0.1:{p4}/hook\r\nX-Injected: 1", "whitespace or control"),
]


@pytest.mark.parametrize(("template", "reason"), REFUSED)
async def test_refused_by_check_url_and_guarded_post_without_a_connection(
    template: str, reason: str
) -> None:
    async with listening() as listener:
        url = fill(template, listener)

        with pytest.raises(DestinationRefused, match=reason):
            await check_url(url, GUARDED)
        with pytest.raises(DestinationRefused, match=reason):
            await post(url, GUARDED)

        assert listener.connections == 0


LOOPBACK_FORMS = [
    "http://127.0.0.1:{p4}/hook",
    "http://0x7f000001:{p4}/hook",
    "http://2130706433:{p4}/hook",
    "http://[::ffff:127.0.0.1]:{p4}/hook",
    "http://0177.0.0.1:{p4}/hook",
    "http://127.1:{p4}/hook",
    "http://localhost:{p4}/hook",
]


@pytest.mark.parametrize("template", LOOPBACK_FORMS)
async def test_the_same_forms_reach_the_listener_when_loopback_is_allowed(template: str) -> None:
    # The control for the test above: these URLs do lead to the listener.
    async with listening() as listener:
        url = fill(template, listener)
        await check_url(url, LOOPBACK)

        answer = await post(url, LOOPBACK)

        assert answer.status_code == 200
        assert listener.connections == 1


async def test_ipv6_loopback_reaches_the_listener_when_allowed() -> None:
    async with listening() as listener:
        if listener.port6 is None:
            pytest.skip("no IPv6 loopback on this host")
        answer = await post(f"http://[::1]:{listener.port6}/hook", LOOPBACK)

        assert answer.status_code == 200
        assert listener.requests[0].headers["host"] == f"[::1]:{listener.port6}"


@pytest.mark.parametrize("url", ["http://0.0.0.0:{p4}/", "http://[::]:{p6}/"])
async def test_unspecified_addresses_are_refused_even_with_loopback_allowed(url: str) -> None:
    async with listening() as listener:
        with pytest.raises(DestinationRefused, match="unspecified"):
            await post(fill(url, listener), LOOPBACK)
        assert listener.connections == 0


async def test_an_overlong_url_is_refused() -> None:
    url = "https://hooks.example/" + "a" * MAX_URL_LENGTH
    with pytest.raises(DestinationRefused, match="longer than"):
        await check_url(url, GUARDED)


async def test_a_name_that_does_not_resolve_is_refused_with_a_clear_reason() -> None:
    with pytest.raises(DestinationUnresolved, match=r"nowhere\.invalid does not resolve"):
        await check_url("https://nowhere.invalid/hook", GUARDED)


async def test_a_bad_resolve_override_is_refused() -> None:
    policy = GuardPolicy(resolve_overrides={"hooks.example": "not-an-ip"})
    with pytest.raises(DestinationRefused, match="not an IP address"):
        await check_url("https://hooks.example/", policy)


# --- DNS rebinding --------------------------------------------------------------------------


async def test_a_name_public_at_registration_and_loopback_at_send_is_refused() -> None:
    async with listening() as listener:
        url = f"http://hooks.example:{listener.port4}/hook"
        await check_url(url, with_overrides(GUARDED, {"hooks.example": "93.184.216.34"}))

        rebound = with_overrides(GUARDED, {"hooks.example": "127.0.0.1"})
        with pytest.raises(DestinationRefused, match=r"resolves to 127\.0\.0\.1, a loopback"):
            await post(url, rebound)

        assert listener.connections == 0


class Rebinding(Mapping[str, str]):
    """A resolver that answers `first`, then `later` for every lookup after that."""

    def __init__(self, name: str, first: str, later: str) -> None:
        self.name, self.first, self.later = name, first, later
        self.lookups = 0

    def __getitem__(self, key: str) -> str:
        if key != self.name:
            raise KeyError(key)
        self.lookups += 1
        return self.first if self.lookups == 1 else self.later

    def __iter__(self) -> Iterator[str]:
        return iter([self.name])

    def __len__(self) -> int:
        return 1


async def test_the_connection_goes_to_the_checked_address_resolved_once() -> None:
    # Any second resolution (by the guard, or by httpx: the system resolver does not know
    # the name at all) would fail this send.
    rebinding = Rebinding("hooks.example", "127.0.0.1", "10.0.0.1")
    async with listening() as listener:
        answer = await post(
            f"http://hooks.example:{listener.port4}/hook", with_overrides(LOOPBACK, rebinding)
        )

        assert answer.status_code == 200
        assert rebinding.lookups == 1
        assert listener.requests[0].headers["host"] == f"hooks.example:{listener.port4}"


# --- redirects ------------------------------------------------------------------------------


async def test_a_redirect_to_an_internal_address_is_returned_not_followed() -> None:
    only_a = GuardPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    async with listening() as a, listening() as b:
        a.status = 302
        a.headers = {"Location": f"http://127.0.0.1:{b.port4}/"}
        # Even a client configured to follow redirects does not follow this one.
        async with httpx.AsyncClient(follow_redirects=True) as http:
            answer = await post(a.url(), only_a, http)

        assert answer.status_code == 302
        assert answer.headers["location"] == f"http://127.0.0.1:{b.port4}/"
        assert a.connections == 1
        assert b.connections == 0


# --- the allowed path -----------------------------------------------------------------------


async def test_an_allowed_post_carries_the_name_the_body_and_no_client_cookies() -> None:
    policy = with_overrides(LOOPBACK, {"hooks.example": "127.0.0.1"})
    async with listening() as listener, httpx.AsyncClient(cookies={"sid": "other"}) as http:
        listener.status, listener.body = 201, b'{"id":"r-1"}'
        answer = await guarded_post(
            http,
            f"http://hooks.example:{listener.port4}/in/hook?x=1#fragment",
            content=b'{"event":"x"}',
            headers={"Content-Type": "application/json", "Host": "evil.example", "X-A": "1"},
            timeout=5.0,
            policy=policy,
        )

        assert (answer.status_code, answer.json()) == (201, {"id": "r-1"})
        [request] = listener.requests
        assert (request.method, request.target, request.body) == (
            "POST",
            "/in/hook?x=1",
            b'{"event":"x"}',
        )
        assert request.headers["host"] == f"hooks.example:{listener.port4}"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["x-a"] == "1"
        assert "cookie" not in request.headers


async def test_https_verifies_the_certificate_against_the_name(tmp_path: Path) -> None:
    certificate = self_signed(tmp_path, "hooks.example")
    if certificate is None:
        pytest.skip("openssl is not installed")
    policy = with_overrides(LOOPBACK, {"hooks.example": "127.0.0.1"})
    async with (
        listening(certificate.server_context()) as listener,
        httpx.AsyncClient(verify=certificate.client_context()) as http,
    ):
        url = f"https://hooks.example:{listener.port4}/hook"
        answer = await post(url, policy, http)

        assert answer.status_code == 200
        [request] = listener.requests
        assert request.headers["host"] == f"hooks.example:{listener.port4}"
        # One connection per https attempt: a pooled one may be verified for another name.
        assert request.headers["connection"] == "close"


async def test_https_fails_when_the_certificate_is_for_another_name(tmp_path: Path) -> None:
    certificate = self_signed(tmp_path, "other.example")
    if certificate is None:
        pytest.skip("openssl is not installed")
    policy = with_overrides(LOOPBACK, {"hooks.example": "127.0.0.1"})
    async with (
        listening(certificate.server_context()) as listener,
        httpx.AsyncClient(verify=certificate.client_context()) as http,
    ):
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await post(f"https://hooks.example:{listener.port4}/hook", policy, http)
        assert listener.requests == []


# --- limits ---------------------------------------------------------------------------------


async def test_the_answer_body_is_capped() -> None:
    async with listening() as listener:
        listener.body = b"x" * (MAX_RESPONSE_BYTES * 4)
        answer = await post(listener.url(), LOOPBACK)

        assert answer.status_code == 200
        assert answer.content == b"x" * MAX_RESPONSE_BYTES


async def test_the_timeout_bounds_the_whole_attempt_not_each_read() -> None:
    # The peer sends a byte every 50 ms forever: no single read ever times out.
    async with listening() as listener:
        listener.drip = True
        with pytest.raises(httpx.TimeoutException):
            await post(listener.url(), LOOPBACK, timeout=0.3)
        assert listener.connections == 1


# --- webhook steps --------------------------------------------------------------------------


def strict_ctx(state: AppState, settings: Settings) -> WorkerContext:
    """A worker context whose settings turn the guard on (no loopback)."""
    return WorkerContext(
        redis=state.redis,
        settings=settings.model_copy(update={"webhooks": WebhookSettings()}),
        engine=state.engine,
        session_factory=state.session_factory,
        queue=state.queue,
        http=state.http,
    )


@pytest.mark.parametrize(
    "template", ["http://127.0.0.1:{p4}/hook", "http://169.254.169.254/latest/meta-data/"]
)
async def test_a_webhook_step_to_a_refused_url_fails_permanently(
    state: AppState, settings: Settings, outbox: Outbox, template: str
) -> None:
    clock.freeze()
    async with listening() as listener:
        message = await outbox.message(
            channel="webhook", recipient=fill(template, listener), content={"payload": {}}
        )

        report = await deliver(strict_ctx(state, settings), [message.id])

        assert report.failed == 1
        stored = await outbox.get(message.id)
        assert (stored.status, stored.next_attempt_at) == ("failed", None)
        assert stored.error is not None
        assert "destination refused" in stored.error
        assert listener.connections == 0


async def test_the_webhook_provider_applies_its_policy(settings: Settings) -> None:
    secret = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
    async with listening() as listener, httpx.AsyncClient() as http:
        message = OutboundMessage(
            id=uuid.uuid4(),
            workspace_id=uuid.uuid4(),
            channel="webhook",
            recipient=listener.url(),
            content={"payload": {"kind": "lead"}},
            unsubscribe_url="https://herald.test/u",
            signing_secret=secret,
        )
        # Without a policy: the strictest guard.
        with pytest.raises(PermanentError, match=r"destination refused.*loopback"):
            await WebhookProvider(http).send(message)
        assert listener.connections == 0

        # The tests' settings allow loopback: the call goes through, signed.
        policy = GuardPolicy.from_settings(settings.webhooks)
        result = await WebhookProvider(http, policy).send(message)

        assert result.response is not None
        assert result.response["status_code"] == 200
        [request] = listener.requests
        assert Webhook(secret).verify(request.body, request.headers) == {"kind": "lead"}
