"""Claiming *no* drift: equivalence tests for the NCO TVD (methods.md section 3.3)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from driftstats._args import as_columns, check_choice, check_conf_level
from driftstats._kernels.equiv import iut_tost, projection_equivalence
from driftstats._kernels.perm import layout
from driftstats._result import Provenance, Result
from driftstats.errors import InvalidArgumentError
from driftstats.log.simlog import SimLog, Source, as_log
from driftstats.nco._data import PairData, Pairs, extract, resolve_items, resolve_pairs

__all__ = ["EquivMethod", "EquivalenceResult", "equivalence_test", "share_differences"]

EquivMethod = Literal["iut", "projection"]


def check_margin(margin: float) -> float:
    try:
        ok = 0.0 < float(margin) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidArgumentError(
            f"margin must be a TVD in (0, 1), the largest drift you would call negligible (e.g. 0.05); got {margin!r}."
        )
    return float(margin)


@dataclass(frozen=True, slots=True, repr=False)
class EquivalenceResult(Result):
    """Equivalence tests of H0: TV >= margin against H1: TV < margin, per NCO, arm pair and group.

    ``measure`` is ``tvd_iut`` (per-category TOST, intersection-union) or ``tvd_projection``
    (upper bound of the valid projection interval); ``p_value_equiv`` is the p-value of H0,
    ``equivalent`` whether it is rejected at ``1 - conf_level``; ``upper_bound`` is the
    projection upper bound of the TVD.
    """

    TITLE: ClassVar[str] = "NCO equivalence test (no drift beyond the margin)"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "estimate", "margin", "upper_bound",
                                          "p_value_equiv", "equivalent")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "n_1", "n_0", "n_levels", "margin",
                                              "upper_bound", "p_value_equiv", "equivalent")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_tests",)
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (
        "Wald (normal) approximations to the per-category share differences; accurate when every "
        "category has several answers in each arm.",
        "Equivalence on the NCOs is not equivalence of the implied populations: NCO-TVD is a lower bound "
        "on latent drift (methods 2.4).",
    )


def share_differences(pdata: PairData, j: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(d, se, n1, n0)`` for categorical NCO ``j`` (paired SEs when units are matched 1:1)."""
    lay = layout(pdata.arm1_mask, pdata.strata)
    sl = pdata.blocks.slices[j]
    present = pdata.P[:, j] > 0
    h = pdata.H[:, sl].astype(np.float64)
    m1, m0 = lay.arm1 & present, ~lay.arm1 & present
    n1, n0 = int(m1.sum()), int(m0.sum())
    d = h[m1].mean(axis=0) - h[m0].mean(axis=0)
    if lay.kind == "pairs":
        ok = present[lay.pair1] & present[lay.pair0]
        diff = h[lay.pair1[ok]] - h[lay.pair0[ok]]
        se = diff.std(axis=0, ddof=1) / math.sqrt(ok.sum()) if ok.sum() > 1 else np.zeros(d.size)
    else:
        se = np.sqrt(h[m1].var(axis=0) / n1 + h[m0].var(axis=0) / n0)
    # A level with no variation in the data has a zero Wald SE, which would let a TOST "prove"
    # equivalence from a handful of units; such levels get the SE of (x + 0.5) / (n + 1) shares.
    q1 = (h[m1].sum(axis=0) + 0.5) / (n1 + 1)
    q0 = (h[m0].sum(axis=0) + 0.5) / (n0 + 1)
    floor = np.sqrt(q1 * (1 - q1) / n1 + q0 * (1 - q0) / n0)
    se = np.where(se > 0, se, floor)
    return d, se, n1, n0


def equivalence_test(
    log: SimLog | Source,
    *,
    margin: float,
    nco: str | Sequence[str] | None = None,
    method: EquivMethod | Sequence[EquivMethod] = ("iut", "projection"),
    by: str | Sequence[str] = ("iteration",),
    strata: str | None = None,
    reference: str | None = None,
    pairs: Pairs = "reference",
    mode: Literal["sample", "dist"] = "sample",
    conf_level: float = 0.95,
) -> EquivalenceResult:
    """Test "no drift beyond ``margin``" for every NCO: H0: TV >= margin vs H1: TV < margin.

    Non-significance in :func:`nco_test` is not evidence of no drift; this is.

    Parameters
    ----------
    margin
        The equivalence margin delta on the TVD scale (e.g. 0.05).
    method
        ``"iut"``: per-category Wald TOST with margins ``2 * margin / K``, combined by
        intersection-union (Berger 1982; no multiplicity correction needed);
        ``"projection"``: the upper bound of the valid projection interval is below ``margin``.
        Both are valid level-``1 - conf_level`` tests. Default: both.
    strata
        ``"persona_id"`` in paired designs: per-category differences get paired standard errors.

    Returns
    -------
    EquivalenceResult

    Notes
    -----
    "No drift" claims need thousands of simulated users per arm; see :func:`nco_power` and
    :func:`nco_sample_size` before running a study.

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_nco_log(n_per_arm=3000, tvd=0.0, n_nco=1, n_levels=3, seed=2)
    >>> ds.equivalence_test(log, margin=0.1).tidy()["equivalent"].tolist()
    [True, True]
    """
    margin = check_margin(margin)
    conf_level = check_conf_level(conf_level)
    methods = (method,) if isinstance(method, str) else tuple(method)
    for m in methods:
        check_choice("method", m, EquivMethod)
    sl = as_log(log)
    items = [i for i in resolve_items(sl, nco, role="nco", arg="nco") if i.scale != "numeric"]
    if not items:
        raise InvalidArgumentError("equivalence tests need categorical NCOs; the NCOs given are all numeric.")
    by_cols = as_columns("by", by)
    datasets = extract(sl, items, resolve_pairs(sl, "arm", reference, pairs), by=by_cols, strata=strata, mode=mode)
    alpha = 1 - conf_level
    rows: list[dict[str, Any]] = []
    for pdata in datasets:
        if pdata.n_units == 0:
            continue
        for j, item in enumerate(pdata.cat_items):
            d, se, n1, n0 = share_differences(pdata, j)
            est = 0.5 * float(np.abs(d).sum())
            upper, p_proj = projection_equivalence(d, se, margin, conf_level)
            common = {**pdata.group, "term": item.item, "arm": pdata.arm1, "reference": pdata.arm0,
                      "n_1": n1, "n_0": n0, "n_levels": d.size, "estimate": est, "margin": margin,
                      "upper_bound": float(upper)}
            for m in methods:
                if m == "iut":
                    p, z = iut_tost(d, se, margin)
                    rows.append({**common, "measure": "tvd_iut", "statistic": float(z), "p_value_equiv": float(p),
                                 "equivalent": bool(p < alpha)})
                else:
                    rows.append({**common, "measure": "tvd_projection", "p_value_equiv": float(p_proj),
                                 "equivalent": bool(upper < margin)})
    info = {"method": "equivalence: " + " + ".join(methods), "n_obs": int(sum(p.n_units for p in datasets)),
            "n_groups": len(datasets), "conf_level": conf_level, "alternative": "less", "n_tests": len(rows)}
    return EquivalenceResult.build(rows, info, by=by_cols,
                                   provenance=Provenance(call="equivalence_test"))
