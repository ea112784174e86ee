"""Pure arithmetic of the reports: money ratios (Decimal, documented rounding) and duration
summaries (count, mean, median, p90). No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

MONEY_PLACES = 2  # cost per acquisition: the currency's minor unit
RATIO_PLACES = 4  # ROI and the first-time approval rate
SECONDS_PLACES = 3  # durations: milliseconds
MONEY = Decimal(1).scaleb(-MONEY_PLACES)
RATIO = Decimal(1).scaleb(-RATIO_PLACES)
SECONDS = Decimal(1).scaleb(-SECONDS_PLACES)


def cost_per_acquisition(spend: Decimal, conversions: int) -> Decimal | None:
    """spend / conversions rounded half-up to 2 places; null when there is no conversion."""
    if conversions == 0:
        return None
    return (spend / Decimal(conversions)).quantize(MONEY, rounding=ROUND_HALF_UP)


def roi(revenue: Decimal, spend: Decimal) -> Decimal | None:
    """(revenue - spend) / spend rounded half-up to 4 places; null when nothing was spent."""
    if spend == 0:
        return None
    return ((revenue - spend) / spend).quantize(RATIO, rounding=ROUND_HALF_UP)


def rate(numerator: int, denominator: int) -> Decimal | None:
    if denominator == 0:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(RATIO, rounding=ROUND_HALF_UP)


def seconds_between(start: datetime, end: datetime) -> Decimal:
    """end - start in seconds (negative when end is earlier), exact to the microsecond."""
    delta = end - start
    whole = Decimal(delta.days * 86_400 + delta.seconds)
    return whole + Decimal(delta.microseconds).scaleb(-6)


def percentile(ordered: Sequence[Decimal], fraction: Decimal) -> Decimal:
    """Linear interpolation between the closest ranks (PostgreSQL's `percentile_cont`,
    numpy's default): position (n - 1) * fraction in the sorted values."""
    position = (len(ordered) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    weight = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * weight


@dataclass(frozen=True)
class Summary:
    count: int
    mean: Decimal | None
    median: Decimal | None
    p90: Decimal | None
    min: Decimal | None
    max: Decimal | None


def summarize(values: Sequence[Decimal]) -> Summary:
    """Count, mean, median, p90, min and max of durations in seconds, each rounded half-up to
    the millisecond; all null (count 0) for no values."""
    if not values:
        return Summary(0, None, None, None, None, None)
    ordered = sorted(values)

    def q(value: Decimal) -> Decimal:
        return value.quantize(SECONDS, rounding=ROUND_HALF_UP)

    return Summary(
        count=len(ordered),
        mean=q(sum(ordered, Decimal(0)) / Decimal(len(ordered))),
        median=q(percentile(ordered, Decimal("0.5"))),
        p90=q(percentile(ordered, Decimal("0.9"))),
        min=q(ordered[0]),
        max=q(ordered[-1]),
    )
