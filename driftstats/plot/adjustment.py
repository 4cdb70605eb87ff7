"""Figures of the persona-augmentation loop, from an :class:`~driftstats.adjust.AdjustmentResult`.

The paper's figures: NCO TVD over adjustment iterations with 95% bands and the permutation null
(Fig. 3, :func:`plot_adjustment_drift`), the observed effect over iterations with the reference
spec's effect as a dashed line (Fig. 4, :func:`plot_adjustment_effect`), NCO answer distributions
per iteration faceted by arm (Figs. 5 and 8, :func:`plot_adjustment_distributions`) and the
outcome's distribution by arm at iteration 0 (Fig. 6, :func:`plot_adjustment_outcome`). Every
figure is faceted per model; paths are separate lines with their own colour and line style.

Every text from the log or the result goes through :func:`driftstats.plot.figures._text`, so a
``$`` in a name is drawn as a dollar sign, never as mathtext. Rows that carry no test, and NCO rows
that are not diagnostics at their iteration (the NCO is in the spec), are left out; a note on the
axes counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftstats._args import check_choice
from driftstats.errors import InvalidArgumentError
from driftstats.plot.figures import (
    PALETTE,
    _figure,
    _intervals,
    _legend,
    _note_left_out,
    _text,
    _untestable,
)

__all__ = [
    "plot_adjustment_distributions",
    "plot_adjustment_drift",
    "plot_adjustment_effect",
    "plot_adjustment_outcome",
]

DriftValue = Literal["excess", "estimate"]
LINESTYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "v", "P", "X"]
REFERENCE_LABEL = "reference spec (a reference, not ground truth)"


def _style(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Colour, line style and marker per path (the reference path is black diamonds)."""
    out: dict[str, dict[str, Any]] = {}
    others = [p for p in paths if p != "reference"]
    for i, p in enumerate(others):
        out[p] = {"color": PALETTE[i % len(PALETTE)], "ls": LINESTYLES[i % len(LINESTYLES)], "marker": "o"}
    if "reference" in paths:
        out["reference"] = {"color": "#222222", "ls": "none", "marker": "D"}
    return out


def _models(frame: pd.DataFrame, models: Sequence[str] | None) -> list[str]:
    available = list(dict.fromkeys(frame["model"].astype(str)))
    if models is None:
        return available
    chosen = [str(m) for m in models]
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise InvalidArgumentError(f"models: {unknown!r} are not in this result; models: {available!r}.")
    return chosen


def _paths(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["path"].astype(str)))


