"""The observed arm contrast: what a naive analysis of the simulated experiment reports.

``effect`` gives, per group and arm pair, the difference in mean outcome codes with
cluster-robust standard errors (replicates are averaged within a unit; matched personas
are clustered across arms) and the outcome TVD between arms (permutation p, valid
projection interval). ``effect_model`` fits a formula (OLS, logit or cumulative-logit
ordinal) on the unit-level table: items as columns, persona attributes, ``arm``.

The observed contrast is *not* a causal effect when the arms hold different implied
populations (user drift, methods 2); see :mod:`driftstats.correct` and :mod:`driftstats.calibrate`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from driftstats._args import as_columns, check_choice, check_conf_level
from driftstats._result import Provenance, Result
from driftstats._units import UnitData, is_log_like, unit_data
from driftstats.errors import InsufficientDataError, InvalidArgumentError

__all__ = ["EffectResult", "ModelResult", "effect", "effect_model", "mean_contrast"]

Cluster = Literal["auto", "unit", "persona", "none"]

EFFECT_ASSUMPTION = (
    "Causal reading requires exchangeable arms: P(U | arm) equal across arms. LLM simulations violate this "
    "(user drift); check NCOs (nco_test) before reading the contrast as an intervention effect."
)


@dataclass(frozen=True, slots=True, repr=False)
class EffectResult(Result):
    """Observed arm contrasts of the outcome (``measure`` ``mean_diff`` and ``tvd``)."""

    TITLE: ClassVar[str] = "Observed effect (arm contrast)"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "share_1", "share_0", "estimate",
                                          "conf_low", "conf_high", "p_value")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "n_1", "n_0", "share_1", "share_0")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("vcov", "n_tests")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (EFFECT_ASSUMPTION,)

    def plot(self, **kwargs: Any) -> Any:
        """Observed effect over adjustment iterations (paper Fig. 4); needs ``[plot]``."""
        from driftstats.plot import plot_effect

        return plot_effect(self, **kwargs)


@dataclass(frozen=True, slots=True, repr=False)
class ModelResult(Result):
    """Coefficients of a regression model fitted on the unit-level table."""

    TITLE: ClassVar[str] = "Effect model"
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ()
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("vcov", "log_lik")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (
        EFFECT_ASSUMPTION,
        "The model's functional form (linear, logit, or proportional-odds cumulative logit).",
    )


def _groups_for_cluster(sub: pd.DataFrame, cluster: str) -> tuple[np.ndarray | None, str]:
    if cluster == "none":
        return None, "HC1"
    if cluster == "unit" or "persona_id" not in sub.columns:
        return None, "HC1"  # one row per unit: unit clusters are heteroskedasticity-robust SEs
    matched = sub["persona_id"].notna().all() and sub.groupby("persona_id").size().max() > 1
    if cluster == "persona" or (cluster == "auto" and matched):
        return pd.factorize(sub["persona_id"])[0], "cluster(persona_id)"
    return None, "HC1"


def mean_contrast(y: np.ndarray, t: np.ndarray, groups: np.ndarray | None, conf_level: float) -> dict[str, float]:
    """OLS of y on [1, t]: the difference in means with HC1 or cluster-robust (CR1) SEs."""
    x = sm.add_constant(t.astype(float), has_constant="add")
    model = sm.OLS(y, x)
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups}) if groups is not None else model.fit(cov_type="HC1")
    est, se = float(fit.params[1]), float(fit.bse[1])
    z = stats.norm.ppf(0.5 + conf_level / 2)
    return {"estimate": est, "std_error": se, "statistic": est / se if se > 0 else np.nan,
            "p_value": float(2 * stats.norm.sf(abs(est / se))) if se > 0 else np.nan,
            "conf_low": est - z * se, "conf_high": est + z * se}


def _default_outcome(ud: UnitData, outcome: str | None) -> str:
    if outcome is not None:
        return outcome
    if ud.log is not None:
        prim = ud.log.item_names("primary")
        if len(prim) == 1:
            return prim[0]
        raise InvalidArgumentError(f"outcome= is needed: the log has primary items {list(prim)} (expected exactly one).")
    raise InvalidArgumentError("outcome= names the outcome column.")


def effect(
    data: Any,
    *,
    outcome: str | None = None,
    arm: str = "arm",
    by: str | Sequence[str] = ("iteration",),
    reference: str | None = None,
    pairs: Literal["reference", "all"] = "reference",
    mode: Literal["sample", "dist"] = "sample",
    cluster: Cluster = "auto",
    tvd: bool = True,
    n_perm: int = 2000,
    conf_level: float = 0.95,
    seed: int | np.random.Generator | None = None,
) -> EffectResult:
    """Observed contrast of ``outcome`` between arms, per group.

    Parameters
    ----------
    data
        A log (SimLog, log DataFrame, path) or a unit-level DataFrame with ``arm`` and ``outcome``.
    outcome
        The outcome item (default: the log's single primary item); its 0-based option code is
        the outcome scale (ordinal items), or its value (numeric items).
    cluster
        ``"auto"``: cluster by ``persona_id`` when personas are matched across arms, otherwise
        HC1; ``"persona"``, ``"unit"`` (HC1), ``"none"`` (HC1).
    tvd
        Also report the outcome TVD between arms (permutation test; logs only).

    Returns
    -------
    EffectResult
        ``measure = "mean_diff"``: ``estimate`` = mean(arm) - mean(reference) with robust SE;
        ``share_1``/``share_0`` the arm means. ``measure = "tvd"``: plug-in TVD, permutation p,
        projection interval.

    Examples
    --------
    >>> import driftstats as ds
    >>> world = ds.simulate_latent_world(seed=1)
    >>> res = ds.effect(world.sample_log(n_per_arm=200, seed=2), outcome="y", tvd=False)
    >>> res.tidy()["measure"].tolist()
    ['mean_diff']
    """
    conf_level = check_conf_level(conf_level)
    check_choice("cluster", cluster, Cluster)
    ud = unit_data(data, [outcome] if outcome else [], arm=arm, mode=mode)
    if outcome is None:
        outcome = _default_outcome(ud, None)
        ud = unit_data(data, [outcome], arm=arm, mode=mode)
    ud.require([outcome], "outcome")
    by_cols = [b for b in as_columns("by", by) if b in ud.frame.columns]
    ref = ud.reference(reference)
    arms = [a for a in ud.arms() if a != ref]
    arm_pairs = [(a, ref) for a in arms] if pairs == "reference" else [
        (a, b) for i, b in enumerate(ud.arms()) for a in ud.arms()[i + 1:]]
    rows = []
    vcov = "HC1"
    frame = ud.frame.dropna(subset=[outcome])
    grouped = frame.groupby(by_cols, sort=True) if by_cols else [((), frame)]
    for key, g in grouped:
        key = key if isinstance(key, tuple) else (key,)
        group = {b: (v.item() if hasattr(v, "item") else v) for b, v in zip(by_cols, key, strict=True)}
        for a1, a0 in arm_pairs:
            sub = g[g[ud.arm].isin([a1, a0])]
            t = (sub[ud.arm] == a1).to_numpy(dtype=float)
            if t.sum() < 2 or (1 - t).sum() < 2:
                continue
            groups, vcov = _groups_for_cluster(sub, cluster)
            y = sub[outcome].to_numpy(dtype=float)
            rows.append({**group, "term": outcome, "arm": str(a1), "reference": str(a0), "measure": "mean_diff",
                         "n_1": int(t.sum()), "n_0": int((1 - t).sum()), "share_1": float(y[t == 1].mean()),
                         "share_0": float(y[t == 0].mean()), **mean_contrast(y, t, groups, conf_level)})
    if not rows:
        raise InsufficientDataError(f"no arm pair has at least 2 units with an answer to {outcome!r} in each arm.")
    if tvd and ud.log is not None and ud.log.item(outcome).scale != "numeric":
        from driftstats.nco.drift import nco_test

        strata = "persona_id" if vcov.startswith("cluster") else None
        tv = nco_test(ud.log, nco=[outcome], by=by_cols, reference=ref, pairs=pairs, mode=mode, strata=strata,
                      n_perm=n_perm, n_boot=0, conf_level=conf_level, seed=seed).tidy()
        for r in tv.to_dict("records"):
            rows.append({**{b: r[b] for b in by_cols}, "term": outcome, "arm": r["arm"], "reference": r["reference"],
                         "measure": "tvd", "n_1": r["n_1"], "n_0": r["n_0"], "estimate": r["estimate"],
                         "statistic": r["statistic"], "p_value": r["p_value"], "conf_low": r["conf_low"],
                         "conf_high": r["conf_high"]})
    info = {"method": "difference in means (robust SE) + outcome TVD", "n_obs": len(frame),
            "n_groups": int(frame["persona_id"].nunique()) if "persona_id" in frame and frame["persona_id"].notna().any()
            else len(frame),
            "conf_level": conf_level, "alternative": "two-sided", "vcov": vcov, "n_tests": len(rows)}
    return EffectResult.build(rows, info, by=by_cols, provenance=Provenance(call="effect"))


Family = Literal["gaussian", "logit", "ordinal"]


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

    Names in the formula are items (their codes), persona attributes, or columns of a
    unit-level DataFrame; ``arm`` is categorical with the reference arm first. A left-hand
    side of ``response`` stands for ``outcome`` (default: the log's primary item).
    ``family="ordinal"``: proportional-odds cumulative logit (statsmodels ``OrderedModel``); its
    threshold terms are statsmodels' parametrisation: the first cut-point (``0/1``), then the
    logs of the increments between successive cut-points.

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_latent_world(seed=1).sample_log(n_per_arm=150, seed=2)
    >>> fit = ds.effect_model("y ~ arm", log, family="ordinal")
    >>> "arm[T.treatment]" in fit.tidy()["term"].tolist()
    True
    """
    conf_level = check_conf_level(conf_level)
    check_choice("family", family, Family)
    names = [n for n in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", formula) if n not in {"C", "Q", "np", "I", "response"}]
    lhs = formula.split("~", 1)[0].strip()
    if is_log_like(data):
        ud = unit_data(data, [], mode=mode)
        assert ud.log is not None  # unit_data returns the log for log-like input
        items = [n for n in names if n in ud.log.item_names() and n not in ud.frame.columns]
        if lhs == "response":
            outcome = _default_outcome(ud, outcome)
            items.append(outcome)
        if items:
            ud = unit_data(data, items, mode=mode)
        frame = ud.frame.copy()
        ref = ud.reference(reference)
        frame["arm"] = pd.Categorical(frame["arm"], categories=[ref, *[a for a in ud.arms() if a != ref]])
    else:
        if not isinstance(data, pd.DataFrame):
            raise InvalidArgumentError(f"data must be a log or a DataFrame; got {type(data).__name__}.")
        frame = data.reset_index(drop=True).copy()
        if lhs == "response" and outcome is None:
            raise InvalidArgumentError("with a plain DataFrame, name the outcome column on the left of '~'.")
    if lhs == "response":
        frame["response"] = frame[outcome]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise InvalidArgumentError(f"formula names {missing}, which are not items, persona attributes or columns; "
                                   f"available: {sorted(map(str, frame.columns))}.")
    frame = frame.dropna(subset=[c for c in frame.columns if c in names or c == lhs])
    groups, vcov = _groups_for_cluster(frame, cluster)
    z = stats.norm.ppf(0.5 + conf_level / 2)
    if family == "ordinal":
        from patsy import dmatrix
        from statsmodels.miscmodels.ordinal_model import OrderedModel

        endog = pd.Categorical(frame[lhs].round().astype(int), ordered=True)
        exog = dmatrix(formula.split("~", 1)[1], frame, return_type="dataframe")
        exog = exog.drop(columns=[c for c in exog.columns if c == "Intercept"])
        model = OrderedModel(pd.Series(endog, index=frame.index, name=lhs), exog, distr="logit")
        fit = model.fit(method="bfgs", disp=False, maxiter=2000)
        vcov = "model (ML)"
        params, bse = fit.params, fit.bse
        converged = bool(fit.mle_retvals.get("converged", True))
    else:
        import statsmodels.formula.api as smf

        fitter = smf.ols if family == "gaussian" else smf.logit
        model = fitter(formula, frame)
        kw: dict[str, Any] = {"cov_type": "cluster", "cov_kwds": {"groups": groups}} if groups is not None else {"cov_type": "HC1"}
        fit = model.fit(**kw) if family == "gaussian" else model.fit(disp=False, **kw)
        params, bse = fit.params, fit.bse
        converged = bool(getattr(fit, "mle_retvals", {}).get("converged", True))
    rows = []
    for name in params.index:
        est, se = float(params[name]), float(bse[name])
        rows.append({"term": str(name), "estimate": est, "std_error": se, "statistic": est / se,
                     "p_value": float(2 * stats.norm.sf(abs(est / se))), "conf_low": est - z * se,
                     "conf_high": est + z * se})
    info = {"method": f"{family} model: {formula}", "n_obs": int(fit.nobs), "conf_level": conf_level,
            "alternative": "two-sided", "converged": converged, "vcov": vcov, "log_lik": float(fit.llf)}
    return ModelResult.build(rows, info, provenance=Provenance(call=f"effect_model({formula!r})"))
