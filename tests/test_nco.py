"""NCO drift tests: references (scipy/statsmodels), simulation with known truth (size, coverage, power)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import driftstats as ds
from driftstats._kernels.means import paired_t, welch_t
from driftstats._kernels.tvd import (
    bh_adjust,
    g_statistic,
    holm_adjust,
    minp_fwer,
    pearson_chi2,
    perm_pvalue,
)
from driftstats.errors import (
    InsufficientDataError,
    InvalidAnswersWarning,
    InvalidArgumentError,
    MonteCarloErrorWarning,
)
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


def _brute_minp(null: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Westfall-Young single-step min-p by its definition: all B + 1 configurations ranked alike."""
    configs = np.vstack([obs, null])
    m, j = configs.shape
    p = np.array([[(configs[:, c] >= configs[b, c]).sum() / m for c in range(j)] for b in range(m)])
    minp = p.min(axis=1)
    return np.array([(minp <= p[0, c]).sum() / m for c in range(j)])


def test_minp_fwer_matches_brute_force_definition() -> None:
    """The old expectation ranked the permuted configurations among themselves only (the defect)."""
    rng = np.random.default_rng(5)
    null = rng.random((200, 3)) * np.array([1.0, 2.0, 0.5])
    obs = np.array([0.9, 1.1, 0.49])
    np.testing.assert_allclose(minp_fwer(null, obs), _brute_minp(null, obs), rtol=1e-12)
    np.testing.assert_allclose(perm_pvalue(null, obs), [(1 + (null[:, c] >= obs[c]).sum()) / 201 for c in range(3)])
    # ties (discrete statistics) and a column without a test (NaN observed) are ranked by the same rule
    tied = rng.integers(0, 4, size=(99, 4)).astype(float)
    obs_t = np.array([3.0, 2.0, 1.0, np.nan])
    got = minp_fwer(tied, obs_t)
    assert np.isnan(got[3])
    np.testing.assert_allclose(got[:3], _brute_minp(tied[:, :3], obs_t[:3]), rtol=1e-12)


def test_minp_fwer_reproducer_is_not_anticonservative() -> None:
    """Issue 15 reproducer: one observed statistic beyond every permuted one, 10 tests, B = 199.

    The min over 10 columns reaches 1/200 in about 10 of the 200 configurations, so the family-wise
    p-value is about 0.05; the defective rule gave 1/200 = 0.005."""
    rng = np.random.default_rng(0)
    null = rng.random((199, 10))
    obs = rng.random(10)
    obs[0] = 2.0
    got = minp_fwer(null, obs)
    np.testing.assert_allclose(got, _brute_minp(null, obs), rtol=1e-12)
    assert 0.02 < got[0] < 0.1


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_minp_fwer_size_on_exchangeable_configurations(alpha) -> None:
    """Exchangeable configurations (the observed one is row 0 of B + 1 correlated draws), J = 10, B = 199:
    P(min_j p_fwer_j <= alpha) <= alpha (1500 replications, 3 SE). The defective rule exceeds alpha here."""
    rng = np.random.default_rng(40 + int(alpha * 100))
    reps, j, b = 1500, 10, 199
    cov = 0.6 + 0.4 * np.eye(j)
    chol = np.linalg.cholesky(cov)
    hits = 0
    for _ in range(reps):
        configs = rng.standard_normal((b + 1, j)) @ chol.T
        hits += np.min(minp_fwer(configs[1:], configs[0])) <= alpha
    assert hits / reps <= alpha + band(alpha, reps)


def test_holm_and_bh_match_statsmodels() -> None:
    """Holm and BH computed directly (numpy), with NaN rows left out, agree with statsmodels."""
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(41)
    for m in (1, 2, 5, 17):
        p = np.round(rng.random(m) ** 2, 2)  # ties included
        p[rng.random(m) < 0.2] = np.nan
        ok = ~np.isnan(p)
        for ours, method in ((holm_adjust(p), "holm"), (bh_adjust(p), "fdr_bh")):
            assert np.isnan(ours[~ok]).all()
            if ok.any():
                np.testing.assert_allclose(ours[ok], multipletests(p[ok], method=method)[1], rtol=1e-12)


