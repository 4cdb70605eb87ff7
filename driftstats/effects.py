"""The observed arm contrast: what a naive analysis of the simulated experiment reports.

``effect`` gives, per group and arm pair, the difference in mean outcome codes with
cluster-robust standard errors (replicates are averaged within a unit; matched personas
are clustered across arms) and the outcome TVD between arms (permutation p, valid
projection interval). ``effect_model`` fits a formula (OLS, logit or cumulative-logit
ordinal) on the unit-level table: items as columns, persona attributes, ``arm``.

Mean codes need a known option order: a nominal outcome with more than two options gets no
``mean_diff`` test (the TVD needs no order), and ``effect_model`` refuses it as an outcome
(see :mod:`driftstats._units`).

The observed contrast is *not* a causal effect when the arms hold different implied
populations (user drift, methods 2); see :mod:`driftstats.correct` and :mod:`driftstats.calibrate`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm

from driftstats._args import (
    DEFAULT_N_PERM,
    DEFAULT_SEED,
    SeedLike,
    check_choice,
    check_conf_level,
    check_positive_int,
    seed_value,
)
from driftstats._groups import iter_groups, resolve_by
from driftstats._kernels.wald import wald
from driftstats._provenance import provenance
from driftstats._result import Result
from driftstats._units import UnitData, frame_codes, is_log_like, order_unknown_message, unit_data
from driftstats.errors import (
    ConvergenceWarning,
    InsufficientDataError,
    InvalidAnswersWarning,
    InvalidArgumentError,
    MonteCarloErrorWarning,
)
from driftstats.log.query.design import PAIRING_COLUMN, count_answers, paired_design
from driftstats.log.simlog import SimLog, as_log

__all__ = ["MIN_UNITS", "EffectResult", "ModelResult", "effect", "effect_model", "mean_contrast"]

Cluster = Literal["auto", "unit", "persona", "none"]

#: Fewest units per arm for a ``mean_diff`` test (fewer: a not-testable row).
MIN_UNITS = 5

EFFECT_ASSUMPTION = (
    "Causal reading requires exchangeable arms: P(U | arm) equal across arms. LLM simulations violate this "
    "(user drift); check NCOs (nco_test) before reading the contrast as an intervention effect."
)


@dataclass(frozen=True, slots=True, repr=False)
class EffectResult(Result):
    """Observed arm contrasts of the outcome (``measure`` ``mean_diff`` and ``tvd``)."""

    TITLE: ClassVar[str] = "Observed effect (arm contrast)"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "share_1", "share_0", "estimate",
                                          "conf_low", "conf_high", "p_value", "note")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "n_1", "n_0", "share_1", "share_0",
                                              "df", "note")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_perm", "n_tests", "vcov", "strata")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (
        EFFECT_ASSUMPTION,
        "mean_diff averages option codes: it assumes the options are in order and equally spaced (ordinal items), "
        "or uses values (numeric items); nominal outcomes get no mean_diff test.",
    )

    def plot(self, **kwargs: Any) -> Any:
        """Observed effect over adjustment iterations (paper Fig. 4); needs ``[plot]``."""
        from driftstats.plot import plot_effect

        return plot_effect(self, **kwargs)


@dataclass(frozen=True, slots=True, repr=False)
class ModelResult(Result):
    """Coefficients of a regression model fitted on the unit-level table."""

    TITLE: ClassVar[str] = "Effect model"
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("note",)
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("vcov", "log_lik", "strata")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (
        EFFECT_ASSUMPTION,
        "The model's functional form (linear, logit, or proportional-odds cumulative logit); item codes used as "
        "numbers assume ordered, equally spaced options.",
    )


# ----------------------------------------------------------------------------------- pairing
def _persona_clusters(sub: pd.DataFrame) -> np.ndarray:
    """Cluster labels: ``persona_id``, or the row itself where it is missing."""
    pid = sub[PAIRING_COLUMN].astype(object)
    own = pd.Series([f"\x00row{i}" for i in range(len(sub))], index=sub.index, dtype=object)
    return pd.factorize(pid.where(pid.notna(), own))[0]


def _groups_for_cluster(sub: pd.DataFrame, cluster: str) -> tuple[np.ndarray | None, str]:
    """Cluster labels for the robust SEs of ``sub`` (rows = units) and the vcov label.

    ``"unit"`` / ``"none"``: none (HC1). ``"persona"``: ``persona_id`` (a unit without one is its
    own cluster). ``"auto"``: ``persona_id`` when some persona has more than one unit in ``sub``
    (matched across arms, or several units in an arm), otherwise HC1.
    """
    if cluster in ("none", "unit") or PAIRING_COLUMN not in sub.columns or not sub[PAIRING_COLUMN].notna().any():
        return None, "HC1"
    if cluster == "auto":
        counts = sub[PAIRING_COLUMN].dropna().value_counts()
        if not len(counts) or counts.max() < 2:
            return None, "HC1"
    return _persona_clusters(sub), f"cluster({PAIRING_COLUMN})"


def _frame_paired(frame: pd.DataFrame, arm: str, arms: Sequence[Any]) -> bool:
    """The project's pairing rule on a unit-level frame: a persona has units in two of ``arms``."""
    if PAIRING_COLUMN not in frame.columns:
        return False
    sub = frame[frame[arm].isin(list(arms)) & frame[PAIRING_COLUMN].notna()]
    return bool(len(sub)) and bool((sub.groupby(PAIRING_COLUMN)[arm].nunique() > 1).any())


