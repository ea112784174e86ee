"""Series buckets: the first and last bucket starts (the cache key) are computed directly;
they must be exactly the ends of the bucket list, across DST changes and at boundaries."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from app.config import MetricsSettings
from app.metrics.service import _plan

ZONES = ["UTC", "Europe/Paris", "America/Santiago", "Australia/Lord_Howe", "Asia/Kolkata"]
BASE = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = MetricsSettings()


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    bucket=st.sampled_from(["hour", "day"]),
    start_minutes=st.integers(0, 60 * 24 * 365),
    length_minutes=st.integers(1, 60 * 24 * 40),
    align=st.booleans(),
)
def test_first_and_last_are_the_ends_of_the_bucket_list(
    zone: str, bucket: str, start_minutes: int, length_minutes: int, align: bool
) -> None:
    start = BASE + timedelta(minutes=start_minutes)
    end = start + timedelta(minutes=length_minutes)
    if align:  # `to` exactly on a bucket start: the bucket it opens is outside the range
        local = end.astimezone(ZoneInfo(zone))
        local = (
            local.replace(minute=0)
            if bucket == "hour"
            else datetime.combine(local.date(), time(), tzinfo=ZoneInfo(zone))
        )
        end = local.astimezone(UTC)
        if end <= start:
            end = start + timedelta(days=2)
    plan = _plan(zone, start, CONFIG, bucket=bucket, start=start, end=end)  # type: ignore[arg-type]
    starts = plan.starts
    assert starts[0] == plan.first <= start
    assert starts[-1] == plan.last < end
    assert all(a < b for a, b in itertools.pairwise(starts))
