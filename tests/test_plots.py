"""Plots are checked structurally: the data behind the axes equals the result's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import driftstats as ds
from driftstats.errors import InvalidArgumentError
from tests.conftest import require

require("matplotlib")


@pytest.fixture(scope="module")
def nco_res():
    log = ds.simulate_nco_log(n_per_arm=120, tvd=[0.0, 0.2], n_nco=2, iterations=3, seed=1)
    return ds.nco_test(log, n_perm=199, n_boot=0, seed=1)


def test_forest_points_are_the_excess_values(nco_res) -> None:
    fig = nco_res.plot("forest")
    ax = fig.axes[0]
    t = nco_res.tidy()
    xs = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections if hasattr(c, "get_offsets")
                         and len(c.get_offsets()) and c.get_label() in ("family-wise p < 0.05", "not significant")])
    np.testing.assert_allclose(np.sort(xs), np.sort(t["excess"].to_numpy()), rtol=1e-12)
    assert len(ax.get_yticks()) == len(t)


def test_iterations_lines_follow_estimates(nco_res) -> None:
    ax = nco_res.plot("iterations").axes[0]
    t = nco_res.tidy()
    containers = [c for c in ax.containers if c.get_label() in ("nco_1", "nco_2")]
    assert len(containers) == 2
    for c in containers:
        expect = t[t["term"] == c.get_label()].sort_values("iteration")["estimate"].to_numpy()
        np.testing.assert_allclose(np.asarray(c.lines[0].get_ydata(), dtype=float), expect)
    assert ax.get_xlabel() == "adjustment iteration"


def test_distribution_bars_are_the_shares(nco_res) -> None:
    fig = nco_res.plot("distributions")
    assert len(fig.axes) == 2 * 3  # NCOs x iterations
    heights = sorted(round(p.get_height(), 12) for ax in fig.axes for p in ax.patches)
    d = nco_res.distributions
    assert heights == sorted(round(v, 12) for v in d["share"])


def test_fidelity_and_effect_and_calibration_figures() -> None:
    fid = ds.fidelity(ds.simulate_fidelity_log(n_per_arm=60, seed=2))
    ax = fid.plot().axes[0]
    assert sorted(round(p.get_height(), 12) for p in ax.patches) == sorted(round(v, 12) for v in fid.shares()["share"])
    eff = ds.effect(ds.simulate_study_log(n_per_arm=40, iterations=2, seed=3), tvd=False)
    ax = eff.plot().axes[0]
    t = eff.tidy()
    got = sorted(np.round(np.concatenate([np.asarray(c.lines[0].get_ydata(), dtype=float) for c in ax.containers
                                          if c.get_label().endswith("control")]), 12))
    assert got == sorted(np.round(t["estimate"].to_numpy(), 12))
    cal = ds.calibrate_effect(ds.simulate_placebo_log(n_placebo=8, n_per_arm=30, seed=4))
    fig = cal.plot()
    pts = fig.axes[0].collections[-1].get_offsets()
    np.testing.assert_allclose(np.sort(pts[:, 0]), np.sort(cal.controls["estimate"]))


def test_plot_errors_name_the_problem(nco_res) -> None:
    with pytest.raises(InvalidArgumentError, match="kind must be"):
        nco_res.plot("pie")
    from driftstats.plot import plot_corrections

    with pytest.raises(InvalidArgumentError, match="rows needs columns"):
        plot_corrections(pd.DataFrame({"x": [1]}))


def test_png_rendering_is_deterministic(nco_res) -> None:
    from driftstats.plot.figures import figure_png

    assert figure_png(nco_res.plot("forest")) == figure_png(nco_res.plot("forest"))