def _is_paired(ud: UnitData, arms: Sequence[Any]) -> bool:
    if ud.log is not None:
        return paired_design(ud.log, [str(a) for a in arms])
    return _frame_paired(ud.frame, ud.arm, arms)


# ----------------------------------------------------------------------------------- contrast
def _constant_within_arms(y: np.ndarray, t: np.ndarray) -> bool:
    y1, y0 = y[t == 1], y[t == 0]
    return bool(y1.size and y0.size and y1.max() == y1.min() and y0.max() == y0.min())


def mean_contrast(y: np.ndarray, t: np.ndarray, groups: np.ndarray | None, conf_level: float, *,
                  df: float | None = None) -> dict[str, float]:
    """Difference in means ``mean(y | t=1) - mean(y | t=0)`` with HC1 or cluster-robust (CR1) SEs.

    The estimate is the difference of the two means computed directly (so two identical
    constant arms give exactly 0); the standard error is that of the slope of the OLS of ``y`` on
    ``[1, t]`` (statsmodels ``HC1``, or ``cluster`` with ``groups``). ``df=None``: normal
    reference; a number: Student's t with ``df`` (see :func:`contrast_df`). A contrast without
    variation within either arm has no standard error: the test and interval are NaN
    (:func:`wald`).
    """
    y = np.asarray(y, dtype=float)
    t = np.asarray(t, dtype=float)
    if not np.isfinite(y).all():
        return dict(wald(math.nan, math.nan, conf_level))
    # values near the double range: computed on y / s and scaled back, so that squares do not overflow
    s = float(np.max(np.abs(y))) if y.size else 1.0
    s = s if s > _RESCALE_ABOVE else 1.0
    ys = y / s if s != 1.0 else y
    with np.errstate(over="ignore", invalid="ignore"):
        est = float(ys[t == 1].mean() - ys[t == 0].mean()) * s
    if not math.isfinite(est):
        return dict(wald(math.nan, math.nan, conf_level))
    if _constant_within_arms(y, t):
        return dict(wald(est, 0.0, conf_level))
    if groups is not None and len(np.unique(groups)) < 2:  # one cluster: no cluster-robust SE
        return dict(wald(est, math.nan, conf_level, df=df))
    x = sm.add_constant(t, has_constant="add")
    model = sm.OLS(ys, x)
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups}) if groups is not None else model.fit(cov_type="HC1")
    with np.errstate(over="ignore"):
        se = float(fit.bse[1]) * s
    return dict(wald(est, se, conf_level, df=df))


def stable_mean(y: np.ndarray) -> float:
    """The mean of ``y`` (NaN when empty), computed on rescaled values when they are near the double range."""
    y = np.asarray(y, dtype=float)
    if not y.size:
        return math.nan
    s = float(np.max(np.abs(y)))
    if not s > _RESCALE_ABOVE or not math.isfinite(s):
        return float(y.mean())
    with np.errstate(over="ignore"):
        return float((y / s).mean() * s)


#: above this largest absolute value, mean contrasts are computed on rescaled values (squares near 1e308 overflow)
_RESCALE_ABOVE = 1e100


def untested_note(y: np.ndarray, groups: np.ndarray | None, fit: Mapping[str, float]) -> str | None:
    """Why a computed mean contrast carries no test (None when it has one): the sentence for ``note``."""
    if math.isfinite(fit["p_value"]):
        return None
    y = np.asarray(y, dtype=float)
    if not np.isfinite(y).all():
        return "not testable: the outcome holds infinite values"
    if groups is not None and len(np.unique(groups)) < 2:
        return "not testable: every unit is in one persona cluster; a cluster-robust standard error needs at least 2"
    big = float(np.max(np.abs(y))) if y.size else 0.0
    if (not math.isfinite(fit["estimate"]) or not math.isfinite(fit["std_error"])) and big > _RESCALE_ABOVE:
        return (f"not testable: the outcome's values (largest |y| = {big:.3g}) are too large for a finite mean "
                "difference or standard error in double precision")
    return "not testable: the standard error is zero or undefined"


