"""The channel fixtures (tests/fixtures/channels.py) for this folder's tests."""

from tests.fixtures.channels import make_ctx, outbox, receiver, smtp_sink

__all__ = ["make_ctx", "outbox", "receiver", "smtp_sink"]