def _figure_legend(fig: Any, ncols: int | None = None) -> None:
    """One legend for every panel, below them (the panels share their lines' meaning); as many columns as
    the figure's width holds (about 3 inches per label unless ``ncols`` is given)."""
    if ncols is None:
        ncols = max(1, int(fig.get_figwidth() // 3.0))
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center", fontsize=8, frameon=False,
                   ncols=min(len(handles), ncols))


def _iteration_ticks(ax: Any, frame: pd.DataFrame) -> None:
    ticks = sorted(pd.to_numeric(frame["iteration"], errors="coerce").dropna().unique())
    if ticks:
        ax.set_xticks(ticks)


def plot_adjustment_drift(result: Any, *, value: DriftValue = "excess", models: Sequence[str] | None = None,
                          title: str | None = None) -> Any:
    """NCO drift over adjustment iterations (paper Fig. 3): one panel per diagnostic NCO (rows) and model (columns).

    Parameters
    ----------
    result
        An :class:`~driftstats.adjust.AdjustmentResult`.
    value
        ``"excess"`` (default): excess TVD ``max(TVD - null mean, 0)`` with the band
        ``[max(conf_low - null mean, 0), max(conf_high - null mean, 0)]`` and the permutation null's
        95th percentile minus its mean as a grey dotted line; ``"estimate"``: plug-in TVD with its
        valid interval and the null's 95th percentile.
    models
        Models to draw (default: all).
    title
        Overrides the default title (drawn literally).

    Returns
    -------
    matplotlib.figure.Figure
        Per path a line (its colour and line style) with a shaded 95% band; the reference path's
        single iteration is a black diamond with its interval.

    Raises
    ------
    InvalidArgumentError
        ``value`` is not a choice, a model is unknown, or there are no drift rows.

    Examples
    --------
    >>> import driftstats as ds
    >>> log, _ = ds.simulate_adjustment_log(n_personas=30, n_nco=1, seed=0)
    >>> res = ds.adjustment_path(log, n_perm=99, n_boot=0)
    >>> plot_adjustment_drift(res).axes[0].get_xlabel()
    'adjustment iteration'
    """
    check_choice("value", value, DriftValue)
    d = result.drift
    if d.empty:
        raise InvalidArgumentError("nothing to plot: the result has no drift rows.")
    mods = _models(d, models)
    ncos = list(dict.fromkeys(d["nco"].astype(str)))
    style = _style(_paths(d))
    arms = list(dict.fromkeys(d["arm"].astype(str)))
    fig, axes = _figure(len(ncos), len(mods), width=3.8 * len(mods) + 1.8, height=2.5 * len(ncos) + 0.8,
                        sharex=True)
    excess = value == "excess"
    for c, model in enumerate(mods):
        for r, nco in enumerate(ncos):
            ax = axes[r, c]
            sub = d[(d["model"].astype(str) == model) & (d["nco"].astype(str) == nco)]
            bad = _untestable(sub, "excess" if excess else "estimate") | ~sub["diagnostic"].fillna(False).to_numpy(bool)
            shown = sub[~bad]
            n_paths = max(len(style), 1)
            for i, (path, st) in enumerate(style.items()):
                for a_i, arm in enumerate(arms):
                    g = shown[(shown["path"].astype(str) == path) & (shown["arm"].astype(str) == arm)]
                    if g.empty:
                        continue
                    g = g.sort_values("iteration")
                    x = g["iteration"].to_numpy(float) + (i - (n_paths - 1) / 2) * 0.05 + a_i * 0.02
                    if excess:
                        y, lo, hi = g["excess"], g["excess_low"], g["excess_high"]
                        null = g["null_q95"] - g["null_mean"]
                    else:
                        y, lo, hi = g["estimate"], np.maximum(g["conf_low"], 0.0), g["conf_high"]
                        null = g["null_q95"]
                    label = _text(path if len(arms) == 1 else f"{path}: {arm}")
                    if path == "reference":
                        label = _text(REFERENCE_LABEL if len(arms) == 1 else f"{REFERENCE_LABEL}: {arm}")
                    marker = st["marker"] if path == "reference" else MARKERS[a_i % len(MARKERS)]
                    ax.plot(x, y.to_numpy(float), color=st["color"], ls=st["ls"], marker=marker, ms=4, lw=1.3,
                            label=label, gid=f"drift:{path}:{arm}")
                    if len(g) > 1:
                        ax.fill_between(x, lo.to_numpy(float), hi.to_numpy(float), color=st["color"], alpha=0.12,
                                        lw=0, gid=f"band:{path}:{arm}")
                    else:
                        _intervals(ax, x, lo, hi, color=st["color"], lw=0.9)
                    ax.plot(x, pd.to_numeric(null, errors="coerce").to_numpy(float), color="#999999", ls=":", lw=1.0,
                            label="permutation null, 95th pct" + (" minus its mean" if excess else ""),
                            gid=f"null:{path}:{arm}")
            _note_left_out(ax, int(bad.sum()))
            ax.axhline(0, color="#bbbbbb", lw=0.6)
            ax.set_title(_text(f"{nco} ({model})"), fontsize=9)
            if c == 0:
                ax.set_ylabel("excess TVD" if excess else "TVD between arms", fontsize=8)
            if r == len(ncos) - 1:
                ax.set_xlabel("adjustment iteration")
                _iteration_ticks(ax, d)
    _figure_legend(fig)
    default = ("Excess TVD of the diagnostic NCOs over adjustment iterations" if excess
               else "TVD of the diagnostic NCOs over adjustment iterations") + \
        "\nbands: 95% valid intervals; dotted: permutation null"
    fig.suptitle(_text(title) if title is not None else default, fontsize=9)
    return fig


def plot_adjustment_effect(result: Any, *, models: Sequence[str] | None = None, title: str | None = None) -> Any:
    """Observed effect over adjustment iterations (paper Fig. 4): one panel per model.

    Parameters
    ----------
    result
        An :class:`~driftstats.adjust.AdjustmentResult`.
    models
        Models to draw (default: all).
    title
        Overrides the default title (drawn literally).

    Returns
    -------
    matplotlib.figure.Figure
        Per path and arm the effect with its interval; the reference path's effect is a dashed
        horizontal line (with its interval shaded), labelled a reference.

    Raises
    ------
    InvalidArgumentError
        An unknown model, or no effect rows.

    Examples
    --------
    >>> import driftstats as ds
    >>> log, _ = ds.simulate_adjustment_log(n_personas=30, n_nco=1, seed=0)
    >>> fig = plot_adjustment_effect(ds.adjustment_path(log, n_perm=99, n_boot=0))
    >>> fig.axes[0].get_ylabel()
    'difference in mean outcome code'
    """
    e = result.effects
    if e.empty:
        raise InvalidArgumentError("nothing to plot: the result has no effect rows.")
    mods = _models(e, models)
    style = _style(_paths(e))
    arms = list(dict.fromkeys(e["arm"].astype(str)))
    fig, axes = _figure(1, len(mods), width=4.6 * len(mods) + 1.0, height=3.8, sharey=True)
    for c, model in enumerate(mods):
        ax = axes[0, c]
        sub = e[e["model"].astype(str) == model]
        bad = _untestable(sub)
        shown = sub[~bad]
        for i, (path, st) in enumerate(style.items()):
            for a_i, arm in enumerate(arms):
                g = shown[(shown["path"].astype(str) == path) & (shown["arm"].astype(str) == arm)].sort_values(
                    "iteration")
                if g.empty:
                    continue
                suffix = "" if len(arms) == 1 else f": {arm}"
                if path == "reference":
                    est, lo, hi = (float(g[k].iloc[-1]) for k in ("estimate", "conf_low", "conf_high"))
                    ax.axhline(est, color=st["color"], ls="--", lw=1.2, label=_text(REFERENCE_LABEL + suffix),
                               gid=f"reference:{arm}")
                    if np.isfinite(lo) and np.isfinite(hi):
                        ax.axhspan(lo, hi, color=st["color"], alpha=0.07, lw=0)
                    continue
                x = g["iteration"].to_numpy(float) + (i - (len(style) - 1) / 2) * 0.06 + a_i * 0.02
                ax.plot(x, g["estimate"].to_numpy(float), color=st["color"], ls=st["ls"],
                        marker=MARKERS[a_i % len(MARKERS)], ms=4, label=_text(path + suffix), gid=f"effect:{path}:{arm}")
                _intervals(ax, x, g["conf_low"], g["conf_high"], color=st["color"])
        _note_left_out(ax, int(bad.sum()))
        ax.axhline(0, color="#bbbbbb", lw=0.6)
        ax.set_xlabel("adjustment iteration")
        _iteration_ticks(ax, e)
        ax.set_title(_text(model), fontsize=9)
        if c == 0:
            ax.set_ylabel("difference in mean outcome code")
    _figure_legend(fig)
    outcome = getattr(result, "outcome", None)
    default = "Observed effect over adjustment iterations" + (f" ({outcome})" if outcome else "")
    fig.suptitle(_text(title) if title is not None else default, fontsize=10)
    return fig


def _bars(ax: Any, sub: pd.DataFrame, groups: Sequence[Any], column: str, colors: Sequence[str],
          labels: Sequence[str]) -> None:
    levels = sub.sort_values("position")[["position", "option"]].drop_duplicates("position")
    width = 0.8 / max(len(groups), 1)
    for i, (grp, label) in enumerate(zip(groups, labels, strict=True)):
        s = sub[sub[column] == grp].sort_values("position")
        ax.bar(s["position"].to_numpy(float) + (i - (len(groups) - 1) / 2) * width,
               pd.to_numeric(s["share"], errors="coerce").fillna(0.0).to_numpy(float), width=width,
               color=colors[i % len(colors)], label=_text(label))
    ax.set_xticks(levels["position"].to_numpy(float), [_text(str(o)[:14]) for o in levels["option"]], rotation=30,
                  ha="right", fontsize=7)
    ax.set_ylim(0, 1)


def plot_adjustment_distributions(result: Any, *, model: str | None = None, items: Sequence[str] | None = None,
                                  paths: Sequence[str] | None = None, title: str | None = None) -> Any:
    """NCO answer distributions per iteration, faceted by arm (paper Figs. 5 and 8), for one model.

    Parameters
    ----------
    result
        An :class:`~driftstats.adjust.AdjustmentResult`.
    model
        The model (default: the first).
    items
        Items to draw (default: the diagnostic NCOs, role ``nco``).
    paths
        Paths to draw (default: every path but the reference).
    title
        Overrides the default title (drawn literally).

    Returns
    -------
    matplotlib.figure.Figure
        One row per (path, item), one column per arm; bars per option, one colour per iteration.

    Raises
    ------
    InvalidArgumentError
        An unknown model, item or path, or no distributions.

    Examples
    --------
    >>> import driftstats as ds
    >>> log, _ = ds.simulate_adjustment_log(n_personas=30, n_nco=1, seed=0)
    >>> fig = plot_adjustment_distributions(ds.adjustment_path(log, n_perm=99, n_boot=0))
    >>> len(fig.axes)  # 2 paths x 1 NCO, 2 arms
    4
    """
    d = result.distributions
    if d.empty:
        raise InvalidArgumentError("nothing to plot: the result has no distributions.")
    model = _models(d, None if model is None else [model])[0]
    d = d[d["model"].astype(str) == model]
    available = list(dict.fromkeys(d["item"].astype(str)))
    names = list(items) if items is not None else list(dict.fromkeys(d.loc[d["role"] == "nco", "item"].astype(str)))
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise InvalidArgumentError(f"items: {unknown or names!r} are not in this result; items: {available!r}.")
    all_paths = [p for p in _paths(d) if p != "reference"] or _paths(d)
    chosen = list(paths) if paths is not None else all_paths
    bad = [p for p in chosen if p not in _paths(d)]
    if bad:
        raise InvalidArgumentError(f"paths: {bad!r} are not in this result; paths: {_paths(d)!r}.")
    arms = list(dict.fromkeys(d["arm"].astype(str)))
    iters = sorted(d.loc[d["path"].isin(chosen), "iteration"].unique())
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(iters))]
    rows = [(p, n) for p in chosen for n in names]
    fig, axes = _figure(len(rows), len(arms), width=3.6 * len(arms) + 1.2, height=2.1 * len(rows) + 0.8)
    for r, (path, name) in enumerate(rows):
        for c, arm in enumerate(arms):
            ax = axes[r, c]
            sub = d[(d["path"].astype(str) == path) & (d["item"].astype(str) == name) & (d["arm"].astype(str) == arm)]
            present = sorted(sub["iteration"].unique())
            _bars(ax, sub, present, "iteration", [colors[iters.index(k)] for k in present],
                  [f"iteration {k}" for k in present])
            ax.set_title(_text(f"{name}, {arm} ({path})"), fontsize=8)
            if c == 0:
                ax.set_ylabel("share", fontsize=8)
    _figure_legend(fig, ncols=6)
    fig.suptitle(_text(title) if title is not None else _text(f"NCO answer distributions by arm and iteration ({model})"),
                 fontsize=10)
    return fig