def contrast_df(t: np.ndarray, groups: np.ndarray | None) -> float:
    """Degrees of freedom of the t reference: clusters - 1 (cluster-robust) or units - 2 (HC1).

    As statsmodels ``use_t=True`` (and Stata's cluster default). With the normal reference, the
    HC1 test of a 5-point outcome rejects 13% of true nulls at 3 units per arm, 9.5% at 5 and 6.8%
    at 10; with this t reference 5.4%, 6.4% and 5.1% (4000 simulated nulls each).
    """
    if groups is not None:
        return float(len(np.unique(groups)) - 1)
    return float(np.asarray(t).size - 2)


def contrast_note(y: np.ndarray, t: np.ndarray, *, min_units: int = MIN_UNITS) -> str | None:
    """Why a mean contrast of ``y`` between ``t == 1`` and ``t == 0`` carries no test (None: it does)."""
    n1, n0 = int((t == 1).sum()), int((t == 0).sum())
    if min(n1, n0) < min_units:
        return f"not testable: {min(n1, n0)} unit(s) in an arm (n_1 = {n1}, n_0 = {n0}); the minimum is {min_units}"
    if y.max() == y.min():
        return f"not testable: every unit in both arms has the same outcome ({y[0]:g})"
    if _constant_within_arms(y, t):
        return "not testable: no variation within either arm (the standard error is 0)"
    return None


def _default_outcome(ud: UnitData, outcome: str | None) -> str:
    if outcome is not None:
        return outcome
    if ud.log is not None:
        prim = ud.log.item_names("primary")
        if len(prim) == 1:
            return prim[0]
        raise InvalidArgumentError(f"outcome= is needed: the log has primary items {list(prim)} (expected exactly one).")
    raise InvalidArgumentError("outcome= names the outcome column.")


def _unordered(data: Any, outcome: str | None) -> tuple[bool, str | None]:
    """Whether the outcome has no known order (a nominal item with more than two options)."""
    if outcome is None or not isinstance(data, SimLog):
        return False, None
    log = data
    if outcome not in log.item_names():
        return False, None
    info = log.item(outcome)
    if info.scale == "nominal" and (info.n_levels or 0) > 2:
        return True, order_unknown_message(outcome, info.options, use="a mean (mean_diff)")
    return False, None


def _warn_invalid(log: Any, items: Sequence[str], mode: str, diagnostics: list[str]) -> int:
    if log is None or not items:
        return 0
    n = count_answers(log, items, mode, valid=False)
    if n:
        msg = (f"{n} invalid answer row(s) (valid = false) of {sorted(set(items))} in mode {mode!r} were left out")
        warnings.warn(msg, InvalidAnswersWarning, stacklevel=3)
        diagnostics.append(msg)
    return n


