"""The experiments' statistics against independent references (scipy, statsmodels), and
the sequential method by simulation: over many A/A experiments checked after every batch,
the mSPRT's false-positive rate stays at or under alpha while a naive repeated z-test's
does not; its confidence sequence covers a true difference at least 95% of the time."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate  # type: ignore[import-untyped]
from scipy.stats import beta, norm  # type: ignore[import-untyped]
from statsmodels.stats.power import (  # type: ignore[import-untyped]
    normal_sample_size_one_tail,
)
from statsmodels.stats.proportion import (  # type: ignore[import-untyped]
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from app.experiments import stats

CASES = [
    ((120, 1000), (150, 1000)),
    ((5, 40), (11, 45)),
    ((0, 30), (3, 30)),
    ((480, 5000), (520, 5100)),
    ((999, 1000), (1000, 1000)),
]


@pytest.mark.parametrize(("control", "treatment"), CASES)
def test_z_test_matches_statsmodels(control: tuple[int, int], treatment: tuple[int, int]) -> None:
    counts = np.array([treatment[0], control[0]])
    sizes = np.array([treatment[1], control[1]])
    _, expected = proportions_ztest(counts, sizes)
    found = stats.z_test(control, treatment)
    assert found is not None
    if math.isnan(expected):  # statsmodels: 0/0 when the pooled rate is 0 or 1
        assert found == 1.0
    else:
        assert found == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (3, 10), (10, 10), (250, 5000), (1, 7)])
def test_wilson_interval_matches_statsmodels(successes: int, trials: int) -> None:
    low, high = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    found = stats.rate_interval(successes, trials, 0.95)
    assert found is not None
    assert found.low == pytest.approx(low, abs=1e-12)
    assert found.high == pytest.approx(high, abs=1e-12)


@pytest.mark.parametrize(("control", "treatment"), CASES[:4])
def test_lift_and_its_interval_match_statsmodels(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    low, high = confint_proportions_2indep(
        treatment[0], treatment[1], control[0], control[1], method="wald", compare="diff"
    )
    found = stats.lift(control, treatment, 0.95)
    assert found is not None
    pc, pt = control[0] / control[1], treatment[0] / treatment[1]
    assert found.absolute == pytest.approx(pt - pc)
    assert found.relative == (pytest.approx((pt - pc) / pc) if pc else None)
    assert found.interval.low == pytest.approx(low, abs=1e-12)
    assert found.interval.high == pytest.approx(high, abs=1e-12)


@pytest.mark.parametrize(
    ("baseline", "mde", "alpha", "power"),
    [(0.1, 0.2, 0.05, 0.8), (0.05, 0.1, 0.05, 0.9), (0.3, -0.1, 0.01, 0.8), (0.02, 0.5, 0.1, 0.8)],
)
def test_sample_size_matches_statsmodels(
    baseline: float, mde: float, alpha: float, power: float
) -> None:
    target = baseline * (1 + mde)
    pooled = (baseline + target) / 2
    expected = normal_sample_size_one_tail(
        target - baseline,
        power,
        alpha / 2,
        std_null=math.sqrt(2 * pooled * (1 - pooled)),
        std_alternative=math.sqrt(baseline * (1 - baseline) + target * (1 - target)),
    )
    assert stats.sample_size(baseline, mde, alpha, power) == math.ceil(expected)


def test_sample_size_textbook_value_and_edges() -> None:
    # 10% -> 12% at alpha 0.05, power 0.8: 3,841 per group (Fleiss, no continuity correction)
    assert stats.sample_size(0.10, 0.2) == 3841
    assert stats.sample_size(0.0, 0.1) is None
    assert stats.sample_size(0.6, 1.0) is None  # the target rate would be 1.2
    assert stats.sample_size(0.1, 0.0) is None


def _beta_reference(control: tuple[int, int], treatment: tuple[int, int]) -> float:
    a_c, b_c = 1 + control[0], 1 + control[1] - control[0]
    a_t, b_t = 1 + treatment[0], 1 + treatment[1] - treatment[0]
    value, _ = integrate.quad(
        lambda x: beta.pdf(x, a_t, b_t) * beta.cdf(x, a_c, b_c), 0, 1, limit=500, epsabs=1e-12
    )
    return float(value)


@pytest.mark.parametrize(
    ("control", "treatment"),
    [
        ((12, 100), (18, 100)),  # exact sum over a_t
        ((3, 50), (1, 60)),  # over a_t (smallest)
        ((8, 10), (9, 10)),  # over b_t / b_c (rates near 1)
        ((40, 50), (2, 50)),
        ((0, 0 + 20), (0, 25)),
        ((30, 400), (45, 380)),
    ],
)
def test_probability_to_beat_matches_numeric_integration(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    found = stats.probability_to_beat(control, treatment)
    assert found == pytest.approx(_beta_reference(control, treatment), abs=1e-7)


def test_probability_to_beat_normal_limit_for_large_counts() -> None:
    control, treatment = (12_000, 100_000), (12_300, 100_000)  # every parameter > 5,000
    a_c, b_c, a_t, b_t = 12_001, 88_001, 12_301, 87_701
    mean = a_t / (a_t + b_t) - a_c / (a_c + b_c)
    var = sum(a * b / ((a + b) ** 2 * (a + b + 1)) for a, b in ((a_c, b_c), (a_t, b_t)))
    found = stats.probability_to_beat(control, treatment)
    assert found == pytest.approx(norm.cdf(mean / math.sqrt(var)), abs=1e-12)
    assert found == pytest.approx(0.9791, abs=2e-3)  # and it is what the posteriors say
    assert stats.probability_to_beat((1, 10), (0, 0)) is None


def test_msprt_is_the_normal_mixture_likelihood_ratio() -> None:
    control, treatment = (100, 1000), (140, 1000)
    pooled = 240 / 2000
    v = pooled * (1 - pooled) * (2 / 1000)
    tau2 = stats.DEFAULT_MIXING_SD**2
    theta = 0.04
    ratio = math.sqrt(v / (v + tau2)) * math.exp(tau2 * theta**2 / (2 * v * (v + tau2)))
    assert stats.msprt_p_value(control, treatment) == pytest.approx(1 / ratio)
    # more conservative than the fixed-horizon test at the same data
    fixed = stats.z_test(control, treatment)
    assert fixed is not None
    assert stats.msprt_p_value(control, treatment) > fixed
    assert stats.msprt_p_value((0, 0), (1, 1)) == 1.0
    assert stats.msprt_p_value((10, 100), (10, 100)) == 1.0


def test_running_min_and_intersection() -> None:
    assert stats.running_min(None, 0.4) == 0.4
    assert stats.running_min(0.2, 0.4) == 0.2
    a, b = stats.Interval(-0.1, 0.2), stats.Interval(0.0, 0.3)
    assert stats.intersect(a, b) == stats.Interval(0.0, 0.2)
    assert stats.intersect(None, b) == b
    assert stats.intersect(stats.Interval(0.5, 0.6), b) == b  # empty: the latest


def test_invalid_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid counts"):
        stats.z_test((5, 4), (1, 2))


EXPERIMENTS, LOOKS, BATCH, ALPHA = 2000, 50, 100, 0.05


def _trajectories(rng: np.random.Generator, rate: float) -> np.ndarray:
    return rng.binomial(BATCH, rate, size=(EXPERIMENTS, LOOKS)).cumsum(axis=1)


@pytest.mark.parametrize("rate", [0.1, 0.03])
def test_aa_false_positive_rate_with_repeated_looks(rate: float) -> None:
    """2,000 A/A experiments, 50 looks each (100 more exposures per arm per look): the
    share that EVER reads p < 0.05 stays under alpha for the mSPRT (with a Monte-Carlo
    tolerance of 3 standard errors), while the naive z-test rejects far more often."""
    rng = np.random.default_rng(20261123)
    control, treatment = _trajectories(rng, rate), _trajectories(rng, rate)
    sequential = naive = 0
    for row in range(EXPERIMENTS):
        hit_sequential = hit_naive = False
        for look in range(LOOKS):
            n = BATCH * (look + 1)
            a, b = (int(control[row, look]), n), (int(treatment[row, look]), n)
            hit_sequential = hit_sequential or stats.msprt_p_value(a, b) < ALPHA
            if not hit_naive:
                p = stats.z_test(a, b)
                hit_naive = p is not None and p < ALPHA
        sequential += hit_sequential
        naive += hit_naive
    tolerance = 3 * math.sqrt(ALPHA * (1 - ALPHA) / EXPERIMENTS)
    assert sequential / EXPERIMENTS <= ALPHA + tolerance
    assert naive / EXPERIMENTS > 4 * ALPHA  # ~0.32-0.34 here


def test_confidence_sequence_covers_the_true_difference() -> None:
    """With a real difference (10% vs 12%), the running intersection of the intervals
    contains the true +0.02 at every look in at least 95% of 1,000 experiments."""
    rng = np.random.default_rng(7)
    runs = 1000
    control = rng.binomial(BATCH, 0.10, size=(runs, LOOKS)).cumsum(axis=1)
    treatment = rng.binomial(BATCH, 0.12, size=(runs, LOOKS)).cumsum(axis=1)
    covered = 0
    for row in range(runs):
        running: stats.Interval | None = None
        ok = True
        for look in range(LOOKS):
            n = BATCH * (look + 1)
            current = stats.msprt_interval(
                (int(control[row, look]), n), (int(treatment[row, look]), n), ALPHA
            )
            running = stats.intersect(running, current)
            assert running is not None
            if not running.low <= 0.02 <= running.high:
                ok = False
                break
        covered += ok
    assert covered / runs >= 1 - ALPHA
