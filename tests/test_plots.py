"""Plots are checked structurally: the data behind the axes equals the result's numbers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import driftstats as ds
from driftstats.errors import InvalidArgumentError
from tests.conftest import require

require("matplotlib")

# the figures draw whatever p-values they get: Monte Carlo warnings of the small n_perm used here are beside the point
pytestmark = pytest.mark.filterwarnings("ignore::driftstats.errors.MonteCarloErrorWarning")


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


# --------------------------------------------------------------------------- text from logs is drawn literally
HOSTILE_ARMS = {"control": "$$", "treatment": r"$\frac$", "placebo_1": "a$b$c", "placebo_2": "\\"}
HOSTILE_ITEMS = {"nco_1": "a$b$c", "nco_2": "50%", "support": r"$\frac{1}{0$", "party": "é—β☃ $x$"}
HOSTILE_OPTIONS = {"L1": "\\", "L2": "$", "L3": "é—β☃", "L4": "_x", "L5": "100% $5$"}


def _renamed(log, *, arms=None, items=None, options=None):
    """The same log with its arm, item and option names replaced (answers and side tables alike)."""
    import json

    arms, items, options = arms or {}, items or {}, options or {}
    a = log.to_pandas()
    a["arm"] = a["arm"].map(lambda v: arms.get(v, v))
    a["item"] = a["item"].map(lambda v: items.get(v, v))
    a["response"] = a["response"].map(lambda v: options.get(v, v))
    it = log.items.copy()
    it["item"] = it["item"].map(lambda v: items.get(v, v))
    it["options"] = it["options"].map(
        lambda o: json.dumps([options.get(x, x) for x in json.loads(o)]) if isinstance(o, str) else o)
    ar = log.arms.copy()
    ar["arm"] = ar["arm"].map(lambda v: arms.get(v, v))
    return ds.read_log(a, items=it, personas=log.personas, arms=ar)


def _texts(fig) -> list[str]:
    """What matplotlib will draw for every text of the figure; fails if any would be parsed as mathtext."""
    from matplotlib.cbook import is_math_text
    from matplotlib.text import Text

    out = []
    for t in fig.findobj(Text):
        s = t.get_text()
        assert not is_math_text(s), f"{s!r} would be parsed as mathtext"
        out.append(s.replace(r"\$", "$").lstrip("\u200b"))
    return out


def _hostile_figures():
    from driftstats.plot import plot_corrections

    nco = ds.nco_test(_renamed(ds.simulate_nco_log(n_per_arm=40, tvd=[0.0, 0.2], n_nco=2, iterations=2, seed=5),
                               arms=HOSTILE_ARMS, items=HOSTILE_ITEMS, options=HOSTILE_OPTIONS),
                      n_perm=99, n_boot=0, seed=5)
    fid = ds.fidelity(_renamed(ds.simulate_fidelity_log(n_per_arm=30, seed=6), arms=HOSTILE_ARMS))
    eff = ds.effect(_renamed(ds.simulate_study_log(n_per_arm=30, iterations=2, seed=7), arms=HOSTILE_ARMS),
                    tvd=False)
    cal = ds.calibrate_effect(_renamed(ds.simulate_placebo_log(n_placebo=6, n_per_arm=30, seed=8),
                                       arms={"treatment": r"$\frac$", "placebo_01": "a$b$c", "placebo_02": "$$"}))
    rows = pd.DataFrame({"label": ["naive $x$", r"DiD-NCO $\frac$", "50%"], "estimate": [0.3, 0.1, 0.2],
                         "conf_low": [0.1, -0.1, 0.0], "conf_high": [0.5, 0.3, 0.4]})
    return {
        "forest": (nco.plot("forest", title="drift in $arm$"), ["$$", r"$\frac$", "a$b$c", "50%"]),
        "forest-estimate": (nco.plot("forest", value="estimate"), ["a$b$c", "50%"]),
        "iterations": (nco.plot("iterations"), ["a$b$c", "50%"]),
        "distributions": (nco.plot("distributions"), ["$$", r"$\frac$", "\\", "$", "é—β☃", "_x", "100% $5$"]),
        "fidelity": (fid.plot(), ["$$", r"$\frac$"]),
        "effect": (eff.plot(), [r"$\frac$ vs $$"]),
        "calibration": (cal.plot(), [r"$\frac$ (raw)", r"$\frac$ (calibrated)"]),
        "corrections": (plot_corrections(rows, title="$unbalanced"), ["naive $x$", r"DiD-NCO $\frac$", "50%",
                                                                      "$unbalanced"]),
    }


def test_hostile_names_render_literally_in_every_figure() -> None:
    """Regression (issue 29): a `$` in an arm, item or option name made matplotlib parse mathtext and the
    report crash; now every text from a log is escaped and drawn as written, in every figure."""
    from driftstats.plot.figures import figure_png

    for name, (fig, expected) in _hostile_figures().items():
        png = figure_png(fig, dpi=50)  # drawing is where mathtext used to raise
        assert png[:4] == b"\x89PNG", name
        texts = _texts(fig)
        for want in expected:
            assert any(want in s for s in texts), (name, want, texts)


@pytest.mark.filterwarnings(r"ignore:Glyph \d+ .* missing from font:UserWarning")
def test_names_without_glyphs_do_not_crash() -> None:
    """Characters the font lacks render as boxes (matplotlib warns), never as an error."""
    from driftstats.plot.figures import figure_png

    log = _renamed(ds.simulate_nco_log(n_per_arm=30, n_nco=1, seed=9), arms={"treatment": "治療 $α$"},
                   options={"L1": "日本 \\$"})
    res = ds.nco_test(log, n_perm=49, n_boot=0, seed=9)
    for kind in ("forest", "distributions"):
        fig = res.plot(kind)
        assert figure_png(fig)[:4] == b"\x89PNG"
        assert any("治療 $α$" in s for s in _texts(fig))


def test_text_helper_escapes_every_dollar() -> None:
    from matplotlib.cbook import is_math_text

    from driftstats.plot.figures import _text

    for raw in [r"$\frac$", "a$b$c", "$$", "\\", "50%", "$", "\\$", "é—β☃", "_x", "", 3, None]:
        s = _text(raw)
        assert not is_math_text(s)
        assert s.lstrip("\u200b").replace(r"\$", "$") == str(raw)


# --------------------------------------------------------------------------- excess bars and untestable rows
def _bars(ax) -> np.ndarray:
    """(low, high) of the forest plot's interval bars, bottom row first."""
    from matplotlib.collections import LineCollection

    coll = [c for c in ax.collections if isinstance(c, LineCollection) and len(c.get_segments())]
    segs = np.array([s for c in coll for s in c.get_segments()])
    order = np.argsort(segs[:, 0, 1])
    return segs[order][:, :, 0]