def test_nco_test_never_calls_gc_collect(monkeypatch) -> None:
    """statsmodels' multipletests calls gc.collect() on every call (a tiny nco_test was 17x slower for it)."""
    import gc

    def boom(*_a, **_k):
        raise AssertionError("gc.collect() called")

    log = ds.simulate_nco_log(n_per_arm=30, n_nco=3, seed=2)
    monkeypatch.setattr(gc, "collect", boom)
    ds.nco_test(log, n_perm=99, n_boot=0)


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
    """The count-table engine now permutes within matched pairs too; general strata still need the exact engine."""
    log = ds.simulate_nco_log(n_per_arm=30, n_nco=1, paired=True, seed=32)
    ds.nco_test(log, strata="persona_id", engine="counts", n_perm=99, n_boot=0)  # pairs: supported
    with pytest.raises(InvalidArgumentError, match="engine='counts' cannot be used here: with strata='iteration' it "
                                                   "needs matched pairs"):
        ds.nco_test(log, strata="iteration", engine="counts")
    with pytest.raises(InvalidArgumentError, match="engine='counts' cannot be used here: it needs sampled answers"):
        ds.nco_test(ds.simulate_nco_log(n_per_arm=20, n_nco=1, mode="dist", seed=3), mode="dist", engine="counts")
    with pytest.raises(InvalidArgumentError, match="engine must be one of"):
        ds.nco_test(log, engine="fast")


# ----------------------------------------------------------------------------- issue 15: family-wise size, both engines
def _correlated(rng, n, q, j, noise=0.3):
    k = len(q)
    base = rng.choice(k, size=n, p=q)
    cols = [base] + [np.where(rng.random(n) < noise, rng.choice(k, size=n, p=q), base) for _ in range(j - 1)]
    return np.stack(cols, axis=1)


def _paired_codes(rng, n, q, j):
    k = len(q)
    cum = np.cumsum(rng.dirichlet(2.0 * k * np.asarray(q), size=n), axis=1)

    def arm():
        base = (rng.random((n, 1)) > cum).sum(axis=1).clip(max=k - 1)
        cols = [base]
        for _ in range(1, j):
            redraw = (rng.random((n, 1)) > cum).sum(axis=1).clip(max=k - 1)
            cols.append(np.where(rng.random(n) < 0.3, redraw, base))
        return np.stack(cols, axis=1)

    return arm(), arm()


def _family_rate(outs, alpha=0.05):
    return float(np.mean([np.nanmin([r["p_value_fwer"] for r in o.rows]) <= alpha for o in outs]))


@pytest.mark.parametrize("design", ["independent", "paired", "missing"])
def test_exact_engine_fwer_is_the_brute_force_min_p(design) -> None:
    """The exact engine's p_value_fwer is the single-step min-p of its own permutations (all B + 1 ranked alike);
    an NCO without answers in one arm takes no part."""
    rng = np.random.default_rng({"independent": 54, "paired": 55, "missing": 56}[design])
    if design == "paired":
        c1, c0 = _paired_codes(rng, 30, np.full(3, 1 / 3), 4)
        pdata = pair_from_codes(c1, c0, 3, strata1=np.arange(30), strata0=np.arange(30))
    else:
        c1, c0 = _correlated(rng, 30, [0.5, 0.3, 0.2], 4), _correlated(rng, 25, [0.5, 0.3, 0.2], 4)
        if design == "missing":
            c1[:, 2] = -1
        pdata = pair_from_codes(c1, c0, 3)
    out = analyse_pair(pdata, n_perm=99, n_boot=0, conf_level=0.95, rng=rng)
    got = np.array([r["p_value_fwer"] for r in out.rows])
    ok = np.isfinite(out.observed)
    assert ok.sum() == (3 if design == "missing" else 4)
    np.testing.assert_allclose(got[ok], _brute_minp(np.where(np.isnan(out.null[:, ok]), -np.inf, out.null[:, ok]),
                                                    out.observed[ok]), rtol=1e-12)
    assert np.isnan(got[~ok]).all()


