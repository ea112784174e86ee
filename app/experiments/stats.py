"""Statistics for A/B(/n) experiments on binary outcomes: pure functions over counts.

Nothing here touches the database or draws random numbers; every figure is a deterministic
function of (conversions, exposures) pairs, so the API answers the same thing twice.

- `rate_interval`: Wilson score interval of one variant's rate.
- `lift`: absolute and relative lift of a treatment over control.
- `z_test`: fixed-horizon two-proportion z-test (pooled variance), for reference only: its
  p-value is valid for ONE look at a sample size fixed in advance.
- `msprt`: mixture sequential probability ratio test (Johari, Koomen, Pekelis & Walsh,
  "Always Valid Inference", Operations Research 2022, arXiv:1512.04922) for the difference of
  two proportions with a normal mixing distribution: an always-valid p-value and confidence
  sequence, safe to check after every exposure.
- `probability_to_beat`: P(p_treatment > p_control) under independent Beta(1 + x, 1 + n - x)
  posteriors, exact closed form (Evan Miller's sum) or its normal limit for large counts.
- `sample_size`: exposures per variant a fixed-horizon test needs to detect a given lift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()
# The mixing distribution of the mSPRT: H = N(0, tau^2) over the true difference of rates.
# tau is fixed before any data is seen (choosing it from the data would void the guarantee);
# 0.05 puts most prior mass on differences of a few percentage points, the range A/B tests
# of email open, click, reply and conversion rates live in.
DEFAULT_MIXING_SD = 0.05
# Above this many terms the exact Beta sum gives way to its normal limit (the posteriors are
# then indistinguishable from normals at the precision anyone reads a probability with).
_EXACT_TERMS = 5_000


def z_quantile(probability: float) -> float:
    return _NORMAL.inv_cdf(probability)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def rate(successes: int, trials: int) -> float | None:
    return successes / trials if trials > 0 else None


def rate_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval | None:
    """Wilson score interval (Wilson 1927): well behaved at rates near 0 or 1 and small n,
    where the Wald interval collapses to a point."""
    _check_counts(successes, trials)
    if trials == 0:
        return None
    z = z_quantile(1 - (1 - confidence) / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Lift:
    absolute: float  # p_treatment - p_control
    relative: float | None  # absolute / p_control (None when control's rate is 0)
    # Fixed-horizon (Wald, unpooled) interval of the absolute lift.
    interval: Interval


def lift(
    control: tuple[int, int], treatment: tuple[int, int], confidence: float = 0.95
) -> Lift | None:
    """Lift of `treatment` over `control`, each `(successes, trials)`; None without data."""
    (xc, nc), (xt, nt) = control, treatment
    _check_counts(xc, nc)
    _check_counts(xt, nt)
    if nc == 0 or nt == 0:
        return None
    pc, pt = xc / nc, xt / nt
    difference = pt - pc
    z = z_quantile(1 - (1 - confidence) / 2)
    half = z * math.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt)
    return Lift(
        absolute=difference,
        relative=difference / pc if pc > 0 else None,
        interval=Interval(difference - half, difference + half),
    )


def z_test(control: tuple[int, int], treatment: tuple[int, int]) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test (as statsmodels'
    `proportions_ztest`); 1.0 when the pooled rate is 0 or 1 (no variance, no evidence).
    Valid only for one look at a sample size fixed in advance."""
    (xc, nc), (xt, nt) = control, treatment
    _check_counts(xc, nc)
    _check_counts(xt, nt)
    if nc == 0 or nt == 0:
        return None
    pooled = (xc + xt) / (nc + nt)
    variance = pooled * (1 - pooled) * (1 / nc + 1 / nt)
    if variance <= 0:
        return 1.0
    z = (xt / nt - xc / nc) / math.sqrt(variance)
    return min(1.0, 2 * _NORMAL.cdf(-abs(z)))


