"""The result contract, enforced for every public estimator (conventions.md sections 1, 2, 5).

Each estimator is built from a tiny fixture; its tidy/glance frames must use glossary
columns in canonical order with the registered dtypes, a RangeIndex, one glance row, and
deterministic text/HTML reprs. New estimators join by adding a factory to ESTIMATORS.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import pandas as pd
import pytest

import driftstats as ds
from driftstats._glossary import GLANCE, GLANCE_CORE, GLANCE_ORDER, TIDY, TIDY_CORE, TIDY_ORDER
from driftstats._result import Result
from driftstats.errors import InvalidAnswersWarning

_DTYPES = {"str": "string", "float": "float64", "int": "Int64", "bool": "boolean"}


def _nco():
    return ds.nco_test(ds.simulate_nco_log(n_per_arm=30, tvd=0.1, n_nco=2, n_numeric=1, seed=1),
                       n_perm=99, n_boot=50, seed=1)


def _equiv():
    return ds.equivalence_test(ds.simulate_nco_log(n_per_arm=40, n_nco=2, seed=2), margin=0.2)


def _power():
    return ds.nco_power([100, 200], margin=0.1, n_levels=3, draws=500)


def _fid():
    return ds.fidelity(ds.simulate_fidelity_log(n_per_arm=30, seed=3))


def _world_log():
    return ds.simulate_latent_world(n_types=3, nco_levels=3, seed=5).sample_log(80, seed=1)


def _quiet(fn: Callable[[], Result]) -> Callable[[], Result]:
    """The world log's simulated refusals are invalid answers of y: their warning is expected."""

    def run() -> Result:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InvalidAnswersWarning)
            return fn()

    return run


ESTIMATORS: dict[str, Callable[[], Result]] = {
    "nco_test": _nco,
    "equivalence_test": _equiv,
    "nco_power": _power,
    "fidelity": _fid,
    "effect": _quiet(lambda: ds.effect(_world_log(), n_perm=99, seed=1)),
    "effect_model": _quiet(lambda: ds.effect_model("y ~ arm", _world_log(), family="ordinal")),
    "decompose": lambda: ds.decompose_world(ds.simulate_latent_world(selection=1.0, seed=1)),
    "retention": lambda: ds.retention(_world_log()),
    "did_nco": lambda: ds.did_nco(_world_log(), outcome="y", nco="n"),
    "p2sls": lambda: ds.p2sls("y ~ t + x | w1 ~ z1 + z2", ds.simulate_proxy_data(200, seed=1)),
    "proximal_discrete": lambda: ds.proximal_discrete(_world_log(), outcome="y", nco="n", nce="z", n_boot=20, seed=1),
    "calibrate_effect": lambda: ds.calibrate_effect(ds.simulate_placebo_log(n_placebo=5, n_per_arm=20, seed=1)),
    "adjustment_path": lambda: ds.adjustment_path(ds.simulate_adjustment_log(n_personas=30, n_nco=2, seed=1)[0],
                                                  n_perm=99, n_boot=50, seed=1),
}


def register(name: str, factory: Callable[[], Result]) -> None:
    ESTIMATORS[name] = factory


@pytest.fixture(params=sorted(ESTIMATORS), scope="module")
def result(request):
    return ESTIMATORS[request.param]()


def test_tidy_columns_are_glossary_in_canonical_order(result) -> None:
    t = result.tidy()
    assert isinstance(t.index, pd.RangeIndex)
    cols = [c for c in t.columns if c not in result.by]
    assert cols[: len(TIDY_CORE)] == list(TIDY_CORE)
    assert all(c in TIDY for c in cols), [c for c in cols if c not in TIDY]
    extras = cols[len(TIDY_CORE):]
    assert extras == sorted(extras, key=TIDY_ORDER.__getitem__)
    assert list(t.columns[1: 1 + len(result.by)]) == list(result.by)
    for c in cols:
        assert str(t[c].dtype) == _DTYPES[TIDY[c].dtype], (c, t[c].dtype)
    assert len(t) > 0


def test_glance_one_row_fixed_schema(result) -> None:
    g = result.glance()
    assert len(g) == 1
    assert list(g.columns[: len(GLANCE_CORE)]) == list(GLANCE_CORE)
    assert all(c in GLANCE for c in g.columns)
    extras = list(g.columns[len(GLANCE_CORE):])
    assert extras == sorted(extras, key=GLANCE_ORDER.__getitem__)
    for c in g.columns:
        assert str(g[c].dtype) == _DTYPES[GLANCE[c].dtype], (c, g[c].dtype)


def test_reprs_are_deterministic_and_agree(result) -> None:
    text, html = repr(result), result._repr_html_()
    assert text == repr(result)
    assert html == result._repr_html_()
    assert result.TITLE in text
    assert "0x" not in text
    s = result.summary()
    assert s.as_text() == str(s)
    assert s.as_latex().startswith(r"\begin{tabular}")
    for term in result.tidy()["term"].astype(str).head(3):
        assert term in text
        assert term in html


def test_results_are_immutable(result) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.info = {}  # type: ignore[misc]
    t = result.tidy()
    t.loc[0, "estimate"] = -999.0
    assert result.tidy().loc[0, "estimate"] != -999.0


def test_assumptions_are_stated(result) -> None:
    assert result.assumptions
    assert "Assumptions" in repr(result)