def test_excess_bars_are_floored_like_the_excess(nco_res) -> None:
    """Regression (issue 6): excess TVD is max(TVD - null mean, 0) but its bars went below 0. The bars are
    [max(conf_low - null_mean, 0), max(conf_high - null_mean, 0)] and the axis label says so."""
    t = nco_res.tidy()
    assert (t["conf_low"] - t["null_mean"] < 0).any()  # the case that used to draw below 0
    ax = nco_res.plot("forest").axes[0]
    bars = _bars(ax)
    assert len(bars) == len(t)
    top_first = t.iloc[::-1]  # the first tidy row is drawn at the top
    np.testing.assert_allclose(bars[:, 0], np.maximum(top_first["conf_low"] - top_first["null_mean"], 0), rtol=1e-12)
    np.testing.assert_allclose(bars[:, 1], np.maximum(top_first["conf_high"] - top_first["null_mean"], 0),
                               rtol=1e-12)
    assert (bars >= 0).all()
    ex = top_first["excess"].to_numpy()
    assert ((bars[:, 0] <= ex + 1e-12) & (ex <= bars[:, 1] + 1e-12)).all()  # each point lies on its bar
    assert "max(TVD" in ax.get_xlabel()
    est_bars = _bars(nco_res.plot("forest", value="estimate").axes[0])
    np.testing.assert_allclose(est_bars[:, 0], np.maximum(top_first["conf_low"], 0), rtol=1e-12)


class _Retabled:
    """A result whose tidy() is replaced (e.g. by rows an engine marks as not testable)."""

    def __init__(self, result, table: pd.DataFrame) -> None:
        self._result, self._table = result, table

    def tidy(self) -> pd.DataFrame:
        return self._table.copy()

    def __getattr__(self, name):
        return getattr(self._result, name)


def _with_untestable(res) -> pd.DataFrame:
    t = res.tidy().reset_index(drop=True)
    t["note"] = None
    nan_cols = [c for c in ("estimate", "statistic", "p_value", "conf_low", "conf_high", "excess", "null_mean",
                            "null_q95", "p_value_fwer") if c in t]
    t.loc[0, nan_cols] = np.nan
    t.loc[0, "note"] = "not testable: arm 'treatment' has no valid answers"
    t.loc[1, "note"] = "not testable: one level only"  # a note without NaNs still carries no test
    if "p_value_fwer" in t:
        t.loc[1, "p_value_fwer"] = 1e-4
    return t.astype({c: object for c in ("p_value_fwer",) if c in t})  # engines may hand object columns