@dataclass(frozen=True)
class Sequential:
    """One look of the mSPRT: the always-valid p-value at this look (1 / Lambda, capped at 1)
    and the always-valid confidence sequence's interval for p_treatment - p_control."""

    p_value: float
    interval: Interval | None


def msprt_p_value(
    control: tuple[int, int], treatment: tuple[int, int], mixing_sd: float = DEFAULT_MIXING_SD
) -> float:
    """Always-valid p-value of H0: p_treatment == p_control at this look.

    With theta-hat the observed difference and V its variance, the normal-mixture likelihood
    ratio (Johari et al. 2022, eq. for normal data, applied to the asymptotically normal
    difference of proportions) is

        Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * theta_hat^2 / (2 * V * (V + tau^2)))

    and, Lambda being a nonnegative martingale under H0, P(exists n: Lambda_n >= 1/alpha) <=
    alpha (Ville's inequality): p = min(1, 1/Lambda) may be read after every exposure. V is
    the null (pooled) variance p(1-p)(1/n_c + 1/n_t), which does not explode when one arm
    has seen no successes yet. The running minimum over looks (`running_min`) keeps the
    guarantee and makes it monotone.
    """
    (xc, nc), (xt, nt) = control, treatment
    _check_counts(xc, nc)
    _check_counts(xt, nt)
    if nc == 0 or nt == 0:
        return 1.0
    pooled = (xc + xt) / (nc + nt)
    variance = pooled * (1 - pooled) * (1 / nc + 1 / nt)
    if variance <= 0:
        return 1.0
    return _p_from(xt / nt - xc / nc, variance, mixing_sd * mixing_sd)


def _p_from(difference: float, variance: float, tau2: float) -> float:
    log_lambda = 0.5 * math.log(variance / (variance + tau2)) + (
        tau2 * difference * difference / (2 * variance * (variance + tau2))
    )
    return 1.0 if log_lambda <= 0 else math.exp(-log_lambda)


def msprt_interval(
    control: tuple[int, int],
    treatment: tuple[int, int],
    alpha: float = 0.05,
    mixing_sd: float = DEFAULT_MIXING_SD,
) -> Interval | None:
    """The confidence sequence: every theta0 the mSPRT of H0: difference == theta0 does not
    reject at level alpha, i.e. theta_hat +- sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) +
    log((V + tau^2) / V))). V here is the unpooled variance (the truth need not be 0), with
    one pseudo-success and one pseudo-failure per arm (Agresti-Caffo) so an arm with 0 or
    all successes still has a width."""
    (xc, nc), (xt, nt) = control, treatment
    _check_counts(xc, nc)
    _check_counts(xt, nt)
    if nc == 0 or nt == 0:
        return None
    pc, pt = (xc + 1) / (nc + 2), (xt + 1) / (nt + 2)
    variance = pc * (1 - pc) / (nc + 2) + pt * (1 - pt) / (nt + 2)
    tau2 = mixing_sd * mixing_sd
    half = math.sqrt(
        variance
        * (variance + tau2)
        / tau2
        * (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance))
    )
    difference = xt / nt - xc / nc
    return Interval(max(-1.0, difference - half), min(1.0, difference + half))


def msprt(
    control: tuple[int, int],
    treatment: tuple[int, int],
    alpha: float = 0.05,
    mixing_sd: float = DEFAULT_MIXING_SD,
) -> Sequential:
    return Sequential(
        msprt_p_value(control, treatment, mixing_sd),
        msprt_interval(control, treatment, alpha, mixing_sd),
    )


def running_min(previous: float | None, current: float) -> float:
    """The always-valid p-value is the running minimum over looks."""
    return current if previous is None else min(previous, current)


def intersect(previous: Interval | None, current: Interval | None) -> Interval | None:
    """The confidence sequence is the running intersection of the per-look intervals (an
    empty intersection, a probability-alpha event, keeps the latest interval)."""
    if previous is None or current is None:
        return current or previous
    low, high = max(previous.low, current.low), min(previous.high, current.high)
    return Interval(low, high) if low <= high else current


