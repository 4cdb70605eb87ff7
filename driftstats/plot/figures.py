"""The figure functions (see the package docstring).

Every text that reaches matplotlib from a log or a result (arm, item, term and option names,
labels and titles built from them, and titles passed by the caller) goes through :func:`_text`,
which escapes ``$`` so that matplotlib never parses it as mathtext: a name is drawn as written.
Rows that carry no test (a ``note`` such as ``"not testable: ..."``, or a non-finite estimate) are
never drawn as findings: the forest plot keeps their row, labelled ``[not testable]``, without a
point or bar; the other figures leave them out and say how many in a note on the axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftstats._args import check_choice
from driftstats._optional import import_optional
from driftstats.errors import InvalidArgumentError

__all__ = [
    "plot_calibration",
    "plot_corrections",
    "plot_distributions",
    "plot_effect",
    "plot_fidelity",
    "plot_forest",
    "plot_iterations",
    "plot_nco",
]

PALETTE = ["#1f4e79", "#c0504d", "#4f8a3c", "#8064a2", "#d98c1f", "#2c9aa0", "#7f7f7f", "#b5485d"]
MUTED = "#888888"

ForestValue = Literal["excess", "estimate"]
NcoKind = Literal["forest", "iterations", "distributions"]


def _text(value: Any) -> str:
    r"""``value`` as literal matplotlib text: every ``$`` escaped, so no mathtext is parsed.

    A leading ``_`` is kept visible (matplotlib leaves such labels out of legends) by a
    zero-width space in front.

    >>> print(_text(r"$\frac$ and 50%"))
    \$\frac\$ and 50%
    >>> _text("_x") == "\u200b_x"
    True
    """
    s = str(value).replace("$", r"\$")
    # matplotlib leaves labels that start with "_" out of legends; a zero-width space keeps them
    return "\u200b" + s if s.startswith("_") else s


def _untestable(frame: pd.DataFrame, value: str = "estimate") -> np.ndarray:
    """Rows that carry no test: a non-empty ``note`` or a non-finite ``value``."""
    bad = ~np.isfinite(pd.to_numeric(frame[value], errors="coerce").to_numpy(float)) if value in frame else \
        np.ones(len(frame), dtype=bool)
    if "note" in frame:
        note = frame["note"]
        bad |= (note.notna() & (note.astype(str).str.strip() != "")).to_numpy(bool)
    return bad


def _note_left_out(ax: Any, n: int) -> None:
    if n:
        ax.text(0.01, 0.01, f"{n} row(s) not testable, not drawn", transform=ax.transAxes, fontsize=7,
                color=MUTED, ha="left", va="bottom", gid="not-testable-note")


def _legend(ax: Any, **kw: Any) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(**kw)


def _figure(nrows: int = 1, ncols: int = 1, *, width: float = 7.0, height: float = 4.0, **kw: Any) -> tuple[Any, Any]:
    mfig = import_optional("matplotlib.figure", extra="plot", purpose="driftstats.plot")
    fig = mfig.Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _one_axes(ax: Any, **size: float) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    fig, axes = _figure(**size)
    return fig, axes[0, 0]


def _intervals(ax: Any, x: np.ndarray, low: Any, high: Any, *, color: Any, vertical: bool = True,
               lw: float = 1.2) -> None:
    """Interval bars with caps, drawn apart from the points (an interval need not contain its point)."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    ok = np.isfinite(low) & np.isfinite(high) & np.isfinite(x)
    if not ok.any():
        return
    if vertical:
        ax.vlines(x[ok], low[ok], high[ok], color=color, lw=lw)
        ax.scatter(np.r_[x[ok], x[ok]], np.r_[low[ok], high[ok]], marker="_", color=color, s=30, lw=lw)
    else:
        ax.hlines(x[ok], low[ok], high[ok], color=color, lw=lw)


def _other_keys(result: Any, frame: pd.DataFrame) -> list[str]:
    """The result's grouping columns other than ``iteration`` (model, run_id, ...) present in ``frame``."""
    return [c for c in getattr(result, "by", ()) if c != "iteration" and c in frame.columns]