def test_untestable_rows_are_marked_not_drawn_as_findings(nco_res) -> None:
    """Rows with a note (or a NaN estimate) keep their place in the forest plot, marked, without a point or
    bar, and never as family-wise significant; the other figures leave them out and say how many."""
    from driftstats.plot import plot_forest
    from driftstats.plot.figures import figure_png

    t = _with_untestable(nco_res)
    res = _Retabled(nco_res, t)
    fig = plot_forest(res)
    ax = fig.axes[0]
    figure_png(fig)
    labels = [lab.get_text() for lab in ax.get_yticklabels()]
    assert len(labels) == len(t)
    assert labels[0].endswith("[not testable]")  # tidy rows 0 and 1 are drawn at the top
    assert labels[1].endswith("[not testable]")
    assert not any(lab.endswith("[not testable]") for lab in labels[2:])
    sig = [c for c in ax.collections if c.get_label() == "family-wise p < 0.05"]
    top_two = {float(len(t) - 1), float(len(t) - 2)}
    for c in sig:
        assert not top_two & set(c.get_offsets()[:, 1].tolist())
    points = np.concatenate([c.get_offsets() for c in ax.collections
                             if c.get_label() in ("family-wise p < 0.05", "not significant")])
    assert len(points) == len(t) - 2
    assert len(_bars(ax)) == len(t) - 2


def test_untestable_rows_in_the_other_figures(nco_res) -> None:
    from driftstats.plot import plot_corrections, plot_effect, plot_iterations
    from driftstats.plot.figures import figure_png

    t = _with_untestable(nco_res)
    ax = plot_iterations(_Retabled(nco_res, t)).axes[0]
    figure_png(ax.figure)
    notes = [x.get_text() for x in ax.texts if x.get_gid() == "not-testable-note"]
    assert notes == ["2 row(s) not testable, not drawn"]
    drawn = np.concatenate([np.asarray(c.lines[0].get_ydata(), float) for c in ax.containers])
    assert len(drawn) == len(t) - 2

    eff = ds.effect(ds.simulate_study_log(n_per_arm=30, iterations=2, seed=3), tvd=False)
    te = eff.tidy().reset_index(drop=True)
    first = te.index[te["measure"] == "mean_diff"][0]
    te.loc[first, ["estimate", "std_error", "conf_low", "conf_high", "p_value"]] = np.nan
    ax = plot_effect(_Retabled(eff, te)).axes[0]
    figure_png(ax.figure)
    assert [x.get_text() for x in ax.texts if x.get_gid() == "not-testable-note"] == ["1 row(s) not testable, not drawn"]

    rows = pd.DataFrame({"label": ["naive", "P2SLS"], "estimate": [0.4, np.nan], "conf_low": [0.2, np.nan],
                         "conf_high": [0.6, np.nan], "note": [None, "not testable: weak proxy"]})
    ax = plot_corrections(rows).axes[0]
    figure_png(ax.figure)
    assert [lab.get_text() for lab in ax.get_yticklabels()] == ["naive", "P2SLS  [not testable]"]


def test_intervals_that_miss_their_point_do_not_crash(nco_res) -> None:
    """matplotlib's errorbar refuses negative error lengths; an interval that does not contain its point
    (a calibrated or floored interval may not) is drawn as given, apart from the point."""
    from driftstats.plot import plot_iterations
    from driftstats.plot.figures import figure_png

    t = nco_res.tidy().reset_index(drop=True)
    t.loc[0, "conf_low"] = t.loc[0, "estimate"] + 0.05
    t.loc[0, "conf_high"] = t.loc[0, "estimate"] + 0.10
    ax = plot_iterations(_Retabled(nco_res, t)).axes[0]
    assert figure_png(ax.figure)[:4] == b"\x89PNG"
    from matplotlib.collections import LineCollection

    segs = np.concatenate([c.get_segments() for c in ax.collections if isinstance(c, LineCollection)])
    lows = sorted(float(s[:, 1].min()) for s in segs)
    assert any(abs(v - t.loc[0, "conf_low"]) < 1e-12 for v in lows)


# ------------------------------------------------------------------ adjustment figures (paper Figs. 3-6, 8)
@pytest.fixture(scope="module")
def adj_res():
    log, _ = ds.simulate_adjustment_log(n_personas=50, models=("m$1$", "m_2"), n_nco=2, seed=7)
    return ds.adjustment_path(log, n_perm=99, n_boot=0, seed=1)