def probability_to_beat(control: tuple[int, int], treatment: tuple[int, int]) -> float | None:
    """P(p_t > p_c) with uniform priors: p ~ Beta(1 + successes, 1 + failures).

    Exact (Evan Miller, "Formulas for Bayesian A/B Testing", 2015):
        P(B > A) = sum_{i=0}^{a_B - 1} B(a_A + i, b_A + b_B) / ((b_B + i) B(1 + i, b_B) B(a_A, b_A))
    summed over the smallest of the four Beta parameters (by symmetry: 1 - P(A > B), and
    1 - p ~ Beta(b, a)); past `_EXACT_TERMS` terms, the normal limit of both posteriors.
    """
    (xc, nc), (xt, nt) = control, treatment
    _check_counts(xc, nc)
    _check_counts(xt, nt)
    if nc == 0 or nt == 0:
        return None
    a_c, b_c = 1 + xc, 1 + nc - xc
    a_t, b_t = 1 + xt, 1 + nt - xt
    smallest = min(a_c, b_c, a_t, b_t)
    if smallest > _EXACT_TERMS:
        return _normal_beats(a_c, b_c, a_t, b_t)
    if smallest == a_t:
        value = _miller(a_c, b_c, a_t, b_t)
    elif smallest == a_c:
        value = 1 - _miller(a_t, b_t, a_c, b_c)
    elif smallest == b_c:  # P(1 - p_c > 1 - p_t), summed over b_c
        value = _miller(b_t, a_t, b_c, a_c)
    else:  # b_t: 1 - P(1 - p_t > 1 - p_c)
        value = 1 - _miller(b_c, a_c, b_t, a_t)
    return min(1.0, max(0.0, value))


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _miller(a_a: int, b_a: int, a_b: int, b_b: int) -> float:
    """P(B > A), A ~ Beta(a_a, b_a), B ~ Beta(a_b, b_b), a_b terms."""
    constant = _log_beta(a_a, b_a)
    total = 0.0
    for i in range(a_b):
        total += math.exp(
            _log_beta(a_a + i, b_a + b_b) - math.log(b_b + i) - _log_beta(1 + i, b_b) - constant
        )
    return total


def _normal_beats(a_c: int, b_c: int, a_t: int, b_t: int) -> float:
    def moments(a: int, b: int) -> tuple[float, float]:
        total = a + b
        return a / total, a * b / (total * total * (total + 1))

    mean_c, var_c = moments(a_c, b_c)
    mean_t, var_t = moments(a_t, b_t)
    return _NORMAL.cdf((mean_t - mean_c) / math.sqrt(var_c + var_t))


def sample_size(baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Exposures per variant (equal allocation) for a two-sided fixed-horizon z-test at level
    `alpha` to detect a RELATIVE lift `mde` over a `baseline` rate with probability `power`:

        n = (z_{1-alpha/2} sqrt(2 p_bar (1 - p_bar)) + z_power sqrt(p1 q1 + p2 q2))^2 / (p2 - p1)^2

    with p2 = p1 (1 + mde) and p_bar = (p1 + p2) / 2 (Fleiss, Levin & Paik, "Statistical
    Methods for Rates and Proportions", 3rd ed., eq. 4.14, without continuity correction).
    None when the target rate leaves (0, 1) or there is no difference to detect."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError("alpha and power are probabilities")
    target = baseline * (1 + mde)
    if not (0 < baseline < 1 and 0 < target < 1) or target == baseline:
        return None
    pooled = (baseline + target) / 2
    z_alpha = z_quantile(1 - alpha / 2)
    z_power = z_quantile(power)
    numerator = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_power * math.sqrt(
        baseline * (1 - baseline) + target * (1 - target)
    )
    return math.ceil(numerator * numerator / ((target - baseline) ** 2))


def _check_counts(successes: int, trials: int) -> None:
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"invalid counts: {successes} of {trials}")
