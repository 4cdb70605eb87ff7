"""NCO drift tests: references (scipy/statsmodels), simulation with known truth (size, coverage, power)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import driftstats as ds
from driftstats._kernels.means import paired_t, welch_t
from driftstats._kernels.tvd import (
    g_statistic,
    minp_fwer,
    pearson_chi2,
    perm_pvalue,
)
from driftstats.errors import InsufficientDataError, InvalidArgumentError
from driftstats.nco._data import pair_from_codes
from driftstats.nco._engine import analyse_pair
from driftstats.nco.drift import NcoTestResult
from driftstats.simulate import tilt_categorical

# Monte Carlo bands: a rate estimated from R replications is checked within 3 binomial SEs.
MC_SIGMAS = 3.0


def band(p: float, reps: int) -> float:
    return MC_SIGMAS * np.sqrt(p * (1 - p) / reps)


def draw(rng, q, n):
    return rng.choice(len(q), size=n, p=q)


# ----------------------------------------------------------------------------- references
def test_chi2_and_g_match_scipy() -> None:
    table = np.array([[12, 30, 8, 0], [20, 25, 15, 0]])
    chi2, _, _, _ = stats.chi2_contingency(table[:, :3], correction=False)
    g, _, _, _ = stats.chi2_contingency(table[:, :3], correction=False, lambda_="log-likelihood")
    assert pearson_chi2(table) == pytest.approx(chi2, rel=1e-10)
    assert g_statistic(table) == pytest.approx(g, rel=1e-10)


def test_welch_and_paired_match_scipy() -> None:
    rng = np.random.default_rng(2)
    x1, x0 = rng.normal(1, 2, 30), rng.normal(0, 1, 45)
    ours = welch_t(x1, x0, 0.9)
    ref = stats.ttest_ind(x1, x0, equal_var=False)
    ci = ref.confidence_interval(0.9)
    assert (ours.statistic, ours.p_value, ours.df) == pytest.approx((ref.statistic, ref.pvalue, ref.df), rel=1e-10)
    assert (ours.conf_low, ours.conf_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    d = rng.normal(0.3, 1, 25)
    ours = paired_t(d, 0.95)
    ref = stats.ttest_rel(d, np.zeros_like(d))
    assert (ours.statistic, ours.p_value) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-10)


def test_permutation_pvalue_agrees_with_scipy_permutation_test() -> None:
    rng = np.random.default_rng(3)
    a, b = draw(rng, [0.4, 0.3, 0.3], 60), draw(rng, [0.25, 0.35, 0.4], 70)

    def tv(x, y, axis):
        hx = np.stack([(x == k).mean(axis=axis) for k in range(3)])
        hy = np.stack([(y == k).mean(axis=axis) for k in range(3)])
        return 0.5 * np.abs(hx - hy).sum(axis=0)

    ref = stats.permutation_test((a, b), tv, permutation_type="independent", n_resamples=9999,
                                 alternative="greater", vectorized=True, random_state=4)
    out = analyse_pair(pair_from_codes(a, b, 3), n_perm=9999, n_boot=0, conf_level=0.95, rng=rng)
    assert out.observed[0] == pytest.approx(ref.statistic, rel=1e-6)
    se = np.sqrt(ref.pvalue * (1 - ref.pvalue) / 9999) * np.sqrt(2)
    assert abs(out.rows[0]["p_value"] - ref.pvalue) < 4 * se + 1e-3


def test_minp_fwer_matches_brute_force_definition() -> None:
    rng = np.random.default_rng(5)
    null = rng.random((200, 3)) * np.array([1.0, 2.0, 0.5])
    obs = np.array([0.9, 1.1, 0.49])
    p = perm_pvalue(null, obs)
    pnull = np.array([[(1 + (null[:, j] >= null[b, j]).sum()) / 201 for j in range(3)] for b in range(200)])
    minp = pnull.min(axis=1)
    brute = np.maximum((1 + (minp[:, None] <= p[None, :]).sum(axis=0)) / 201, p)
    np.testing.assert_allclose(minp_fwer(null, obs), brute)


# ----------------------------------------------------------------------------- null mean (methods 3.1)
@pytest.mark.parametrize(("k", "n", "table"), [(2, 100, 0.056), (5, 100, 0.113), (5, 500, 0.051), (10, 200, 0.119)])
def test_null_mean_reproduces_methods_table(k, n, table) -> None:
    rng = np.random.default_rng(k * n)
    q = np.full(k, 1 / k)
    means = []
    for _ in range(20):
        out = analyse_pair(pair_from_codes(draw(rng, q, n), draw(rng, q, n), k), n_perm=400, n_boot=0,
                           conf_level=0.95, rng=rng)
        means.append(out.rows[0]["null_mean"])
    formula = 0.5 * k * np.sqrt(2 / np.pi) * np.sqrt((1 / k) * (1 - 1 / k) * (2 / n))
    assert np.mean(means) == pytest.approx(table, abs=0.006)
    assert np.mean(means) == pytest.approx(formula, rel=0.06)


# ----------------------------------------------------------------------------- size
def _rejection_rate(rng, reps, make_pair, alpha=0.05, family=False):
    hits = 0
    for _ in range(reps):
        out = analyse_pair(make_pair(), n_perm=199, n_boot=0, conf_level=0.95, rng=rng)
        if family:
            hits += bool((minp_fwer(out.null, out.observed) <= alpha).any())
        else:
            hits += out.rows[0]["p_value"] <= alpha
    return hits / reps


def test_size_independent_arms() -> None:
    """Under no drift the permutation test rejects at alpha within Monte Carlo error (400 reps, 3 SE)."""
    rng = np.random.default_rng(10)
    q = np.array([0.1, 0.2, 0.3, 0.4])
    rate = _rejection_rate(rng, 400, lambda: pair_from_codes(draw(rng, q, 40), draw(rng, q, 55), 4))
    assert abs(rate - 0.05) <= band(0.05, 400)


def test_size_paired_strata() -> None:
    rng = np.random.default_rng(11)
    n = 50

    def make():
        qp = rng.dirichlet(np.ones(3), size=n)  # persona-specific distributions (strong pairing)
        c1 = np.array([rng.choice(3, p=p) for p in qp])
        c0 = np.array([rng.choice(3, p=p) for p in qp])
        return pair_from_codes(c1, c0, 3, strata1=np.arange(n), strata0=np.arange(n))

    rate = _rejection_rate(rng, 300, make)
    assert abs(rate - 0.05) <= band(0.05, 300)


def test_familywise_size_with_correlated_ncos() -> None:
    """min-p FWER: the chance that *any* of 3 correlated NCOs rejects stays at alpha."""
    rng = np.random.default_rng(12)

    def make():
        def unit_codes(n):
            base = rng.integers(0, 3, n)
            noisy = np.where(rng.random(n) < 0.3, rng.integers(0, 3, n), base)
            return np.stack([base, noisy, rng.integers(0, 3, n)], axis=1)

        return pair_from_codes(unit_codes(60), unit_codes(60), 3)

    rate = _rejection_rate(rng, 300, make, family=True)
    assert abs(rate - 0.05) <= band(0.05, 300)


def test_power_under_drift() -> None:
    rng = np.random.default_rng(13)
    q0 = np.full(5, 0.2)
    q1 = tilt_categorical(q0, 0.2)
    rate = _rejection_rate(rng, 60, lambda: pair_from_codes(draw(rng, q1, 200), draw(rng, q0, 200), 5))
    assert rate > 0.9


# ----------------------------------------------------------------------------- coverage
def test_bootstrap_interval_is_labelled_approximate_and_undercovers_at_zero() -> None:
    """The basic bootstrap interval is documented and named as approximate, and it under-covers at TV = 0."""
    doc = NcoTestResult.__doc__ + ds.nco_test.__doc__
    assert "approximate" in doc
    assert "under-cover" in doc
    assert "conf_low_approx" in NcoTestResult.TIDY_EXTRAS
    rng = np.random.default_rng(14)
    q = np.full(5, 0.2)
    reps, covered = 150, 0
    for _ in range(reps):
        out = analyse_pair(pair_from_codes(draw(rng, q, 100), draw(rng, q, 100), 5), n_perm=19, n_boot=300,
                           conf_level=0.95, rng=rng)
        covered += out.rows[0]["conf_low_approx"] <= 1e-12
    assert covered / reps < 0.95 - band(0.95, reps)


# ----------------------------------------------------------------------------- the log-level API
def test_nco_test_on_log_detects_planted_drift_and_reports_everything() -> None:
    log = ds.simulate_nco_log(n_per_arm=300, tvd=[0.0, 0.25], n_nco=2, n_numeric=1, numeric_shift=8, seed=20)
    res = ds.nco_test(log, seed=1, n_perm=499, n_boot=200)
    t = res.tidy().set_index("term")
    assert t.loc["nco_2", "p_value"] < 0.01
    assert t.loc["nco_2", "conf_low"] <= 0.25 <= t.loc["nco_2", "conf_high"]
    assert t.loc["stated_age_1", "measure"] == "ks"
    assert t.loc["stated_age_1", "mean_shift_low"] < 8 < t.loc["stated_age_1", "mean_shift_high"]
    assert (t["p_value_fwer"] >= t["p_value"]).all()
    assert (t["p_value_holm"] >= t["p_value"]).all()
    assert res.glance()["n_perm"].iloc[0] == 499
    assert set(res.distributions["arm"]) == {"control", "treatment"}


def test_nco_test_is_reproducible_with_seed() -> None:
    log = ds.simulate_nco_log(n_per_arm=50, tvd=0.1, n_nco=2, seed=3)
    a = ds.nco_test(log, seed=7, n_perm=99, n_boot=50).tidy()
    b = ds.nco_test(log, seed=7, n_perm=99, n_boot=50).tidy()
    assert a.equals(b)


def test_iterations_are_separate_groups_and_dist_mode_works() -> None:
    log = ds.simulate_nco_log(n_per_arm=80, tvd=0.1, n_nco=1, iterations=3, mode="dist", seed=4)
    res = ds.nco_test(log, mode="dist", seed=1, n_perm=99, n_boot=0)
    assert sorted(res.tidy()["iteration"].tolist()) == [0, 1, 2]


def test_nco_test_errors_name_the_argument(small_log) -> None:
    with pytest.raises(InvalidArgumentError, match="reference='nope'"):
        ds.nco_test(small_log, reference="nope")
    with pytest.raises(InvalidArgumentError, match="strata='zodiac'"):
        ds.nco_test(small_log, strata="zodiac")
    with pytest.raises(InvalidArgumentError, match="n_perm must be an integer >= 19"):
        ds.nco_test(small_log, n_perm=5)
    with pytest.raises(InvalidArgumentError, match="conf_level"):
        ds.nco_test(small_log, conf_level=95)
    with pytest.raises(InvalidArgumentError, match="no items with role 'nco'"):
        ds.nco_test(ds.simulate_fidelity_log(n_per_arm=5, seed=1))
    with pytest.raises(InsufficientDataError, match="no answers in mode 'dist'"):
        ds.nco_test(small_log, mode="dist")
    with pytest.raises(InvalidArgumentError, match="margin"):
        ds.equivalence_test(small_log, margin=1.5)


def test_fidelity_detects_arm_difference_and_pairs() -> None:
    log = ds.simulate_fidelity_log(n_per_arm=300, fidelity=(0.9, 0.75), seed=5)
    t = ds.fidelity(log).tidy().set_index("term")
    assert t.loc["overall", "conf_low"] <= -0.15 <= t.loc["overall", "conf_high"]
    assert t.loc["party", "measure"] == "paired difference"
    assert t.loc["party", "share_0"] == pytest.approx(0.9, abs=0.06)
    ind = ds.fidelity(ds.simulate_fidelity_log(n_per_arm=300, fidelity=(0.9, 0.9), paired=False, seed=6)).tidy()
    assert (ind["measure"] == "difference").all()
    assert (ind["p_value"] > 0.001).all()


# ----------------------------------------------------------------------------- the count-table engine
def test_counts_engine_agrees_with_exact_engine() -> None:
    log = ds.simulate_nco_log(n_per_arm=2000, tvd=[0.0, 0.04], n_nco=2, seed=30)
    a = ds.nco_test(log, engine="exact", seed=1, n_boot=0).tidy().set_index("term")
    b = ds.nco_test(log, engine="counts", seed=2, n_boot=0).tidy().set_index("term")
    for col in ("estimate", "conf_low", "conf_high", "statistic", "mean_shift"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-10)
    mc = 4 * np.sqrt(0.25 / 2000) * np.sqrt(2)
    assert (abs(a["p_value"] - b["p_value"]) < mc).all()
    assert (abs(a["null_mean"] - b["null_mean"]) < 0.002).all()
    assert (b["p_value_fwer"] >= b["p_value"]).all()


def test_counts_engine_size_and_familywise_size() -> None:
    """Exact marginal size; family-wise size of the Gaussian joint law within MC error (250 reps)."""
    from driftstats.log.simlog import ItemInfo
    from driftstats.nco._engine_counts import analyse_counts

    rng = np.random.default_rng(31)
    items = [ItemInfo(f"n{j}", None, ("a", "b", "c"), "nominal", "nco", None) for j in range(3)]
    reps, hit, fam = 250, 0, 0
    for _ in range(reps):
        base = rng.integers(0, 3, 600)
        codes = np.stack([base, np.where(rng.random(600) < 0.5, base, rng.integers(0, 3, 600)),
                          rng.integers(0, 3, 600)], axis=1)
        arm = np.zeros(600, bool)
        arm[:300] = True
        out = analyse_counts(codes, arm, items, {}, ("t", "c"), n_perm=199, n_boot=0, conf_level=0.95, rng=rng)
        hit += out.rows[0]["p_value"] <= 0.05
        fam += min(r["p_value_fwer"] for r in out.rows) <= 0.05
    assert abs(hit / reps - 0.05) <= band(0.05, reps)
    assert abs(fam / reps - 0.05) <= band(0.05, reps) + 0.01


def test_engine_errors() -> None:
    log = ds.simulate_nco_log(n_per_arm=30, n_nco=1, paired=True, seed=32)
    with pytest.raises(InvalidArgumentError, match="engine='counts' cannot be used here: it permutes without strata"):
        ds.nco_test(log, strata="persona_id", engine="counts")
    with pytest.raises(InvalidArgumentError, match="engine must be one of"):
        ds.nco_test(log, engine="fast")