def _unescaped_dollars(fig) -> list[str]:
    """Texts of the figure with a ``$`` that is not escaped (matplotlib would parse it as mathtext)."""
    from matplotlib.text import Text

    texts = [t.get_text() for t in fig.findobj(Text)]
    return [s for s in texts if re.search(r"(?<!\\)\$", s)]


def test_adjustment_figures_render_with_escaped_names(adj_res) -> None:
    from driftstats.plot.figures import figure_png

    for kind in ("drift", "effect", "distributions", "outcome"):
        fig = adj_res.plot(kind)
        assert figure_png(fig)[:4] == b"\x89PNG"
        assert _unescaped_dollars(fig) == [], kind
    titles = [ax.get_title() for ax in adj_res.plot("effect").axes]
    assert titles == [r"m\$1\$", "m_2"]
    with pytest.raises(InvalidArgumentError, match="kind must be one of"):
        adj_res.plot("nope")
    with pytest.raises(InvalidArgumentError, match="not in this result"):
        adj_res.plot("drift", models=["other"])


def test_adjustment_drift_lines_are_the_excess_values(adj_res) -> None:
    fig = adj_res.plot("drift")
    d = adj_res.drift
    ncos = list(dict.fromkeys(d["nco"]))
    models = list(dict.fromkeys(d["model"]))
    assert len(fig.axes) == len(ncos) * len(models)
    ax = fig.axes[0]  # first NCO, first model
    for path in ("targeted", "untargeted"):
        line = next(ln for ln in ax.get_lines() if ln.get_gid() == f"drift:{path}:treatment")
        expect = d[(d["model"] == models[0]) & (d["nco"] == ncos[0]) & (d["path"] == path)].sort_values("iteration")
        np.testing.assert_allclose(np.asarray(line.get_ydata(), float), expect["excess"].to_numpy())
        null = next(ln for ln in ax.get_lines() if ln.get_gid() == f"null:{path}:treatment")
        np.testing.assert_allclose(np.asarray(null.get_ydata(), float),
                                   (expect["null_q95"] - expect["null_mean"]).to_numpy())
    assert {ln.get_linestyle() for ln in ax.get_lines() if str(ln.get_gid()).startswith("drift:")} >= {"-", "--"}
    est = adj_res.plot("drift", value="estimate").axes[0]
    line = next(ln for ln in est.get_lines() if ln.get_gid() == "drift:targeted:treatment")
    expect = d[(d["model"] == models[0]) & (d["nco"] == ncos[0]) & (d["path"] == "targeted")].sort_values("iteration")
    np.testing.assert_allclose(np.asarray(line.get_ydata(), float), expect["estimate"].to_numpy())


def test_adjustment_effect_figure_has_the_reference_as_a_dashed_line(adj_res) -> None:
    e = adj_res.effects
    fig = adj_res.plot("effect")
    ax = fig.axes[1]  # model m_2
    ref = next(ln for ln in ax.get_lines() if ln.get_gid() == "reference:treatment")
    assert ref.get_linestyle() == "--"
    expect = e[(e["model"] == "m_2") & (e["path"] == "reference")]["estimate"].iloc[0]
    assert np.allclose(ref.get_ydata(), expect)
    line = next(ln for ln in ax.get_lines() if ln.get_gid() == "effect:untargeted:treatment")
    np.testing.assert_allclose(np.asarray(line.get_ydata(), float),
                               e[(e["model"] == "m_2") & (e["path"] == "untargeted")].sort_values("iteration")
                               ["estimate"].to_numpy())
    assert "reference spec (a reference, not ground truth)" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_adjustment_distribution_bars_are_the_shares(adj_res) -> None:
    d = adj_res.distributions
    fig = adj_res.plot("distributions", model="m_2")
    sub = d[(d["model"] == "m_2") & (d["role"] == "nco") & (d["path"] != "reference")]
    assert len(fig.axes) == 2 * 2 * 2  # (path, NCO) rows x arms
    heights = sorted(round(p.get_height(), 12) for ax in fig.axes for p in ax.patches)
    assert heights == sorted(round(v, 12) for v in sub["share"])
    out = adj_res.plot("outcome")
    o = d[(d["item"] == adj_res.outcome) & (d["iteration"] == 0) & (d["path"] == "targeted")]
    assert sorted(round(p.get_height(), 12) for ax in out.axes for p in ax.patches) == \
        sorted(round(v, 12) for v in o["share"])
