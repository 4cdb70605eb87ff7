"""Degenerate inputs for every correction and calibration verb: a named driftstats error or a valid result.

Never a raw exception (ZeroDivisionError, LinAlgError, KeyError), never a RuntimeWarning; driftstats'
own warnings (weak proxies, Monte Carlo error, convergence) are allowed, since they name the problem.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

import driftstats as ds
from driftstats.errors import DriftstatsError, DriftstatsWarning

PLACEBOS = [f"p{k}" for k in range(6)]


def base(n: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    u = rng.normal(size=2 * n)
    arms = np.array(["control", "treatment"])[np.r_[np.zeros(n, int), np.ones(n, int)]]
    return pd.DataFrame({
        "arm": arms, "t": (arms == "treatment").astype(float), "y": u + rng.normal(size=2 * n),
        "n": u + rng.normal(size=2 * n), "w1": u + rng.normal(size=2 * n), "z1": u + rng.normal(size=2 * n),
        "x": rng.normal(size=2 * n), "w": rng.integers(0, 2, 2 * n), "z": rng.integers(0, 2, 2 * n),
    })


def placebo_frame(n: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arms = ["control", "treatment", *PLACEBOS]
    return pd.DataFrame({"arm": np.repeat(arms, n), "y": rng.normal(size=n * len(arms))})


DEGENERATE: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "constant outcome": lambda d: d.assign(y=1.0),
    "constant everything": lambda d: d.assign(**{c: 1.0 for c in d.columns if c not in ("arm", "t")}),
    "one unit per arm": lambda d: d.groupby("arm").head(1),
    "two units per arm": lambda d: d.groupby("arm").head(2),
    "all-NaN outcome": lambda d: d.assign(y=np.nan),
    "huge values": lambda d: d.assign(y=d["y"] * 1e300),
    "tiny values": lambda d: d.assign(y=d["y"] * 1e-300),
    "one arm only": lambda d: d[d["arm"] == "control"],
    "infinite value": lambda d: d.assign(y=np.r_[np.inf, d["y"].to_numpy()[1:]]),
}

VERBS: dict[str, Callable[[pd.DataFrame], object]] = {
    "did additive": lambda d: ds.did_nco(d, outcome="y", nco="n", arm="t", n_boot=50),
    "did location_scale": lambda d: ds.did_nco(d, outcome="y", nco="n", arm="t", scale="location_scale", n_boot=50),
    "did qq": lambda d: ds.did_nco(d, outcome="y", nco="n", arm="t", scale="qq", n_boot=50),
    "did two NCOs": lambda d: ds.did_nco(d, outcome="y", nco=["n", "w1"], arm="t", n_boot=50),
    "p2sls": lambda d: ds.p2sls("y ~ t + x | w1 ~ z1", d),
    "proximal_discrete": lambda d: ds.proximal_discrete(d, outcome="y", nco="w", nce="z", treatment="t", n_boot=50),
}


def _check(fn: Callable[[], object]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", DriftstatsWarning)
        try:
            res = fn()
        except DriftstatsError:
            return
    t = res.tidy()  # type: ignore[attr-defined]
    assert len(t) > 0
    for c in ("estimate", "std_error", "conf_low", "conf_high", "p_value"):
        vals = t[c].to_numpy(float)
        assert not np.isinf(vals).any(), (c, vals)
    p = t["p_value"].to_numpy(float)
    assert ((p[~np.isnan(p)] >= 0) & (p[~np.isnan(p)] <= 1)).all()
    for r in t.itertuples():  # a row without an estimate, or with a zero standard error, says why
        if math.isnan(r.estimate) or r.std_error == 0:
            assert isinstance(getattr(r, "note", None), str), r
            assert r.note, r
        if not math.isnan(r.estimate) and not math.isnan(r.std_error) and r.std_error > 0 \
                and getattr(r, "measure", "") not in ("mean_do", "ate"):
            assert not math.isnan(r.p_value) or isinstance(getattr(r, "note", None), str), r  # a Wald row carries its test


@pytest.mark.parametrize("case", sorted(DEGENERATE))
@pytest.mark.parametrize("verb", sorted(VERBS))
def test_degenerate_inputs(verb, case) -> None:
    _check(lambda: VERBS[verb](DEGENERATE[case](base())))


@pytest.mark.parametrize("case", sorted(DEGENERATE))
@pytest.mark.parametrize("null", ["asymptotic", "mcmc"])
def test_degenerate_inputs_calibrate_effect(null, case) -> None:
    _check(lambda: ds.calibrate_effect(DEGENERATE[case](placebo_frame()), outcome="y", placebo=PLACEBOS,
                                       reference="control", null=null, n_iter=2000))
