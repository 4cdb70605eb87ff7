"""NCO difference-in-differences (methods.md section 4.2; Sofer et al. 2016).

Under **additive equi-confounding** [ASSUMPTION]
``E[Y(0) | T=1] - E[Y(0) | T=0] = E[N | T=1] - E[N | T=0]`` (with N1, the NCO exclusion),
``tau_ATT = (Ybar_1 - Ybar_0) - (Nbar_1 - Nbar_0)``; inference regresses ``D_i = Y_i - N_i``
on ``T_i`` with robust standard errors (this handles the within-user covariance of Y and N).
Equi-confounding holds iff ``sum_u [mu_0(u) - nu(u)] (p_1 - p_0)(u) = 0``; a sufficient
condition is ``mu_0(u) = nu(u) + c``.

Y and N must be on the same scale for the additive version. Two scale-free variants map N
onto Y's scale first [PROPOSAL; OPEN: to be checked against Sofer et al.]:
``location_scale``: bias = (sd(Y | T=0) / sd(N | T=0)) (Nbar_1 - Nbar_0);
``qq``: N -> F^-1_{Y|T=0}(F_{N|T=0}(N)) (control-arm quantile-quantile map, mid-distribution
for discrete N). Their intervals come from a unit bootstrap (pairs resampled as pairs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import stats

from driftstats._args import (
    as_columns,
    check_choice,
    check_conf_level,
    check_positive_int,
    rng_from,
    seed_value,
)
from driftstats._result import Provenance, Result
from driftstats._units import unit_data
from driftstats.effects import _groups_for_cluster, mean_contrast
from driftstats.errors import InsufficientDataError

__all__ = ["DidResult", "did_nco"]

Scale = Literal["additive", "location_scale", "qq"]

DID_ASSUMPTIONS = (
    "N1 (exclusion): the intervention changes the NCO only through who the simulated user is.",
    "Additive equi-confounding: E[Y(0)|T=1] - E[Y(0)|T=0] = E[N|T=1] - E[N|T=0] on the scale used "
    "(the raw codes for 'additive'; after mapping N onto Y's scale for 'location_scale' and 'qq').",
    "The estimand is the effect in the treated arm's implied population (ATT, tau(p_1)).",
)


@dataclass(frozen=True, slots=True, repr=False)
class DidResult(Result):
    """NCO-DiD: rows ``naive`` (observed contrast), ``bias`` (NCO contrast on Y's scale), ``did_*``."""

    TITLE: ClassVar[str] = "NCO difference-in-differences"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "estimate", "std_error", "conf_low",
                                          "conf_high", "p_value")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "n_1", "n_0", "bias")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_boot", "vcov", "n_tests")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = DID_ASSUMPTIONS


