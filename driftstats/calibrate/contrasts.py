"""The verbs: calibrate effect rows against control rows, or the arms of a log against its placebo arms.

Part of :mod:`driftstats.calibrate` (methods.md section 4.4).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from driftstats._args import (
    DEFAULT_SEED,
    check_choice,
    check_conf_level,
    check_positive_int,
    seed_value,
)
from driftstats._groups import iter_groups, resolve_by
from driftstats._kernels.wald import wald
from driftstats._provenance import provenance
from driftstats._result import Result
from driftstats.calibrate._inputs import (
    CALIBRATION_ASSUMPTION,
    FEW_CONTROLS,
    MIN_CONTROLS,
    NORMAL_ASSUMPTION,
    Cluster,
    NullMethod,
)
from driftstats.calibrate._likelihood import _Errors, _fit_ml
from driftstats.calibrate.intervals import _mixture_row, _predictive
from driftstats.calibrate.null import McmcNullDistribution, Null, NullDistribution, _mcmc_null
from driftstats.errors import ConvergenceWarning, InsufficientDataError, InvalidArgumentError


# ----------------------------------------------------------------------------- the verbs
@dataclass(frozen=True, slots=True, repr=False)
class CalibrationResult(Result):
    """The effect of each non-placebo arm, uncalibrated and calibrated against the placebo arms.

    ``calibrated`` says whether the calibrated rows carry numbers; when not, ``not_calibrated``
    says why (the same sentence is the calibrated rows' ``note``). ``null`` is the fitted null; below
    ``min_controls`` (with at least 2 controls) it is an asymptotic fit kept for display only (it
    calibrates nothing, and ``glance()`` leaves ``null_mean``, ``null_sd`` and ``converged`` NA).
    """

    TITLE: ClassVar[str] = "Empirical calibration against placebo arms"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "calibrated", "estimate", "std_error", "p_value",
                                          "conf_low", "conf_high", "note")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "calibrated", "note")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("null_mean", "null_sd", "n_tests", "strata")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (CALIBRATION_ASSUMPTION, NORMAL_ASSUMPTION)

    controls: pd.DataFrame = field(default_factory=pd.DataFrame)
    null: NullDistribution | McmcNullDistribution | None = None
    not_calibrated: str | None = None

    @property
    def calibrated(self) -> bool:
        """True when the calibrated rows carry a calibrated estimate (the null was fitted and usable)."""
        return self.not_calibrated is None

    def plot(self, **kwargs: Any) -> Any:
        """Empirical null with the controls, and calibrated vs uncalibrated intervals (needs ``[plot]``)."""
        from driftstats.plot import plot_calibration

        return plot_calibration(self, **kwargs)


def _calibrate(
    contrasts: pd.DataFrame,
    cov: np.ndarray,
    is_control: np.ndarray,
    *,
    by: Sequence[str],
    conf_level: float,
    null: NullMethod,
    min_controls: int,
    few_controls: int,
    max_abs: float | None,
    n_iter: int,
    seed: Any,
    diagnostics: list[str],
    call: str,
    data: Any,
    strata: str | None,
) -> CalibrationResult:
    """Calibrate the non-control rows of ``contrasts`` (``term, arm, reference, estimate, std_error, note``
    and ``by``) against its control rows; ``cov`` is the joint sampling covariance of all rows."""
    est = contrasts["estimate"].to_numpy(float)
    var = np.diag(cov).astype(float)
    usable = is_control & np.isfinite(est) & np.isfinite(var) & (var > 0)
    if max_abs is not None:
        usable &= np.abs(est) <= max_abs
    ctrl = np.flatnonzero(usable)
    n_dropped = int(is_control.sum() - ctrl.size)
    n_ctrl = int(ctrl.size)
    method = null
    if null == "auto":
        method = "mcmc" if n_ctrl < few_controls else "asymptotic"
        if n_ctrl < few_controls and n_ctrl >= min_controls:
            diagnostics.append(f"null='auto': {n_ctrl} placebo contrast(s) < few_controls={few_controls}, so the null "
                               "is sampled by MCMC (fitMcmcNull) and calibrated rows use its posterior predictive "
                               "distribution; the asymptotic null is anti-conservative with few controls")
    elif null == "asymptotic" and min_controls <= n_ctrl < few_controls:
        diagnostics.append(f"only {n_ctrl} placebo contrast(s) with the asymptotic null: calibrated p-values are "
                           f"anti-conservative below {few_controls} controls (simulated size about 0.10 at J = 10 "
                           "for a nominal 0.05); null='mcmc' accounts for the null's uncertainty")
    if n_dropped:
        diagnostics.append(f"{n_dropped} placebo contrast(s) left out of the null: not testable (fewer than 2 units, "
                           "zero variance)" + (" or beyond max_abs" if max_abs is not None else ""))
    fitted: Null | None = None
    reason: str | None = None
    err: _Errors | None = None
    shown: Null | None = None  # a null fitted for display only (below min_controls), never used
    if n_ctrl < min_controls:
        reason = (f"only {n_ctrl} usable placebo contrast(s); calibration needs at least min_controls="
                  f"{min_controls} (the empirical null is not estimable from fewer)")
        if n_ctrl >= 2:
            fit = _fit_ml(_Errors(est[ctrl], se=np.sqrt(var[ctrl])))
            shown = NullDistribution(fit.mean, fit.sd, n_ctrl, n_dropped, fit.log_lik, fit.converged, fit.at_boundary)
    else:
        sub = cov[np.ix_(ctrl, ctrl)]
        lam = np.linalg.eigvalsh((sub + sub.T) / 2)
        if lam.min() <= 1e-12 * max(lam.max(), 1e-300):
            reason = ("the placebo contrasts' sampling covariance is singular (too few persona clusters for "
                      f"{n_ctrl} contrasts)")
        else:
            diag_only = bool(np.allclose(sub - np.diag(np.diag(sub)), 0.0))
            err = _Errors(est[ctrl], se=np.sqrt(var[ctrl])) if diag_only else _Errors(est[ctrl], cov=sub)
            if method == "mcmc":
                fitted = _mcmc_null(err, n_ctrl, n_dropped, n_iter, 10, seed)
                if not fitted.converged:
                    reason = (f"the MCMC null did not converge (split R-hat {fitted.r_hat:.3g}, acceptance "
                              f"{fitted.acceptance:.3f}); increase n_iter")
                    warnings.warn(f"{call}: {reason}", ConvergenceWarning, stacklevel=3)
            else:
                fit = _fit_ml(err)
                fitted = NullDistribution(fit.mean, fit.sd, n_ctrl, n_dropped, fit.log_lik, fit.converged,
                                          fit.at_boundary)
                if not fit.converged:
                    reason = (f"the empirical-null fit did not converge (Nelder-Mead, {fit.n_eval} evaluations on "
                              f"{n_ctrl} controls)")
                    warnings.warn(f"{call}: {reason}", ConvergenceWarning, stacklevel=3)
                elif fit.at_boundary:
                    diagnostics.append("the null's sd is estimated at its boundary 0: the placebo contrasts spread no "
                                       "more than their sampling errors explain")
    rows: list[dict[str, Any]] = []
    for i in np.flatnonzero(~is_control):
        rec = contrasts.iloc[i].to_dict()
        base = {**{b: rec[b] for b in by}, "term": rec["term"], "arm": rec["arm"], "reference": rec["reference"],
                "measure": "mean_diff"}
        raw_note = rec.get("note")
        raw_note = raw_note if isinstance(raw_note, str) else None
        if not (math.isfinite(est[i]) and math.isfinite(var[i])):
            raw = wald(math.nan, math.nan, conf_level)
            raw_note = raw_note or (f"not testable: the estimate ({est[i]:g}) or its variance ({var[i]:g}) is not a "
                                    "finite number")
        else:
            raw = wald(est[i], math.sqrt(var[i]) if var[i] >= 0 else math.nan, conf_level)
            raw_note = raw_note or (None if math.isfinite(raw["p_value"]) else "not testable: zero or undefined variance")
        rows.append({**base, "calibrated": False, **raw, "note": raw_note})
        if reason is not None or fitted is None or err is None:
            why = reason or "no usable null"
            rows.append({**base, "calibrated": True, **wald(math.nan, math.nan, conf_level),
                         "note": f"not calibrated: {why}"})
            continue
        if raw_note is not None:
            rows.append({**base, "calibrated": True, **wald(math.nan, math.nan, conf_level),
                         "note": f"not calibrated: the contrast itself is {raw_note}"})
            continue
        m, v = _predictive(fitted, err, float(var[i]), cov[i, ctrl])
        rows.append({**base, "calibrated": True, **_mixture_row(float(est[i]), m, v, conf_level), "note": None})
    if reason is not None:
        diagnostics.append(f"NOT CALIBRATED: {reason}; the calibrated rows carry no estimate")
    if fitted is not None:
        kind = "MCMC" if isinstance(fitted, McmcNullDistribution) else "asymptotic"
        diagnostics.insert(0, f"empirical null ({kind}) from {n_ctrl} placebo contrast(s): mean {fitted.mean:.4g}, "
                              f"sd {fitted.sd:.4g}")
    converged = None if fitted is None else bool(fitted.converged)
    label = "no null fitted" if fitted is None else f"{'MCMC' if method == 'mcmc' else 'asymptotic'} null"
    ran_mcmc = isinstance(fitted, McmcNullDistribution)
    info = {"method": f"empirical calibration ({label})",
            "n_obs": n_ctrl, "conf_level": conf_level, "alternative": "two-sided",
            "seed": seed_value(seed) if ran_mcmc else None, "converged": converged, "n_dropped": n_dropped,
            "null_mean": None if fitted is None else fitted.mean, "null_sd": None if fitted is None else fitted.sd,
            "n_tests": int(sum(1 for r in rows if math.isfinite(r["p_value"]))), "strata": strata}
    controls = contrasts.iloc[ctrl][[*by, "arm", "reference", "estimate", "std_error"]].reset_index(drop=True)
    return CalibrationResult.build(rows, info, by=by, diagnostics=diagnostics,
                                   provenance=provenance(call, data, seed=seed if ran_mcmc else None),
                                   controls=controls, null=fitted if fitted is not None else shown,
                                   not_calibrated=reason)


def _check_null_args(null: str, min_controls: int, few_controls: int, n_iter: int) -> None:
    check_choice("null", null, NullMethod)
    check_positive_int("min_controls", min_controls, minimum=2)
    check_positive_int("few_controls", few_controls, minimum=2)
    check_positive_int("n_iter", n_iter, minimum=100)


def calibrate_effects(
    effects: pd.DataFrame,
    controls: pd.DataFrame,
    *,
    conf_level: float = 0.95,
    null: NullMethod = "auto",
    min_controls: int = MIN_CONTROLS,
    few_controls: int = FEW_CONTROLS,
    max_abs: float | None = None,
    by: Sequence[str] = (),
    n_iter: int = 100_000,
    seed: int | np.random.Generator | None = DEFAULT_SEED,
) -> CalibrationResult:
    """Calibrate effect rows against independent control rows.

    Parameters
    ----------
    effects, controls
        Frames with ``term, arm, reference, estimate, std_error`` (and the ``by`` columns); the
        controls' estimates are independent of each other and of the effects (otherwise use
        :func:`calibrate_effect`, which models a shared control arm).
    null
        ``"auto"`` (default): MCMC below ``few_controls`` controls, asymptotic otherwise;
        ``"asymptotic"`` (``fitNull``); ``"mcmc"`` (``fitMcmcNull``).
    min_controls
        Below this many usable controls (default 5) nothing is calibrated: the calibrated rows
        carry NaN and ``note = "not calibrated: ..."``, and ``result.calibrated`` is False.
    seed
        For the MCMC null. Default 0: results are reproducible; ``seed=None`` draws fresh entropy.

    Returns
    -------
    CalibrationResult
        Per effect a raw row (``calibrated=False``) and a calibrated row (``calibrated=True``).

    Examples
    --------
    >>> import driftstats as ds, pandas as pd
    >>> from driftstats.calibrate import calibrate_effects
    >>> c = ds.simulate_controls(30, mean=0.2, sd=0.1, seed=1).assign(term="y", arm="p", reference="c")
    >>> e = pd.DataFrame({"term": ["y"], "arm": ["t"], "reference": ["c"], "estimate": [0.9], "std_error": [0.1]})
    >>> res = calibrate_effects(e, c)
    >>> res.calibrated, res.tidy()["calibrated"].tolist()
    (True, [False, True])
    """
    conf_level = check_conf_level(conf_level)
    _check_null_args(null, min_controls, few_controls, n_iter)
    need = {"term", "arm", "reference", "estimate", "std_error", *by}
    cols = [*by, "term", "arm", "reference", "estimate", "std_error"]
    parts = {}
    for name, frame in (("effects", effects), ("controls", controls)):
        missing = sorted(need - set(frame.columns))
        if missing:
            raise InvalidArgumentError(f"{name} needs columns {sorted(need)}; missing {missing}.")
        part = frame[cols].copy()
        for col in ("estimate", "std_error"):
            num = pd.to_numeric(part[col], errors="coerce")
            bad = part[col][num.isna() & part[col].notna()]
            if len(bad):
                raise InvalidArgumentError(
                    f"{name}[{col!r}] must hold numbers; {len(bad)} value(s) are not (first: {bad.iloc[0]!r}). "
                    "Fix: convert the column with pd.to_numeric, or drop those rows.")
            part[col] = num
        parts[name] = part
    allrows = pd.concat([parts["controls"], parts["effects"]], ignore_index=True)
    is_control = np.r_[np.ones(len(controls), bool), np.zeros(len(effects), bool)]
    cov = np.diag(allrows["std_error"].to_numpy(float) ** 2)
    return _calibrate(allrows, cov, is_control, by=list(by), conf_level=conf_level, null=null,
                      min_controls=min_controls, few_controls=few_controls, max_abs=max_abs, n_iter=n_iter,
                      seed=seed, diagnostics=[], call="calibrate_effects", data=allrows, strata=None)


def _arm_mean_covariance(y: np.ndarray, cell: np.ndarray, n_cells: int, clusters: np.ndarray | None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means of ``y`` per cell (group x arm), their counts, and the sampling covariance of the means.

    Independent units: ``diag(s_c^2 / n_c)``. Clusters (paired personas): the CR1 sandwich
    ``G/(G-1) sum_g psi_g psi_g'`` with ``psi_g[c] = sum_{i in g, cell c} (y_i - ybar_c) / n_c``.
    """
    n = np.bincount(cell, minlength=n_cells).astype(float)
    with np.errstate(all="ignore"):
        mean = np.bincount(cell, weights=y, minlength=n_cells) / n
        r = y - mean[cell]
        if clusters is None:
            ss = np.bincount(cell, weights=r**2, minlength=n_cells)
            return mean, n, np.diag(ss / (n * (n - 1)))
        g = int(clusters.max()) + 1
        psi = np.zeros((g, n_cells))
        np.add.at(psi, (clusters, cell), r / n[cell])
    return mean, n, g / (g - 1) * psi.T @ psi if g > 1 else np.full((n_cells, n_cells), np.nan)


