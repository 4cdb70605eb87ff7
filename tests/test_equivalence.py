"""Equivalence tests and their power: references, exact and simulated size at the margin, the verb's contract.

Tolerances: the score statistics are compared with a first-principles golden file (restricted
likelihood maximised numerically) at rtol 1e-6, the optimiser's precision. Rejection rates from
R replications are checked within 3 binomial SEs; exact sizes (enumeration of every table)
without slack.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import driftstats as ds
from driftstats._kernels.equiv import iut_tost, projection_decision, projection_equivalence
from driftstats._kernels.tvd_ci import (
    event_stats,
    event_stats_counts,
    score_statistic,
    tvd_conf_int,
)
from driftstats.errors import InvalidAnswersWarning, InvalidArgumentError

REF = Path(__file__).parent / "reference" / "equivalence" / "score_tost.csv"
MC_SIGMAS = 3.0
SPARSE5 = np.array([0.55, 0.3, 0.1, 0.05, 0.0])


def band(p: float, reps: int) -> float:
    return MC_SIGMAS * math.sqrt(p * (1 - p) / reps)


def one_hot(codes, k: int) -> np.ndarray:
    return np.eye(k)[np.asarray(codes, dtype=int)]


def paired_units(b: int, c: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs of one binary item: ``b`` with the event in arm 1 only, ``c`` in arm 0 only."""
    first = [0] * b + [1] * c + [1] * (n - b - c)
    second = [1] * b + [0] * c + [1] * (n - b - c)
    return one_hot(first, 2), one_hot(second, 2)


def log_from(answers: dict[str, list[str]], options=("L1", "L2"), **extra_cols) -> ds.SimLog:
    rows = []
    for arm, resp in answers.items():
        for i, r in enumerate(resp):
            rows.append({"unit_id": f"{arm}-{i}", "arm": arm, "item": "nco", "response": r,
                         **{k: v(arm, i) for k, v in extra_cols.items()}})
    items = pd.DataFrame([{"item": "nco", "options": list(options), "scale": "nominal", "role": "nco"}])
    arms = pd.DataFrame({"arm": list(answers), "kind": ["control"] + ["treatment"] * (len(answers) - 1)})
    return ds.read_log(pd.DataFrame(rows), items=items, arms=arms)


# ----------------------------------------------------------------------------- references
def test_tost_pieces_match_first_principles_golden() -> None:
    """Per-level score statistics (no continuity correction) against numerically maximised likelihoods.

    statsmodels' tost_proportions_2indep(method="score") is not the reference here: its MN cubic
    has count0 where nobs0 belongs (statsmodels issue 10269); see test_intervals for the cases
    where the two agree.
    """
    ref = pd.read_csv(REF, comment="#")
    assert len(ref) >= 40
    for r in ref.itertuples():
        if r.design == "independent":
            st = event_stats_counts(np.array([r.a, r.b - r.a], float), np.array([r.c, r.d - r.c], float))
        else:
            st = event_stats(*paired_units(int(r.a), int(r.b), int(r.c)), paired=True)
        st = replace(st, correction=False)
        s = st.singletons()
        assert score_statistic(s, r.margin)[0] == pytest.approx(r.z_upper, rel=1e-6, abs=1e-9)
        assert score_statistic(s, -r.margin)[0] == pytest.approx(r.z_lower, rel=1e-6, abs=1e-9)
        assert iut_tost(st, r.margin)[0] == pytest.approx(r.p_tost, rel=1e-6, abs=1e-12)  # K = 2: margin 2m/2


def test_projection_p_value_and_bound_agree_and_match_the_interval() -> None:
    """p < alpha exactly when the bound is below the margin; the bound is the valid interval's, at 1 - 2 alpha."""
    rng = np.random.default_rng(3)
    for k in (2, 4, 12):
        for n in (40, 400):
            q = rng.dirichlet(np.ones(k))
            size = 8 if k > 10 else 30
            c1, c0 = rng.multinomial(n, q, size=size).astype(float), rng.multinomial(n, q, size=size).astype(float)
            st = event_stats_counts(c1, c0)
            upper, p, _ = projection_equivalence(st, 0.15, 0.95)
            np.testing.assert_array_equal(upper < 0.15, p < 0.05)
            np.testing.assert_array_equal(projection_decision(st, 0.15, 0.95), p < 0.05)
            for i in range(2):
                x1 = np.repeat(np.eye(k), c1[i].astype(int), axis=0)
                x0 = np.repeat(np.eye(k), c0[i].astype(int), axis=0)
                assert upper[i] == pytest.approx(tvd_conf_int(x1, x0, 0.90)[1], abs=1e-9)


