"""The retry schedule of a webhook delivery and the reading of `Retry-After`.

Attempt 1 goes out about when the event happens; after attempt n (1-based) fails, attempt
n + 1 waits `RETRY_DELAYS[n - 1]`, each delay with +-10 % jitter so a burst of failures does
not retry in lockstep. After attempt `MAX_ATTEMPTS` the delivery is `failed`.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1  # 8: "about now" plus the seven delays
JITTER = 0.10
MAX_RETRY_AFTER = timedelta(hours=24)


def retry_delay(attempt: int) -> timedelta | None:
    """The wait after failed attempt `attempt` (1-based), jittered; None once spent."""
    if attempt < 1 or attempt > len(RETRY_DELAYS):
        return None
    factor = random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - jitter, not security
    return RETRY_DELAYS[attempt - 1] * factor


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """`Retry-After` as delay-seconds or an HTTP date, capped at 24 h; None if absent or
    unreadable (the schedule applies). A date in the past means "now"."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    delay: timedelta
    if value.isdigit():
        seconds = int(value[:9])  # anything longer is past the cap anyway
        delay = timedelta(seconds=seconds)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = max(when - now, timedelta(0))
    return min(delay, MAX_RETRY_AFTER)
