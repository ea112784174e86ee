"""Notification tests' peers: a real aiosmtpd server (the configured provider) and webhook
receivers."""

from tests.channels.conftest import smtp_sink
from tests.webhooks.receiver import receivers

__all__ = ["receivers", "smtp_sink"]