# ----------------------------------------------------------------------------- issue 17 reproducers
def test_rare_level_reproducer_is_not_declared_equivalent() -> None:
    """100 x L1 vs 98 x L1 + 2 x L2 at margin 0.05: the Wald IUT said equivalent (p = .016)."""
    log = log_from({"control": ["L1"] * 100, "treatment": ["L1"] * 98 + ["L2"] * 2})
    t = ds.equivalence_test(log, margin=0.05, by=(), strata=None).tidy()
    assert not t["equivalent"].any()
    assert (t["p_value_equiv"] > 0.05).all()


def test_identical_answers_same_bound_as_the_interval() -> None:
    """50 + 50 identical answers: the interval was [0, 0] while the equivalence bound was .071; now one bound."""
    log = log_from({"control": ["L1"] * 50, "treatment": ["L1"] * 50})
    t = ds.equivalence_test(log, margin=0.05, by=(), strata=None, conf_level=0.95).tidy()
    x = np.tile([1.0, 0.0], (50, 1))
    _, hi = tvd_conf_int(x, x, 0.90)
    assert t["upper_bound"].iloc[0] == pytest.approx(hi, abs=1e-12)
    assert hi > 0.05
    assert not t["equivalent"].any()


@pytest.mark.parametrize("n", [50, 100, 200])
def test_exact_size_at_the_margin_with_an_absent_level(n) -> None:
    """q0 = (1, 0), q1 = (.95, .05), margin .05: exact rejection rate of both methods (Wald: .072/.117/.119)."""
    x = np.arange(n + 1)
    st = event_stats_counts(np.stack([n - x, x], axis=1), np.tile([n, 0], (n + 1, 1)))
    pmf = stats.binom.pmf(x, n, 0.05)
    assert (pmf * (iut_tost(st, 0.05)[0] < 0.05)).sum() <= 0.05
    assert (pmf * projection_decision(st, 0.05, 0.95)).sum() <= 0.05


def test_exact_size_at_the_margin_two_levels_grid() -> None:
    """K = 2 (both methods coincide with the TOST of d): exact size over every table, at TV = margin."""
    worst = 0.0
    for n in (30, 100):
        x = np.arange(n + 1)
        a, b = np.meshgrid(x, x, indexing="ij")
        st = event_stats_counts(np.stack([n - a, a], -1).reshape(-1, 2), np.stack([n - b, b], -1).reshape(-1, 2))
        for margin in (0.05, 0.1):
            rej_iut = (iut_tost(st, margin)[0] < 0.05).reshape(n + 1, n + 1)
            rej_proj = projection_decision(st, margin, 0.95).reshape(n + 1, n + 1)
            np.testing.assert_array_equal(rej_iut, rej_proj)
            for p0 in (0.0, 0.01, 0.1, 0.45):
                w = np.outer(stats.binom.pmf(x, n, p0 + margin), stats.binom.pmf(x, n, p0))
                worst = max(worst, float((w * rej_iut).sum()))
    assert worst <= 0.05


@pytest.mark.parametrize("base", ["uniform", "sparse"])
def test_size_at_the_margin_five_levels(base) -> None:
    """K = 5, TV = margin = .1, n = 200: both methods reject at most alpha (20000 multinomial draws)."""
    rng = np.random.default_rng(17)
    q0 = np.full(5, 0.2) if base == "uniform" else SPARSE5
    j = 0 if base == "uniform" else 4
    c = 0.1 / (1 - q0[j])
    q1 = (1 - c) * q0 + c * np.eye(5)[j]
    draws = 20000
    st = event_stats_counts(rng.multinomial(200, q1, size=draws), rng.multinomial(200, q0, size=draws))
    assert (iut_tost(st, 0.1)[0] < 0.05).mean() <= 0.05 + band(0.05, draws)
    assert projection_decision(st, 0.1, 0.95).mean() <= 0.05 + band(0.05, draws)


