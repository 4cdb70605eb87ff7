"""The bias decomposition of the observed contrast (methods.md section 2) and retention bounds.

For a latent population with types ``u``, implied populations ``p_t(u)`` per arm and
outcome means ``mu_t(u)``:

* (D0) ``T_obs = tau(p_0) + sum_u mu_1 (p_1 - p_0)``
* (D1) ``T_obs = tau(p_1) + sum_u mu_0 (p_1 - p_0)``
* (Dbar) ``T_obs = tau(pbar) + sum_u [pi_0 mu_1 + pi_1 mu_0] (p_1 - p_0)``

and with explicit selection (retained compositions ``p_t^S``, retained means ``mu_t^S``):
``T_obs^S = tau(p_0) + drift + selection-on-U + selection-on-Y`` (section 2.3). These are
identities: the residual columns are zero up to floating error. They need the latent
quantities, so they are computed from a simulated world (``driftstats.simulate``) or from
estimates the user supplies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from driftstats._args import check_conf_level
from driftstats._provenance import provenance
from driftstats._result import Result
from driftstats.errors import InsufficientDataError, InvalidArgumentError

__all__ = ["DecompositionResult", "RetentionResult", "decompose", "decompose_world", "manski_bounds", "retention"]


@dataclass(frozen=True, slots=True, repr=False)
class DecompositionResult(Result):
    """Terms of the decomposition; ``term`` names each piece, ``estimate`` its value."""

    TITLE: ClassVar[str] = "Bias decomposition of the observed contrast (methods 2)"
    DISPLAY: ClassVar[tuple[str, ...]] = ("measure", "estimate")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("measure",)
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ()
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (
        "The latent types u, their implied populations p_t(u) and outcome means mu_t(u) are known "
        "(simulation) or estimated by the user; the identities themselves are exact.",
        "The TVD bound |T_obs - tau(p_0)| <= range(mu_1) * TV(p_1, p_0) holds for any mu; an NCO-based TVD is "
        "only a lower bound on TV(p_1, p_0).",
    )


def _as2(x: Any, name: str, n_types: int | None = None, *, probability: bool = False) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a (2, n_types) array of numbers; got {type(x).__name__}.") from None
    if a.ndim != 2 or a.shape[0] != 2:
        raise InvalidArgumentError(f"{name} must be a (2, n_types) array (control row, then treatment row); got {a.shape}.")
    if n_types is not None and a.shape[1] != n_types:
        raise InvalidArgumentError(f"{name} has {a.shape[1]} types; expected {n_types}.")
    if not np.isfinite(a).all():
        raise InvalidArgumentError(f"{name} must hold finite numbers; it holds {int((~np.isfinite(a)).sum())} NaN or "
                                   "infinite value(s).")
    if probability and ((a < 0) | (a > 1)).any():
        raise InvalidArgumentError(f"{name} holds probabilities, which must lie in [0, 1]; got values from "
                                   f"{a.min():g} to {a.max():g}.")
    return a


def decompose(
    mu: Any,
    p: Any,
    *,
    arm_share: float = 0.5,
    p_selected: Any = None,
    mu_selected: Any = None,
) -> DecompositionResult:
    """Decompose the observed contrast into effect and drift (and selection) terms.

    Parameters
    ----------
    mu
        ``(2, U)``: ``mu_t(u)`` for t = 0 (reference), 1.
    p
        ``(2, U)``: ``p_t(u)``; each row sums to 1.
    arm_share
        ``pi_1``, the treated share (for the pooled population ``pbar``).
    p_selected, mu_selected
        With explicit selection: ``p_t^S(u)`` and ``mu_t^S(u)`` of the retained users.

    Returns
    -------
    DecompositionResult
        ``measure`` groups the rows: ``observed``, ``D0``, ``D1``, ``Dbar``, ``selection``,
        ``bound``; ``*_residual`` rows are the identities' residuals (zero).

    Examples
    --------
    >>> import driftstats as ds
    >>> res = ds.decompose([[1.0, 2.0], [1.5, 3.0]], [[0.5, 0.5], [0.2, 0.8]])
    >>> bool(abs(res.tidy().set_index("term").loc["D0_residual", "estimate"]) < 1e-12)
    True
    """
    mu = _as2(mu, "mu")
    p = _as2(p, "p", mu.shape[1], probability=True)
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-9):
        raise InvalidArgumentError(f"each row of p must sum to 1; sums are {p.sum(axis=1)}.")
    if not (isinstance(arm_share, int | float | np.integer | np.floating) and 0.0 <= float(arm_share) <= 1.0):
        raise InvalidArgumentError(f"arm_share must be a share in [0, 1] (the treatment arm's share of units); got "
                                   f"{arm_share!r}.")
    pi1, pi0 = float(arm_share), 1 - float(arm_share)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked on the rows below
        return _decompose(mu, p, pi1, pi0, p_selected, mu_selected)


def _decompose(mu: np.ndarray, p: np.ndarray, pi1: float, pi0: float, p_selected: Any, mu_selected: Any
               ) -> DecompositionResult:
    dp = p[1] - p[0]
    t_obs = p[1] @ mu[1] - p[0] @ mu[0]
    pbar = pi1 * p[1] + pi0 * p[0]
    tau = {name: float(q @ (mu[1] - mu[0])) for name, q in (("p0", p[0]), ("p1", p[1]), ("pbar", pbar))}
    d0, d1 = float(mu[1] @ dp), float(mu[0] @ dp)
    dbar = float((pi0 * mu[1] + pi1 * mu[0]) @ dp)
    tv = 0.5 * float(np.abs(dp).sum())
    rng1 = float(mu[1].max() - mu[1].min())
    rows = [
        ("T_obs", "observed", t_obs),
        ("tau(p0)", "D0", tau["p0"]), ("drift (D0)", "D0", d0), ("D0_residual", "D0", t_obs - tau["p0"] - d0),
        ("tau(p1)", "D1", tau["p1"]), ("confounding (D1)", "D1", d1), ("D1_residual", "D1", t_obs - tau["p1"] - d1),
        ("tau(pbar)", "Dbar", tau["pbar"]), ("drift (Dbar)", "Dbar", dbar),
        ("Dbar_residual", "Dbar", t_obs - tau["pbar"] - dbar),
        ("TV(p1, p0)", "bound", tv), ("range(mu1) * TV", "bound", rng1 * tv),
        ("|T_obs - tau(p0)|", "bound", abs(t_obs - tau["p0"])),
    ]
    if (p_selected is None) != (mu_selected is None):
        raise InvalidArgumentError("give both p_selected and mu_selected (or neither).")
    if p_selected is not None:
        ps = _as2(p_selected, "p_selected", mu.shape[1], probability=True)
        ms = _as2(mu_selected, "mu_selected", mu.shape[1])
        t_obs_s = ps[1] @ ms[1] - ps[0] @ ms[0]
        sel_u = float(mu[1] @ (ps[1] - p[1]) - mu[0] @ (ps[0] - p[0]))
        sel_y = float(ps[1] @ (ms[1] - mu[1]) - ps[0] @ (ms[0] - mu[0]))
        rows += [
            ("T_obs^S", "selection", t_obs_s),
            ("selection on U", "selection", sel_u),
            ("selection on Y within U", "selection", sel_y),
            ("selection_residual", "selection", t_obs_s - tau["p0"] - d0 - sel_u - sel_y),
        ]
    frame = pd.DataFrame(rows, columns=["term", "measure", "estimate"])
    if not np.isfinite(frame["estimate"].to_numpy(float)).all():
        raise InvalidArgumentError(f"mu's values (largest |mu| = {float(np.abs(mu).max()):.3g}) are too large for finite "
                                   "sums in double precision; rescale the outcome.")
    info = {"method": "exact decomposition (methods 2.2-2.4)", "n_groups": int(mu.shape[1])}
    return DecompositionResult.build(frame, info, provenance=provenance("decompose"))


def decompose_world(world: Any) -> DecompositionResult:
    """:func:`decompose` on a :class:`~driftstats.simulate.LatentWorld` (selection terms included)."""
    return decompose(world.mu, world.p, arm_share=world.arm_share, p_selected=world.p_selected,
                     mu_selected=world.mu_selected)


def manski_bounds(mean_retained: float, retention_rate: float, low: float, high: float) -> tuple[float, float]:
    """Worst-case bounds on ``E[Y]`` when only a share ``r`` is observed (Manski 1990).

    ``[r * mean + (1 - r) * low, r * mean + (1 - r) * high]`` for ``Y in [low, high]``.
    """
    if not 0 <= retention_rate <= 1:
        raise InvalidArgumentError(f"retention_rate must be in [0, 1]; got {retention_rate}.")
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise InvalidArgumentError(f"low and high must be finite with low <= high (the outcome's range); got low={low}, "
                                   f"high={high}.")
    if retention_rate == 0:  # nothing observed: the whole range (the retained mean is undefined)
        return (float(low), float(high))
    if not (math.isfinite(mean_retained) and low <= mean_retained <= high):
        raise InvalidArgumentError(f"mean_retained={mean_retained} must lie in the outcome's range [{low}, {high}] "
                                   "(it is a mean of answers in that range).")
    return (retention_rate * mean_retained + (1 - retention_rate) * low,
            retention_rate * mean_retained + (1 - retention_rate) * high)


@dataclass(frozen=True, slots=True, repr=False)
class RetentionResult(Result):
    """Retention per arm and worst-case (Manski) bounds for the outcome mean and the effect."""

    TITLE: ClassVar[str] = "Retention and worst-case bounds"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "estimate", "conf_low", "conf_high")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "n_1", "share_1")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ()
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (
        "Only the outcome's range is assumed: the bounds hold whatever non-retained users would have answered. "
        "conf_low/conf_high of the bound rows are the bounds themselves (identification, not sampling, intervals).",
    )


def retention(data: Any, *, outcome: str | None = None, reference: str | None = None,
              conf_level: float = 0.95) -> RetentionResult:
    """Retention (share of units with a valid outcome answer) per arm, with Manski bounds.

    Rows: ``measure = "retention"`` (``estimate`` = r_t, ``share_1`` = retained mean) per arm,
    ``"mean_bounds"`` per arm and ``"effect_bounds"`` per arm vs the reference:
    ``[LB_1 - UB_0, UB_1 - LB_0]``; the outcome range is its options' codes.

    Raises
    ------
    InvalidArgumentError
        The outcome is numeric (unbounded) or nominal with more than two options (its codes
        have no order, so a mean code and its bounds mean nothing).
    """
    from driftstats._units import order_unknown_message
    from driftstats.log.query.units import retention_by_arm
    from driftstats.log.simlog import as_log

    check_conf_level(conf_level)
    log = as_log(data)
    if outcome is None:
        prim = log.item_names("primary")
        if len(prim) != 1:
            raise InvalidArgumentError(f"outcome= is needed (primary items: {list(prim)}).")
        outcome = prim[0]
    info_item = log.item(outcome)
    if info_item.options is None:
        raise InvalidArgumentError("retention bounds need a categorical outcome (bounded codes).")
    if info_item.scale == "nominal" and len(info_item.options) > 2:
        raise InvalidArgumentError(order_unknown_message(outcome, info_item.options, use="a bounded mean (Manski bounds)"))
    low, high = 0.0, float(len(info_item.options) - 1)
    per_arm = retention_by_arm(log, outcome).set_index("arm")
    ref = reference or log.reference_arm
    if ref not in log.arm_names:
        raise InvalidArgumentError(f"reference={ref!r} is not an arm; arms: {list(log.arm_names)}.")
    if ref not in per_arm.index:
        raise InsufficientDataError(f"the reference arm {ref!r} has no units answering {outcome!r}: no effect bounds.")
    rows: list[dict[str, Any]] = []
    bounds = {}
    for arm, r in per_arm.iterrows():
        rate = r["retained"] / r["units"]
        lb, ub = manski_bounds(float(r["mean_retained"]), rate, low, high)
        bounds[arm] = (lb, ub)
        rows.append({"term": outcome, "arm": arm, "measure": "retention", "n_1": int(r["units"]), "estimate": rate,
                     "share_1": float(r["mean_retained"])})
        rows.append({"term": outcome, "arm": arm, "measure": "mean_bounds", "conf_low": lb, "conf_high": ub})
    for arm in per_arm.index:
        if arm == ref:
            continue
        (lb1, ub1), (lb0, ub0) = bounds[arm], bounds[ref]
        rows.append({"term": outcome, "arm": arm, "reference": ref, "measure": "effect_bounds",
                     "conf_low": lb1 - ub0, "conf_high": ub1 - lb0})
    info = {"method": "retention + Manski bounds", "n_obs": int(per_arm["units"].sum()), "conf_level": conf_level}
    return RetentionResult.build(rows, info, provenance=provenance("retention", log))