def calibrate_effect(
    data: Any,
    *,
    outcome: str | None = None,
    by: str | Sequence[str] | None = "auto",
    placebo: Sequence[str] | None = None,
    arm: str = "arm",
    reference: str | None = None,
    mode: Literal["sample", "dist"] = "sample",
    null: NullMethod = "auto",
    min_controls: int = MIN_CONTROLS,
    few_controls: int = FEW_CONTROLS,
    cluster: Cluster = "auto",
    conf_level: float = 0.95,
    max_abs: float | None = None,
    n_iter: int = 100_000,
    seed: int | np.random.Generator | None = DEFAULT_SEED,
) -> CalibrationResult:
    """Calibrate the effect of every treatment arm against the placebo arms, modelling the shared control.

    Each placebo arm's contrast with the control (the difference in mean outcome, as
    :func:`driftstats.effect`) is a negative-control estimate with true effect 0; the empirical
    null fitted to them calibrates the treatment arms' p-values and intervals. Groups in ``by``
    (e.g. iterations) are pooled: every placebo contrast of every group is a control, and each
    treatment contrast is calibrated with the placebo contrasts of its own group.

    Parameters
    ----------
    data
        A log (arms of kind ``placebo`` are the controls) or a unit-level DataFrame with ``arm``,
        the outcome column and ``placebo=`` naming the placebo arms.
    outcome
        The outcome item (default: the log's single primary item) or column.
    by
        Grouping columns. Default ``"auto"``: one group per run of the study (``iteration``, plus
        ``study``, ``model`` and ``run_id`` where the log holds several), so answers of different
        models, adjustment paths and iterations are never pooled; ``by=()`` pools everything. An
        unknown column is an error.
    placebo
        The placebo arms (default: the log's arms of kind ``placebo``).
    reference
        The control arm (default: the log's reference arm).
    null
        ``"auto"`` (default): MCMC when fewer than ``few_controls`` (20) placebo contrasts are
        usable, the asymptotic null otherwise; ``"asymptotic"``; ``"mcmc"``.
    min_controls
        Below this many usable placebo contrasts (default 5) nothing is calibrated: the
        calibrated rows carry NaN with ``note = "not calibrated: ..."``, ``result.calibrated`` is
        False and ``result.not_calibrated`` says why.
    cluster
        ``"auto"`` (default): cluster on ``persona_id`` when the design is paired (the project's
        pairing rule), else independent units; ``"persona"``, ``"unit"``, ``"none"``.
    n_iter, seed
        MCMC iterations and seed. Default seed 0: results are reproducible; ``seed=None`` draws
        fresh entropy.

    Returns
    -------
    CalibrationResult
        Per treatment arm (and group): a raw row (``calibrated=False``) and a calibrated row.
        ``glance()``: ``converged`` (NA when no null was fitted), ``null_mean``, ``null_sd``,
        ``n_obs`` (controls used), ``n_dropped`` (placebo contrasts left out).

    Raises
    ------
    InvalidArgumentError
        No placebo arms; unknown ``by`` column.

    Warns
    -----
    ConvergenceWarning
        The null's optimiser (or MCMC) did not converge; the calibrated rows are then not reported.

    Notes
    -----
    Every contrast ``theta_a = ybar_a - ybar_c`` shares the control arm's mean, so the placebo
    contrasts are correlated with each other and with the treatment contrast (covariance
    ``var(ybar_c)``; in paired designs also through the personas). The joint sampling covariance
    ``V`` of all contrasts is estimated from the units, the null is fitted to
    ``c ~ N(mu 1, sigma^2 I + V_cc)`` (EmpiricalCalibration's likelihood when ``V`` is diagonal),
    and each treatment contrast is calibrated with the predictive distribution of its error given
    the controls: mean ``mu + k' S^-1 (c - mu 1)``, variance ``sigma^2 + v_tt - k' S^-1 k``
    (``S = sigma^2 I + V_cc``, ``k`` the covariance with the controls), plus the null mean's
    estimation error for the asymptotic null (universal kriging) or averaged over the posterior
    for the MCMC null [PROPOSAL]. Treating the contrasts as independent double-counts the control
    arm's noise: simulated size 0.0025 for a nominal 0.05.

    References
    ----------
    Schuemie et al. (2014), Statistics in Medicine 33(2):209-218, doi:10.1002/sim.5925.

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_placebo_log(n_placebo=20, n_per_arm=60, bias_sd=0.1, seed=1)
    >>> res = ds.calibrate_effect(log, outcome="y", null="asymptotic")
    >>> res.calibrated, res.tidy()["calibrated"].tolist()
    (True, [False, True])
    """
    from driftstats._units import unit_data
    from driftstats.correct._pairs import pairing
    from driftstats.log.simlog import SimLog

    conf_level = check_conf_level(conf_level)
    _check_null_args(null, min_controls, few_controls, n_iter)
    check_choice("cluster", cluster, Cluster)
    ud = unit_data(data, [outcome] if outcome else [], arm=arm, mode=mode)
    log = ud.log if isinstance(ud.log, SimLog) else None
    if outcome is None:
        prim = log.item_names("primary") if log is not None else ()
        if len(prim) != 1:
            raise InvalidArgumentError(
                f"outcome= is needed: {'the log has primary items ' + str(list(prim)) if log is not None else 'name the outcome column'}"
                " (expected exactly one primary item).")
        outcome = prim[0]
        ud = unit_data(data, [outcome], arm=arm, mode=mode)
    ud.require([outcome], "outcome")
    if placebo is None:
        placebos = set(log.arms_of_kind("placebo")) if log is not None else set()
    else:
        placebos = {str(p) for p in placebo}
    if not placebos:
        raise InvalidArgumentError(
            "calibration needs placebo arms (arms table kind = 'placebo', or placebo=[...] for a unit-level frame): "
            "meaning-preserving paraphrases or sham texts of the control."
        )
    frame = ud.frame
    by_cols = resolve_by(by, log=log, columns=frame.columns, frame=frame)
    ref = ud.reference(reference)
    n_before = len(frame)
    frame = frame.dropna(subset=[outcome]).reset_index(drop=True)
    diagnostics: list[str] = []
    if n_before > len(frame):
        diagnostics.append(f"{n_before - len(frame)} unit(s) without a valid {outcome!r} left out")
    no_arm = int(frame[ud.arm].isna().sum())
    if no_arm:  # a unit without an arm belongs to no contrast
        frame = frame[frame[ud.arm].notna()].reset_index(drop=True)
        diagnostics.append(f"{no_arm} unit(s) without an arm ({ud.arm!r} missing) left out")
    if frame.empty:
        raise InsufficientDataError(f"no unit has a valid answer to {outcome!r}.")
    if not pd.api.types.is_numeric_dtype(frame[outcome]):
        raise InvalidArgumentError(f"outcome {outcome!r} is not numeric; calibration contrasts mean outcomes.")
    yv = frame[outcome].to_numpy(float)
    if not np.isfinite(yv).all() or np.abs(yv).max() > 1e150:
        raise InvalidArgumentError(f"outcome {outcome!r} holds infinite values or values beyond 1e150 in magnitude, "
                                   "which overflow the contrasts' variances; rescale it.")
    arm_col = ud.arm
    frame = frame.assign(__arm=frame[arm_col].astype(str))
    ref_s = str(ref)
    cells: list[tuple[dict[str, Any], str]] = []
    cell_of = np.full(len(frame), -1)
    for group, sub in iter_groups(frame, by_cols):
        for a in sorted(sub["__arm"].unique()):
            idx = sub.index[sub["__arm"] == a]
            cell_of[idx] = len(cells)
            cells.append((group, a))
    pair = pairing(frame, "__arm", cluster, log=log, arms=sorted(frame["__arm"].unique()))
    if pair.sentence:
        diagnostics.append(pair.sentence)
    y = frame[outcome].to_numpy(float)
    mean, n, vcell = _arm_mean_covariance(y, cell_of, len(cells), pair.clusters)
    rows: list[dict[str, Any]] = []
    a_rows: list[np.ndarray] = []
    control_flags: list[bool] = []
    for c, (group, a) in enumerate(cells):
        if a == ref_s:
            continue
        ref_cell = next((j for j, (g2, a2) in enumerate(cells) if g2 == group and a2 == ref_s), None)
        note = None
        vec = np.zeros(len(cells))
        vec[c] = 1.0
        if ref_cell is None:
            note = f"not testable: the group has no {ref_s!r} (reference) arm"
        else:
            vec[ref_cell] = -1.0
            if n[c] < 2 or n[ref_cell] < 2:
                note = f"not testable: arm {a!r} or {ref_s!r} has fewer than 2 units with a valid answer"
        rows.append({**group, "term": outcome, "arm": a, "reference": ref_s, "note": note,
                     "estimate": float(vec @ mean) if ref_cell is not None else math.nan})
        a_rows.append(vec)
        control_flags.append(a in placebos)
    if not rows:
        raise InsufficientDataError("no arm besides the reference arm has units with a valid answer.")
    amat = np.vstack(a_rows)
    with np.errstate(all="ignore"):
        cov = amat @ np.nan_to_num(vcell, nan=0.0, posinf=np.inf) @ amat.T
    contrasts = pd.DataFrame(rows)
    bad = contrasts["note"].notna().to_numpy()
    cov[bad, :] = 0.0
    cov[:, bad] = 0.0
    cov[bad, bad] = math.nan
    contrasts["std_error"] = np.sqrt(np.diag(cov))
    contrasts.loc[bad, "estimate"] = math.nan
    is_control = np.asarray(control_flags)
    if not (~is_control).any():
        raise InvalidArgumentError(f"every arm besides {ref_s!r} is a placebo arm: there is no effect to calibrate.")
    shared = "the placebo and treatment contrasts share the control arm's mean: their covariance is estimated " \
             "from the units and modelled (not treated as independent)"
    diagnostics.append(shared)
    return _calibrate(contrasts, cov, is_control, by=list(by_cols), conf_level=conf_level, null=null,
                      min_controls=min_controls, few_controls=few_controls, max_abs=max_abs, n_iter=n_iter,
                      seed=seed, diagnostics=diagnostics, call="calibrate_effect", data=data, strata=pair.strata)