@pytest.mark.parametrize("design", ["independent", "paired", "counts"])
def test_familywise_size_ten_independent_ncos_few_permutations(design) -> None:
    """J = 10 NCOs, B = 39, 120 replications under H0: FWER <= .05 (+ 3 SE), both engines.

    The defective rule rejected whenever the observed configuration was the largest of one column
    (about 1 - (39/40)^10 = .22 of the time)."""
    from driftstats.log.simlog import ItemInfo
    from driftstats.nco._engine_counts import analyse_counts

    rng = np.random.default_rng({"independent": 57, "paired": 58, "counts": 59}[design])
    reps, j = 120, 10
    items = [ItemInfo(f"n{i}", None, ("a", "b", "c"), "nominal", "nco", None) for i in range(j)]
    arm = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    outs = []
    for _ in range(reps):
        if design == "independent":
            outs.append(analyse_pair(pair_from_codes(rng.integers(0, 3, (30, j)), rng.integers(0, 3, (35, j)), 3),
                                     n_perm=39, n_boot=0, conf_level=0.95, rng=rng))
        elif design == "paired":  # every NCO with its own persona-specific distributions
            c1, c0 = (np.hstack(x) for x in zip(*[_paired_codes(rng, 30, np.full(3, 1 / 3), 1) for _ in range(j)],
                                                 strict=True))
            outs.append(analyse_pair(pair_from_codes(c1, c0, 3, strata1=np.arange(30), strata0=np.arange(30)),
                                     n_perm=39, n_boot=0, conf_level=0.95, rng=rng))
        else:
            outs.append(analyse_counts(rng.integers(0, 3, (200, j)), arm, items, {}, ("t", "c"), n_perm=39,
                                       n_boot=0, conf_level=0.95, rng=rng))
    assert _family_rate(outs) <= 0.05 + band(0.05, reps)


