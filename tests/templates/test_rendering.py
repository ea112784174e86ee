"""The rendering module on its own: undefined-field rule, escaping, limits, odd JSON."""

from __future__ import annotations

import httpx
import pytest

from app.templates.rendering import RenderContext, RenderError, find_undefined, render
from tests.fixtures.tenants import Tenant


def test_find_undefined_rule() -> None:
    content = {
        "subject": "{{ contct.email }} {{ unsubscribe_link }} {{ contact.emial }} {{ campaign.x }}",
        "text": "{{ contact.attributes.first_name }} {{ attributes.a.b }} {{ contact.email }}"
        "{% set y = 1 %}{{ y }}{% for i in range(2) %}{{ i }}{% endfor %}{{ campaign.name }}"
        "{% macro m(arg) %}{{ arg }}{% endmacro %}{{ m(1) }}{{ link('u') }}{{ unsubscribe_url }}"
        "{{ contct.phone }}",
    }
    assert find_undefined(content) == [
        "contct",
        "unsubscribe_link",
        "contact.emial",
        "campaign.x",
    ]


def test_webhook_payload_rendering_keeps_non_strings() -> None:
    content = {"payload": {"a": ["{{ contact.email }}", 1, None, True], "b/c": {"d": "x"}}}
    result = render(content, RenderContext(contact={"email": "a@b.example"}))
    assert result.content == {"payload": {"a": ["a@b.example", 1, None, True], "b/c": {"d": "x"}}}


def test_big_values_are_fine() -> None:
    content = {
        "text": "{{ attributes.revenue | round | int }} {{ '%d' | format(2500000) }}"
        "{{ 'Order 2026123: %s' % 1 }}"
    }
    result = render(content, RenderContext(contact={"attributes": {"revenue": 2500000.4}}))
    assert result.content == {"text": "2500000 2500000Order 2026123: 1"}


def test_null_contact_fields_render_empty_and_take_defaults() -> None:
    content = {"text": "[{{ contact.phone }}][{{ contact.locale | default('en') }}]"}
    result = render(content, RenderContext(contact={"phone": None, "locale": None}))
    assert result.content == {"text": "[][en]"}
    assert result.undefined_fields == ["phone"]


@pytest.mark.parametrize(
    ("source", "code", "limit"),
    [
        ("{{ 2 ** 100000 }}", "template_limit", "integer_size"),
        ("{{ range(1000000) | list }}", "template_limit", "range"),
        ("{% for i in range(10000) %}{{ 'x' * 100 }}{% endfor %}", "template_limit", "output_size"),
        ("{{ ''.__class__ }}", "render_error", None),
        ("{{ link.__globals__ }}", "render_error", None),
        ("{{ 'x'.ljust(300000000) }}", "template_limit", "argument_size"),
        ("{{ 'x' | center(300000000) }}", "template_limit", "argument_size"),
        ("{{ '%300000000d' | format(1) }}", "template_limit", "format_width"),
        ("{{ '%300000000d' % 1 }}", "template_limit", "format_width"),
        ("{{ '{:>300000000}'.format(1) }}", "template_limit", "format_width"),
    ],
)
def test_limits_and_sandbox(source: str, code: str, limit: str | None) -> None:
    with pytest.raises(RenderError) as caught:
        render({"text": source}, RenderContext())
    assert (caught.value.code, caught.value.limit) == (code, limit)
    assert caught.value.pointer == "/text"


async def test_non_finite_numbers_in_a_payload_are_not_a_5xx(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.post(
        "/v1/templates",
        content=b'{"name": "n", "channel": "webhook", "content": {"payload": {"a": NaN}}}',
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
