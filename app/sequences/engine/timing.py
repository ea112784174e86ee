"""When steps may run: waits, local time windows and frequency caps (pure functions).

Every datetime in and out is an aware UTC instant, and `now` is always passed in (the engine and
the dry run share these functions with different clocks). Local wall-clock rules, in the
contact's zone:

- "Within a window" is judged on local wall-clock time: a listed weekday and
  `start <= local time < end`.
- A local time in a spring-forward gap (it never shows on the clock) moves forward to the first
  valid instant after the gap: 02:30 on 2026-03-08 in America/New_York is 03:00 EDT = 07:00Z.
- An ambiguous local time (fall back: it shows twice) means its first occurrence (`fold=0`):
  01:30 on 2026-11-01 in America/New_York is 01:30 EDT = 05:30Z.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.segments.rules.nodes import parse_instant
from app.sequences.definition import WEEKDAYS, AttributeTime, FrequencyCap, TimeWindow, WaitStep

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Offsets are sampled this often when looking for a transition between two instants: zones
# change offset at most a few times a year, never twice within this interval.
_TRANSITION_PROBE = timedelta(hours=6)
# Each round of `next_opening` ends at a window opening or at the next offset transition; a week
# holds at most a couple of transitions, so this bound is never reached in real zone data.
_MAX_ROUNDS = 32


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return None


def contact_zone(timezone: str | None, default: str) -> ZoneInfo:
    """The contact's IANA zone, else the sequence default, else UTC (invalid names fall back)."""
    return _zone(timezone) or _zone(default) or ZoneInfo("UTC")


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("an aware datetime is required")
    return value.astimezone(UTC)


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has an offset for an aware instant
    return offset


def _transition(after: datetime, until: datetime, zone: ZoneInfo) -> datetime | None:
    """The first instant in (`after`, `until`] where the zone's UTC offset changes, if any."""
    base = _offset(after, zone)
    low = after
    while low < until:
        high = min(low + _TRANSITION_PROBE, until)
        if _offset(high, zone) != base:
            return _bisect(low, high, zone, base)
        low = high
    return None


def _bisect(low: datetime, high: datetime, zone: ZoneInfo, base: timedelta) -> datetime:
    # Transitions fall on whole seconds (tz data), so search over integer POSIX seconds:
    # invariant: offset(lo) == base != offset(hi).
    lo = math.floor(low.timestamp())
    hi = math.ceil(high.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(datetime.fromtimestamp(mid, UTC), zone) == base:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, UTC)


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local date and time, with the gap and overlap rules above."""
    wall = datetime.combine(day, at.replace(tzinfo=None))
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if second >= first:  # a normal time (equal) or an overlap (fold=0 is the first occurrence)
        return first
    # In a gap, fold=0 applies the offset from before the transition and fold=1 the one after;
    # the transition itself (the first valid instant after the gap) lies between them.
    found = _transition(second, first, zone)
    assert found is not None  # the offsets at `second` and `first` differ
    return found


def _inside(wall: datetime, window: TimeWindow) -> bool:
    return WEEKDAYS[wall.weekday()] in window.days and window.start <= wall.time() < window.end


def _next_wall_opening(wall: datetime, window: TimeWindow) -> datetime:
    """The first naive wall-clock time at or after `wall` that is inside the window."""
    if _inside(wall, window):
        return wall
    for ahead in range(8):
        day = wall.date() + timedelta(days=ahead)
        if WEEKDAYS[day.weekday()] in window.days and (ahead > 0 or wall.time() < window.start):
            return datetime.combine(day, window.start)
    raise AssertionError("a window lists at least one day")  # pragma: no cover


def next_opening(now: datetime, window: TimeWindow, zone: ZoneInfo) -> datetime:
    """`now` if `now` is inside the window (local day in `window.days` and
    `start <= local time < end`), else the next instant the window opens (a listed day at
    `start`, local).

    Precisely: the first instant at or after `now` whose local wall-clock time is inside the
    window. Between offset transitions the wall clock runs with UTC, so the opening is found by
    wall-clock arithmetic; when a transition comes first, the search restarts there with the new
    offset. Hence: a `start` inside a spring-forward gap opens at the end of the gap (03:00 EDT
    for a 02:30 start on 2026-03-08 in New York), a window lying wholly inside a gap does not
    open that day, and after a fall-back the window opens again when the repeated hour brings
    the clock back inside it (first occurrence first).
    """
    instant = _aware_utc(now)
    for _ in range(_MAX_ROUNDS):
        offset = _offset(instant, zone)
        wall = (instant + offset).replace(tzinfo=None)
        opening = instant + (_next_wall_opening(wall, window) - wall)
        transition = _transition(instant, opening, zone)
        if transition is None:
            return opening
        instant = transition
    raise AssertionError("no window opening found")  # pragma: no cover


def lookup(attributes: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path inside `attributes`, or None when any part is missing."""
    value: Any = attributes
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _date_or_instant(value: Any) -> date | datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None and value.utcoffset() is not None else None
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    if _DATE.fullmatch(value):  # only `YYYY-MM-DD` (not week or ordinal dates); else an instant
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return parse_instant(value)