@pytest.mark.slow
def test_familywise_size_grid_slow() -> None:
    """The bench/nco_fwer_size.py grid at 1000 replications: every design within 3 SE of (or below) alpha."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("nco_fwer_size", Path(__file__).parents[1] / "bench" / "nco_fwer_size.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for rate05, rate01 in mod.run_grid(1000):
        assert rate05 <= 0.05 + band(0.05, 1000)
        assert rate01 <= 0.01 + band(0.01, 1000)


# ----------------------------------------------------------------------------- issue 16 / 24: rows that cannot be tested
def _log_without(log, item, arm, *, invalid=False):
    a = log.to_pandas()
    sel = (a["item"] == item) & (a["arm"] == arm)
    if invalid:
        a.loc[sel, "valid"] = False
    else:
        a = a[~sel]
    return ds.read_log(a, items=log.items, arms=log.arms)


@pytest.mark.parametrize(("engine", "n_boot"), [("exact", 0), ("exact", 50), ("counts", 0), ("counts", 50)])
def test_nco_without_valid_answers_in_one_arm_is_not_testable(engine, n_boot) -> None:
    """Issue 16: estimate NaN but p = fwer = 1/(B+1) and drifted() listed it. Now: NaN tests, a note, no adjustment."""
    import warnings

    log = _log_without(ds.simulate_nco_log(n_per_arm=60, n_nco=3, seed=60), "nco_2", "treatment", invalid=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ds.nco_test(log, n_perm=199, n_boot=n_boot, engine=engine)
    for adjust in ("fwer", "holm", "bh", "none"):
        assert "nco_2" not in set(res.drifted(level=1.0, adjust=adjust)["term"]), adjust
    t = res.tidy().set_index("term")
    row = t.loc["nco_2"]
    for col in ("estimate", "statistic", "p_value", "p_value_fwer", "p_value_holm", "p_value_bh", "conf_low",
                "conf_high", "conf_low_approx", "excess"):
        assert np.isnan(row[col]), col
    assert row["note"] == "not testable: arm 'treatment' has no valid answers to this NCO"
    ok = t.drop(index="nco_2")
    assert ok["note"].isna().all()
    # the adjustments run over the two testable rows only
    np.testing.assert_allclose(ok["p_value_holm"], holm_adjust(ok["p_value"].to_numpy()))
    assert res.glance()["n_tests"].iloc[0] == 2
    assert any("invalid answer row(s) left out" in d for d in res.diagnostics)
    assert [str(w.message) for w in caught if w.category is InvalidAnswersWarning] == [
        "nco_test: 60 invalid answer row(s) (valid = false) of 360 in mode 'sample' were left out of the drift tests."]
    assert all(w.category in (InvalidAnswersWarning, MonteCarloErrorWarning) for w in caught)


@pytest.mark.filterwarnings("ignore::driftstats.errors.MonteCarloErrorWarning")  # p-values here are incidental
def test_missing_arm_or_mode_gives_not_testable_rows_not_index_errors() -> None:
    """Issue 24: an NCO asked in one arm only, or only in mode 'dist', raised IndexError inside nco_test."""
    base = ds.simulate_nco_log(n_per_arm=40, n_nco=2, n_numeric=1, paired=True, seed=61)
    one_arm = _log_without(base, "nco_2", "treatment")
    for kwargs in ({}, {"strata": None}, {"strata": None, "engine": "counts", "nco": ["nco_1", "nco_2"]},
                   {"engine": "counts", "nco": ["nco_1", "nco_2"]}):
        t = ds.nco_test(one_arm, n_perm=99, n_boot=30, **kwargs).tidy().set_index("term")
        assert t.loc["nco_2", "note"].startswith("not testable: arm 'treatment'"), kwargs
        assert np.isnan(t.loc["nco_2", "p_value"])
        assert t.loc["nco_1", "p_value"] > 0
    num_one_arm = ds.nco_test(_log_without(base, "stated_age_1", "control"), n_perm=99, n_boot=0).tidy()
    assert num_one_arm.set_index("term").loc["stated_age_1", "note"].startswith("not testable: arm 'control'")
    # an NCO answered only in mode 'dist' while mode='sample' is tested
    a = base.to_pandas()
    dist = ds.simulate_nco_log(n_per_arm=40, n_nco=1, mode="dist", seed=62).to_pandas().assign(item="nco_3")
    items = pd.concat([base.items, base.items.iloc[:1].assign(item="nco_3")])
    log = ds.read_log(pd.concat([a, dist]), items=items, arms=base.arms)
    t = ds.nco_test(log, n_perm=99, n_boot=30, strata=None).tidy().set_index("term")
    assert t.loc["nco_3", "note"] == "not testable: arms 'treatment' and 'control' have no valid answers to this NCO"
    # a whole arm missing from one iteration: rows for every NCO of that group, with the reason
    two = ds.simulate_nco_log(n_per_arm=30, n_nco=2, iterations=2, seed=63).to_pandas()
    two = two[~((two["iteration"] == 1) & (two["arm"] == "treatment"))]
    res = ds.nco_test(ds.read_log(two, items=log.items.iloc[:2], arms=base.arms), n_perm=99, n_boot=0)
    it1 = res.tidy().query("iteration == 1")
    assert len(it1) == 2
    assert (it1["note"] == "not testable: arm 'treatment' has no valid answers in this group").all()


def test_nothing_testable_raises_insufficient_data() -> None:
    log = _log_without(ds.simulate_nco_log(n_per_arm=20, n_nco=1, seed=64), "nco_1", "treatment", invalid=True)
    with pytest.warns(InvalidAnswersWarning), pytest.raises(InsufficientDataError, match=r"no NCO can be tested in mode 'sample'.*arm 'treatment'"):
        ds.nco_test(log, n_perm=99)


@pytest.mark.filterwarnings("ignore::driftstats.errors.MonteCarloErrorWarning")
def test_audit_survives_an_nco_asked_in_one_arm_only() -> None:
    import warnings

    log = _log_without(ds.simulate_nco_log(n_per_arm=20, n_nco=2, seed=65), "nco_2", "treatment")
    with warnings.catch_warnings():
        # equivalence_test (another module) averages the empty arm of such an NCO: numpy warns, its row is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        a = ds.audit(log, n_perm=99, n_boot=0)
    assert "nco" in a.results
    assert a.results["nco"].tidy().set_index("term").loc["nco_2", "note"].startswith("not testable")


# ----------------------------------------------------------------------------- issue 21: exact ties
@pytest.mark.parametrize(("seed", "missing"), [(28, False), (43, True)])
def test_exact_engine_ties_agree_with_scipy_exact_permutation_test(seed, missing) -> None:
    """Tie-heavy data (9 + 8 units, K = 3): the engine's p against SciPy's exact p (all 24310 splits), within
    4 Monte Carlo SEs at B = 9999. float32 arithmetic broke ties: p was .064 and .206 too small."""
    rng = np.random.default_rng(seed)
    if missing:  # some units skipped the NCO (-1): the number of answers per arm varies over relabellings
        a = rng.choice([-1, 0, 1, 2], 9, p=[0.2, 0.5, 0.2, 0.1])
        b = rng.choice([-1, 0, 1, 2], 8, p=[0.2, 0.3, 0.3, 0.2])
    else:
        a = rng.choice(3, 9, p=[0.6, 0.3, 0.1])
        b = rng.choice(3, 8, p=[0.4, 0.4, 0.2])

    def tv(x, y, axis):
        with np.errstate(invalid="ignore", divide="ignore"):
            px, py = (x >= 0).sum(axis=axis), (y >= 0).sum(axis=axis)
            return 0.5 * sum(np.abs((x == k).sum(axis=axis) / px - (y == k).sum(axis=axis) / py) for k in range(3))

    ref = stats.permutation_test((a, b), tv, permutation_type="independent", n_resamples=np.inf,
                                 alternative="greater", vectorized=True)
    out = analyse_pair(pair_from_codes(a, b, 3), n_perm=9999, n_boot=0, conf_level=0.95, rng=rng)
    assert out.rows[0]["estimate"] == pytest.approx(ref.statistic, rel=1e-15)
    se = np.sqrt(ref.pvalue * (1 - ref.pvalue) / 9999)
    assert abs(out.rows[0]["p_value"] - ref.pvalue) < 4 * se


def test_equal_tvds_are_equal_floats() -> None:
    """Labellings with the same TVD give the same float, bit for bit: the null takes exactly as many
    distinct values as the exact rational TVDs of every split of the data (enumerated with Fractions)."""
    import itertools
    from fractions import Fraction

    codes = np.array([0, 0, 1, 1, 2, 2, 0, 1, -1, 2, 0, -1])
    k, n1 = 3, 6
    exact = set()
    for arm1 in itertools.combinations(range(codes.size), n1):
        m = np.zeros(codes.size, bool)
        m[list(arm1)] = True
        a, b = codes[m & (codes >= 0)], codes[~m & (codes >= 0)]
        if a.size and b.size:
            exact.add(sum(abs(Fraction(int((a == j).sum()), a.size) - Fraction(int((b == j).sum()), b.size))
                          for j in range(k)) / 2)
    out = analyse_pair(pair_from_codes(codes[:n1], codes[n1:], k), n_perm=20000, n_boot=0, conf_level=0.95,
                       rng=np.random.default_rng(66))
    null = out.null[:, 0]
    got = set(null[np.isfinite(null)].tolist())
    assert got == {float(f) for f in exact}


# ----------------------------------------------------------------------------- issue 30: replicate logs
def test_replicate_logs_count_engine_agrees_with_exact_engine() -> None:
    """R = 3 replicates: the count-table engine (multivariate hypergeometric over answer patterns; binomial
    within pairs) gives the exact engine's estimates and intervals, and p-values within Monte Carlo error."""
    for paired in (False, True):
        log = ds.simulate_nco_log(n_per_arm=300, tvd=[0.0, 0.08], n_nco=2, replicates=3, paired=paired, seed=67)
        a = ds.nco_test(log, engine="exact", n_perm=1999, n_boot=0).tidy().set_index("term")
        b = ds.nco_test(log, engine="counts", n_perm=1999, n_boot=0).tidy().set_index("term")
        for col in ("estimate", "statistic", "mean_shift", "mean_shift_low"):
            np.testing.assert_allclose(a[col], b[col], rtol=1e-12, err_msg=f"{col} paired={paired}")
        for col in ("conf_low", "conf_high"):  # the score band's bounds are roots found numerically on each path
            np.testing.assert_allclose(a[col], b[col], rtol=1e-7, atol=1e-9, err_msg=f"{col} paired={paired}")
        mc = 4 * np.sqrt(0.25 / 1999) * np.sqrt(2)
        assert (abs(a["p_value"] - b["p_value"]) < mc).all()
        assert (abs(a["null_mean"] - b["null_mean"]) < 0.003).all()


