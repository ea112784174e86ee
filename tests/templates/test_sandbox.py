"""Issue 16 item 2: the template sandbox's hard bounds. Exploding arithmetic is refused before
it is computed, every message has an output budget per channel, and templates that are not
linear render in a killable sandbox process (CPU time, memory), so the API keeps answering."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.core.clock import clock
from app.templates import rendering, sandbox
from app.templates.rendering import RenderContext, RenderError, RenderLimits
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

ISSUE_TEMPLATE = "{{ (((((2**64)**64)**64)**64)**32) % 7 }}"
NESTED_LOOPS = "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}"
DOUBLING = (
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s | length }}"
)
# Tests of bounds other than time get a generous time budget: the CI machine may be loaded.
LIMITS = RenderLimits(timeout_seconds=10)


async def _limit_of(content: dict[str, Any], limits: RenderLimits = LIMITS) -> RenderError:
    with pytest.raises(RenderError) as caught:
        await sandbox.render_bounded(content, RenderContext(), limits)
    assert caught.value.code == "template_limit"
    return caught.value


@pytest.mark.parametrize(
    ("source", "limit"),
    [
        (ISSUE_TEMPLATE, "integer_size"),
        ("{{ 2 ** 100000 }}", "integer_size"),
        ("{% set a = 2 ** 2048 %}{{ (a * a * a) % 7 }}", "integer_size"),
        (
            "{% set a = 10 ** 1000 %}{% set b = a * a %}{% set c = b * b %}{{ c % 3 }}",
            "integer_size",
        ),
        ("{{ ('ab' * 60000) | length }}", "repetition"),
        (
            "{% set ns = namespace(s='') %}{% for i in range(20) %}"
            "{% set ns.s = ns.s + ('x' * 100000) %}{% endfor %}{{ ns.s | length }}",
            "concatenation",
        ),
        ("{{ range(100000) | list | length }}", "range"),
        ("{{ 'x'.ljust(300000000) }}", "argument_size"),
        ("{{ '%300000000d' % 1 }}", "format_width"),
        ("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}", "recursion"),
    ],
)
async def test_operation_bounds_refuse_before_computing(source: str, limit: str) -> None:
    started = time.perf_counter()
    error = await _limit_of({"text": source})
    assert (error.limit, error.pointer) == (limit, "/text")
    assert time.perf_counter() - started < 3.0  # the issue's template took 8.2 s


async def test_sms_output_is_capped_per_message() -> None:
    limits = RenderLimits(max_output=1600, unit="chars", timeout_seconds=10)
    ok = await sandbox.render_bounded({"text": "é" * 1600}, RenderContext(), limits)
    assert len(ok.content["text"]) == 1600  # characters, not bytes
    error = await _limit_of({"text": "{{ 'x' * 1601 }}"}, limits)
    assert (error.limit, error.pointer) == ("output_size", "/text")
    assert "1600 chars" in error.message


async def test_email_budget_adds_up_every_field_in_bytes() -> None:
    limits = RenderLimits(max_output=1000, unit="bytes", timeout_seconds=10)
    half = "{{ 'é' * 300 }}"  # 600 bytes each
    error = await _limit_of({"subject": "Hi", "html": half, "text": half}, limits)
    assert (error.limit, error.pointer) == ("output_size", "/text")


async def test_a_small_template_cannot_render_a_huge_message() -> None:
    # The issue's 34 KB template rendered a 100 MB preview.
    source = "{% for i in range(10000) %}" + "{{ contact.email }}" * 1700 + "{% endfor %}"
    assert len(source) > 30_000
    context = RenderContext(contact={"email": "a" * 60})
    started = time.perf_counter()
    with pytest.raises(RenderError) as caught:
        await sandbox.render_bounded({"html": source}, context, LIMITS)
    assert caught.value.limit == "output_size"
    assert time.perf_counter() - started < 3.0


async def test_a_runaway_loop_is_killed_and_the_sandbox_recovers() -> None:
    limits = RenderLimits(timeout_seconds=0.5)
    started = time.perf_counter()
    error = await _limit_of({"html": NESTED_LOOPS}, limits)
    elapsed = time.perf_counter() - started
    assert (error.limit, error.pointer) == ("cpu_time", "/html")
    assert 0.5 <= elapsed < 3.0
    # Both sandbox processes killed at once, then replaced: renders go on.
    both = await asyncio.gather(
        *(sandbox.render_bounded({"html": NESTED_LOOPS}, RenderContext(), limits) for _ in "ab"),
        return_exceptions=True,
    )
    assert [getattr(e, "limit", None) for e in both] == ["cpu_time", "cpu_time"]
    after = await sandbox.render_bounded(
        {"text": "{% for i in range(3) %}{{ i }}{% endfor %}"}, RenderContext(), limits
    )
    assert after.content == {"text": "012"}


async def test_a_memory_bomb_hits_the_memory_ceiling() -> None:
    # Doubling a string 40 times (1 TB) without any bounded operation in the way.
    error = await _limit_of({"text": DOUBLING}, RenderLimits(max_output=10**9, timeout_seconds=10))
    assert (error.limit, error.pointer) == ("memory", "/text")


def test_linear_templates_render_in_process_and_the_rest_in_the_sandbox() -> None:
    data = RenderContext(contact={"email": "a@b.example"}).data()
    linear = {
        "subject": "Hi {{ contact.attributes.first_name | default('there') | title }}",
        "html": "{% if contact.email is defined %}<a href='{{ link('https://x.example') }}'>"
        "{{ contact.email[:20] ~ '!' }}</a>{% endif %}{{ campaign.name | upper }}",
    }
    assert rendering.sandboxed_fields(linear, data) == []
    for source in (
        "{% for i in contact.attributes.items %}{{ i }}{% endfor %}",
        "{% set x = 1 %}{{ x }}",
        "{{ 2 ** 8 }}",
        "{{ contact.email.upper() }}",
        "{{ contact.email | replace('a', 'bb') }}",
        "{% macro m() %}{% endmacro %}{{ m() }}",
    ):
        assert rendering.sandboxed_fields({"text": source}, data) == ["/text"], source
    # Linear, but many references over a large value: the sandbox too.
    heavy = {"text": "{{ attributes.blob }}" * 100}
    big = RenderContext(contact={"attributes": {"blob": "x" * 100_000}}).data()
    assert rendering.sandboxed_fields(heavy, data) == []
    assert rendering.sandboxed_fields(heavy, big) == ["/text"]


async def test_links_in_sandboxed_renders_are_tracked_and_escaped_like_in_process() -> None:
    context = RenderContext(
        contact={"attributes": {"first_name": "Ann"}},
        link=lambda url: f"https://t.example/c?u={url}&sig=1",
    )
    body = "<a href=\"{{ link('https://x.example/?a=1&b=2') }}\">{{ attributes.first_name }}</a>"
    looped = "{% for i in [1] %}" + body + "{% endfor %}"
    assert rendering.sandboxed_fields({"html": looped}, context.data()) == ["/html"]
    in_process = await sandbox.render_bounded({"html": body, "text": body}, context, LIMITS)
    isolated = await sandbox.render_bounded({"html": looped, "text": looped}, context, LIMITS)
    assert isolated.content == in_process.content
    assert in_process.content["html"] == (
        '<a href="https://t.example/c?u=https://x.example/?a=1&amp;b=2&amp;sig=1">Ann</a>'
    )


# -- through the API ----------------------------------------------------------------------------


async def _template(client: httpx.AsyncClient, tenant: Tenant, channel: str, **content: Any) -> str:
    response = await client.post(
        "/v1/templates",
        json={"name": "Hostile", "channel": channel, "content": content},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    template_id: str = response.json()["id"]
    return template_id


async def _preview(client: httpx.AsyncClient, tenant: Tenant, template_id: str) -> httpx.Response:
    return await client.post(
        f"/v1/templates/{template_id}/preview",
        json={"contact": {"email": "ana@acme.example"}},
        headers=tenant.headers,
    )


async def test_preview_answers_422_template_limit_naming_the_limit(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    issue = await _template(client, tenant, "sms", text=ISSUE_TEMPLATE)
    response = await _preview(client, tenant, issue)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/template-limit")
    assert problem["limit"] == "integer_size"
    assert "integer_size" in problem["detail"]
    assert problem["errors"][0]["pointer"] == "/content/text"
    assert problem["errors"][0]["code"] == "template_limit"

    long_sms = await _template(client, tenant, "sms", text="{{ 'x' * 1601 }}")
    response = await _preview(client, tenant, long_sms)
    assert (response.status_code, response.json()["limit"]) == (422, "output_size")


async def test_healthz_answers_fast_while_a_hostile_render_runs(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    """Both of the issue's shapes at once: a big-integer tower (one C operation holding the
    GIL for seconds: /healthz took 7.9 s) and a loop running until it is killed."""
    assert settings.templates.render_timeout_seconds == 1.0
    tower = await _template(client, tenant, "sms", text=ISSUE_TEMPLATE)
    loop = await _template(client, tenant, "email", subject="Hi", html=NESTED_LOOPS)
    previews = [asyncio.create_task(_preview(client, tenant, t)) for t in (tower, loop)]
    started = time.perf_counter()
    latencies: list[float] = []
    while not all(preview.done() for preview in previews):
        before = time.perf_counter()
        # In-process ASGI calls never suspend on their own: yield so the previews run.
        # Timed with the request: a render blocking the loop (or the GIL) would show here.
        await asyncio.sleep(0)
        health = await client.get("/healthz")
        latencies.append(time.perf_counter() - before)
        assert health.status_code == 200
    took = time.perf_counter() - started
    answers = [await preview for preview in previews]
    assert [a.status_code for a in answers] == [422, 422], [a.text for a in answers]
    assert [a.json()["limit"] for a in answers] == ["integer_size", "cpu_time"]
    assert took >= 1.0  # the loop really ran (and was killed) while /healthz answered
    assert len(latencies) >= 10
    assert max(latencies) < 0.1, (max(latencies), len(latencies))


async def test_a_send_with_a_hostile_template_fails_that_message_with_the_reason(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    hostile = await factories.template(client, tenant, "sms", {"text": ISSUE_TEMPLATE})
    runaway = await factories.template(client, tenant, "sms", {"text": NESTED_LOOPS})
    fine = await factories.template(client, tenant, "sms", {"text": "Hi {{ contact.phone }}"})
    steps = [
        {"key": key, "type": "send", "channel": "sms", "template_id": template_id}
        for key, template_id in (("hostile", hostile), ("runaway", runaway), ("fine", fine))
    ]
    sequence_id = await factories.published_sequence(client, tenant, {"steps": steps})
    contact_id = await factories.contact(
        client, tenant, email="sms@acme.example", phone="+15555550100"
    )
    enrollment_id = await factories.enroll(client, tenant, sequence_id, contact_id)
    await harness.run_jobs(settings)

    rows = {m.step_key: m for m in await factories.messages(session_factory, enrollment_id)}
    assert (rows["hostile"].status, rows["runaway"].status) == ("failed", "failed")
    assert rows["hostile"].error == (
        "template_limit (integer_size) at /text: Template limit: integer results are limited "
        "to 4096 bits"
    )
    assert rows["runaway"].error is not None
    assert rows["runaway"].error.startswith("template_limit (cpu_time) at /text: ")
    assert rows["fine"].content == {"text": "Hi +15555550100"}  # the next step still sends