def effect(
    data: Any,
    *,
    outcome: str | None = None,
    arm: str = "arm",
    by: str | Sequence[str] | None = "auto",
    reference: str | None = None,
    pairs: Literal["reference", "all"] = "reference",
    mode: Literal["sample", "dist"] = "sample",
    cluster: Cluster = "auto",
    tvd: bool = True,
    n_perm: int = DEFAULT_N_PERM,
    conf_level: float = 0.95,
    min_units: int = MIN_UNITS,
    seed: SeedLike = DEFAULT_SEED,
) -> EffectResult:
    """Observed contrast of ``outcome`` between arms, per group.

    Parameters
    ----------
    data
        A log (SimLog, log DataFrame, path) or a unit-level DataFrame with ``arm`` and ``outcome``.
    outcome
        The outcome item (default: the log's single primary item). Its 0-based option code is
        the outcome scale (ordinal items), its value (numeric items), or the 0/1 indicator of
        the second option (two-option nominal items). In a unit-level DataFrame: a numeric
        column, or an ordered Categorical (its category codes).
    by
        Grouping columns. Default ``"auto"``: one group per run of the study (``iteration``, plus
        ``study``, ``model`` and ``run_id`` where the log holds several), so answers of different
        models, adjustment paths and iterations are never pooled; ``by=()`` pools everything. An
        unknown column is an error.
    cluster
        ``"auto"`` (default): standard errors clustered by ``persona_id`` when the design is
        paired (a persona has units in both arms; the project rule, :func:`paired_design`) or
        a persona has several units in an arm, otherwise HC1; ``"persona"``; ``"unit"`` /
        ``"none"`` (HC1, and an unpaired TVD permutation).
    tvd
        Also report the outcome TVD between arms (permutation test, within persona when the
        design is paired; logs only, categorical outcomes).
    n_perm
        Permutations of the TVD test (default 2000).
    min_units
        Fewest units per arm for a ``mean_diff`` test (default 5); fewer give a row with
        ``note`` and no test.
    seed
        Seed of the TVD permutations: default 0, so results are reproducible; ``seed=None``
        draws fresh entropy. Recorded in ``glance()["seed"]`` and the provenance.

    Returns
    -------
    EffectResult
        ``measure = "mean_diff"``: ``estimate`` = mean(arm) - mean(reference) (computed directly),
        robust SE, Wald test and interval with a t reference (``df`` = clusters - 1, or units - 2
        for HC1; :func:`contrast_df`); ``share_1``/``share_0`` the arm means.
        ``measure = "tvd"``: plug-in TVD, permutation p, projection interval. A row without a
        test (too few units, a constant outcome, a nominal outcome) has NaN test columns and a
        ``note`` saying why.

    Raises
    ------
    InvalidArgumentError
        Unknown ``by`` column, bad option value.
    InsufficientDataError
        No unit has an answer to ``outcome``.

    Warns
    -----
    InvalidAnswersWarning
        Invalid answers of the outcome were left out (count in the message).

    Notes
    -----
    A nominal outcome with more than two options has no order, so its mean code means
    nothing: its ``mean_diff`` rows carry no estimate and the note says how to give the order
    (the TVD rows are unaffected). A constant outcome (every unit gives the same answer) has
    estimate exactly 0 and no test.

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_study_log(n_per_arm=60, n_placebo=0, seed=1)
    >>> res = ds.effect(log, n_perm=199)
    >>> res.tidy()["measure"].tolist()
    ['mean_diff', 'tvd']
    >>> res.glance()["strata"].item()
    'persona_id'
    """
    conf_level = check_conf_level(conf_level)
    check_choice("cluster", cluster, Cluster)
    check_choice("pairs", pairs, Literal["reference", "all"])
    check_choice("mode", mode, Literal["sample", "dist"])
    min_units = check_positive_int("min_units", min_units, minimum=2)
    diagnostics: list[str] = []
    if is_log_like(data):
        data = as_log(data)  # read a path or a log DataFrame once
    if outcome is None:
        outcome = _default_outcome(unit_data(data, [], arm=arm, mode=mode), None)
    unordered, why = _unordered(data, outcome)
    ud = unit_data(data, [] if unordered else [outcome], arm=arm, mode=mode)
    if not unordered:
        ud.require([outcome], "outcome")
    diagnostics += ud.diagnostics
    by_cols = list(resolve_by(by, log=ud.log, columns=ud.frame.columns, frame=ud.frame))
    ref = ud.reference(reference)
    all_arms = ud.arms()
    arm_pairs = [(a, ref) for a in all_arms if a != ref] if pairs == "reference" else [
        (a, b) for i, b in enumerate(all_arms) for a in all_arms[i + 1:]]
    _warn_invalid(ud.log, [outcome], mode, diagnostics)
    numeric = not unordered and pd.api.types.is_numeric_dtype(ud.frame[outcome])
    if not unordered and not numeric:
        why = (f"outcome column {outcome!r} is not numeric ({ud.frame[outcome].dtype}): its order is unknown. "
               "Fix: pass an ordered pandas Categorical (pd.Categorical(values, categories=[...in order...], "
               "ordered=True)) or numeric codes.")
    if why:
        diagnostics.append(why)
    frame = ud.frame if not numeric else ud.frame.dropna(subset=[outcome])
    if numeric and frame.empty:
        raise InsufficientDataError(f"no unit has a valid answer to {outcome!r} in mode {mode!r}.")
    n_dropped = len(ud.frame) - len(frame)
    paired = {p: cluster in ("auto", "persona") and _is_paired(ud, p) for p in arm_pairs}
    rows: list[dict[str, Any]] = []
    vcovs: set[str] = set()
    for group, g in iter_groups(frame, by_cols):
        for a1, a0 in arm_pairs:
            sub = g[g[ud.arm].isin([a1, a0])]
            t = (sub[ud.arm] == a1).to_numpy(dtype=float)
            base = {**group, "term": outcome, "arm": str(a1), "reference": str(a0), "measure": "mean_diff",
                    "n_1": int(t.sum()), "n_0": int((1 - t).sum())}
            if not numeric:
                rows.append({**base, "n_1": None, "n_0": None,
                             "note": f"not testable: {outcome!r} has no known option order (see diagnostics)"})
                continue
            y = sub[outcome].to_numpy(dtype=float)
            shares = {"share_1": stable_mean(y[t == 1]), "share_0": stable_mean(y[t == 0])}
            note = contrast_note(y, t, min_units=min_units)
            if note is not None:
                est = shares["share_1"] - shares["share_0"] if t.sum() and (1 - t).sum() else np.nan
                rows.append({**base, **shares, "estimate": est, "note": note})
                continue
            mode_c = "persona" if paired[(a1, a0)] else cluster
            groups, vcov = _groups_for_cluster(sub, mode_c)
            vcovs.add(vcov)
            df = contrast_df(t, groups)
            fit = mean_contrast(y, t, groups, conf_level, df=df)
            rows.append({**base, **shares, **fit, "df": df if np.isfinite(fit["p_value"]) else np.nan,
                         "note": untested_note(y, groups, fit)})
    if not rows:
        raise InsufficientDataError(f"no arm pair has units with an answer to {outcome!r}.")
    strata = PAIRING_COLUMN if any(paired.values()) else None
    if strata:
        diagnostics.append("paired design detected (persona_id shared across arms): mean_diff standard errors are "
                           "clustered by persona and TVD permutations stay within persona; pass cluster='unit' for "
                           "an unpaired analysis")
    elif any(v.startswith("cluster") for v in vcovs):
        diagnostics.append("some personas have several units in an arm: standard errors are clustered by persona_id")
    cat = ud.log is not None and ud.log.item(outcome).scale != "numeric"
    if tvd and cat:
        from driftstats.nco.drift import nco_test

        with warnings.catch_warnings():
            # the outcome-TVD rows are context, not a decision of effect(); the sentence goes to the diagnostics below
            warnings.simplefilter("ignore", MonteCarloErrorWarning)
            tv = nco_test(ud.log, nco=[outcome], by=by_cols, reference=ref, pairs=pairs, mode=mode, strata=strata,
                          n_perm=n_perm, n_boot=0, conf_level=conf_level, seed=seed)
        for d in tv.diagnostics:
            if d not in diagnostics:
                diagnostics.append(d)
        for r in tv.tidy().to_dict("records"):
            rows.append({**{b: r[b] for b in by_cols}, "term": outcome, "arm": r["arm"], "reference": r["reference"],
                         "measure": "tvd", "n_1": r["n_1"], "n_0": r["n_0"], "estimate": r["estimate"],
                         "statistic": r["statistic"], "p_value": r["p_value"], "conf_low": r["conf_low"],
                         "conf_high": r["conf_high"], "note": r.get("note")})
    has_persona = PAIRING_COLUMN in frame and frame[PAIRING_COLUMN].notna().any()
    vcov_label = "HC1" if not vcovs else " / ".join(sorted(vcovs))
    info = {"method": "difference in means (robust SE)" + (" + outcome TVD" if tvd and cat else ""),
            "n_obs": len(frame), "n_groups": int(frame[PAIRING_COLUMN].nunique()) if has_persona else len(frame),
            "conf_level": conf_level, "alternative": "two-sided", "seed": seed_value(seed),
            "n_dropped": n_dropped, "n_perm": n_perm if tvd and cat else None,
            "n_tests": sum(1 for r in rows if np.isfinite(r.get("p_value", np.nan))), "vcov": vcov_label,
            "strata": strata}
    source = ud.log if ud.log is not None else data
    return EffectResult.build(rows, info, by=by_cols, diagnostics=diagnostics,
                              provenance=provenance("effect", source, seed=seed))