def test_replicate_logs_count_engine_size() -> None:
    """Marginal size of the pattern engine on replicate answers (R = 4, K = 3), 250 replications."""
    from driftstats.log.simlog import ItemInfo
    from driftstats.nco._engine_counts import analyse_counts

    rng = np.random.default_rng(68)
    pats = np.array([[a, b, 4 - a - b] for a in range(5) for b in range(5 - a)])  # counts of 4 replicates
    lookup = np.full(25, -1)
    lookup[pats[:, 0] * 5 + pats[:, 1]] = np.arange(len(pats))
    items = [ItemInfo("n0", None, ("a", "b", "c"), "nominal", "nco", None)]
    arm = np.zeros(120, bool)
    arm[:50] = True
    reps, hit = 250, 0
    for _ in range(reps):
        q = rng.dirichlet(np.ones(3), size=120)  # unit-specific distributions, the same law in both arms
        draws = (rng.random((120, 4, 1)) > np.cumsum(q, axis=1)[:, None, :]).sum(axis=2)  # 4 replicates per unit
        counts = np.stack([(draws == k).sum(axis=1) for k in range(3)], axis=1)
        ids = lookup[counts[:, 0] * 5 + counts[:, 1]][:, None]
        ids[rng.random(120) < 0.1] = -1  # some units skipped the NCO
        out = analyse_counts(ids, arm, items, {}, ("t", "c"), n_perm=199, n_boot=0, conf_level=0.95, rng=rng,
                             patterns=[pats])
        hit += out.rows[0]["p_value"] <= 0.05
    assert abs(hit / reps - 0.05) <= band(0.05, reps)


