"""Proximal two-stage least squares (methods.md section 4.3).

Roles: ``Z`` (treatment-inducing proxy, negative control exposure), ``W`` (outcome-inducing
proxy, NCO), ``X`` (measured covariates). Linear bridge model:
``E[Y | T, Z, U] = b0 + bT T + bU U``, ``E[W | T, Z, U] = g0 + gU U``. Stage 1: ``W ~ T + Z + X``;
stage 2: ``Y ~ T + What + X``. Equivalent to IV-2SLS of Y on (T, W, X) with W endogenous
and (T, Z, X) as instruments, which is how it is computed here, with correct 2SLS sandwich
standard errors: ``classic`` (homoskedastic, s^2 = e'e/n) or ``robust`` (HC0). The naive
second-stage OLS standard error is reported alongside (``naive_std_error``) to show the
pitfall: it is typically too small.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import stats

from driftstats._args import as_columns, check_choice, check_conf_level
from driftstats._result import Provenance, Result
from driftstats._units import unit_data
from driftstats.errors import InsufficientDataError, InvalidArgumentError, WeakProxyWarning

__all__ = ["P2slsResult", "p2sls", "parse_proximal_formula"]

Vcov = Literal["robust", "classic"]

P2SLS_ASSUMPTIONS = (
    "Z is a negative control exposure: Z is independent of Y given (T, U, X).",
    "W is a negative control outcome: W is independent of (T, Z) given (U, X).",
    "Relevance / completeness: Z is associated with U strongly enough to predict W (see first_stage_f), "
    "with dim(Z) >= dim(W).",
    "Linear bridge: E[Y | T, U, X] and E[W | U, X] are linear in U; the estimand is the ATE in the pooled "
    "implied population tau(pbar) (methods 4.3).",
)


@dataclass(frozen=True, slots=True, repr=False)
class P2slsResult(Result):
    """Coefficients of the second stage (treatment, proxies, covariates)."""

    TITLE: ClassVar[str] = "Proximal 2SLS"
    DISPLAY: ClassVar[tuple[str, ...]] = ("estimate", "std_error", "naive_std_error", "conf_low", "conf_high", "p_value")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("naive_std_error",)
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("first_stage_f", "vcov")
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


def iv2sls(y: np.ndarray, exog: np.ndarray, endog: np.ndarray, instr: np.ndarray) -> dict[str, np.ndarray]:
    """2SLS with W endogenous: returns params, classic and robust covariances, naive SEs, first-stage F."""
    n = y.size
    x = np.column_stack([exog, endog])
    zm = np.column_stack([exog, instr])
    xhat = zm @ _solve(zm, x)
    beta = _solve(xhat, y)
    e = y - x @ beta
    bread = np.linalg.inv(xhat.T @ xhat)
    cov_classic = (e @ e / n) * bread
    meat = (xhat * e[:, None] ** 2).T @ xhat
    cov_robust = bread @ meat @ bread
    # naive: OLS on the second stage (y on exog + fitted W), its own residuals
    e2 = y - xhat @ beta
    naive_classic = (e2 @ e2 / n) * bread
    naive_robust = bread @ ((xhat * e2[:, None] ** 2).T @ xhat) @ bread
    # first stage partial F of each W on the excluded instruments
    k_u = zm.shape[1]
    q = instr.shape[1]
    fstats = []
    for j in range(endog.shape[1]):
        w = endog[:, j]
        rss_u = float(np.sum((w - zm @ _solve(zm, w)) ** 2))
        rss_r = float(np.sum((w - exog @ _solve(exog, w)) ** 2))
        fstats.append(((rss_r - rss_u) / q) / (rss_u / (n - k_u)))
    return {"params": beta, "cov_classic": cov_classic, "cov_robust": cov_robust, "naive_classic": naive_classic,
            "naive_robust": naive_robust, "first_stage_f": np.asarray(fstats), "df_first": np.array([q, n - k_u])}


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
    weak_f
        A :class:`~driftstats.errors.WeakProxyWarning` is issued when a first-stage partial F is below it.

    Returns
    -------
    P2slsResult
        ``tidy()``: one row per coefficient (``term`` = the treatment first), with
        ``naive_std_error`` the naive second-stage OLS SE; ``glance()["first_stage_f"]``: the
        smallest first-stage partial F; ``first_stage``: F per proxy.

    Raises
    ------
    InvalidArgumentError
        If dim(Z) < dim(W), or names are missing.

    References
    ----------
    Miao, Geng & Tchetgen Tchetgen (2018), Biometrika 105(4):987-993, doi:10.1093/biomet/asy038.
    Tchetgen Tchetgen et al. (2024), Statistical Science 39(3):375-390, doi:10.1214/23-STS911.

    Examples
    --------
    >>> import driftstats as ds
    >>> d = ds.simulate_proxy_data(3000, tau=1.0, seed=1)
    >>> fit = ds.p2sls("y ~ t + x | w1 + w2 ~ z1 + z2", d)
    >>> bool(abs(fit.tidy()["estimate"].iloc[0] - 1.0) < 0.3)
    True
    """
    conf_level = check_conf_level(conf_level)
    check_choice("vcov", vcov, Vcov)
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
    if n <= 2 + len(cov_list) + len(z_list):
        raise InsufficientDataError(f"p2sls has {n} complete rows for {2 + len(cov_list) + len(z_list)} instruments.")
    exog = np.column_stack([np.ones(n), used[tcol].to_numpy(float), used[cov_list].to_numpy(float)])
    out = iv2sls(used[outcome].to_numpy(float), exog, used[w_list].to_numpy(float), used[z_list].to_numpy(float))
    cov = out["cov_robust"] if vcov == "robust" else out["cov_classic"]
    naive = out["naive_robust"] if vcov == "robust" else out["naive_classic"]
    labels = ["(Intercept)", treatment if tcol != "__t" else "arm", *cov_list, *w_list]
    z = stats.norm.ppf(0.5 + conf_level / 2)
    rows = []
    order = [1, *range(2, len(labels)), 0]  # treatment first, intercept last
    for i in order:
        est, se = float(out["params"][i]), float(np.sqrt(cov[i, i]))
        rows.append({"term": labels[i], "estimate": est, "std_error": se, "statistic": est / se,
                     "p_value": float(2 * stats.norm.sf(abs(est / se))), "conf_low": est - z * se,
                     "conf_high": est + z * se, "naive_std_error": float(np.sqrt(naive[i, i]))})
    fs = out["first_stage_f"]
    first = pd.DataFrame({"proxy": w_list, "partial_f": fs, "df_num": int(out["df_first"][0]),
                          "df_den": int(out["df_first"][1])})
    diag = ["first-stage partial F: " + ", ".join(f"{w} {f:.1f}" for w, f in zip(w_list, fs, strict=True))]
    if fs.min() < weak_f:
        msg = (f"weak proxies: first-stage partial F {fs.min():.2f} < {weak_f} for "
               f"{w_list[int(np.argmin(fs))]!r}; the P2SLS estimate and its SE are unstable")
        warnings.warn(msg, WeakProxyWarning, stacklevel=2)
        diag.append(msg)
    info = {"method": "proximal 2SLS (IV-2SLS, W endogenous, Z instruments)", "n_obs": n, "conf_level": conf_level,
            "alternative": "two-sided", "first_stage_f": float(fs.min()), "vcov": vcov}
    return P2slsResult.build(rows, info, diagnostics=diag, first_stage=first,
                             provenance=Provenance(call="p2sls"))


def _default_treated(ud: Any, ref: str) -> str:
    log = ud.log
    treated = [a for a in log.arms_of_kind("treatment") if a != ref]
    if len(treated) == 1:
        return treated[0]
    others = [a for a in log.arm_names if a != ref]
    if len(others) == 1:
        return others[0]
    raise InvalidArgumentError(f"arm= must name the treated arm; candidates: {others}.")