Family = Literal["gaussian", "logit", "ordinal"]
_FORMULA_WORDS = {"C", "Q", "np", "I", "response", "Treatment", "Sum", "Poly", "center", "standardize", "scale",
                  "log", "exp", "sqrt", "reference", "levels"}


def _categorical_predictors(frame: pd.DataFrame, ud: UnitData, names: Sequence[str], lhs: str,
                            diagnostics: list[str]) -> pd.DataFrame:
    """Text / label predictors as Categoricals in their item's option order (reference = first option)."""
    out = frame
    for name in dict.fromkeys(names):
        if name in (lhs, "arm") or name not in frame.columns:
            continue
        col = frame[name]
        is_text = isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(col) \
            or pd.api.types.is_string_dtype(col)
        if not is_text:
            continue
        order = ud.option_order(name) if ud.coding.get(name) != "labels" else tuple(col.cat.categories)
        values = [v for v in pd.unique(col.dropna())]
        if order is not None:
            extra = sorted(str(v) for v in values if v not in order)
            cats = [*order, *extra]
            if extra:
                diagnostics.append(f"{name!r}: value(s) {extra} are not options of its item; placed after the options")
            source = "its item's option order"
        else:
            cats = sorted(values, key=str)
            source = "alphabetical order (no item gives an order)"
        unseen = [c for c in cats if c not in set(values)]
        if unseen:  # a level nobody gave has no coefficient (and would code a constant column)
            cats = [c for c in cats if c in set(values)]
            diagnostics.append(f"{name!r}: option(s) {unseen} given by no unit: left out of its levels")
        out = out.copy() if out is frame else out
        out[name] = pd.Categorical(col.astype(object), categories=cats)
        diagnostics.append(f"categorical predictor {name!r}: levels in {source}; reference level {cats[0]!r}")
    return out