def test_auto_engine_takes_replicate_logs_to_the_count_engine(monkeypatch) -> None:
    import driftstats.nco.drift as drift

    log = ds.simulate_nco_log(n_per_arm=50, n_nco=2, replicates=2, seed=69)
    monkeypatch.setattr(drift, "COUNTS_THRESHOLD", 1.0)
    res = ds.nco_test(log, n_perm=99, n_boot=0)
    assert res.diagnostics[0].startswith("count-table engine")


# ----------------------------------------------------------------------------- issue 9: defaults and structure
def test_nco_test_defaults_seed_strata_and_resamples() -> None:
    import inspect

    from driftstats._args import DEFAULT_N_BOOT, DEFAULT_N_PERM, DEFAULT_SEED

    params = inspect.signature(ds.nco_test).parameters
    assert params["seed"].default == DEFAULT_SEED
    assert params["n_boot"].default == DEFAULT_N_BOOT
    assert params["n_perm"].default == DEFAULT_N_PERM
    assert params["strata"].default == "auto"
    log = ds.simulate_nco_log(n_per_arm=40, tvd=0.1, n_nco=2, seed=70)
    a = ds.nco_test(log, n_perm=199, n_boot=100)
    b = ds.nco_test(log, n_perm=199, n_boot=100)
    assert a.tidy().equals(b.tidy())
    assert a.glance()["seed"].iloc[0] == 0
    assert a.provenance.seed == 0
    assert pd.isna(ds.nco_test(log, n_perm=199, n_boot=0, seed=None).glance()["seed"].iloc[0])
    assert pd.isna(a.glance()["strata"].iloc[0])  # an unpaired design is not paired