def _qq_map(n_ctrl: np.ndarray, y_ctrl: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Map N values onto Y's scale through the control arm's quantile-quantile transform."""
    n_sorted = np.sort(n_ctrl)
    below = np.searchsorted(n_sorted, values, side="left")
    upto = np.searchsorted(n_sorted, values, side="right")
    u = (below + upto) / (2.0 * n_sorted.size)  # mid-distribution function
    return np.quantile(y_ctrl, np.clip(u, 0, 1))


def _estimate(y: np.ndarray, n: np.ndarray, t: np.ndarray, scale: str) -> tuple[float, float, float]:
    """(naive, bias on Y's scale, corrected)."""
    naive = y[t == 1].mean() - y[t == 0].mean()
    if scale == "additive":
        bias = n[t == 1].mean() - n[t == 0].mean()
    elif scale == "location_scale":
        sd_n = n[t == 0].std(ddof=1)
        bias = (y[t == 0].std(ddof=1) / sd_n) * (n[t == 1].mean() - n[t == 0].mean()) if sd_n > 0 else np.nan
    else:
        mapped = _qq_map(n[t == 0], y[t == 0], n)
        bias = mapped[t == 1].mean() - mapped[t == 0].mean()
    return float(naive), float(bias), float(naive - bias)


def did_nco(
    data: Any,
    *,
    outcome: str,
    nco: str,
    arm: str = "arm",
    by: str | Sequence[str] = ("iteration",),
    reference: str | None = None,
    scale: Scale = "additive",
    mode: Literal["sample", "dist"] = "sample",
    cluster: Literal["auto", "unit", "persona", "none"] = "auto",
    n_boot: int = 2000,
    conf_level: float = 0.95,
    seed: int | np.random.Generator | None = None,
) -> DidResult:
    """Correct the observed contrast with a negative control outcome.

    Parameters
    ----------
    data
        A log (items named by ``outcome`` and ``nco``) or a unit-level DataFrame (columns).
    scale
        ``"additive"`` (default; regression of ``Y - N`` on the arm with robust SEs),
        ``"location_scale"`` or ``"qq"`` (bootstrap intervals).

    Returns
    -------
    DidResult
        Per group and arm: ``naive`` (the observed contrast), ``bias`` (the NCO contrast on Y's
        scale) and ``did_<scale>`` (the corrected estimate, with ``bias`` repeated in the
        ``bias`` column).

    Notes
    -----
    The estimate is unbiased for ``tau(p_1)`` exactly when equi-confounding holds; otherwise its
    bias is ``sum_u [mu_0(u) - nu(u)] (p_1 - p_0)(u)`` (methods 4.2), which the simulation tests check.

    Examples
    --------
    >>> import driftstats as ds
    >>> units = ds.simulate_latent_world(equi_confounding=True, seed=3).sample_units(500, seed=4)
    >>> res = ds.did_nco(units, outcome="y", nco="n", arm="t", n_boot=0)
    >>> res.tidy()["measure"].tolist()
    ['naive', 'bias', 'did_additive']
    """
    conf_level = check_conf_level(conf_level)
    check_choice("scale", scale, Scale)
    n_boot = check_positive_int("n_boot", n_boot, minimum=0)
    rng = rng_from(seed)
    ud = unit_data(data, [outcome, nco], arm=arm, mode=mode)
    ud.require([outcome, nco], "outcome/nco")
    ref = ud.reference(reference)
    by_cols = [b for b in as_columns("by", by) if b in ud.frame.columns]
    frame = ud.frame.dropna(subset=[outcome, nco])
    rows: list[dict[str, Any]] = []
    vcov = "HC1"
    grouped = frame.groupby(by_cols, sort=True) if by_cols else [((), frame)]
    for key, g in grouped:
        key = key if isinstance(key, tuple) else (key,)
        group = {b: (v.item() if hasattr(v, "item") else v) for b, v in zip(by_cols, key, strict=True)}
        for a1 in [a for a in pd.unique(g[ud.arm]) if a != ref]:
            sub = g[g[ud.arm].isin([a1, ref])]
            t = (sub[ud.arm] == a1).to_numpy(dtype=float)
            if t.sum() < 2 or (1 - t).sum() < 2:
                raise InsufficientDataError(f"arm {a1!r} or {ref!r} has fewer than 2 units with both {outcome!r} and {nco!r}.")
            y = sub[outcome].to_numpy(float)
            n = sub[nco].to_numpy(float)
            groups, vcov = _groups_for_cluster(sub, cluster)
            base = {**group, "term": outcome, "arm": str(a1), "reference": str(ref),
                    "n_1": int(t.sum()), "n_0": int((1 - t).sum())}
            naive_fit = mean_contrast(y, t, groups, conf_level)
            _, bias, did = _estimate(y, n, t, scale)
            if scale == "additive":
                fit = mean_contrast(y - n, t, groups, conf_level)
                bias_fit = mean_contrast(n, t, groups, conf_level)
            else:
                fit = bias_fit = {}
                if n_boot:
                    draws = []
                    i1, i0 = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
                    for _ in range(n_boot):
                        idx = np.r_[rng.choice(i1, i1.size), rng.choice(i0, i0.size)]
                        draws.append(_estimate(y[idx], n[idx], t[idx], scale))
                    d = np.asarray(draws)
                    se_did, se_bias = float(d[:, 2].std(ddof=1)), float(d[:, 1].std(ddof=1))
                    q = np.quantile(d, [0.5 - conf_level / 2, 0.5 + conf_level / 2], axis=0)
                    fit = {"estimate": did, "std_error": se_did, "statistic": did / se_did,
                           "p_value": float(2 * stats.norm.sf(abs(did / se_did))),
                           "conf_low": float(q[0, 2]), "conf_high": float(q[1, 2])}
                    bias_fit = {"estimate": bias, "std_error": se_bias, "conf_low": float(q[0, 1]),
                                "conf_high": float(q[1, 1])}
                else:
                    fit, bias_fit = {"estimate": did}, {"estimate": bias}
            rows.append({**base, "measure": "naive", **naive_fit})
            rows.append({**base, "measure": "bias", **bias_fit, "estimate": bias})
            rows.append({**base, "measure": f"did_{scale}", **fit, "estimate": did, "bias": bias})
    info = {"method": f"NCO difference-in-differences ({scale})", "n_obs": len(frame), "conf_level": conf_level,
            "alternative": "two-sided", "seed": seed_value(seed), "n_boot": n_boot if scale != "additive" else None,
            "vcov": vcov if scale == "additive" else "bootstrap", "n_tests": len(rows)}
    return DidResult.build(rows, info, by=by_cols, provenance=Provenance(call="did_nco", seed=seed_value(seed)))