def test_size_at_the_margin_matched_pairs() -> None:
    """Pairs: one binary item, P(arm 1 only) = .06, P(arm 0 only) = .01 -> d = .05 = margin; Tango TOST size."""
    rng = np.random.default_rng(18)
    n, reps, hits = 100, 600, 0
    for _ in range(reps):
        cell = rng.choice(3, size=n, p=[0.06, 0.01, 0.93])
        st = event_stats(*paired_units(int((cell == 0).sum()), int((cell == 1).sum()), n), paired=True)
        hits += iut_tost(st, 0.05)[0] < 0.05
    assert hits / reps <= 0.05 + band(0.05, reps)


# ----------------------------------------------------------------------------- the verb
def test_strata_auto_pairs_on_persona_and_says_so() -> None:
    log = ds.simulate_nco_log(n_per_arm=200, tvd=0.0, n_nco=1, n_levels=3, paired=True, seed=4)
    res = ds.equivalence_test(log, margin=0.1)
    assert res.glance()["strata"].iloc[0] == "persona_id"
    assert any("paired design detected" in d for d in res.diagnostics)
    assert any("matched pairs" in d for d in res.diagnostics)
    off = ds.equivalence_test(log, margin=0.1, strata=None)
    assert off.glance()["strata"].isna().all()
    assert not any("matched pairs" in d for d in off.diagnostics)
    # the paired analysis uses the within-persona correlation: a tighter bound on the same data
    assert res.tidy()["upper_bound"].iloc[0] < off.tidy()["upper_bound"].iloc[0]


def test_unknown_by_column_is_an_error() -> None:
    log = ds.simulate_nco_log(n_per_arm=30, n_nco=1, seed=5)
    with pytest.raises(InvalidArgumentError, match=r"by=\['wave'\] names \['wave'\]"):
        ds.equivalence_test(log, margin=0.1, by="wave")


def test_provenance_carries_the_data_fingerprint() -> None:
    log = ds.simulate_nco_log(n_per_arm=30, n_nco=1, seed=6)
    res = ds.equivalence_test(log, margin=0.1)
    assert res.provenance.call == "equivalence_test"
    assert dict(res.provenance.data)["data_sha256"] == log.fingerprint()


def test_untestable_rows_carry_a_note_and_no_decision() -> None:
    """A group where the treatment arm never answered: rows with a note, NA decision, not counted as tests."""
    rows = []
    for wave in ("w1", "w2"):
        for arm in ("control", "treatment"):
            if wave == "w2" and arm == "treatment":
                continue
            for i in range(60):
                rows.append({"unit_id": f"{wave}-{arm}-{i}", "arm": arm, "item": "nco", "iteration": int(wave[1]),
                             "response": "L1" if i % 3 else "L2"})
    items = pd.DataFrame([{"item": "nco", "options": ["L1", "L2"], "scale": "nominal", "role": "nco"}])
    log = ds.read_log(pd.DataFrame(rows), items=items,
                      arms=pd.DataFrame({"arm": ["control", "treatment"], "kind": ["control", "treatment"]}))
    res = ds.equivalence_test(log, margin=0.2)
    t = res.tidy()
    bad = t[t["iteration"] == 2]
    assert len(bad) == 2
    assert bad["note"].str.startswith("not testable").all()
    assert bad["equivalent"].isna().all()
    assert bad["p_value_equiv"].isna().all()
    assert res.glance()["n_tests"].iloc[0] == 2


def test_invalid_answers_are_counted() -> None:
    log = ds.simulate_nco_log(n_per_arm=50, n_nco=1, seed=7)
    df = log.sql("SELECT * FROM answers")
    df.loc[df.index[:3], "valid"] = False
    bad = ds.read_log(df, items=log.sql("SELECT * FROM items"))
    with pytest.warns(InvalidAnswersWarning, match="3 answer row"):
        res = ds.equivalence_test(bad, margin=0.2)
    assert res.glance()["n_dropped"].iloc[0] == 3
    assert any("3 answer row" in d for d in res.diagnostics)