def test_strata_auto_pairs_a_paired_log_and_none_opts_out() -> None:
    log = ds.simulate_nco_log(n_per_arm=60, tvd=0.1, n_nco=2, paired=True, seed=71)
    auto = ds.nco_test(log, n_perm=199, n_boot=0)
    assert auto.glance()["strata"].iloc[0] == "persona_id"
    assert any("paired design detected" in d for d in auto.diagnostics)
    assert any("within matched pairs" in d for d in auto.diagnostics)
    explicit = ds.nco_test(log, n_perm=199, n_boot=0, strata="persona_id")
    assert auto.tidy().equals(explicit.tidy())
    off = ds.nco_test(log, n_perm=199, n_boot=0, strata=None)
    assert pd.isna(off.glance()["strata"].iloc[0])
    assert any("strata=None: the test is unpaired" in d for d in off.diagnostics)


def test_unknown_by_column_is_an_error() -> None:
    log = ds.simulate_nco_log(n_per_arm=20, n_nco=1, seed=72)
    with pytest.raises(InvalidArgumentError, match=r"by=\['wave'\] names \['wave'\]"):
        ds.nco_test(log, by="wave")
    with pytest.raises(InvalidArgumentError, match=r"by=\['wave'\]"):
        ds.nco_test(log, by="wave", engine="counts")


def test_provenance_carries_the_data_fingerprint() -> None:
    log = ds.simulate_nco_log(n_per_arm=20, n_nco=1, seed=73)
    prov = ds.nco_test(log, n_perm=99, n_boot=0).provenance.as_dict()
    assert prov["data_sha256"] == log.fingerprint()
    assert prov["call"] == "nco_test"
    assert prov["seed"] == 0


def test_monte_carlo_error_warnings() -> None:
    from driftstats.nco.drift import _monte_carlo_issues

    # a p-value within 2 MC SEs of the level, and one far from it
    close = _monte_carlo_issues([{"term": "a", "p_value": 0.3, "p_value_fwer": 0.055}], 499, 0.05, np.inf)
    assert len(close) == 1
    assert "within 2 Monte Carlo SEs of the level 0.05" in close[0]
    assert _monte_carlo_issues([{"term": "a", "p_value": 0.055, "p_value_fwer": 0.4}], 499, 0.05, np.inf) == []
    log = ds.simulate_nco_log(n_per_arm=30, n_nco=1, tvd=0.3, seed=74)
    with pytest.warns(MonteCarloErrorWarning, match="n_perm=49 cannot reach the level 0.01"):
        res = ds.nco_test(log, n_perm=49, n_boot=0, conf_level=0.99)
    assert any("cannot reach the level" in d for d in res.diagnostics)
    tiny = ds.simulate_nco_log(n_per_arm=3, n_nco=1, paired=True, seed=75)
    with pytest.warns(MonteCarloErrorWarning, match="only 8 distinct relabellings"):
        ds.nco_test(tiny, n_perm=99, n_boot=0)


def test_no_sql_in_the_statistics_modules() -> None:
    import inspect

    import driftstats.nco._data as data_mod
    import driftstats.nco.drift as drift_mod

    for mod in (data_mod, drift_mod):
        src = inspect.getsource(mod)
        assert "SELECT" not in src, mod.__name__
        assert ".execute(" not in src, mod.__name__


