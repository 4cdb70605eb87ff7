"""The valid TVD interval (driftstats._kernels.tvd_ci): references, exact and simulated coverage, width.

Tolerances: published values are compared at the precision they were printed with; closed forms
at rtol 1e-8. Coverage from R replications is checked against the nominal level minus 3
binomial SEs; coverage from exact enumeration of all tables is checked without slack.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from driftstats._kernels import tvd_ci
from driftstats._kernels.tvd import projection_interval
from driftstats._kernels.tvd_ci import (
    event_stats,
    event_stats_counts,
    score_upper,
    tvd_conf_int,
    tvd_conf_int_counts,
)
from driftstats.simulate import tilt_categorical

MC_SIGMAS = 3.0
Z975 = stats.norm.ppf(0.975)
SPARSE = {5: [0.55, 0.3, 0.1, 0.05, 0.0], 10: [0.35, 0.2, 0.15, 0.1, 0.08, 0.05, 0.04, 0.02, 0.01, 0.0]}


def band(p: float, reps: int) -> float:
    return MC_SIGMAS * math.sqrt(p * (1 - p) / reps)


def one_hot(codes: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k)[np.asarray(codes)]


def into(q0: np.ndarray, j: int, tv: float) -> np.ndarray:
    """``q0`` with mass ``tv`` moved into level ``j`` (proportionally from the others)."""
    c = tv / (1 - q0[j])
    q1 = (1 - c) * q0
    q1[j] += c
    return q1


def covers(ci: np.ndarray, tv: float) -> np.ndarray:
    return (ci[..., 0] - 1e-12 <= tv) & (tv <= ci[..., 1] + 1e-12)


# ----------------------------------------------------------------------------- references
def test_event_bound_is_the_miettinen_nurminen_interval_of_propcis() -> None:
    """K = 2: the event bounds (no continuity correction) are the MN score interval.

    R: PropCIs::diffscoreci(7, 34, 1, 34, 0.95) = (0.0270416, 0.3452912) (as quoted in
    statsmodels' test_proportion.py); 7 significant digits.
    """
    st = replace(event_stats_counts(np.array([7.0, 27.0]), np.array([1.0, 33.0])), correction=False)
    upper = score_upper(st, Z975)  # event {0}: U; its complement: -L
    assert upper[0] == pytest.approx(0.3452912, abs=1e-7)
    assert -upper[1] == pytest.approx(0.0270416, abs=1e-7)


def test_paired_event_bound_is_tangos_interval() -> None:
    """Matched pairs: Tango's score interval. Cavo et al. (2012) table [[59, 6], [16, 80]]:
    contingencytables::Tango_asymptotic_score_CI_paired_2x2 gives -0.0621 (-0.1240 to -0.0054)."""
    first = [1] * 65 + [0] * 96
    second = [1] * 59 + [0] * 6 + [1] * 16 + [0] * 80
    x1, x0 = one_hot(1 - np.array(first), 2), one_hot(1 - np.array(second), 2)
    st = replace(event_stats(x1, x0, paired=True), correction=False)
    assert st.d[0] == pytest.approx(-10 / 161)
    upper = score_upper(st, Z975)
    assert upper[0] == pytest.approx(-0.0054, abs=6e-5)
    assert -upper[1] == pytest.approx(-0.1240, abs=6e-5)


def test_mn_statistic_matches_statsmodels_where_its_cubic_is_right() -> None:
    """statsmodels' MN cubic has count0 for nobs0 in one coefficient (issue 10269); with x0 = n0 the two agree."""
    from statsmodels.stats.proportion import score_test_proportions_2indep

    for x1, n1, n0, delta in [(95, 100, 100, -0.03), (30, 40, 25, -0.2), (10, 10, 60, 0.05)]:
        st = replace(event_stats_counts(np.array([x1, n1 - x1], dtype=float), np.array([n0, 0.0])), correction=False)
        ours = tvd_ci.score_statistic(st, delta)[0]
        ref = score_test_proportions_2indep(x1, n1, n0, n0, value=delta, compare="diff", correction=True).statistic
        assert ours == pytest.approx(ref, rel=1e-8)


def test_counts_and_one_hot_units_give_the_same_interval() -> None:
    rng = np.random.default_rng(1)
    for k in (2, 4, 12):
        a, b = rng.integers(0, k, 80), rng.integers(0, k, 65)
        c1, c0 = np.bincount(a, minlength=k), np.bincount(b, minlength=k)
        assert tvd_conf_int(one_hot(a, k), one_hot(b, k), 0.9) == pytest.approx(tvd_conf_int_counts(c1, c0, 0.9),
                                                                                 abs=1e-9)


def test_interval_is_deterministic_bounded_and_ordered() -> None:
    rng = np.random.default_rng(2)
    x1, x0 = one_hot(rng.integers(0, 6, 90), 6), one_hot(rng.integers(0, 6, 70), 6)
    a, b = tvd_conf_int(x1, x0, 0.95), tvd_conf_int(x1, x0, 0.95)
    assert a == b
    assert 0.0 <= a[0] <= 0.5 * np.abs(x1.mean(0) - x0.mean(0)).sum() <= a[1] <= 1.0
    lo90, hi90 = tvd_conf_int(x1, x0, 0.90)
    assert a[0] <= lo90 <= hi90 <= a[1]


def test_interface_edge_cases() -> None:
    x = one_hot([0, 1, 1], 2)
    assert all(math.isnan(v) for v in tvd_conf_int(x, np.zeros((0, 2)), 0.95))
    assert all(math.isnan(v) for v in tvd_conf_int_counts([0, 0], [3, 1], 0.95))
    with pytest.raises(ValueError, match="paired=True needs as many rows"):
        tvd_conf_int(x, one_hot([0], 2), 0.95, paired=True)
    assert tvd_conf_int_counts([5, 0], [0, 5], 0.95)[1] == 1.0
    assert tvd_ci.method_name(12).startswith("score band over levels")


# ----------------------------------------------------------------------------- issue 18 reproducers
def test_identical_answers_do_not_give_a_point_interval() -> None:
    """50 + 50 identical answers: the old interval was [0, 0]; the true TVD could be a few percent."""
    x = np.tile([1.0, 0.0], (50, 1))
    lo, hi = tvd_conf_int(x, x, 0.95)
    assert lo == 0.0
    assert 0.05 < hi < 0.15
    # the old projection interval on the same data: a point
    assert projection_interval(np.zeros(2), np.zeros(2), 0.95) == (0.0, 0.0)


@pytest.mark.parametrize(("n", "old"), [(30, 0.60), (50, 0.78), (100, None)])
def test_exact_coverage_when_a_rare_level_appears(n, old) -> None:
    """q0 = (1, 0), q1 = (.97, .03): exact coverage over every arm-1 count (arm 0 is always (n, 0)).

    The old Wald projection covered .60 (n = 30) and .78 (n = 50).
    """
    x = np.arange(n + 1)
    pmf = stats.binom.pmf(x, n, 0.03)
    new = np.stack(tvd_ci.tvd_conf_int_tables(np.c_[n - x, x], np.tile([n, 0], (n + 1, 1)), 0.95), axis=1)
    assert (pmf * covers(new, 0.03)).sum() >= 0.95
    if old is not None:
        h1 = np.stack([(n - x) / n, x / n], axis=1)
        se = np.sqrt(h1 * (1 - h1) / n)
        was = np.array([projection_interval(h - np.array([1.0, 0.0]), s, 0.95) for h, s in zip(h1, se, strict=True)])
        assert (pmf * covers(was, 0.03)).sum() == pytest.approx(old, abs=0.01)


def test_exact_coverage_two_levels_grid() -> None:
    """K = 2, n = 30 per arm: exact coverage (all 31 x 31 tables) over a grid of level-2 shares and TVDs."""
    n = 30
    x = np.arange(n + 1)
    a, b = np.meshgrid(x, x, indexing="ij")
    c1, c0 = np.stack([n - a, a], -1).reshape(-1, 2), np.stack([n - b, b], -1).reshape(-1, 2)
    ci = np.stack(tvd_ci.tvd_conf_int_tables(c1, c0, 0.95), axis=1).reshape(n + 1, n + 1, 2)
    worst = 1.0
    for p0 in (0.0, 0.02, 0.1, 0.3, 0.5):
        for tv in (0.0, 0.03, 0.1, 0.3):
            p1 = p0 + tv
            w = np.outer(stats.binom.pmf(x, n, p1), stats.binom.pmf(x, n, p0))
            worst = min(worst, float((w * covers(ci, tv)).sum()))
    assert worst >= 0.95


# ----------------------------------------------------------------------------- simulated coverage
@pytest.mark.parametrize(("k", "n", "tv", "kind"), [
    (5, 50, 0.1, "sparse"), (5, 500, 0.3, "uniform"), (10, 100, 0.1, "sparse"), (12, 200, 0.1, "uniform"),
])
def test_coverage_independent_arms(k, n, tv, kind) -> None:
    """Sampled answers, independent arms; sparse = an empty level that receives the drift (150 / 100 reps)."""
    rng = np.random.default_rng(100 * k + n)
    q0 = np.full(k, 1 / k) if kind == "uniform" else np.array(SPARSE[k])
    q1 = into(q0.copy(), 0 if kind == "uniform" else k - 1, tv)
    reps = 100 if k == 10 else 150
    c1, c0 = rng.multinomial(n, q1, size=reps), rng.multinomial(n, q0, size=reps)
    ci = np.stack(tvd_ci.tvd_conf_int_tables(c1, c0, 0.95), axis=1)
    assert covers(ci, tv).mean() >= 0.95 - band(0.95, reps)


def test_coverage_matched_pairs() -> None:
    """Persona-specific distributions (Dirichlet around q0), the arm-1 one tilted: paired intervals cover."""
    rng = np.random.default_rng(7)
    k, n, tv, reps = 4, 60, 0.1, 150
    q0 = np.full(k, 1 / k)
    hits = widths_paired = widths_indep = 0.0
    for _ in range(reps):
        p = rng.dirichlet(2 * k * q0, size=n)
        c = tv / (1 - q0[0])
        p1 = (1 - c) * p + c * np.eye(k)[0]
        draw = lambda q: one_hot((rng.random((n, 1)) > np.cumsum(q, axis=1)).sum(axis=1).clip(max=k - 1), k)  # noqa: E731
        x1, x0 = draw(p1), draw(p)
        lo, hi = tvd_conf_int(x1, x0, 0.95, paired=True)
        hits += lo - 1e-12 <= tv <= hi + 1e-12
        widths_paired += hi - lo
        lo, hi = tvd_conf_int(x1, x0, 0.95)
        widths_indep += hi - lo
    assert hits / reps >= 0.95 - band(0.95, reps)
    assert widths_paired < widths_indep  # pairing within persona pays off when answers correlate


def test_coverage_distribution_mode() -> None:
    """Probability vectors (Dirichlet, concentration 5): effective sizes and t critical values keep coverage.

    K = 10, n = 30, TVD = 0 is where normal critical values with estimated dispersions failed (.84).
    """
    rng = np.random.default_rng(8)
    k, n, reps = 10, 30, 100
    q0 = np.full(k, 1 / k)
    for tv in (0.0,):
        q1 = tilt_categorical(q0, tv)
        ok = 0
        for _ in range(reps):
            lo, hi = tvd_conf_int(rng.dirichlet(5 * q1, size=n), rng.dirichlet(5 * q0, size=n), 0.95)
            ok += lo - 1e-12 <= tv <= hi + 1e-12
        assert ok / reps >= 0.95 - band(0.95, reps)


# ----------------------------------------------------------------------------- width
@pytest.mark.parametrize(("k", "n"), [(5, 500), (10, 100), (10, 500)])
def test_interval_is_much_narrower_than_the_bonferroni_projection(k, n) -> None:
    """K = 10, n = 100: the old projection was .76-.88 wide; the band is well under 60% of it."""
    rng = np.random.default_rng(k * n)
    q0 = np.full(k, 1 / k)
    q1 = tilt_categorical(q0, 0.1)
    new = old = 0.0
    for _ in range(20):
        c1, c0 = rng.multinomial(n, q1), rng.multinomial(n, q0)
        lo, hi = tvd_conf_int_counts(c1, c0, 0.95)
        h1, h0 = c1 / n, c0 / n
        a, b = projection_interval(h1 - h0, np.sqrt(h1 * (1 - h1) / n + h0 * (1 - h0) / n), 0.95)
        new += hi - lo
        old += b - a
    assert new < 0.6 * old


def test_many_tables_at_once_equal_one_by_one() -> None:
    rng = np.random.default_rng(9)
    for k in (3, 11):
        c1 = rng.multinomial(60, rng.dirichlet(np.ones(k)), size=6)
        c0 = rng.multinomial(45, rng.dirichlet(np.ones(k)), size=6)
        lo, hi = tvd_ci.tvd_conf_int_tables(c1, c0, 0.9)
        one = np.array([tvd_conf_int_counts(a, b, 0.9) for a, b in zip(c1, c0, strict=True)])
        np.testing.assert_allclose(np.c_[lo, hi], one, atol=1e-12)


def test_projection_interval_by_hand() -> None:
    """The old Bonferroni projection of Wald intervals (the bench's baseline), by hand."""
    d, se = np.array([0.1, -0.05, -0.05]), np.array([0.02, 0.03, 0.01])
    z = stats.norm.ppf(1 - 0.05 / 6)
    lo, hi = d - z * se, d + z * se
    expect_low = 0.5 * (lo[0] + 0 + max(-hi[2], 0))
    expect_high = 0.5 * np.maximum(np.abs(lo), np.abs(hi)).sum()
    assert projection_interval(d, se, 0.95) == pytest.approx((expect_low, expect_high))