def _check_design(x: np.ndarray, columns: Sequence[str], formula: str, *, extra: int = 0) -> None:
    """A design whose coefficients are identified: full column rank and more units than parameters."""
    n, k = x.shape
    if n <= k + extra:
        raise InsufficientDataError(
            f"{formula!r} has {k + extra} parameter(s) but only {n} unit(s) with every value: no residual degrees of "
            "freedom, so no standard error. More units, or fewer predictors.")
    rank = int(np.linalg.matrix_rank(x)) if k else 0
    if rank < k:
        raise InsufficientDataError(
            f"the design of {formula!r} is rank-deficient (rank {rank} for {k} columns: {list(columns)[:8]}): some "
            "coefficients are not identified (a constant or collinear predictor, or an arm or level without units "
            "after dropping missing values). Drop or merge the offending predictors.")


def _check_ordinal_item(log: SimLog, item: str) -> None:
    """``family="ordinal"`` needs an outcome item with a known order (ordinal, or two options)."""
    info = log.item(item)
    if info.scale == "ordinal" or info.n_levels == 2:
        return
    raise InvalidArgumentError(
        f"family='ordinal' needs an ordinal outcome; item {item!r} has scale {info.scale!r}. "
        + (order_unknown_message(item, info.options, use="an ordinal outcome") if info.scale == "nominal" else
           "Fix: family='gaussian' for a numeric outcome, or declare the item ordinal with its options in order.")
    )


def _ordinal_endog(frame: pd.DataFrame, lhs: str) -> pd.Series:
    """The outcome of an ordinal model as an ordered Categorical of integer codes."""
    y = frame[lhs]
    if not pd.api.types.is_numeric_dtype(y):
        raise InvalidArgumentError(
            f"family='ordinal' needs an ordinal outcome; column {lhs!r} holds {y.dtype} values of unknown order. "
            "Fix: an ordered pandas Categorical, or integer codes in order."
        )
    v = y.to_numpy(dtype=float)
    if not np.allclose(v, np.round(v)):
        raise InvalidArgumentError(
            f"family='ordinal' needs one category per unit; {lhs!r} has non-integer codes (units with several "
            "replicates average their codes). Fix: family='gaussian' for the mean code, or one replicate per unit."
        )
    return pd.Series(pd.Categorical(np.round(v).astype(int), ordered=True), index=frame.index, name=lhs)