def attribute_time(
    rule: AttributeTime, zone: ZoneInfo, attributes: Mapping[str, Any]
) -> datetime | None:
    """The instant an `until_attribute` wait names, or None when the attribute is missing,
    not a date or instant, or the result is out of range.

    - A date: local `date` at `at` (default 00:00), plus `offset` in wall-clock terms (so
      `-P7D` before a 09:00 stays 09:00 local across a DST change), then resolved in `zone`.
    - An instant: `instant + offset` (exact elapsed time); with `at`, the local date of that
      instant in `zone`, at `at`.
    """
    value = _date_or_instant(lookup(attributes, rule.attribute))
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            shifted = _aware_utc(value) + rule.offset
            if rule.at is None:
                return shifted
            return local_instant(shifted.astimezone(zone).date(), rule.at, zone)
        wall = datetime.combine(value, rule.at or time(0)) + rule.offset
        return local_instant(wall.date(), wall.time(), zone)
    except (OverflowError, ValueError):  # beyond year 1..9999 after the offset or in UTC
        return None


def wait_until(
    step: WaitStep, now: datetime, zone: ZoneInfo, attributes: dict[str, Any]
) -> datetime | None:
    """When a `wait` step is over.

    - `duration`: `now + duration` (exact elapsed time, not wall-clock).
    - `until_window`: `next_opening` (`now` if already inside).
    - `until_attribute`: see `attribute_time`; a result in the past is `now`; a missing or
      unparseable attribute is None (the engine records it and moves on).
    """
    instant = _aware_utc(now)
    if step.duration is not None:
        return instant + step.duration
    if step.until_window is not None:
        return next_opening(instant, step.until_window, zone)
    assert step.until_attribute is not None  # WaitStep validates exactly one mode
    target = attribute_time(step.until_attribute, zone, attributes)
    if target is None:
        return None
    return max(target, instant)


def cap_release(sent_at: Sequence[datetime], cap: FrequencyCap, now: datetime) -> datetime | None:
    """None when one more message fits the cap (fewer than `cap.max` sends in
    `(now - period, now]`); else the instant it will fit again: the oldest counted send that
    must leave the rolling window, plus `period` (a send at `s` stops counting at `s + period`).
    Sends after `now` are not counted.
    """
    instant = _aware_utc(now)
    counted = sorted(
        sent for sent in map(_aware_utc, sent_at) if instant - cap.period < sent <= instant
    )
    if len(counted) < cap.max:
        return None
    # Once the first len - max + 1 sends have left, max - 1 remain: one more fits.
    return counted[len(counted) - cap.max] + cap.period