def _key_text(key: Any, names: Sequence[str]) -> str:
    """``(a, b)`` for ``names`` -> ``"a · b"`` (a scalar key for one name)."""
    values = key if isinstance(key, tuple) else (key,)
    return " · ".join(str(v) for v in values[-len(names):]) if names else ""


def _row_label(row: pd.Series, by: Sequence[str]) -> str:
    groups = [f"{c} {row[c]}" for c in by if c in row.index and pd.notna(row[c])]
    inner = f"{row['arm']} vs {row['reference']}" + "".join(f", {g}" for g in groups)
    return f"{row['term']}  ({inner})"


def plot_forest(result: Any, *, value: ForestValue = "excess", ax: Any = None, title: str | None = None) -> Any:
    """Forest plot of drift per NCO and arm pair.

    Parameters
    ----------
    result
        An :class:`~driftstats.nco.NcoTestResult` (its ``tidy()`` TVD rows are drawn).
    value
        ``"excess"``: excess TVD ``max(TVD - null mean, 0)`` with the bar
        ``[max(conf_low - null mean, 0), max(conf_high - null mean, 0)]`` (the valid TV interval
        shifted by the permutation null mean and floored at 0, as the excess itself is);
        ``"estimate"``: plug-in TVD with its valid interval (floored at 0) and the null's 95th
        percentile as a tick.
    ax
        Axes to draw into (default: a new figure).
    title
        Overrides the default title (drawn literally).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidArgumentError
        ``value`` is not one of the choices, or the result has no TVD rows.

    Notes
    -----
    Family-wise significant rows (``p_value_fwer < 0.05``) are filled. Rows that are not
    testable (a ``note``, or no value to draw) keep their place on the axis, labelled
    ``[not testable]``, with no point or bar, and never count as significant.

    Examples
    --------
    >>> import driftstats as ds
    >>> res = ds.nco_test(ds.simulate_nco_log(n_per_arm=40, n_nco=2, seed=0), n_perm=99, n_boot=0)
    >>> fig = plot_forest(res)
    >>> ax = fig.axes[0]
    >>> bool(min(seg[:, 0].min() for c in ax.collections if c.get_gid() == "intervals" for seg in c.get_segments()) >= 0)
    True
    """
    check_choice("value", value, ForestValue)
    t = result.tidy()
    t = t[t["measure"] == "tvd"] if "measure" in t else t
    if t.empty:
        raise InvalidArgumentError("nothing to plot: no TVD rows in this result.")
    t = t.reset_index(drop=True)
    excess = value == "excess"
    col = "excess" if excess else "estimate"
    untestable = _untestable(t) | _untestable(t, col)
    by = [c for c in getattr(result, "by", ()) if c in t]
    labels = [_text(_row_label(r, by)) + ("  [not testable]" if bad else "")
              for (_, r), bad in zip(t.iterrows(), untestable, strict=True)]
    # long row labels (runs of several models and paths) widen the figure instead of squeezing the axes
    width = max(7.0, 4.5 + 0.07 * max(map(len, labels)))
    fig, ax = _one_axes(ax, width=width, height=0.45 * len(t) + 1.4)
    y = np.arange(len(t), dtype=float)[::-1]
    est = pd.to_numeric(t[col], errors="coerce").to_numpy(float)
    low = pd.to_numeric(t["conf_low"], errors="coerce").to_numpy(float)
    high = pd.to_numeric(t["conf_high"], errors="coerce").to_numpy(float)
    if excess:
        null_mean = pd.to_numeric(t["null_mean"], errors="coerce").to_numpy(float)
        low, high = low - null_mean, high - null_mean
    low, high = np.maximum(low, 0.0), np.maximum(high, 0.0)  # excess and TVD are >= 0: so are their bars
    fwer = pd.to_numeric(t["p_value_fwer"], errors="coerce").to_numpy(float) if "p_value_fwer" in t else \
        np.full(len(t), np.nan)
    sig = (fwer < 0.05) & ~untestable
    drawn = ~untestable & np.isfinite(low) & np.isfinite(high)
    if drawn.any():
        ax.hlines(y[drawn], low[drawn], high[drawn], color="#555555", lw=1.5, gid="intervals")
    if sig.any():
        ax.scatter(est[sig], y[sig], color=PALETTE[1], zorder=3, label="family-wise p < 0.05")
    if (~sig & ~untestable).any():
        ax.scatter(est[~sig & ~untestable], y[~sig & ~untestable], facecolor="white", edgecolor=PALETTE[0],
                   zorder=3, label="not significant")
    if not excess and "null_q95" in t:
        q95 = pd.to_numeric(t["null_q95"], errors="coerce").to_numpy(float)
        keep = ~untestable & np.isfinite(q95)
        if keep.any():
            ax.scatter(q95[keep], y[keep], marker="|", color="#999999", s=120, label="null 95th pct")
    ax.axvline(0, color="#999999", lw=0.8)
    ax.set_yticks(y, labels)
    for tick, bad in zip(ax.get_yticklabels(), untestable, strict=True):
        if bad:
            tick.set_color(MUTED)
    ax.set_ylim(-0.6, len(t) - 0.4)
    if not drawn.any():
        ax.set_xlim(0, 1)
    ax.set_xlabel("excess TVD = max(TVD \u2212 null mean, 0)\nbars: max(valid TV interval \u2212 null mean, 0)"
                  if excess else "TVD (plug-in); bars: valid TV interval")
    default = "Excess TVD over the permutation null" if excess else "TVD with its valid interval"
    ax.set_title(_text(title) if title is not None else default, fontsize=10)
    _legend(ax, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def plot_iterations(result: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """NCO TVD over adjustment iterations (paper Fig. 3).

    Parameters
    ----------
    result
        An :class:`~driftstats.nco.NcoTestResult` grouped by ``iteration``.
    ax, title
        Axes to draw into; a title that overrides the default (drawn literally).

    Returns
    -------
    matplotlib.figure.Figure
        Point and valid interval per NCO and iteration; the permutation-null band (0 to the
        null's 95th percentile) in grey.

    Raises
    ------
    InvalidArgumentError
        The result has no ``iteration`` column.

    Notes
    -----
    Rows that are not testable are left out; a note on the axes counts them.

    Examples
    --------
    >>> import driftstats as ds
    >>> res = ds.nco_test(ds.simulate_nco_log(n_per_arm=30, n_nco=1, iterations=2, seed=0), n_perm=199, n_boot=0)
    >>> plot_iterations(res).axes[0].get_xlabel()
    'adjustment iteration'
    """
    t = result.tidy()
    if "iteration" not in t:
        raise InvalidArgumentError("the result has no 'iteration' column (run nco_test with by=('iteration',)).")
    t = t[t["measure"] == "tvd"] if "measure" in t else t
    fig, ax = _one_axes(ax, width=7.0, height=4.0)
    bad = _untestable(t)
    shown = t[~bad]
    extra = _other_keys(result, shown)  # one series per NCO and run (model, path, ...): runs are never joined
    series = list(shown.groupby(["term", *extra], sort=True, dropna=False))
    for i, (key, g) in enumerate(series):
        g = g.sort_values("iteration")
        xi = g["iteration"].to_numpy(float)
        x = xi + (i - (len(series) - 1) / 2) * 0.06
        c = PALETTE[i % len(PALETTE)]
        term = key[0] if isinstance(key, tuple) else key
        label = f"{term} ({_key_text(key, extra)})" if extra else str(term)
        ax.errorbar(x, g["estimate"].to_numpy(float), fmt="o-", color=c, lw=1.2, ms=4, label=_text(label))
        _intervals(ax, x, g["conf_low"], g["conf_high"], color=c)
        if "null_q95" in g:
            ax.fill_between(xi, 0, pd.to_numeric(g["null_q95"], errors="coerce").to_numpy(float), color="#bbbbbb",
                            alpha=0.15, lw=0)
    _note_left_out(ax, int(bad.sum()))
    ax.set_xlabel("adjustment iteration")
    ax.set_ylabel("TVD between arms")
    ticks = sorted(pd.to_numeric(t["iteration"], errors="coerce").dropna().unique())
    if ticks:
        ax.set_xticks(ticks)
    ax.set_title(_text(title) if title is not None
                 else "NCO TVD over adjustment iterations (grey: permutation null up to its 95th pct)")
    _legend(ax, fontsize=8, frameon=False, ncols=2)
    return fig


def plot_distributions(result: Any, *, items: Sequence[str] | None = None, title: str | None = None) -> Any:
    """NCO answer distributions: one panel per NCO (rows) and iteration (columns), bars by arm (Figs. 5-6).

    Parameters
    ----------
    result
        An :class:`~driftstats.nco.NcoTestResult` (its ``distributions`` table is drawn).
    items
        NCOs to draw (default: all, sorted).
    title
        Overrides the default title (drawn literally).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidArgumentError
        The result has no distributions, or ``items`` names an NCO it lacks.

    Examples
    --------
    >>> import driftstats as ds
    >>> res = ds.nco_test(ds.simulate_nco_log(n_per_arm=30, n_nco=2, seed=0), n_perm=99, n_boot=0)
    >>> len(plot_distributions(res).axes)
    2
    """
    d = result.distributions
    if d.empty:
        raise InvalidArgumentError("no distributions in this result.")
    available = list(dict.fromkeys(d["item"]))
    names = list(items) if items else sorted(available, key=str)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InvalidArgumentError(f"items: {unknown!r} are not in this result; available: {available!r}.")
    keys = [c for c in getattr(result, "by", ()) if c in d.columns] or (["iteration"] if "iteration" in d else [])
    groups = (list(d[keys].drop_duplicates().sort_values(keys).itertuples(index=False, name=None)) if keys
              else [()])  # one column of panels per group (run): groups are never pooled
    fig, axes = _figure(len(names), len(groups), width=3.6 * len(groups) + 1, height=2.1 * len(names) + 0.6)
    arms = list(dict.fromkeys(d["arm"]))
    for r, name in enumerate(names):
        for c, gk in enumerate(groups):
            ax = axes[r, c]
            in_group = np.ones(len(d), dtype=bool)
            for col, v in zip(keys, gk, strict=True):
                in_group &= (d[col] == v).to_numpy()
            sub = d[(d["item"] == name).to_numpy() & in_group]
            sub = sub.drop_duplicates(subset=["arm", "position"])
            levels = sub.sort_values("position")[["position", "level"]].drop_duplicates("position")
            width = 0.8 / max(len(arms), 1)
            for a_i, arm in enumerate(arms):
                s = sub[sub["arm"] == arm].sort_values("position")
                ax.bar(s["position"].to_numpy(float) + (a_i - (len(arms) - 1) / 2) * width,
                       pd.to_numeric(s["share"], errors="coerce").to_numpy(float), width=width,
                       color=PALETTE[a_i % len(PALETTE)], label=_text(arm))
            ax.set_xticks(levels["position"].to_numpy(float), [_text(str(lv)[:14]) for lv in levels["level"]],
                          rotation=30, ha="right", fontsize=7)
            where = ", ".join(f"{col} {v}" for col, v in zip(keys, gk, strict=True))
            panel = f"{name}" + (f" ({where})" if where and len(groups) > 1 else "")
            ax.set_title(_text(panel), fontsize=9)
            ax.set_ylim(0, 1)
    _legend(axes[0, 0], fontsize=7, frameon=False)
    fig.suptitle(_text(title) if title is not None else "NCO answer distributions by arm")
    return fig


def plot_nco(result: Any, *, kind: NcoKind = "forest", **kwargs: Any) -> Any:
    """Dispatch for ``NcoTestResult.plot``: ``forest``, ``iterations`` or ``distributions``.

    Parameters
    ----------
    result
        An :class:`~driftstats.nco.NcoTestResult`.
    kind
        Which figure: :func:`plot_forest`, :func:`plot_iterations` or :func:`plot_distributions`.
    **kwargs
        Passed to that function.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidArgumentError
        ``kind`` is not one of the choices.
    """
    check_choice("kind", kind, NcoKind)
    if kind == "forest":
        return plot_forest(result, **kwargs)
    if kind == "iterations":
        return plot_iterations(result, **kwargs)
    return plot_distributions(result, **kwargs)


def plot_effect(result: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """Observed effect (difference in means) over adjustment iterations, per arm (paper Fig. 4).

    Parameters
    ----------
    result
        An :class:`~driftstats.effects.EffectResult` (its ``mean_diff`` rows are drawn).
    ax, title
        Axes to draw into; a title that overrides the default (drawn literally).

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    Rows that are not testable are left out; a note on the axes counts them.

    Examples
    --------
    >>> import driftstats as ds
    >>> eff = ds.effect(ds.simulate_study_log(n_per_arm=30, iterations=2, seed=0), tvd=False)
    >>> plot_effect(eff).axes[0].get_ylabel()
    'difference in mean outcome code'
    """
    t = result.tidy()
    t = t[t["measure"] == "mean_diff"] if "measure" in t else t
    fig, ax = _one_axes(ax, width=6.5, height=3.8)
    x_col = "iteration" if "iteration" in t else None
    bad = _untestable(t)
    shown = t[~bad]
    extra = _other_keys(result, shown)  # one series per arm and run (model, path, ...)
    series = list(shown.groupby(["arm", *extra], sort=True, dropna=False))
    for i, (key, g) in enumerate(series):
        if x_col:
            g = g.sort_values(x_col)
        x = g[x_col].to_numpy(float) if x_col else np.arange(len(g), dtype=float)
        x = x + (i - (len(series) - 1) / 2) * 0.05
        c = PALETTE[i % len(PALETTE)]
        arm = key[0] if isinstance(key, tuple) else key
        label = f"{arm} vs {g['reference'].iloc[0]}" + (f" ({_key_text(key, extra)})" if extra else "")
        ax.errorbar(x, g["estimate"].to_numpy(float), fmt="o-", color=c, label=_text(label))
        _intervals(ax, x, g["conf_low"], g["conf_high"], color=c)
    _note_left_out(ax, int(bad.sum()))
    ax.axhline(0, color="#999999", lw=0.8)
    ax.set_xlabel("adjustment iteration" if x_col else "")
    ax.set_ylabel("difference in mean outcome code")
    if x_col:
        ticks = sorted(pd.to_numeric(t[x_col], errors="coerce").dropna().unique())
        if ticks:
            ax.set_xticks(ticks)
    ax.set_title(_text(title) if title is not None else "Observed effect over adjustment iterations")
    _legend(ax, fontsize=8, frameon=False)
    return fig


def plot_fidelity(result: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """Share of specified attributes reported correctly, by attribute and arm (paper Fig. 7).

    Parameters
    ----------
    result
        A :class:`~driftstats.persona.FidelityResult` (its ``shares()`` are drawn).
    ax, title
        Axes to draw into; a title that overrides the default (drawn literally).

    Returns
    -------
    matplotlib.figure.Figure
        One bar per attribute and arm; an attribute with no share in an arm has no bar.

    Examples
    --------
    >>> import driftstats as ds
    >>> fid = ds.fidelity(ds.simulate_fidelity_log(n_per_arm=30, seed=0))
    >>> plot_fidelity(fid).axes[0].get_ylabel()
    'share reported as specified'
    """
    s = result.shares()
    keys = [c for c in getattr(result, "by", ()) if c in s.columns and s[c].nunique(dropna=False) > 1]
    # one bar group per attribute and run (model, path, iteration, ...): runs are never pooled
    cats = list(dict.fromkeys(tuple(r) for r in s[["term", *keys]].itertuples(index=False, name=None)))
    arms = list(dict.fromkeys(s["arm"]))
    width = 0.8 / max(len(arms), 1)
    index = pd.MultiIndex.from_tuples(cats, names=["term", *keys])
    labels = [_text(f"{c[0]} ({', '.join(str(v) for v in c[1:])})" if keys else str(c[0])) for c in cats]
    if keys:  # many runs: one row per attribute and run, labels on the left
        fig, ax = _one_axes(ax, width=max(7.0, 4.5 + 0.07 * max(map(len, labels))), height=0.3 * len(cats) + 1.4)
    else:
        fig, ax = _one_axes(ax, width=6.5, height=3.6)
    pos = np.arange(len(cats), dtype=float)[::-1] if keys else np.arange(len(cats), dtype=float)
    for a_i, arm in enumerate(arms):
        sub = s[s["arm"] == arm].drop_duplicates(["term", *keys]).set_index(["term", *keys])["share"].reindex(index)
        at = pos + (a_i - (len(arms) - 1) / 2) * width * (-1 if keys else 1)
        share = pd.to_numeric(sub, errors="coerce").to_numpy(float)
        if keys:
            ax.barh(at, share, height=width, color=PALETTE[a_i % len(PALETTE)], label=_text(arm))
        else:
            ax.bar(at, share, width=width, color=PALETTE[a_i % len(PALETTE)], label=_text(arm))
    if keys:
        ax.set_yticks(pos, labels, fontsize=7)
        ax.set_xlim(0, 1.05)
        ax.set_xlabel("share reported as specified")
        ax.set_title(_text(title) if title is not None else "Persona fidelity by attribute, run and arm")
        _legend(ax, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        return fig
    ax.set_xticks(range(len(cats)), labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share reported as specified")
    ax.set_title(_text(title) if title is not None else "Persona fidelity by attribute and arm")
    _legend(ax, fontsize=8, frameon=False)
    return fig


def plot_calibration(result: Any, *, title: str | None = None) -> Any:
    """Empirical calibration against placebo arms.

    Parameters
    ----------
    result
        A :class:`~driftstats.calibrate.CalibrationResult`.
    title
        Overrides the default title (drawn literally).

    Returns
    -------
    matplotlib.figure.Figure
        Left: negative-control (placebo) estimates against their standard errors with the
        empirical null (mean and 95% band); right: uncalibrated vs calibrated intervals of each
        effect.

    Notes
    -----
    Controls without a finite estimate and standard error are left out of the left panel;
    effect rows that are not testable are left out of the right one; notes count them.

    Examples
    --------
    >>> import driftstats as ds
    >>> cal = ds.calibrate_effect(ds.simulate_placebo_log(n_placebo=6, n_per_arm=30, seed=0))
    >>> len(plot_calibration(cal).axes)
    2
    """
    fig, axes = _figure(1, 2, width=9.0, height=3.6)
    ax, ax2 = axes[0]
    c = result.controls
    null = result.null
    c_est = pd.to_numeric(c["estimate"], errors="coerce").to_numpy(float)
    c_se = pd.to_numeric(c["std_error"], errors="coerce").to_numpy(float)
    ok = np.isfinite(c_est) & np.isfinite(c_se)
    top = float(c_se[ok].max()) * 1.2 if ok.any() else 0.0
    se_grid = np.linspace(0, max(top, 1e-3), 50)
    if null is not None and np.isfinite(null.mean) and np.isfinite(null.sd):
        half = 1.96 * np.sqrt(null.sd**2 + se_grid**2)
        ax.fill_betweenx(se_grid, null.mean - half, null.mean + half, color="#dddddd", label="empirical null (95%)")
        ax.axvline(null.mean, color="#777777", lw=1)
    ax.axvline(0, color="#999999", lw=0.8, ls=":")
    _note_left_out(ax, int((~ok).sum()))
    ax.scatter(c_est[ok], c_se[ok], color=PALETTE[0], zorder=3, label="placebo contrasts")
    ax.invert_yaxis()
    ax.set_xlabel("estimate")
    ax.set_ylabel("standard error")
    _legend(ax, fontsize=8, frameon=False)
    t = result.tidy()
    bad = _untestable(t)
    t = t[~bad].reset_index(drop=True)
    labels = [_text(f"{arm} ({'calibrated' if cal else 'raw'})") for arm, cal in zip(t["arm"], t["calibrated"],
                                                                                    strict=True)]
    y = np.arange(len(t), dtype=float)[::-1]
    colors = [PALETTE[1] if cal else PALETTE[0] for cal in t["calibrated"]]
    low = pd.to_numeric(t["conf_low"], errors="coerce").to_numpy(float)
    high = pd.to_numeric(t["conf_high"], errors="coerce").to_numpy(float)
    fin = np.isfinite(low) & np.isfinite(high)
    if fin.any():
        ax2.hlines(y[fin], low[fin], high[fin], colors=[col for col, f in zip(colors, fin, strict=True) if f], lw=2)
    if len(t):
        ax2.scatter(t["estimate"].to_numpy(float), y, color=colors, zorder=3)
    _note_left_out(ax2, int(bad.sum()))
    ax2.axvline(0, color="#999999", lw=0.8)
    ax2.set_yticks(y, labels, fontsize=8)
    ax2.set_xlabel("effect estimate with interval")
    fig.suptitle(_text(title) if title is not None else "Empirical calibration against placebo arms")
    return fig


def plot_corrections(rows: pd.DataFrame, *, ax: Any = None, title: str | None = None) -> Any:
    """Estimates with intervals side by side: the naive contrast next to DiD-NCO, P2SLS and calibrated ones.

    Parameters
    ----------
    rows
        Columns ``label, estimate, conf_low, conf_high`` (labels starting with ``"naive"`` are
        drawn in red); an optional ``note`` marks rows that carry no estimate.
    ax, title
        Axes to draw into; a title that overrides the default (drawn literally).

    Returns
    -------
    matplotlib.figure.Figure
        Rows without an estimate keep their place, labelled ``[not testable]``, with no point.

    Raises
    ------
    InvalidArgumentError
        ``rows`` lacks one of the columns.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"label": ["naive", "DiD-NCO"], "estimate": [0.4, 0.1],
    ...                      "conf_low": [0.2, -0.1], "conf_high": [0.6, 0.3]})
    >>> [t.get_text() for t in plot_corrections(rows).axes[0].get_yticklabels()]
    ['naive', 'DiD-NCO']
    """
    need = {"label", "estimate", "conf_low", "conf_high"}
    if not need <= set(rows.columns):
        raise InvalidArgumentError(f"rows needs columns {sorted(need)}; got {sorted(rows.columns)}.")
    rows = rows.reset_index(drop=True)
    fig, ax = _one_axes(ax, width=7.0, height=0.42 * len(rows) + 1.3)
    y = np.arange(len(rows), dtype=float)[::-1]
    bad = _untestable(rows)
    label = rows["label"].astype(str)
    naive = label.str.startswith("naive").to_numpy()
    colors = np.where(naive, PALETTE[1], PALETTE[0])
    est = pd.to_numeric(rows["estimate"], errors="coerce").to_numpy(float)
    low = pd.to_numeric(rows["conf_low"], errors="coerce").to_numpy(float)
    high = pd.to_numeric(rows["conf_high"], errors="coerce").to_numpy(float)
    fin = ~bad & np.isfinite(low) & np.isfinite(high)
    if fin.any():
        ax.hlines(y[fin], low[fin], high[fin], colors=colors[fin], lw=2)
    if (~bad).any():
        ax.scatter(est[~bad], y[~bad], c=colors[~bad], zorder=3)
    ax.axvline(0, color="#999999", lw=0.8)
    ax.set_yticks(y, [_text(lab) + ("  [not testable]" if b else "") for lab, b in zip(label, bad, strict=True)],
                  fontsize=8)
    ax.set_xlabel("effect on the outcome (difference in mean code)")
    ax.set_title(_text(title) if title is not None else "Naive contrast and corrected estimates")
    return fig


def figure_png(fig: Any, *, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes (deterministic: no timestamps in the metadata).

    Parameters
    ----------
    fig
        A matplotlib figure.
    dpi
        Resolution.

    Returns
    -------
    bytes
        The PNG file.

    Examples
    --------
    >>> import pandas as pd
    >>> fig = plot_corrections(pd.DataFrame({"label": ["a$b$c"], "estimate": [1.0], "conf_low": [0.0],
    ...                                      "conf_high": [2.0]}))
    >>> figure_png(fig)[:4]
    b'\\x89PNG'
    """
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