def plot_adjustment_outcome(result: Any, *, models: Sequence[str] | None = None, iteration: int = 0,
                            title: str | None = None) -> Any:
    """The outcome's answer distribution by arm at one iteration (default 0; paper Fig. 6), one panel per model.

    Parameters
    ----------
    result
        An :class:`~driftstats.adjust.AdjustmentResult`.
    models
        Models to draw (default: all).
    iteration
        The iteration (default 0, the base spec shared by every path); the run of the first
        non-reference path that has it is drawn.
    title
        Overrides the default title (drawn literally).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidArgumentError
        An unknown model, or no outcome distribution at that iteration.

    Examples
    --------
    >>> import driftstats as ds
    >>> log, _ = ds.simulate_adjustment_log(n_personas=30, n_nco=1, seed=0)
    >>> len(plot_adjustment_outcome(ds.adjustment_path(log, n_perm=99, n_boot=0)).axes)
    1
    """
    d = result.distributions
    outcome = getattr(result, "outcome", None)
    d = d[(d["item"] == outcome) & (d["iteration"] == iteration)] if len(d) else d
    if d.empty:
        raise InvalidArgumentError(f"no distribution of the outcome {outcome!r} at iteration {iteration}.")
    mods = _models(d, models)
    arms = list(dict.fromkeys(d["arm"].astype(str)))
    fig, axes = _figure(1, len(mods), width=4.2 * len(mods) + 1.0, height=3.4, sharey=True)
    for c, model in enumerate(mods):
        ax = axes[0, c]
        sub = d[d["model"].astype(str) == model]
        candidates = [p for p in _paths(sub) if p != "reference"] or _paths(sub)
        sub = sub[sub["path"].astype(str) == candidates[0]]
        _bars(ax, sub, arms, "arm", PALETTE, arms)
        ax.set_title(_text(f"{model} (iteration {iteration}, path {candidates[0]})"), fontsize=9)
        if c == 0:
            ax.set_ylabel("share")
        _legend(ax, fontsize=8, frameon=False)
    default = f"Outcome distribution by arm at iteration {iteration}" + (f" ({outcome})" if outcome else "")
    fig.suptitle(_text(title) if title is not None else _text(default), fontsize=10)
    return fig

