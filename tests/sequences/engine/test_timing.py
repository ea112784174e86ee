"""Engine timing: hand-computed instants (2026 DST dates) and properties of window openings."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sequences.definition import (
    WEEKDAYS,
    AttributeTime,
    FrequencyCap,
    TimeWindow,
    WaitStep,
    Weekday,
)
from app.sequences.engine.timing import (
    cap_release,
    contact_zone,
    local_instant,
    lookup,
    next_opening,
    wait_until,
)

NY = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")
LONDON = ZoneInfo("Europe/London")
WEEKDAYS_ONLY: list[Weekday] = ["mon", "tue", "wed", "thu", "fri"]
OFFICE = TimeWindow(days=WEEKDAYS_ONLY, start=time(9), end=time(11))


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def window(start: time, end: time, days: list[Weekday] | None = None) -> TimeWindow:
    return TimeWindow(days=days or list(WEEKDAYS), start=start, end=end)


# --- zones -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact", "default", "expected"),
    [
        ("Asia/Tokyo", "Europe/Berlin", "Asia/Tokyo"),
        (None, "Europe/Berlin", "Europe/Berlin"),
        ("", "Europe/Berlin", "Europe/Berlin"),
        ("Mars/Olympus_Mons", "Europe/Berlin", "Europe/Berlin"),
        ("utc", "Europe/Berlin", "Europe/Berlin"),  # keys are case-sensitive
        ("../../etc/passwd", "Europe/Berlin", "Europe/Berlin"),
        (None, "Nowhere/Else", "UTC"),
        ("Mars/Olympus_Mons", "/etc/localtime", "UTC"),
        (None, "", "UTC"),
    ],
)
def test_contact_zone_falls_back_to_default_then_utc(
    contact: str | None, default: str, expected: str
) -> None:
    assert contact_zone(contact, default) == ZoneInfo(expected)


# --- local times: gaps and overlaps ----------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "at", "zone", "expected"),
    [
        # spring forward: 02:00 EST -> 03:00 EDT at 07:00Z; 02:30 moves to 03:00 EDT
        (date(2026, 3, 8), time(2, 30), NY, utc(2026, 3, 8, 7)),
        (date(2026, 3, 8), time(2, 0), NY, utc(2026, 3, 8, 7)),
        (date(2026, 3, 8), time(3, 0), NY, utc(2026, 3, 8, 7)),
        (date(2026, 3, 8), time(1, 59), NY, utc(2026, 3, 8, 6, 59)),
        # fall back: 01:30 happens twice (EDT 05:30Z, EST 06:30Z): the first one
        (date(2026, 11, 1), time(1, 30), NY, utc(2026, 11, 1, 5, 30)),
        (date(2026, 11, 1), time(2, 0), NY, utc(2026, 11, 1, 7)),
        # EU: 02:00 CET -> 03:00 CEST at 01:00Z; 03:00 CEST -> 02:00 CET at 01:00Z
        (date(2026, 3, 29), time(2, 30), BERLIN, utc(2026, 3, 29, 1)),
        (date(2026, 10, 25), time(2, 30), BERLIN, utc(2026, 10, 25, 0, 30)),
        (date(2026, 3, 29), time(1, 15), LONDON, utc(2026, 3, 29, 1)),
        (date(2026, 10, 25), time(1, 15), LONDON, utc(2026, 10, 25, 0, 15)),
        # a whole skipped day: Samoa went from 2011-12-29 23:59:59 (-10) to 2011-12-31 (+14)
        (date(2011, 12, 30), time(10), ZoneInfo("Pacific/Apia"), utc(2011, 12, 30, 10)),
        (date(2026, 6, 1), time(9), TOKYO, utc(2026, 6, 1, 0)),
    ],
)
def test_local_instant_gap_moves_forward_overlap_takes_first(
    day: date, at: time, zone: ZoneInfo, expected: datetime
) -> None:
    assert local_instant(day, at, zone) == expected


# --- windows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "win", "zone", "expected"),
    [
        # Wednesday 2026-11-18, New York is EST (UTC-5)
        pytest.param(utc(2026, 11, 18, 15), OFFICE, NY, utc(2026, 11, 18, 15), id="inside"),
        pytest.param(utc(2026, 11, 18, 14), OFFICE, NY, utc(2026, 11, 18, 14), id="at-start"),
        pytest.param(utc(2026, 11, 18, 12), OFFICE, NY, utc(2026, 11, 18, 14), id="before-start"),
        pytest.param(utc(2026, 11, 18, 16), OFFICE, NY, utc(2026, 11, 19, 14), id="at-end"),
        pytest.param(utc(2026, 11, 18, 17), OFFICE, NY, utc(2026, 11, 19, 14), id="after-end"),
        # Friday 2026-11-20 18:00 EST -> Monday 2026-11-23 09:00 EST
        pytest.param(utc(2026, 11, 20, 23), OFFICE, NY, utc(2026, 11, 23, 14), id="fri-evening"),
        # Saturday in UTC but still Friday 22:00 in New York
        pytest.param(utc(2026, 11, 21, 3), OFFICE, NY, utc(2026, 11, 23, 14), id="utc-sat"),
        pytest.param(utc(2026, 11, 22, 12), OFFICE, NY, utc(2026, 11, 23, 14), id="sunday"),
        # Tokyo (UTC+9): Sunday 23:30Z is Monday 08:30 local
        pytest.param(utc(2026, 11, 22, 23, 30), OFFICE, TOKYO, utc(2026, 11, 23), id="tokyo-mon"),
        # Friday 11:00 JST (end, exclusive) -> Monday 09:00 JST
        pytest.param(utc(2026, 11, 20, 2), OFFICE, TOKYO, utc(2026, 11, 23), id="tokyo-fri-end"),
        pytest.param(utc(2026, 11, 20, 1, 59), OFFICE, TOKYO, utc(2026, 11, 20, 1, 59), id="tk-in"),
        # only Saturdays: from Sunday, six days ahead
        pytest.param(
            utc(2026, 11, 22, 12),
            window(time(9), time(10), ["sat"]),
            ZoneInfo("UTC"),
            utc(2026, 11, 28, 9),
            id="saturdays",
        ),
    ],
)
def test_next_opening(now: datetime, win: TimeWindow, zone: ZoneInfo, expected: datetime) -> None:
    assert next_opening(now, win, zone) == expected


@pytest.mark.parametrize(
    ("now", "win", "zone", "expected"),
    [
        # US spring forward, Sunday 2026-03-08 (07:00Z: 02:00 EST -> 03:00 EDT)
        pytest.param(
            utc(2026, 3, 8, 5), window(time(2, 30), time(4)), NY, utc(2026, 3, 8, 7), id="us-gap"
        ),
        pytest.param(
            utc(2026, 3, 8, 5), window(time(9), time(11)), NY, utc(2026, 3, 8, 13), id="us-edt"
        ),
        pytest.param(  # the whole window is skipped that day: next day 02:00 EDT
            utc(2026, 3, 8, 5),
            window(time(2), time(2, 30)),
            NY,
            utc(2026, 3, 9, 6),
            id="us-window-in-gap",
        ),
        # US fall back, Sunday 2026-11-01 (06:00Z: 02:00 EDT -> 01:00 EST)
        pytest.param(  # first occurrence of 01:00 (EDT)
            utc(2026, 11, 1, 4), window(time(1), time(3)), NY, utc(2026, 11, 1, 5), id="us-first"
        ),
        pytest.param(  # 01:40 EDT: the clock comes back to 01:00 (EST) at 06:00Z
            utc(2026, 11, 1, 5, 40),
            window(time(1), time(1, 30)),
            NY,
            utc(2026, 11, 1, 6),
            id="us-repeat",
        ),
        pytest.param(  # 01:10 EST, second pass: on the wall clock, inside
            utc(2026, 11, 1, 6, 10),
            window(time(1), time(1, 30)),
            NY,
            utc(2026, 11, 1, 6, 10),
            id="us-second-pass-inside",
        ),
        pytest.param(  # 01:40 EST: next day 01:00 EST
            utc(2026, 11, 1, 6, 40),
            window(time(1), time(1, 30)),
            NY,
            utc(2026, 11, 2, 6),
            id="us-after-second-pass",
        ),
        pytest.param(  # 09:00 EST on the fall-back day
            utc(2026, 11, 1, 4), window(time(9), time(11)), NY, utc(2026, 11, 1, 14), id="us-est"
        ),
        # EU spring forward, Sunday 2026-03-29 (01:00Z: 02:00 CET -> 03:00 CEST)
        pytest.param(
            utc(2026, 3, 28, 23, 30),
            window(time(2, 15), time(5)),
            BERLIN,
            utc(2026, 3, 29, 1),
            id="eu-gap",
        ),
        pytest.param(
            utc(2026, 3, 28, 23, 30),
            window(time(9), time(10)),
            BERLIN,
            utc(2026, 3, 29, 7),
            id="eu-cest",
        ),
        pytest.param(  # London: 01:00 GMT -> 02:00 BST at 01:00Z
            utc(2026, 3, 29, 0), window(time(1, 30), time(3)), LONDON, utc(2026, 3, 29, 1), id="uk"
        ),
        # EU fall back, Sunday 2026-10-25 (01:00Z: 03:00 CEST -> 02:00 CET)
        pytest.param(  # 02:30 CEST, the first occurrence
            utc(2026, 10, 24, 23),
            window(time(2, 30), time(4)),
            BERLIN,
            utc(2026, 10, 25, 0, 30),
            id="eu-first",
        ),
        pytest.param(
            utc(2026, 10, 24, 23),
            window(time(9), time(10)),
            BERLIN,
            utc(2026, 10, 25, 8),
            id="eu-cet",
        ),
    ],
)
def test_next_opening_across_dst(
    now: datetime, win: TimeWindow, zone: ZoneInfo, expected: datetime
) -> None:
    assert next_opening(now, win, zone) == expected


def test_next_opening_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_opening(datetime(2026, 11, 18, 12), OFFICE, NY)


def test_next_opening_returns_utc_for_any_aware_now() -> None:
    now = datetime(2026, 11, 18, 7, tzinfo=NY)  # 12:00Z
    opened = next_opening(now, OFFICE, NY)
    assert opened == utc(2026, 11, 18, 14)
    assert opened.utcoffset() == timedelta(0)


# --- waits -----------------------------------------------------------------------------------

NOW = utc(2026, 11, 22, 12)


def duration_wait(duration: timedelta) -> WaitStep:
    return WaitStep(type="wait", key="w", duration=duration)


def attribute_wait(path: str, offset: timedelta = timedelta(0), at: time | None = None) -> WaitStep:
    rule = AttributeTime(attribute=path, offset=offset, at=at)
    return WaitStep(type="wait", key="w", until_attribute=rule)


def test_duration_wait_is_exact_elapsed_time() -> None:
    assert wait_until(duration_wait(timedelta(days=3)), NOW, NY, {}) == utc(2026, 11, 25, 12)
    assert wait_until(duration_wait(timedelta(hours=2)), NOW, NY, {}) == utc(2026, 11, 22, 14)
    # across spring forward: 24 hours, not "same wall-clock time tomorrow"
    before = utc(2026, 3, 7, 17)  # 12:00 EST
    assert wait_until(duration_wait(timedelta(days=1)), before, NY, {}) == utc(2026, 3, 8, 17)


def test_window_wait_uses_next_opening() -> None:
    step = WaitStep(type="wait", key="w", until_window=OFFICE)
    assert wait_until(step, utc(2026, 11, 20, 23), NY, {}) == utc(2026, 11, 23, 14)
    assert wait_until(step, utc(2026, 11, 18, 15), NY, {}) == utc(2026, 11, 18, 15)


@pytest.mark.parametrize(
    ("value", "offset", "at", "expected"),
    [
        # dates are local midnight by default (EST, UTC-5)
        ("2026-12-01", timedelta(0), None, utc(2026, 12, 1, 5)),
        ("2026-12-01", timedelta(days=-7), time(9), utc(2026, 11, 24, 14)),
        ("2026-12-01", timedelta(days=2), time(18, 30), utc(2026, 12, 3, 23, 30)),
        ("2026-12-01", timedelta(hours=-2), time(9), utc(2026, 12, 1, 12)),
        ("2026-12-01", timedelta(hours=-2), None, utc(2026, 12, 1, 3)),  # 22:00 the day before
        # -P7D counts local days: 09:00 EDT on 2027-11-02 although the date is in EST
        ("2027-11-09", timedelta(days=-7), time(9), utc(2027, 11, 2, 13)),
        # into the spring-forward gap: 02:30 -> 03:00 EDT
        ("2027-03-15", timedelta(days=-1), time(2, 30), utc(2027, 3, 14, 7)),
        # instants: exact elapsed offsets
        ("2026-12-01T15:00:00Z", timedelta(days=-1), None, utc(2026, 11, 30, 15)),
        ("2026-12-01T10:00:00+02:00", timedelta(0), None, utc(2026, 12, 1, 8)),
        (
            "2026-12-01T10:00:00.25-05:00",
            timedelta(minutes=-30),
            None,
            utc(2026, 12, 1, 14, 30, 0, 250_000),
        ),
        # an instant with `at`: its local date (2026-11-30 22:00 EST), at 09:00
        ("2026-12-01T03:00:00Z", timedelta(0), time(9), utc(2026, 11, 30, 14)),
        ("2026-12-01T03:00:00Z", timedelta(days=-1), time(9), utc(2026, 11, 29, 14)),
    ],
)
def test_attribute_wait(value: str, offset: timedelta, at: time | None, expected: datetime) -> None:
    step = attribute_wait("renewal_date", offset, at)
    assert wait_until(step, NOW, NY, {"renewal_date": value}) == expected


def test_attribute_wait_reads_a_dotted_path() -> None:
    attributes = {"billing": {"plan": {"renews": "2026-12-01"}}}
    step = attribute_wait("billing.plan.renews", timedelta(days=-1), time(9))
    assert wait_until(step, NOW, TOKYO, attributes) == utc(2026, 11, 30, 0)


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"renewal_date": None},
        {"renewal_date": "soon"},
        {"renewal_date": ""},
        {"renewal_date": 20261201},
        {"renewal_date": ["2026-12-01"]},
        {"renewal_date": {"date": "2026-12-01"}},
        {"renewal_date": "2026-13-45"},
        {"renewal_date": "2026-W49-2"},  # an ISO week date: not accepted
        {"renewal_date": "20261201"},
        {"renewal_date": "2026-12-01T10:00:00"},  # no offset: not an RFC 3339 instant
        {"renewal_date": "2026-12-01T25:00:00Z"},
        {"renewal_date": "\uff12\uff10\uff12\uff16-\uff11\uff12-\uff10\uff11"},  # fullwidth digits
        {"renewal": "2026-12-01"},
    ],
)
def test_attribute_wait_missing_or_garbage_is_none(attributes: dict[str, Any]) -> None:
    assert wait_until(attribute_wait("renewal_date"), NOW, NY, attributes) is None


def test_attribute_wait_path_through_a_non_object_is_none() -> None:
    step = attribute_wait("renewal_date.day")
    assert wait_until(step, NOW, NY, {"renewal_date": "2026-12-01"}) is None
    assert lookup({"a": {"b": 1}}, "a.b") == 1
    assert lookup({"a": [1]}, "a.0") is None


@pytest.mark.parametrize(
    ("value", "offset"),
    [
        ("9999-12-31", timedelta(days=3660)),
        ("9999-12-31", timedelta(0)),  # local midnight in New York is 10000-01-01 in UTC
        ("0001-01-01", timedelta(days=-1)),
        ("9999-12-31T23:00:00Z", timedelta(days=1)),
        ("0001-01-01T00:00:00Z", timedelta(days=-1)),
    ],
)
def test_attribute_wait_out_of_range_is_none(value: str, offset: timedelta) -> None:
    step = attribute_wait("renewal_date", offset, time(23))
    assert wait_until(step, NOW, NY, {"renewal_date": value}) is None


def test_attribute_wait_in_the_past_is_now() -> None:
    assert wait_until(attribute_wait("d"), NOW, NY, {"d": "2020-01-01"}) == NOW
    step = attribute_wait("d", timedelta(days=-7))
    assert wait_until(step, NOW, NY, {"d": "2026-11-25"}) == NOW
    assert wait_until(attribute_wait("d"), NOW, NY, {"d": "2026-11-22T12:00:00Z"}) == NOW


def test_attribute_wait_accepts_python_dates() -> None:
    # the dry run may pass hypothetical attributes already parsed
    step = attribute_wait("d", at=time(9))
    assert wait_until(step, NOW, TOKYO, {"d": date(2026, 12, 1)}) == utc(2026, 12, 1, 0)
    assert wait_until(attribute_wait("d"), NOW, TOKYO, {"d": utc(2026, 12, 1, 8)}) == utc(
        2026, 12, 1, 8
    )
    assert wait_until(attribute_wait("d"), NOW, TOKYO, {"d": datetime(2026, 12, 1)}) is None


# --- frequency caps --------------------------------------------------------------------------

CAP = FrequencyCap(channel="email", max=3, period=timedelta(days=7))


def test_cap_below_fits() -> None:
    sends = [NOW - timedelta(days=6), NOW - timedelta(hours=1)]
    assert cap_release(sends, CAP, NOW) is None
    assert cap_release([], CAP, NOW) is None


def test_cap_sends_outside_the_rolling_period_do_not_count() -> None:
    # exactly `period` ago has left the window (now - period, now]; a future send is not counted
    sends = [NOW - timedelta(days=7), NOW - timedelta(days=30), NOW - timedelta(days=1)]
    assert cap_release([*sends, NOW + timedelta(hours=1), NOW], CAP, NOW) is None


def test_cap_at_max_releases_when_the_oldest_leaves() -> None:
    sends = [NOW - timedelta(hours=1), NOW - timedelta(days=6), NOW]  # unsorted on purpose
    assert cap_release(sends, CAP, NOW) == NOW + timedelta(days=1)


def test_cap_above_max_releases_when_enough_leave() -> None:
    sends = [NOW - timedelta(days=days) for days in (6, 5, 4, 2, 1)]
    # at now+3d, the sends of -6d, -5d and -4d have left: two remain, one more fits
    assert cap_release(sends, CAP, NOW) == NOW + timedelta(days=3)


def _counted(sends: list[datetime], period: timedelta, at: datetime) -> int:
    return sum(at - period < sent <= at for sent in sends)


@settings(max_examples=300, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=20 * 24 * 60), max_size=12),
    maximum=st.integers(min_value=1, max_value=5),
    period_minutes=st.integers(min_value=1, max_value=14 * 24 * 60),
)
def test_cap_release_is_the_first_instant_that_fits(
    offsets: list[int], maximum: int, period_minutes: int
) -> None:
    period = timedelta(minutes=period_minutes)
    cap = FrequencyCap(channel="sms", max=maximum, period=period)
    sends = [NOW - timedelta(minutes=minutes) for minutes in offsets]
    release = cap_release(sends, cap, NOW)
    if release is None:
        assert _counted(sends, period, NOW) < maximum
    else:
        assert release > NOW
        assert _counted(sends, period, release) < maximum
        assert _counted(sends, period, release - timedelta(microseconds=1)) >= maximum


# --- properties of next_opening --------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "Asia/Tokyo",
    "Europe/Berlin",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Asia/Kathmandu",  # UTC+05:45
    "America/St_Johns",  # UTC-03:30 with DST
]
TRANSITIONS = [
    utc(2026, 3, 8, 7),
    utc(2026, 11, 1, 6),
    utc(2026, 3, 29, 1),
    utc(2026, 10, 25, 1),
    utc(2026, 4, 4, 16),  # Sydney: 03:00 AEDT -> 02:00 AEST
    utc(2026, 10, 3, 16),  # Sydney: 02:00 AEST -> 03:00 AEDT
]
any_instant = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
)
near_transition = st.builds(
    lambda base, shift: base + timedelta(minutes=shift),
    st.sampled_from(TRANSITIONS),
    st.integers(min_value=-3 * 24 * 60, max_value=24 * 60),
)
# windows on a quarter-hour grid, biased towards the small hours where transitions happen
quarter = st.one_of(st.integers(0, 95), st.integers(0, 20))


@st.composite
def windows(draw: st.DrawFn) -> TimeWindow:
    first, second = draw(quarter), draw(quarter)
    if first == second:
        second = first + 1
    low, high = sorted((first, second))
    days = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True))
    end = time(23, 59) if high == 96 else time(high // 4, high % 4 * 15)
    return TimeWindow(days=days, start=time(low // 4, low % 4 * 15), end=end)


def inside(instant: datetime, win: TimeWindow, zone: ZoneInfo) -> bool:
    wall = instant.astimezone(zone)
    return WEEKDAYS[wall.weekday()] in win.days and win.start <= wall.time() < win.end


def minute_samples(low: datetime, high: datetime, count: int = 40) -> list[datetime]:
    """Minute-aligned instants in [low, high): both ends and evenly spread ones."""
    first = low.replace(second=0, microsecond=0)
    if first < low:
        first += timedelta(minutes=1)
    minutes = int((high - first) / timedelta(minutes=1))
    if minutes <= 0:
        return []
    picks = {0, minutes - 1} | {minutes * index // count for index in range(count)}
    samples = [first + timedelta(minutes=pick) for pick in sorted(picks)]
    return [sample for sample in samples if sample < high]


@settings(max_examples=400, deadline=None)
@given(
    now=st.one_of(any_instant, near_transition),
    win=windows(),
    zone_name=st.sampled_from(ZONES),
)
def test_next_opening_is_the_first_instant_inside(
    now: datetime, win: TimeWindow, zone_name: str
) -> None:
    zone = ZoneInfo(zone_name)
    opened = next_opening(now, win, zone)
    assert opened >= now
    assert opened - now <= timedelta(days=8)
    assert inside(opened, win, zone)
    if inside(now, win, zone):
        assert opened == now
    for sample in minute_samples(now, opened):
        assert not inside(sample, win, zone), sample
    # every instant between now and the opening returns that same opening
    if opened > now:
        middle = now + (opened - now) / 2
        assert next_opening(middle, win, zone) == opened
