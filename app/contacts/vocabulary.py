"""The contacts domain's fixed words: the channels a contact consents on, consent statuses and
suppression reasons. One statement each, as a type (request and response schemas) and as a
tuple (the segment rule language validates against it); neither is storage, so other
domains import them from here, not from `models`."""

from __future__ import annotations

from typing import Literal, get_args

Channel = Literal["email", "sms"]
ConsentStatus = Literal["subscribed", "unsubscribed", "unknown"]
SuppressionReason = Literal["unsubscribed", "hard_bounce", "complaint", "manual", "erased"]

CHANNELS: tuple[Channel, ...] = get_args(Channel)
CONSENT_STATUSES: tuple[ConsentStatus, ...] = get_args(ConsentStatus)
SUPPRESSION_REASONS: tuple[SuppressionReason, ...] = get_args(SuppressionReason)
