"""Proximal two-stage least squares (methods.md section 4.3).

Roles: ``Z`` (treatment-inducing proxy, negative control exposure), ``W`` (outcome-inducing
proxy, NCO), ``X`` (measured covariates). Linear bridge model:
``E[Y | T, Z, U] = b0 + bT T + bU U``, ``E[W | T, Z, U] = g0 + gU U``. Stage 1: ``W ~ T + Z + X``;
stage 2: ``Y ~ T + What + X``. Equivalent to IV-2SLS of Y on (T, W, X) with W endogenous
and (T, Z, X) as instruments, which is how it is computed here, with correct 2SLS sandwich
standard errors: ``classic`` (homoskedastic) or ``robust`` (HC0), each optionally
``debiased`` (R ivreg / linearmodels ``debiased=True``: residual variance over n - k, t
reference). The naive second-stage OLS standard error is reported alongside
(``naive_std_error``) to show the pitfall: it is typically too small.

Identification needs the first stage to have full rank, not only each W to be predicted
well: with two W driven by one scalar U, each W's own first-stage F can be in the hundreds
while the pair is not identified. The result therefore reports, besides each W's partial F,
the Sanderson-Windmeijer conditional F of each W, Shea's partial R^2, and the joint
Cragg-Donald and Kleibergen-Paap rk Wald F statistics, and warns on the joint ones.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import linalg

from driftstats._args import as_columns, check_choice, check_conf_level
from driftstats._kernels.wald import wald
from driftstats._provenance import provenance
from driftstats._result import Result
from driftstats._units import unit_data
from driftstats.errors import InsufficientDataError, InvalidArgumentError, WeakProxyWarning

__all__ = ["P2slsResult", "first_stage_diagnostics", "iv2sls", "p2sls", "parse_proximal_formula"]

Vcov = Literal["robust", "classic"]

P2SLS_ASSUMPTIONS = (
    "Z is a negative control exposure: Z is independent of Y given (T, U, X).",
    "W is a negative control outcome: W is independent of (T, Z) given (U, X).",
    "Relevance / completeness: Z is associated with U strongly enough to predict W jointly (full-rank first "
    "stage; see sw_f, cragg_donald_f, kp_f), with dim(Z) >= dim(W).",
    "Linear bridge: E[Y | T, U, X] and E[W | U, X] are linear in U; the estimand is the ATE in the pooled "
    "implied population tau(pbar) (methods 4.3).",
)


@dataclass(frozen=True, slots=True, repr=False)
class P2slsResult(Result):
    """Coefficients of the second stage (treatment, proxies, covariates)."""

    TITLE: ClassVar[str] = "Proximal 2SLS"
    DISPLAY: ClassVar[tuple[str, ...]] = ("estimate", "std_error", "naive_std_error", "conf_low", "conf_high", "p_value")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("df", "naive_std_error", "note")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("first_stage_f", "vcov", "sw_f", "cragg_donald_f", "kp_f")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = P2SLS_ASSUMPTIONS

    first_stage: pd.DataFrame = field(default_factory=pd.DataFrame)


def parse_proximal_formula(formula: str) -> tuple[str, str, list[str], list[str], list[str]]:
    """``"y ~ t + x1 + x2 | w1 + w2 ~ z1 + z2"`` -> (y, t, covariates, W, Z)."""
    parts = formula.split("|")
    if len(parts) != 2 or parts[0].count("~") != 1 or parts[1].count("~") != 1:
        raise InvalidArgumentError(
            f"formula must look like 'y ~ t + x1 | w1 + w2 ~ z1 + z2' (outcome ~ treatment + covariates | "
            f"NCO proxies ~ NCE proxies); got {formula!r}."
        )

    def terms(s: str) -> list[str]:
        out = [t.strip() for t in s.split("+") if t.strip()]
        bad = [t for t in out if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", t)]
        if bad:
            raise InvalidArgumentError(f"formula terms must be plain column names; got {bad}.")
        return out

    lhs, rhs = parts[0].split("~")
    wl, zl = parts[1].split("~")
    y = terms(lhs)
    rhs_terms = terms(rhs)
    if len(y) != 1 or not rhs_terms:
        raise InvalidArgumentError("formula needs one outcome and at least the treatment on the right of '~'.")
    return y[0], rhs_terms[0], rhs_terms[1:], terms(wl), terms(zl)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(a, b, rcond=None)[0]


def _annihilate(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    return a - x @ _solve(x, a)


def first_stage_diagnostics(endog: np.ndarray, instr: np.ndarray, exog: np.ndarray) -> dict[str, Any]:
    """First-stage strength of each endogenous regressor and of all of them jointly.

    Parameters
    ----------
    endog, instr, exog
        The endogenous regressors W (n x m), excluded instruments Z (n x k) and exogenous
        regressors (n x c, including the constant), with k >= m and full column ranks.

    Returns
    -------
    dict
        ``partial_f`` (m; classical F of Z in W_j ~ Z + exog, df (k, n - k - c)), ``partial_r2``,
        ``shea_r2`` (Shea's partial R^2), ``sw_f`` (m; Sanderson-Windmeijer conditional F, df
        (k - m + 1, n - k - c)), ``cragg_donald_f`` and ``kp_f`` (Kleibergen-Paap rk Wald F, HC0).

    Notes
    -----
    With ``W~``, ``Z~`` the residuals after partialling out ``exog`` and ``P`` the projection on
    ``Z~``: Sanderson & Windmeijer (2016): ``e_j = W~_j - W~_{-j} d_j`` with ``d_j`` the 2SLS
    coefficients of ``W~_j`` on ``W~_{-j}`` (instruments ``Z~``),
    ``F_j = [e_j' P e_j / (k - m + 1)] / [e_j' (I - P) e_j / (n - k - c)]``; with one W it is the
    first-stage F. Cragg-Donald: ``(n - k - c)/k * r2 / (1 - r2)``, ``r2`` the smallest squared
    canonical correlation of ``W~`` and ``Z~``. Kleibergen-Paap (2006) rk Wald statistic of
    ``rank(Pi) = m - 1`` with heteroskedasticity-robust (HC0) score covariance, times
    ``(n - k - c)/(n k)``, as linearmodels 7 and Stata's ivreg2 (``ranktest``).

    References
    ----------
    Sanderson & Windmeijer (2016), Journal of Econometrics 190(2):212-221, doi:10.1016/j.jeconom.2015.06.004.
    Cragg & Donald (1993), Econometric Theory 9(2):222-240, doi:10.1017/S0266466600007519.
    Kleibergen & Paap (2006), Journal of Econometrics 133(1):97-126, doi:10.1016/j.jeconom.2005.02.011.
    """
    n, k = instr.shape
    m = endog.shape[1]
    c = exog.shape[1]
    dof = n - k - c
    xt = _annihilate(endog, exog)
    zt = _annihilate(instr, exog)
    proj = zt @ _solve(zt, xt)  # P W~
    partial_f, partial_r2, sw_f = [], [], []
    for j in range(m):
        ss_p = float(xt[:, j] @ proj[:, j])
        ss_t = float(xt[:, j] @ xt[:, j])
        partial_f.append((ss_p / k) / ((ss_t - ss_p) / dof))
        partial_r2.append(ss_p / ss_t)
        if m == 1:
            sw_f.append(partial_f[-1])
            continue
        others = [i for i in range(m) if i != j]
        xo, pxo = xt[:, others], proj[:, others]
        d = np.linalg.solve(pxo.T @ xo, pxo.T @ xt[:, j])
        e = xt[:, j] - xo @ d
        pe = zt @ _solve(zt, e)
        ep = float(e @ pe)
        sw_f.append((ep / (k - m + 1)) / ((float(e @ e) - ep) / dof))
    # Shea (1997): the partial R^2 of W_j's fitted values, net of the other regressors' fitted values
    full = np.column_stack([exog, endog])
    fitted = np.column_stack([exog, np.column_stack([exog, instr]) @ _solve(np.column_stack([exog, instr]), endog)])
    shea = []
    for j in range(m):
        col = c + j
        rest = [i for i in range(full.shape[1]) if i != col]
        r_full = full[:, col] - full[:, rest] @ _solve(full[:, rest], full[:, col])
        r_fit = fitted[:, col] - fitted[:, rest] @ _solve(fitted[:, rest], fitted[:, col])
        shea.append(float((r_full @ r_fit) ** 2 / ((r_full @ r_full) * (r_fit @ r_fit))))
    # canonical correlations: Theta = Rz^-T Qzx Rx^-1 (upper Cholesky factors of Qzz, Qxx)
    qzz, qxx, qzx = zt.T @ zt / n, xt.T @ xt / n, zt.T @ xt / n
    irz = linalg.solve_triangular(linalg.cholesky(qzz), np.eye(k))
    irx = linalg.solve_triangular(linalg.cholesky(qxx), np.eye(m))
    theta = irz.T @ qzx @ irx
    u, sv, vt = np.linalg.svd(theta, full_matrices=True)
    r2 = float(sv[-1]) ** 2
    cd_f = dof * r2 / (1 - r2) / k if r2 < 1 else math.inf
    # Kleibergen-Paap rk Wald: scores v_i (x) z_i with the first-stage residuals v
    pihat = irz @ (irz.T @ qzx)
    v = xt - zt @ pihat
    scores = np.column_stack([v[:, [j]] * zt for j in range(m)])
    shat = scores.T @ scores / n
    transform = np.kron(irx.T, irz.T)
    kpvar = transform @ shat @ transform.T
    select = np.kron(vt.T[:, m - 1:].T, u[:, m - 1:].T)
    lam = select @ theta.ravel(order="F")
    vlam = select @ kpvar @ select.T
    vals, vecs = np.linalg.eigh((vlam + vlam.T) / 2)
    pos = vals > vals.max() * np.finfo(float).eps * vlam.shape[0]
    chi2 = n * float(np.sum((vecs[:, pos].T @ lam) ** 2 / vals[pos])) if pos.any() else math.nan
    kp_f = chi2 * dof / n / k
    return {"partial_f": np.asarray(partial_f), "partial_r2": np.asarray(partial_r2), "shea_r2": np.asarray(shea),
            "sw_f": np.asarray(sw_f), "cragg_donald_f": float(cd_f), "kp_f": float(kp_f),
            "df_first": (k, dof), "df_sw": (k - m + 1, dof)}


def iv2sls(y: np.ndarray, exog: np.ndarray, endog: np.ndarray, instr: np.ndarray, *,
           debiased: bool = False) -> dict[str, Any]:
    """2SLS with W endogenous: params, classic and robust covariances, naive covariances, first-stage diagnostics.

    ``debiased=False`` (default): residual variance ``e'e / n`` and HC0, as linearmodels' default;
    ``debiased=True``: ``e'e / (n - k)`` and HC0 times ``n / (n - k)`` (R's ``ivreg`` for the classic
    SE, linearmodels ``debiased=True``), ``k`` the number of second-stage regressors.
    """
    n = y.size
    x = np.column_stack([exog, endog])
    zm = np.column_stack([exog, instr])
    xhat = zm @ _solve(zm, x)
    beta = _solve(xhat, y)
    e = y - x @ beta
    bread = np.linalg.inv(xhat.T @ xhat)
    kx = x.shape[1]
    denom = n - kx if debiased else n
    scale = n / (n - kx) if debiased else 1.0
    cov_classic = (e @ e / denom) * bread
    meat = (xhat * e[:, None] ** 2).T @ xhat
    cov_robust = scale * bread @ meat @ bread
    # naive: OLS on the second stage (y on exog + fitted W), its own residuals
    e2 = y - xhat @ beta
    naive_classic = (e2 @ e2 / denom) * bread
    naive_robust = scale * bread @ ((xhat * e2[:, None] ** 2).T @ xhat) @ bread
    diag = first_stage_diagnostics(endog, instr, exog)
    return {"params": beta, "cov_classic": cov_classic, "cov_robust": cov_robust, "naive_classic": naive_classic,
            "naive_robust": naive_robust, "first_stage_f": diag["partial_f"], "df_first": np.array(diag["df_first"]),
            "df_resid": n - kx, **{k: v for k, v in diag.items() if k not in ("partial_f", "df_first")}}


def _check_design(frame: pd.DataFrame, tcol: str, treatment: str, cov_list: list[str], w_list: list[str],
                  z_list: list[str]) -> None:
    """Refuse designs 2SLS cannot fit, naming the columns: constant or collinear regressors / instruments."""
    const = [c for c in [tcol, *cov_list, *w_list, *z_list] if float(np.ptp(frame[c].to_numpy(float))) == 0.0]
    if const:
        names = [treatment if c == tcol else c for c in const]
        raise InsufficientDataError(
            f"p2sls: {names} {'is' if len(names) == 1 else 'are'} constant over the {len(frame)} complete rows, so "
            "the model is not identified; drop the column(s) or use data in which they vary."
        )
    for label, cols in (("treatment + covariates + NCE proxies Z", [tcol, *cov_list, *z_list]),
                        ("treatment + covariates + NCO proxies W", [tcol, *cov_list, *w_list])):
        mat = np.column_stack([np.ones(len(frame)), frame[cols].to_numpy(float)])
        rank = np.linalg.matrix_rank(mat)
        if rank < mat.shape[1]:
            raise InsufficientDataError(
                f"p2sls: the columns {label} are collinear (rank {rank} of {mat.shape[1]} with the intercept); drop "
                "a redundant column."
            )


def p2sls(
    formula: str | None = None,
    data: Any = None,
    *,
    outcome: str | None = None,
    treatment: str | None = None,
    nco: str | Sequence[str] | None = None,
    nce: str | Sequence[str] | None = None,
    covariates: str | Sequence[str] = (),
    vcov: Vcov = "robust",
    debiased: bool = False,
    arm: str | None = None,
    reference: str | None = None,
    mode: Literal["sample", "dist"] = "sample",
    weak_f: float = 10.0,
    conf_level: float = 0.95,
) -> P2slsResult:
    """Proximal 2SLS estimate of the treatment effect.

    Give either ``formula`` (``"y ~ t + x1 + x2 | w1 + w2 ~ z1 + z2"``) or ``outcome``,
    ``treatment``, ``nco`` (W) and ``nce`` (Z), with optional ``covariates``. With a log, the
    names are items (codes) or persona attributes, and ``treatment`` may be ``"arm"``: the
    indicator of ``arm`` (default: the single treatment arm) against ``reference``.

    Parameters
    ----------
    vcov
        ``"robust"`` (HC0 sandwich, default) or ``"classic"``; both are proper 2SLS covariances.
    debiased
        ``False`` (default): residual variance over ``n`` (linearmodels' default, normal reference).
        ``True``: R ``ivreg``'s convention, residual variance over ``n - k`` (``k`` second-stage
        regressors; robust: HC0 times ``n/(n - k)``), and t(n - k) p-values and intervals, as
        linearmodels ``debiased=True``.
    weak_f
        A :class:`~driftstats.errors.WeakProxyWarning` is issued when a first-stage partial F, a
        Sanderson-Windmeijer conditional F, or the joint F (Cragg-Donald for ``classic``,
        Kleibergen-Paap for ``robust``) is below it.

    Returns
    -------
    P2slsResult
        ``tidy()``: one row per coefficient (``term`` = the treatment first), with
        ``naive_std_error`` the naive second-stage OLS SE and ``df`` the t degrees of freedom
        (``debiased=True``). ``glance()``: ``first_stage_f`` (smallest partial F), ``sw_f``
        (smallest Sanderson-Windmeijer F), ``cragg_donald_f``, ``kp_f``. ``first_stage``: per W
        ``partial_f``, ``partial_r2``, ``shea_r2``, ``sw_f`` and their degrees of freedom.

    Raises
    ------
    InvalidArgumentError
        If dim(Z) < dim(W), names are missing or a column is not numeric.
    InsufficientDataError
        Too few complete rows; constant or collinear columns; Z that do not predict W at all.

    Warns
    -----
    WeakProxyWarning
        Weak or jointly under-identified proxies (see ``weak_f``).

    Notes
    -----
    Per-W partial F statistics can all be large while the W are jointly under-identified (two W
    driven by one scalar U: the first-stage coefficient matrix has rank 1); the conditional
    Sanderson-Windmeijer F and the joint Cragg-Donald / Kleibergen-Paap statistics detect it
    (:func:`first_stage_diagnostics`).

    References
    ----------
    Miao, Geng & Tchetgen Tchetgen (2018), Biometrika 105(4):987-993, doi:10.1093/biomet/asy038.
    Tchetgen Tchetgen et al. (2024), Statistical Science 39(3):375-390, doi:10.1214/23-STS911.
    Sanderson & Windmeijer (2016), Journal of Econometrics 190(2):212-221, doi:10.1016/j.jeconom.2015.06.004.

    Examples
    --------
    >>> import driftstats as ds
    >>> d = ds.simulate_proxy_data(3000, tau=1.0, n_u=2, seed=1)
    >>> fit = ds.p2sls("y ~ t + x | w1 + w2 ~ z1 + z2", d)
    >>> bool(abs(fit.tidy()["estimate"].iloc[0] - 1.0) < 0.3), bool(fit.glance()["sw_f"].iloc[0] > 10)
    (True, True)
    """
    conf_level = check_conf_level(conf_level)
    check_choice("vcov", vcov, Vcov)
    if not isinstance(debiased, bool):
        raise InvalidArgumentError(f"debiased must be True or False; got {debiased!r}.")
    if formula is not None:
        if any(v for v in (outcome, treatment, nco, nce, covariates)):
            raise InvalidArgumentError("give either formula= or outcome=/treatment=/nco=/nce=/covariates=, not both.")
        outcome, treatment, cov_list, w_list, z_list = parse_proximal_formula(formula)
    else:
        if not (outcome and treatment and nco and nce):
            raise InvalidArgumentError("p2sls needs outcome, treatment, nco (W) and nce (Z) (or a formula).")
        cov_list, w_list, z_list = list(as_columns("covariates", covariates)), list(as_columns("nco", nco)), list(
            as_columns("nce", nce))
    if len(z_list) < len(w_list):
        raise InvalidArgumentError(
            f"nce: proximal 2SLS needs at least as many NCE proxies Z as NCO proxies W (dim Z >= dim W); got "
            f"{len(z_list)} Z {z_list} for {len(w_list)} W {w_list}. Add a proxy to nce or drop one from nco."
        )
    names = [outcome, *w_list, *z_list, *cov_list]
    dup = sorted({c for c in names if names.count(c) > 1} | ({treatment} & set(names)))
    if dup:
        raise InvalidArgumentError(f"p2sls: {dup} appear in more than one role (outcome, treatment, W, Z, covariates).")
    is_arm = treatment == "arm"
    ud = unit_data(data, [n for n in names if n], arm=arm or ("arm" if is_arm else treatment), mode=mode)
    frame = ud.frame
    if is_arm and ud.log is not None:
        ref = ud.reference(reference)
        treated = arm or _default_treated(ud, ref)
        frame = frame[frame["arm"].isin([treated, ref])].copy()
        frame["__t"] = (frame["arm"] == treated).astype(float)
        tcol = "__t"
    else:
        tcol = treatment
    ud.require([c for c in names if c] + ([] if tcol == "__t" else [tcol]), "formula/columns")
    used = frame[[outcome, tcol, *cov_list, *w_list, *z_list]].dropna()
    for c in used.columns:
        if not pd.api.types.is_numeric_dtype(used[c]):
            try:
                used[c] = pd.to_numeric(used[c])
            except (ValueError, TypeError):
                raise InvalidArgumentError(f"column {c!r} is not numeric; recode it (e.g. dummies) first.") from None
    n = len(used)
    n_dropped = len(frame) - n
    k2 = 2 + len(cov_list) + len(w_list)
    if n <= 2 + len(cov_list) + len(z_list) or n <= k2:
        raise InsufficientDataError(f"p2sls has {n} complete rows for {2 + len(cov_list) + len(z_list)} instruments "
                                    f"and {k2} second-stage regressors.")
    values = used.to_numpy(float)
    if not np.isfinite(values).all() or np.abs(values).max() > 1e150:
        raise InvalidArgumentError("p2sls: the data hold infinite values or values beyond 1e150 in magnitude, which "
                                   "overflow the moment matrices; rescale the columns.")
    _check_design(used, tcol, str(treatment), cov_list, w_list, z_list)
    exog = np.column_stack([np.ones(n), used[tcol].to_numpy(float), used[cov_list].to_numpy(float)])
    zm = np.column_stack([exog, used[z_list].to_numpy(float)])
    fitted_w = zm @ _solve(zm, used[w_list].to_numpy(float))
    if np.linalg.matrix_rank(np.column_stack([exog, fitted_w])) < exog.shape[1] + len(w_list):
        raise InsufficientDataError(
            f"p2sls: the NCE proxies {z_list} do not predict the NCO proxies {w_list} jointly (the first stage has "
            "reduced rank): the effect is not identified."
        )
    with np.errstate(all="ignore"):
        out = iv2sls(used[outcome].to_numpy(float), exog, used[w_list].to_numpy(float), used[z_list].to_numpy(float),
                     debiased=debiased)
    cov = out["cov_robust"] if vcov == "robust" else out["cov_classic"]
    naive = out["naive_robust"] if vcov == "robust" else out["naive_classic"]
    if not (np.isfinite(out["params"]).all() and np.isfinite(cov).all()):
        raise InvalidArgumentError("p2sls: the estimates are not finite (numerical overflow or a degenerate design); "
                                   "rescale the columns.")
    labels = ["(Intercept)", treatment if tcol != "__t" else "arm", *cov_list, *w_list]
    df = float(out["df_resid"]) if debiased else None
    rows = []
    order = [1, *range(2, len(labels)), 0]  # treatment first, intercept last
    for i in order:
        est, se = float(out["params"][i]), math.sqrt(max(float(cov[i, i]), 0.0))
        row = wald(est, se, conf_level, df=df)
        note = None if math.isfinite(row["p_value"]) else (
            "not testable: zero residual variance (the outcome is fitted exactly)")
        rows.append({"term": labels[i], **row, "df": df, "naive_std_error": math.sqrt(max(float(naive[i, i]), 0.0)),
                     "note": note})
    fs, sw = out["first_stage_f"], out["sw_f"]
    first = pd.DataFrame({"proxy": w_list, "partial_f": fs, "df_num": int(out["df_first"][0]),
                          "df_den": int(out["df_first"][1]), "partial_r2": out["partial_r2"], "shea_r2": out["shea_r2"],
                          "sw_f": sw, "sw_df_num": int(out["df_sw"][0])})
    joint_name, joint = (("Kleibergen-Paap rk Wald F", out["kp_f"]) if vcov == "robust"
                         else ("Cragg-Donald F", out["cragg_donald_f"]))
    diag = ["first-stage partial F: " + ", ".join(f"{w} {f:.1f}" for w, f in zip(w_list, fs, strict=True)),
            "Sanderson-Windmeijer conditional F: " + ", ".join(f"{w} {f:.1f}" for w, f in zip(w_list, sw, strict=True))
            + f"; {joint_name} {joint:.1f}"]
    weak = []
    if fs.min() < weak_f:
        weak.append(f"first-stage partial F {fs.min():.2f} < {weak_f} for {w_list[int(np.argmin(fs))]!r}")
    if len(w_list) > 1 and sw.min() < weak_f:
        weak.append(f"Sanderson-Windmeijer conditional F {sw.min():.2f} < {weak_f} for {w_list[int(np.argmin(sw))]!r}")
    if len(w_list) > 1 and not joint >= weak_f:
        weak.append(f"{joint_name} {joint:.2f} < {weak_f}: the proxies are jointly weak or under-identified although "
                    f"each W's own partial F is {fs.min():.1f} or more")
    if weak:
        msg = "weak proxies: " + "; ".join(weak) + "; the P2SLS estimate and its SE are unstable"
        warnings.warn(msg, WeakProxyWarning, stacklevel=2)
        diag.append(msg)
    if debiased:
        diag.append(f"debiased: residual variance over n - k = {out['df_resid']} and t({out['df_resid']}) inference "
                    "(R ivreg's convention)")
    info = {"method": "proximal 2SLS (IV-2SLS, W endogenous, Z instruments)", "n_obs": n, "conf_level": conf_level,
            "alternative": "two-sided", "n_dropped": n_dropped, "first_stage_f": float(fs.min()),
            "vcov": vcov + (" (debiased)" if debiased else ""), "sw_f": float(sw.min()),
            "cragg_donald_f": out["cragg_donald_f"], "kp_f": out["kp_f"]}
    return P2slsResult.build(rows, info, diagnostics=diag, first_stage=first, provenance=provenance("p2sls", data))


def _default_treated(ud: Any, ref: str) -> str:
    log = ud.log
    treated = [a for a in log.arms_of_kind("treatment") if a != ref]
    if len(treated) == 1:
        return treated[0]
    others = [a for a in log.arm_names if a != ref]
    if len(others) == 1:
        return others[0]
    raise InvalidArgumentError(f"arm= must name the treated arm; candidates: {others}.")
