"""Channel providers, built from settings per delivery call.

Providers hold no connections of their own (SMTP connects per message, HTTP uses the
worker's shared client), so building one costs an object: no cache keyed by `id(settings)`,
whose ids Python may reuse for other settings objects."""

from __future__ import annotations

import httpx

from app.channels.providers.base import Provider
from app.channels.providers.http import HttpProvider
from app.channels.providers.log import LogProvider
from app.channels.providers.smtp import SmtpProvider
from app.channels.providers.webhook import WebhookProvider
from app.config import Settings
from app.core.egress import GuardPolicy


def provider_name(settings: Settings, channel: str) -> str:
    if channel == "email":
        return settings.channels.email_provider
    if channel == "sms":
        return settings.channels.sms_provider
    return "webhook"


def provider_for(settings: Settings, http: httpx.AsyncClient, name: str) -> Provider:
    channels = settings.channels
    if name == "smtp":
        return SmtpProvider(channels.smtp, channels.default_from)
    if name == "http":
        return HttpProvider(channels.http, http)
    if name == "webhook":
        return WebhookProvider(http, GuardPolicy.from_settings(settings.webhooks))
    return LogProvider()