# ----------------------------------------------------------------------------- the valid interval comes from tvd_ci
def test_both_engines_take_the_interval_from_tvd_ci(monkeypatch) -> None:
    """Every row's conf_low / conf_high is what driftstats._kernels.tvd_ci returns (so its method reaches every row)."""
    from driftstats._kernels import tvd_ci

    calls = []
    monkeypatch.setattr(tvd_ci, "tvd_conf_int", lambda x1, x0, c, paired=False: calls.append(("u", paired)) or (0.11, 0.22))
    monkeypatch.setattr(tvd_ci, "tvd_conf_int_counts", lambda c1, c0, c: calls.append(("c", False)) or (0.33, 0.44))
    log = ds.simulate_nco_log(n_per_arm=40, n_nco=2, seed=76)
    paired = ds.simulate_nco_log(n_per_arm=40, n_nco=2, paired=True, seed=76)
    reps = ds.simulate_nco_log(n_per_arm=40, n_nco=2, replicates=2, seed=76)
    for lg, engine, expect, kind in ((log, "exact", (0.11, 0.22), ("u", False)), (paired, "exact", (0.11, 0.22), ("u", True)),
                                     (log, "counts", (0.33, 0.44), ("c", False)),
                                     (paired, "counts", (0.11, 0.22), ("u", True)),
                                     (reps, "counts", (0.11, 0.22), ("u", False))):
        calls.clear()
        t = ds.nco_test(lg, n_perm=99, n_boot=0, engine=engine).tidy()
        assert (t["conf_low"] == expect[0]).all(), engine
        assert (t["conf_high"] == expect[1]).all(), engine
        assert calls == [kind, kind]


def test_interval_equals_tvd_conf_int_of_the_unit_vectors() -> None:
    from driftstats._kernels.tvd_ci import tvd_conf_int, tvd_conf_int_counts

    rng = np.random.default_rng(77)
    c1, c0 = rng.integers(0, 4, 80), rng.integers(0, 4, 70)
    row = analyse_pair(pair_from_codes(c1, c0, 4), n_perm=99, n_boot=0, conf_level=0.9, rng=rng).rows[0]
    eye = np.eye(4)
    assert (row["conf_low"], row["conf_high"]) == tvd_conf_int(eye[c1], eye[c0], 0.9)
    assert (row["conf_low"], row["conf_high"]) == pytest.approx(
        tvd_conf_int_counts(np.bincount(c1, minlength=4), np.bincount(c0, minlength=4), 0.9), rel=1e-12)


def test_identical_calls_give_identical_bits_in_distribution_mode() -> None:
    """The unit rows come back in a fixed order, so float sums and permutations repeat exactly (fuzzing
    found last-bit differences between two identical calls when DuckDB returned groups in another order)."""
    log = ds.simulate_nco_log(n_per_arm=40, mode="dist", seed=3)
    runs = [ds.nco_test(log, mode="dist", n_perm=99, engine="exact").tidy() for _ in range(8)]
    for t in runs[1:]:
        pd.testing.assert_frame_equal(t, runs[0], check_exact=True)


def test_unit_rows_come_back_in_a_fixed_order() -> None:
    """The query layer orders the unit rows (arm, unit, item, level), whatever order DuckDB's hash aggregate uses."""
    from driftstats.log.query.nco import unit_answers, unit_patterns

    log = ds.simulate_nco_log(n_per_arm=300, mode="dist", seed=3)
    rows = unit_answers(log, log.item_names("nco"), log.arm_names, by=(), mode="dist")
    key = rows[["arm", "unit_id", "item", "code"]]
    assert key.equals(key.sort_values(["arm", "unit_id", "item", "code"], kind="stable").reset_index(drop=True))
    log = ds.simulate_nco_log(n_per_arm=300, seed=3)
    pats = unit_patterns(log, log.item_names("nco"), log.arm_names, by=(), base=None)
    assert pats["arm"].is_monotonic_increasing