def test_verb_decisions_equal_the_kernel_on_the_same_data() -> None:
    log = ds.simulate_nco_log(n_per_arm=400, tvd=0.02, n_nco=1, n_levels=4, seed=9)
    t = ds.equivalence_test(log, margin=0.1, strata=None).tidy().set_index("measure")
    codes = log.sql("SELECT arm, response_code FROM answers WHERE item = 'nco_1' ORDER BY unit_id")
    c1 = np.bincount(codes.loc[codes.arm == "treatment", "response_code"], minlength=4)
    c0 = np.bincount(codes.loc[codes.arm == "control", "response_code"], minlength=4)
    st = event_stats_counts(c1.astype(float), c0.astype(float))
    assert t.loc["tvd_iut", "p_value_equiv"] == pytest.approx(float(iut_tost(st, 0.1)[0]), rel=1e-9)
    assert t.loc["tvd_projection", "p_value_equiv"] == pytest.approx(float(projection_equivalence(st, 0.1, 0.95)[1]),
                                                                     rel=1e-9)


# ----------------------------------------------------------------------------- power
def test_power_function_agrees_with_simulation() -> None:
    """nco_power against a brute-force simulation of the test on unit vectors (the interval's upper bound)."""
    rng = np.random.default_rng(16)
    n, k, margin, reps = 150, 4, 0.15, 400
    q = np.full(k, 1 / k)
    hits = 0
    for _ in range(reps):
        x1 = one_hot(rng.choice(k, n, p=q), k)
        x0 = one_hot(rng.choice(k, n, p=q), k)
        hits += tvd_conf_int(x1, x0, 0.90)[1] < margin
    simulated = hits / reps
    analytic = ds.nco_power(n, margin=margin, n_levels=k, method="projection", draws=20000, seed=1).tidy()["power"]
    analytic = analytic.iloc[0]
    assert 0.2 < simulated < 0.8
    assert abs(simulated - analytic) < 4 * math.sqrt(simulated * (1 - simulated) / reps + 0.25 / 20000)


def test_power_reproduces_methods_table() -> None:
    """methods 3.3 (K = 5 uniform, margin .1): the IUT column (.03 / .53 / .97) still holds with score statistics;
    the projection test now has power ~.97 at n = 1000 (it was .25 at n = 2000 with the Bonferroni projection)."""
    res = ds.nco_power([1000, 2000, 4000], margin=0.1, n_levels=5, draws=20000, seed=2).tidy()
    iut = res[res["term"] == "iut"]["power"].to_numpy()
    proj = res[res["term"] == "projection"]["power"].to_numpy()
    np.testing.assert_allclose(iut, [0.03, 0.53, 0.97], atol=0.03)
    assert proj[0] > 0.9
    assert (proj[1:] > 0.99).all()


def test_sample_size_is_consistent_with_power() -> None:
    n = ds.nco_sample_size(margin=0.1, n_levels=5, power=0.8, draws=5000)
    pw = ds.nco_power([n, int(n * 0.9)], margin=0.1, n_levels=5, method="iut", draws=5000, seed=0).tidy()["power"]
    assert pw.iloc[0] >= 0.8 > pw.iloc[1]


def test_many_levels_cost_no_k_squared_memory_per_draw() -> None:
    """Above MAX_EVENT_LEVELS the level-wise band needs no covariance, and power draws come in chunks whose
    K x K cells are bounded (fuzzing found an audit with a 200-option NCO building 2000 x 200 x 200 arrays)."""
    from driftstats._kernels.tvd_ci import MAX_EVENT_LEVELS, event_stats_counts
    from driftstats.nco import power as pw

    rng = np.random.default_rng(0)
    k = 200
    st = event_stats_counts(rng.multinomial(30, np.full(k, 1 / k), size=50), rng.multinomial(30, np.full(k, 1 / k), size=50))
    assert k > MAX_EVENT_LEVELS
    assert st.cov is None
    assert st.level_wise
    assert pw._CHUNK_CELLS // k**2 < pw._CHUNK  # the chunk shrinks with K
    dec = pw.equivalence_power_draws(np.full(k, 1 / k), np.full(k, 1 / k), 30, 30, 0.2, 0.95, "projection", 300, rng)
    assert dec.shape == (300,)
    assert not dec.any()  # 30 answers over 200 levels cannot show equivalence