def effect_model(
    formula: str,
    data: Any,
    *,
    family: Family = "gaussian",
    outcome: str | None = None,
    reference: str | None = None,
    mode: Literal["sample", "dist"] = "sample",
    cluster: Cluster = "auto",
    conf_level: float = 0.95,
) -> ModelResult:
    """Fit ``formula`` (statsmodels/patsy syntax) on the unit-level table.

    Names in the formula are items, persona attributes, or columns of a unit-level DataFrame;
    ``arm`` is categorical with the reference arm first. A left-hand side of ``response``
    stands for ``outcome`` (default: the log's primary item).

    Parameters
    ----------
    formula
        ``"y ~ arm + x"``; items enter as their codes (ordinal), values (numeric) or 0/1
        indicators (two-option nominal); a nominal item with more options enters as a factor.
    family
        ``"gaussian"`` (OLS), ``"logit"`` (0/1 outcome), ``"ordinal"`` (proportional-odds
        cumulative logit, statsmodels ``OrderedModel``; the outcome must be ordinal: an ordinal
        or two-option item, an ordered Categorical or integer codes). Its threshold terms are
        statsmodels' parametrisation: the first cut-point (``0/1``), then the logs of the
        increments between successive cut-points.
    cluster
        ``"auto"``: cluster-robust SEs by ``persona_id`` when a persona has several units
        (a paired design, or replicated units), else HC1 (model-based ML SEs for ``ordinal``).

    Returns
    -------
    ModelResult
        One row per coefficient: estimate, robust SE, normal-reference Wald test and interval.

    Raises
    ------
    InvalidArgumentError
        A nominal item with more than two options as the outcome; ``family="ordinal"`` on an
        outcome without an order; formula names that are not columns.
    InsufficientDataError
        A constant outcome (every unit gives the same answer): no model is identified.

    Warns
    -----
    InvalidAnswersWarning
        Invalid answers of the items in the formula were left out (count in the message).
    ConvergenceWarning
        The optimiser did not report convergence.

    Notes
    -----
    Categorical predictors (text persona attributes, nominal items) take the option order of
    the item that asks them (``items.attribute`` or the same name): the reference level is
    the first option, not the alphabetically first value. Other text columns are
    alphabetical; the diagnostics name every reference level.

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_study_log(n_per_arm=100, n_placebo=0, seed=2)
    >>> fit = ds.effect_model("support_tax ~ arm", log, family="ordinal")
    >>> "arm[T.treatment]" in fit.tidy()["term"].tolist()
    True
    """
    conf_level = check_conf_level(conf_level)
    check_choice("family", family, Family)
    check_choice("cluster", cluster, Cluster)
    if "~" not in formula:
        raise InvalidArgumentError(f"formula must have the form 'outcome ~ predictors'; got {formula!r}.")
    names = [n for n in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", formula) if n not in _FORMULA_WORDS]
    lhs = formula.split("~", 1)[0].strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", lhs):
        raise InvalidArgumentError(
            f"the left-hand side of formula {formula!r} must be one name: an item, a column or 'response' (with "
            f"outcome=...); got {lhs!r}. Transform the outcome into a column of a unit-level DataFrame first.")
    if lhs not in names and lhs != "response":
        names.append(lhs)  # an outcome spelt like a formula word (e.g. 'log') is still a column name
    diagnostics: list[str] = []
    if is_log_like(data):
        log = as_log(data)
        ud = unit_data(log, [], mode=mode)
        items = [n for n in names if n in log.item_names() and n not in ud.frame.columns]
        if lhs == "response":
            outcome = _default_outcome(ud, outcome)
            items.append(outcome)
        target = outcome if lhs == "response" else lhs
        if family == "ordinal" and target in log.item_names():
            _check_ordinal_item(log, target)
        if items:
            ud = unit_data(log, items, mode=mode, labels=[n for n in items if n != target])
        _warn_invalid(log, items, mode, diagnostics)
        frame = ud.frame.copy()
        ref = ud.reference(reference)
        frame["arm"] = pd.Categorical(frame["arm"], categories=[ref, *[a for a in ud.arms() if a != ref]])
        diagnostics += ud.diagnostics
    else:
        if not isinstance(data, pd.DataFrame):
            raise InvalidArgumentError(f"data must be a log or a DataFrame; got {type(data).__name__}.")
        if lhs == "response" and outcome is None:
            raise InvalidArgumentError("with a plain DataFrame, name the outcome column on the left of '~'.")
        frame, coding, notes = frame_codes(data.reset_index(drop=True), [outcome if lhs == "response" else lhs])
        ud = UnitData(frame, log=None, arm="arm", coding=coding, diagnostics=notes)
        frame = frame.copy()
        diagnostics += notes
    if lhs == "response":
        frame["response"] = frame[outcome]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise InvalidArgumentError(f"formula names {missing}, which are not items, persona attributes or columns; "
                                   f"available: {sorted(map(str, frame.columns))}.")
    frame = frame.dropna(subset=[c for c in frame.columns if c in names or c == lhs])
    if frame.empty:
        raise InsufficientDataError(f"no unit has values for every column of {formula!r}.")
    if not pd.api.types.is_numeric_dtype(frame[lhs]):
        raise InvalidArgumentError(
            f"the outcome {lhs!r} holds {frame[lhs].dtype} values of unknown order; a model needs numbers. Fix: an "
            "ordered pandas Categorical, numeric codes, or an item with a known order.")
    for c in dict.fromkeys([lhs, *names]):
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            n_inf = int(np.isinf(col.to_numpy(dtype=float)).sum())
            if n_inf:
                raise InvalidArgumentError(f"column {c!r} holds {n_inf} infinite value(s); a model needs finite "
                                           "numbers. Fix: replace them with NaN (those units are then left out).")
    yv = frame[lhs].to_numpy(dtype=float)
    if np.ptp(yv) == 0:
        raise InsufficientDataError(
            f"the outcome {lhs!r} is constant ({yv[0]:g} for all {len(yv)} units): no model is identified and no "
            "test is possible. Check the data (e.g. every unit gave the same answer).")
    if family == "logit" and ((yv < 0) | (yv > 1)).any():
        raise InvalidArgumentError(
            f"family='logit' needs an outcome in [0, 1] (a 0/1 indicator or a share); {lhs!r} ranges from "
            f"{yv.min():g} to {yv.max():g}. Fix: family='gaussian' or 'ordinal', or a two-option item.")
    frame = _categorical_predictors(frame, ud, names, lhs, diagnostics)
    groups, vcov = _groups_for_cluster(frame, cluster)
    if groups is not None and len(pd.unique(np.asarray(groups))) < 2:
        raise InsufficientDataError(
            f"cluster={cluster!r}: every unit is in one persona cluster, and a cluster-robust standard error needs "
            "at least 2 clusters. Fix: cluster='unit' (units treated as independent), or a log with more personas.")
    if groups is not None:
        diagnostics.append(
            "paired design detected (persona_id shared across arms): standard errors clustered by persona; pass "
            "cluster='unit' for an unpaired analysis" if "arm" in frame and _frame_paired(frame, "arm", frame["arm"].unique())
            else "standard errors clustered by persona_id (a persona has several units)")
    from patsy import PatsyError

    try:
        if family == "ordinal":
            from patsy import dmatrix
            from statsmodels.miscmodels.ordinal_model import OrderedModel

            endog = _ordinal_endog(frame, lhs)
            exog = dmatrix(formula.split("~", 1)[1], frame, return_type="dataframe")
            exog = exog.drop(columns=[c for c in exog.columns if c == "Intercept"])
            x = exog.to_numpy(dtype=float)
            constant = [c for c, j in zip(exog.columns, range(x.shape[1]), strict=True) if x.size and np.ptp(x[:, j]) == 0]
            if constant:  # the thresholds are the ordinal model's intercepts: a constant column duplicates them
                raise InsufficientDataError(
                    f"family='ordinal': the predictor column(s) {constant[:8]} of {formula!r} are constant over the "
                    f"{len(x)} unit(s) with every value (e.g. one arm only), so their coefficients are not identified "
                    "next to the thresholds. Drop them, or use data in which they vary.")
            _check_design(x, list(exog.columns), formula, extra=1)
            model = OrderedModel(endog, exog, distr="logit")
            kw: dict[str, Any] = {"cov_type": "cluster", "cov_kwds": {"groups": groups}} if groups is not None else {}
            fit = model.fit(method="bfgs", disp=False, maxiter=2000, **kw)
            vcov = vcov if groups is not None else "model (ML)"
            converged = bool(fit.mle_retvals.get("converged", True))
        else:
            import statsmodels.formula.api as smf

            fitter = smf.ols if family == "gaussian" else smf.logit
            model = fitter(formula, frame)
            _check_design(model.exog, list(model.exog_names), formula)
            kw = {"cov_type": "cluster", "cov_kwds": {"groups": groups}} if groups is not None else {"cov_type": "HC1"}
            fit = model.fit(**kw) if family == "gaussian" else model.fit(disp=False, **kw)
            converged = bool(getattr(fit, "mle_retvals", {}).get("converged", True))
    except PatsyError as exc:
        raise InvalidArgumentError(f"formula {formula!r} cannot be used: {str(exc).splitlines()[0]}") from None
    except (np.linalg.LinAlgError, ZeroDivisionError):  # statsmodels' sandwich: singular Hessian, or n = k
        raise InsufficientDataError(
            f"the {family} model of {formula!r} cannot give standard errors at its fit ({len(frame)} units): its "
            "information matrix is singular or no degrees of freedom are left (too few units for its parameters, or "
            "an outcome level that a predictor separates perfectly). Fix: fewer predictors, more units, or "
            "family='gaussian'.") from None
    if not converged:
        msg = f"the {family} model's optimiser did not report convergence; estimates may be unreliable"
        warnings.warn(msg, ConvergenceWarning, stacklevel=2)
        diagnostics.append(msg)
    rows = []
    for name in fit.params.index:
        row = dict(wald(float(fit.params[name]), float(fit.bse[name]), conf_level))
        if not math.isfinite(row["p_value"]):
            row["note"] = ("not testable: the coefficient's standard error is zero or undefined"
                           + ("" if converged else " (the optimiser did not converge)"))
            if not math.isfinite(row["estimate"]):
                row["estimate"] = math.nan
        rows.append({"term": str(name), **row})
    has_persona = "persona_id" in frame and frame["persona_id"].notna().any()
    info = {"method": f"{family} model: {formula}", "n_obs": int(fit.nobs), "conf_level": conf_level,
            "n_groups": int(frame["persona_id"].nunique()) if has_persona else int(fit.nobs),
            "alternative": "two-sided", "converged": converged, "vcov": vcov, "log_lik": float(fit.llf),
            "strata": PAIRING_COLUMN if groups is not None else None}
    source = ud.log if ud.log is not None else data
    return ModelResult.build(rows, info, diagnostics=diagnostics,
                             provenance=provenance(f"effect_model({formula!r})", source))
