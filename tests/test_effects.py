"""Effects: option order respected, constant contrasts not testable, pairing rule, references."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import driftstats as ds
from driftstats._units import unit_data
from driftstats.effects import contrast_df, mean_contrast
from driftstats.errors import InsufficientDataError, InvalidAnswersWarning, InvalidArgumentError

LIKERT = ["Strongly disagree", "Disagree", "Neutral", "Agree", "Strongly agree"]
EDUCATION = ["High school or less", "Some college", "College degree", "Graduate degree"]
TOL = 1e-10  # closed forms and the same OLS fit: only floating error


def _likert_answers(seed: int = 1, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for arm, p in (("control", [0.1, 0.2, 0.4, 0.2, 0.1]), ("treatment", [0.15, 0.25, 0.35, 0.15, 0.1])):
        for i in range(n):
            rows.append({"unit_id": f"{arm}{i}", "arm": arm, "item": "q", "response": LIKERT[rng.choice(5, p=p)]})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- option order (item 1)
def test_nominal_outcome_gets_no_mean_and_says_how_to_give_the_order() -> None:
    """Before: Likert answers read without an items table were averaged in alphabetical code order."""
    answers = _likert_answers()
    log = ds.read_log(answers, primary="q")
    assert log.item("q").scale == "nominal"
    with pytest.raises(InvalidArgumentError, match=r"item 'q' is nominal.*three ways.*scale 'ordinal'.*ordered "
                                                   r"pandas Categorical.*likert=True"):
        unit_data(log, ["q"])
    res = ds.effect(log, n_perm=199)
    t = res.tidy().set_index("measure")
    md = t.loc["mean_diff"]
    assert math.isnan(md["estimate"])
    assert math.isnan(md["p_value"])
    assert md["note"].startswith("not testable: 'q' has no known option order")
    assert 0 <= t.loc["tvd", "estimate"] <= 1
    assert not math.isnan(t.loc["tvd", "p_value"])
    assert any("likert=True" in d for d in res.diagnostics)
    with pytest.raises(InvalidArgumentError, match="item 'q' is nominal"):
        ds.effect_model("q ~ arm", log)
    with pytest.raises(InvalidArgumentError, match="family='ordinal' needs an ordinal outcome"):
        ds.effect_model("q ~ arm", log, family="ordinal")
    with pytest.raises(InvalidArgumentError, match="item 'q' is nominal"):
        ds.retention(log, outcome="q")
    # with the order given (an items table), the mean is of the true codes
    items = pd.DataFrame([{"item": "q", "options": LIKERT, "scale": "ordinal", "role": "primary"}])
    ordered = ds.effect(ds.read_log(answers, items=items), tvd=False).tidy().iloc[0]
    code = answers["response"].map({o: i for i, o in enumerate(LIKERT)})
    truth = code[answers["arm"] == "treatment"].mean() - code[answers["arm"] == "control"].mean()
    assert ordered["estimate"] == pytest.approx(truth, abs=1e-12)
    assert not math.isnan(ordered["p_value"])


def test_ordered_categorical_unit_frame_uses_category_codes() -> None:
    answers = _likert_answers(seed=2, n=50)
    units = pd.DataFrame({"arm": answers["arm"],
                          "y": pd.Categorical(answers["response"], categories=LIKERT, ordered=True)})
    res = ds.effect(units, outcome="y")
    row = res.tidy().iloc[0]
    code = units["y"].cat.codes
    assert row["estimate"] == pytest.approx(code[units.arm == "treatment"].mean() - code[units.arm == "control"].mean(),
                                            abs=1e-12)
    assert any("ordered Categorical" in d for d in res.diagnostics)
    text = units.assign(y=units["y"].astype(str))
    assert ds.effect(text, outcome="y").tidy()["note"].str.contains("no known option order").all()


def test_two_option_nominal_item_is_an_indicator_of_its_second_option() -> None:
    rng = np.random.default_rng(3)
    rows = [{"unit_id": f"{a}{i}", "arm": a, "item": "vote", "response": "Yes" if rng.random() < p else "No"}
            for a, p in (("control", 0.4), ("treatment", 0.6)) for i in range(200)]
    items = pd.DataFrame([{"item": "vote", "options": ["No", "Yes"], "scale": "nominal", "role": "primary"}])
    frame = pd.DataFrame(rows)
    res = ds.effect(ds.read_log(frame, items=items), tvd=False)
    row = res.tidy().iloc[0]
    share = frame.assign(y=frame.response == "Yes").groupby("arm")["y"].mean()
    assert row["share_1"] == pytest.approx(share["treatment"])
    assert row["share_0"] == pytest.approx(share["control"])
    assert any("used as the 0/1 indicator of 'Yes'" in d for d in res.diagnostics)


def test_categorical_predictors_take_their_items_option_order() -> None:
    """Before: education (a persona attribute re-asked by an item) got 'College degree' as reference level."""
    rng = np.random.default_rng(4)
    answers, personas = [], []
    for i in range(240):
        arm = "treatment" if i % 2 else "control"
        edu = int(rng.integers(4))
        u = f"u{i}"
        personas.append({"unit_id": u, "attribute": "education", "value": EDUCATION[edu], "specified": True})
        y = int(np.clip(round(1 + 0.5 * edu + 0.4 * (arm == "treatment") + rng.normal(0, 0.8)), 0, 4))
        answers += [{"unit_id": u, "arm": arm, "item": "y", "response": LIKERT[y]},
                    {"unit_id": u, "arm": arm, "item": "edu_check", "response": EDUCATION[edu]},
                    {"unit_id": u, "arm": arm, "item": "region", "response": ["North", "South", "East"][i % 3]}]
    items = pd.DataFrame([
        {"item": "y", "options": LIKERT, "scale": "ordinal", "role": "primary"},
        {"item": "edu_check", "options": EDUCATION, "scale": "ordinal", "role": "fidelity", "attribute": "education"},
        {"item": "region", "options": ["North", "South", "East"], "scale": "nominal", "role": "covariate"},
    ])
    log = ds.read_log(pd.DataFrame(answers), items=items, personas=pd.DataFrame(personas))
    fit = ds.effect_model("y ~ arm + education + region", log)
    terms = fit.tidy()["term"].tolist()
    assert "education[T.College degree]" in terms
    assert "education[T.High school or less]" not in terms  # the first option is the reference
    assert {"region[T.South]", "region[T.East]"} <= set(terms)  # a nominal item enters as a factor, not a code
    assert any("reference level 'High school or less'" in d for d in fit.diagnostics)
    # the same fit by hand (statsmodels, HC1) with the levels in option order
    frame = unit_data(log, ["y", "region"], labels=["region"]).frame
    frame["education"] = pd.Categorical(frame["education"], categories=EDUCATION)
    frame["arm"] = pd.Categorical(frame["arm"], categories=["control", "treatment"])
    ref = smf.ols("y ~ arm + education + region", frame).fit(cov_type="HC1")
    got = fit.tidy().set_index("term")
    for name in ref.params.index:
        assert got.loc[name, "estimate"] == pytest.approx(ref.params[name], rel=TOL)
        assert got.loc[name, "std_error"] == pytest.approx(ref.bse[name], rel=TOL)


# ----------------------------------------------------------------------------- constant outcomes (item 24)
def _constant_log(value: str = "b", other: str | None = None) -> ds.SimLog:
    rows = [{"unit_id": f"{a}{i}", "arm": a, "item": "y", "response": other if (other and a == "treatment") else value}
            for a in ("control", "treatment") for i in range(30)]
    items = pd.DataFrame([{"item": "y", "options": ["a", "b", "c"], "scale": "ordinal", "role": "primary"}])
    return ds.read_log(pd.DataFrame(rows), items=items)


def test_constant_outcome_is_not_testable() -> None:
    """Before: every unit answering the same gave -1.1e-16 (or 3.6e-16) with p = 0.0027 (or 5e-15)."""
    row = ds.effect(_constant_log(), tvd=False).tidy().iloc[0]
    assert row["estimate"] == 0.0
    assert math.isnan(row["p_value"])
    assert math.isnan(row["std_error"])
    assert math.isnan(row["conf_low"])
    assert row["note"] == "not testable: every unit in both arms has the same outcome (1)"
    split = ds.effect(_constant_log("a", other="c"), tvd=False).tidy().iloc[0]
    assert split["estimate"] == 2.0
    assert math.isnan(split["p_value"])
    assert split["note"].startswith("not testable: no variation within either arm")
    with pytest.raises(InsufficientDataError, match="the outcome 'y' is constant"):
        ds.effect_model("y ~ arm", _constant_log())
    out = mean_contrast(np.ones(10), np.r_[np.ones(5), np.zeros(5)], None, 0.95)
    assert out["estimate"] == 0.0
    assert math.isnan(out["p_value"])


def test_small_arms_get_no_test() -> None:
    rows = [{"unit_id": f"{a}{i}", "arm": a, "item": "y", "response": "abc"[i % 3]}
            for a, n in (("control", 3), ("treatment", 8)) for i in range(n)]
    items = pd.DataFrame([{"item": "y", "options": ["a", "b", "c"], "scale": "ordinal", "role": "primary"}])
    row = ds.effect(ds.read_log(pd.DataFrame(rows), items=items), tvd=False).tidy().iloc[0]
    assert math.isnan(row["p_value"])
    assert row["note"].startswith("not testable: 3 unit(s) in an arm")
    assert not math.isnan(row["estimate"])


# ----------------------------------------------------------------------------- defaults, by=, pairing, provenance
def test_seed_default_by_and_provenance() -> None:
    log = ds.simulate_study_log(n_per_arm=60, n_placebo=0, seed=5)
    a, b = ds.effect(log, n_perm=199), ds.effect(log, n_perm=199)
    assert a.tidy()["p_value"].equals(b.tidy()["p_value"])  # default seed 0: reproducible
    g = ds.effect(log).glance()
    assert g["seed"].item() == 0
    assert g["n_perm"].item() == 2000
    assert a.provenance.as_dict()["data_sha256"] == log.fingerprint()
    assert a.provenance.seed == 0
    with pytest.raises(InvalidArgumentError, match=r"by=\['wave'\] names \['wave'\]"):
        ds.effect(log, by="wave")


def test_paired_design_clusters_by_persona_and_matches_statsmodels() -> None:
    log = ds.simulate_nco_log(n_per_arm=150, tvd=0.2, n_nco=1, paired=True, seed=8)
    res = ds.effect(log, outcome="nco_1", tvd=False)
    row = res.tidy().iloc[0]
    units = log.sql("SELECT unit_id, arm, persona_id, response_code AS y FROM answers")
    x = sm.add_constant((units["arm"] == "treatment").astype(float))
    ref = sm.OLS(units["y"].astype(float), x).fit(cov_type="cluster", use_t=True,
                                                  cov_kwds={"groups": pd.factorize(units["persona_id"])[0]})
    assert row["estimate"] == pytest.approx(ref.params.iloc[1], rel=TOL)
    assert row["std_error"] == pytest.approx(ref.bse.iloc[1], rel=TOL)
    assert row["df"] == 149  # clusters - 1: the t reference of statsmodels' use_t=True
    assert row["p_value"] == pytest.approx(ref.pvalues.iloc[1], rel=1e-8)
    ci = ref.conf_int().iloc[1]
    assert (row["conf_low"], row["conf_high"]) == pytest.approx((ci[0], ci[1]), rel=1e-8)
    g = res.glance()
    assert g["strata"].item() == "persona_id"
    assert g["vcov"].item() == "cluster(persona_id)"
    assert any(d.startswith("paired design detected") for d in res.diagnostics)
    unpaired = ds.effect(log, outcome="nco_1", tvd=False, cluster="unit")
    assert unpaired.glance()["strata"].isna().all()
    assert unpaired.glance()["vcov"].item() == "HC1"
    hc1 = sm.OLS(units["y"].astype(float), x).fit(cov_type="HC1")
    assert unpaired.tidy()["std_error"].iloc[0] == pytest.approx(hc1.bse.iloc[1], rel=TOL)


def test_invalid_answers_warn_with_their_count() -> None:
    log = ds.simulate_latent_world(seed=9).sample_log(100, seed=10)
    n_bad = int((~log.to_pandas().query("item == 'y'")["valid"].astype(bool)).sum())
    assert n_bad > 0
    with pytest.warns(InvalidAnswersWarning, match=f"{n_bad} invalid answer row"):
        res = ds.effect(log, tvd=False)
    assert any(f"{n_bad} invalid answer row" in d for d in res.diagnostics)
    with pytest.warns(InvalidAnswersWarning, match=f"{n_bad} invalid answer row"):
        ds.effect_model("y ~ arm", log)


def test_effect_and_model_on_a_log() -> None:
    w = ds.simulate_latent_world(seed=9)
    log = w.sample_log(400, seed=10)
    with warnings.catch_warnings():  # the world's simulated refusals are invalid answers of y
        warnings.simplefilter("ignore", InvalidAnswersWarning)
        res = ds.effect(log, n_perm=199, seed=1)
        fit = ds.effect_model("response ~ arm + n", log, family="gaussian").tidy().set_index("term")
        ordinal = ds.effect_model("y ~ arm", log, family="ordinal").tidy()
    t = res.tidy().set_index("measure")
    truth = w.p_selected[1] @ w.mu_selected[1] - w.p_selected[0] @ w.mu_selected[0]
    assert t.loc["mean_diff", "conf_low"] <= truth <= t.loc["mean_diff", "conf_high"]
    assert 0 <= t.loc["tvd", "estimate"] <= 1
    assert {"Intercept", "arm[T.treatment]", "n"} <= set(fit.index)
    assert ordinal.loc[ordinal["term"] == "arm[T.treatment]", "estimate"].iloc[0] > 0


def test_mean_diff_coverage_with_paired_personas() -> None:
    """150 replications (iteration) of 40 paired personas with a shared persona effect: SEs clustered by persona
    cover the true difference 0.3; the unpaired HC1 interval, ignoring the pairing, is wider."""
    rng = np.random.default_rng(6)
    reps, n = 150, 40
    persona = np.repeat(np.arange(reps * n), 2)
    frame = pd.DataFrame({"iteration": persona // n, "persona_id": persona.astype(str),
                          "arm": np.tile(["control", "treatment"], reps * n)})
    y = rng.normal(0, 1, reps * n)[persona] + 0.3 * (frame["arm"] == "treatment") + rng.normal(0, 0.5, persona.size)
    frame["y"] = np.clip(np.round(y + 2), 0, 4)  # 5-point codes
    big = rng.normal(0, 1, 400_000)  # the true difference of the rounded, clipped codes, by Monte Carlo
    e = rng.normal(0, 0.5, (2, 400_000))
    truth = float(np.clip(np.round(big + 0.3 + e[0] + 2), 0, 4).mean() - np.clip(np.round(big + e[1] + 2), 0, 4).mean())
    res = ds.effect(frame, outcome="y", by="iteration")
    t = res.tidy()
    assert len(t) == reps
    assert (t["n_1"] == n).all()
    assert res.glance()["strata"].item() == "persona_id"
    cover = ((t["conf_low"] <= truth) & (t["conf_high"] >= truth)).mean()
    assert abs(cover - 0.95) <= 3 * math.sqrt(0.95 * 0.05 / reps)
    hc1 = ds.effect(frame, outcome="y", by="iteration", cluster="unit").tidy()
    assert (hc1["std_error"] > t["std_error"]).mean() > 0.9


@pytest.mark.parametrize("n", [5, 10])
def test_mean_diff_size_at_small_arms(n) -> None:
    """The t reference (units - 2 df) keeps the HC1 test near its level at the minimum arm size."""
    rng = np.random.default_rng(n)
    t = np.r_[np.ones(n), np.zeros(n)]
    reps, rejected, tested = 2000, 0, 0
    for _ in range(reps):
        y = rng.integers(0, 5, 2 * n).astype(float)
        p = mean_contrast(y, t, None, 0.95, df=contrast_df(t, None))["p_value"]
        if np.isfinite(p):
            tested += 1
            rejected += p < 0.05
    assert rejected / tested <= 0.05 + 4 * math.sqrt(0.05 * 0.95 / tested)


# ------------------------------------------------------------------- degenerate inputs (found by tests/fuzz)
def _frame(n: int = 12, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.r_[np.zeros(n), np.ones(n)]
    return pd.DataFrame({"arm": np.where(t > 0, "treatment", "control"), "t": t, "x": rng.normal(size=2 * n),
                         "y": rng.normal(size=2 * n) + 0.5 * t})


def test_huge_outcomes_give_the_scaled_contrast() -> None:
    """Values near 1e300: the estimate, SE and interval scale exactly, the test is the same (was NaN, no note)."""
    d = _frame()
    base = ds.effect(d, outcome="y", tvd=False, min_units=2).tidy().iloc[0]
    big = ds.effect(d.assign(y=d["y"] * 1e300), outcome="y", tvd=False, min_units=2).tidy().iloc[0]
    assert big["estimate"] == pytest.approx(base["estimate"] * 1e300, rel=1e-12)
    assert big["std_error"] == pytest.approx(base["std_error"] * 1e300, rel=1e-12)
    assert big["p_value"] == pytest.approx(base["p_value"], rel=1e-12)
    assert big["share_1"] == pytest.approx(base["share_1"] * 1e300, rel=1e-12)
    huge = ds.effect(d.assign(y=np.where(d["t"] > 0, 1.7e308, -1.7e308)).assign(y=lambda f: f["y"] * (1 - 1e-9 * f.x)),
                     outcome="y", tvd=False, min_units=2).tidy().iloc[0]
    assert np.isnan(huge["p_value"]), huge  # the difference overflows
    assert huge["note"].startswith("not testable"), huge


def test_one_persona_cluster_is_not_testable() -> None:
    """Every unit in one persona cluster: no cluster-robust SE, a not-testable row (was ZeroDivisionError)."""
    d = _frame().assign(persona_id="same")
    row = ds.effect(d, outcome="y", tvd=False, min_units=2, cluster="persona").tidy().iloc[0]
    assert np.isnan(row["p_value"])
    assert "one persona cluster" in row["note"]
    assert math.isfinite(row["estimate"])


@pytest.mark.parametrize(("formula", "family", "change", "error", "match"), [
    ("Q('y') ~ t", "gaussian", {}, InvalidArgumentError, "left-hand side"),
    ("np.log(y) ~ t", "gaussian", {}, InvalidArgumentError, "left-hand side"),
    ("y ~ t +", "gaussian", {}, InvalidArgumentError, "cannot be used"),
    ("y ~ t + x", "logit", {}, InvalidArgumentError, r"outcome in \[0, 1\]"),
    ("y ~ t + x", "gaussian", {"x": np.inf}, InvalidArgumentError, "infinite"),
    ("y ~ t + x", "ordinal", {"x": np.inf}, InvalidArgumentError, "infinite"),
    ("y ~ t + x + z", "gaussian", {"z": "copy t"}, InsufficientDataError, "rank-deficient"),
], ids=["Q lhs", "transformed lhs", "dangling plus", "logit range", "inf gaussian", "inf ordinal", "collinear"])
def test_effect_model_malformed_inputs(formula, family, change, error, match) -> None:
    """Formulas and designs a model cannot use: named errors (were KeyError, PatsyError, ValueError, LinAlgError)."""
    d = _frame().assign(y=lambda f: np.round(f["y"]))
    for col, v in change.items():
        d[col] = d["t"] if v == "copy t" else d[col].where(d.index != 0, v)
    with pytest.raises(error, match=match):
        ds.effect_model(formula, d, family=family)


def test_effect_model_needs_residual_degrees_of_freedom() -> None:
    d = _frame().groupby("arm").head(1)
    with pytest.raises(InsufficientDataError, match="no residual degrees"):
        ds.effect_model("y ~ t", d)


def test_effect_model_with_one_persona_cluster_is_a_named_error() -> None:
    """Every unit one persona and cluster='persona': no cluster-robust SE (was statsmodels' ZeroDivisionError)."""
    d = _frame().assign(persona_id="same")
    with pytest.raises(InsufficientDataError, match="one persona cluster"):
        ds.effect_model("y ~ t", d, cluster="persona")
    assert ds.effect_model("y ~ t", d, cluster="unit").tidy()["p_value"].notna().all()


@pytest.mark.parametrize("seed", [0, 2])
def test_ordinal_model_on_two_units_per_arm_is_a_named_error_or_a_fit(seed) -> None:
    """Two units per arm: statsmodels' sandwich divides by n - k or inverts a singular Hessian; a named error
    (were ZeroDivisionError and LinAlgError, found by fuzzing)."""
    log = ds.simulate_study_log(n_per_arm=2, n_placebo=0, iterations=1, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if seed == 0:  # n = k in the sandwich
            with pytest.raises(InsufficientDataError, match="cannot give standard errors"):
                ds.effect_model("support_tax ~ arm + income", log, family="ordinal", cluster="auto")
        else:
            res = ds.effect_model("support_tax ~ arm + income", log, family="ordinal", cluster="auto")
            assert res.tidy()["std_error"].notna().any()


def test_a_predictor_level_nobody_gave_is_left_out_not_a_constant_column() -> None:
    """An option of a predictor's item that no unit gave coded a constant dummy in the ordinal design
    (statsmodels' ValueError 'There should not be a constant'); a fuzz finding."""
    from tests.fuzz.harness import Recipe, build_input, read_tables

    _, log = read_tables(build_input(Recipe(kind="log", base="study", size=1, seed=2, mutations=())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' own Hessian warning on 8 units
        with pytest.raises(InsufficientDataError, match="cannot give standard errors"):
            ds.effect_model("response ~ arm + area", log, family="ordinal", outcome="support_tax", cluster="persona")
    big = ds.simulate_study_log(seed=3)
    units = big.to_pandas()
    given = set(units.loc[units["item"] == "area", "response"].dropna())
    r = ds.effect_model("response ~ arm + area", big, family="ordinal", outcome="support_tax")
    levels = [t for t in r.tidy()["term"] if str(t).startswith("area")]
    assert all(any(g in str(t) for g in given) for t in levels)


def test_ordinal_model_with_a_constant_predictor_is_a_named_error() -> None:
    """A predictor constant over the units (here the arm indicator of a one-arm frame) duplicates the ordinal
    model's thresholds (statsmodels' ValueError 'There should not be a constant'); a fuzz finding."""
    rng = np.random.default_rng(5)
    d = pd.DataFrame({"arm": "treatment", "t": 1.0, "x": rng.normal(size=40), "zd": rng.integers(0, 4, size=40)})
    with pytest.raises(InsufficientDataError, match=r"predictor column\(s\) \['t'\].*constant"):
        ds.effect_model("zd ~ t + x", d, family="ordinal")
    d["t"] = rng.integers(0, 2, size=40).astype(float)
    assert ds.effect_model("zd ~ t + x", d, family="ordinal").tidy()["p_value"].notna().all()
