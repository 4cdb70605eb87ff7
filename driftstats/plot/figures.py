"""The figure functions (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

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


def _label(row: pd.Series) -> str:
    return f"{row['arm']} vs {row['reference']}" if "arm" in row and pd.notna(row.get("arm")) else ""


def plot_forest(result: Any, *, value: str = "excess", ax: Any = None, title: str | None = None) -> Any:
    """Forest plot of drift per NCO: ``value="excess"`` (excess TVD over the permutation null mean,
    with the projection interval shifted by the null mean) or ``"estimate"`` (plug-in TVD with its
    valid interval and the null's 95th percentile as a tick). Family-wise significant rows are filled.
    """
    t = result.tidy()
    t = t[t["measure"] == "tvd"] if "measure" in t else t
    if t.empty:
        raise InvalidArgumentError("nothing to plot: no TVD rows in this result.")
    fig, ax = _one_axes(ax, width=7.0, height=0.45 * len(t) + 1.4)
    labels = [f"{r.term}  ({r.arm} vs {r.reference}" + (f", it {r.iteration})" if "iteration" in t else ")")
              for r in t.itertuples()]
    y = np.arange(len(t))[::-1]
    shift = t["null_mean"].to_numpy() if value == "excess" else 0.0
    est = (t["excess"] if value == "excess" else t["estimate"]).to_numpy(float)
    low = np.maximum(t["conf_low"].to_numpy(float) - shift, 0 if value == "estimate" else -1)
    high = t["conf_high"].to_numpy(float) - shift
    sig = (t["p_value_fwer"] < 0.05).to_numpy() if "p_value_fwer" in t else np.zeros(len(t), bool)
    ax.hlines(y, low, high, color="#555555", lw=1.5)
    ax.scatter(est[sig], y[sig], color=PALETTE[1], zorder=3, label="family-wise p < 0.05")
    ax.scatter(est[~sig], y[~sig], facecolor="white", edgecolor=PALETTE[0], zorder=3, label="not significant")
    if value == "estimate":
        ax.scatter(t["null_q95"].to_numpy(float), y, marker="|", color="#999999", s=120, label="null 95th pct")
    ax.axvline(0, color="#999999", lw=0.8)
    ax.set_yticks(y, labels)
    ax.set_xlabel("excess TVD over the permutation null mean" if value == "excess" else "TVD (plug-in)")
    ax.set_title(title or ("Excess TVD (bars: valid TV interval - null mean)" if value == "excess"
                           else "TVD with its valid interval"), fontsize=10)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return fig


def plot_iterations(result: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """NCO TVD over adjustment iterations: point + valid interval per NCO, and the permutation-null
    band (0 to the null's 95th percentile) in grey (paper Fig. 3)."""
    t = result.tidy()
    if "iteration" not in t:
        raise InvalidArgumentError("the result has no 'iteration' column (run nco_test with by=('iteration',)).")
    t = t[t["measure"] == "tvd"]
    fig, ax = _one_axes(ax, width=7.0, height=4.0)
    for i, (term, g) in enumerate(t.groupby("term", sort=True)):
        g = g.sort_values("iteration")
        x = g["iteration"].to_numpy(float) + (i - (t["term"].nunique() - 1) / 2) * 0.06
        c = PALETTE[i % len(PALETTE)]
        ax.errorbar(x, g["estimate"], yerr=[g["estimate"] - g["conf_low"], g["conf_high"] - g["estimate"]],
                    fmt="o-", color=c, capsize=3, lw=1.2, ms=4, label=str(term))
        ax.fill_between(g["iteration"].to_numpy(float), 0, g["null_q95"].to_numpy(float), color="#bbbbbb", alpha=0.15,
                        lw=0)
    ax.set_xlabel("adjustment iteration")
    ax.set_ylabel("TVD between arms")
    ax.set_xticks(sorted(t["iteration"].unique()))
    ax.set_title(title or "NCO TVD over adjustment iterations (grey: permutation null up to its 95th pct)")
    ax.legend(fontsize=8, frameon=False, ncols=2)
    return fig


def plot_distributions(result: Any, *, items: Sequence[str] | None = None, title: str | None = None) -> Any:
    """NCO distributions: one panel per NCO (rows) and iteration (columns), bars by arm (Figs. 5-6)."""
    d = result.distributions
    if d.empty:
        raise InvalidArgumentError("no distributions in this result.")
    names = list(items) if items else sorted(d["item"].unique())
    iters = sorted(d["iteration"].unique()) if "iteration" in d else [None]
    fig, axes = _figure(len(names), len(iters), width=3.6 * len(iters) + 1, height=2.1 * len(names) + 0.6)
    arms = list(dict.fromkeys(d["arm"]))
    for r, name in enumerate(names):
        for c, it in enumerate(iters):
            ax = axes[r, c]
            sub = d[(d["item"] == name) & ((d["iteration"] == it) if it is not None else True)]
            sub = sub.drop_duplicates(subset=["arm", "position"])
            levels = sub.sort_values("position")["level"].drop_duplicates().tolist()
            width = 0.8 / max(len(arms), 1)
            for a_i, arm in enumerate(arms):
                s = sub[sub["arm"] == arm].sort_values("position")
                ax.bar(s["position"] + (a_i - (len(arms) - 1) / 2) * width, s["share"], width=width,
                       color=PALETTE[a_i % len(PALETTE)], label=str(arm))
            ax.set_xticks(range(len(levels)), [str(lv)[:14] for lv in levels], rotation=30, ha="right", fontsize=7)
            ax.set_title(f"{name}" + (f" (iteration {it})" if it is not None and len(iters) > 1 else ""), fontsize=9)
            ax.set_ylim(0, 1)
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.suptitle(title or "NCO answer distributions by arm")
    return fig


def plot_nco(result: Any, *, kind: str = "forest", **kwargs: Any) -> Any:
    """Dispatch for ``NcoTestResult.plot``: ``forest``, ``iterations`` or ``distributions``."""
    if kind == "forest":
        return plot_forest(result, **kwargs)
    if kind == "iterations":
        return plot_iterations(result, **kwargs)
    if kind == "distributions":
        return plot_distributions(result, **kwargs)
    raise InvalidArgumentError(f"kind must be 'forest', 'iterations' or 'distributions'; got {kind!r}.")


def plot_effect(result: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """Observed effect (difference in means) over adjustment iterations, per arm (paper Fig. 4)."""
    t = result.tidy()
    t = t[t["measure"] == "mean_diff"]
    fig, ax = _one_axes(ax, width=6.5, height=3.8)
    x_col = "iteration" if "iteration" in t else None
    for i, (arm, g) in enumerate(t.groupby("arm", sort=True)):
        x = g[x_col].to_numpy(float) if x_col else np.arange(len(g), dtype=float)
        x = x + (i - (t["arm"].nunique() - 1) / 2) * 0.05
        ax.errorbar(x, g["estimate"], yerr=[g["estimate"] - g["conf_low"], g["conf_high"] - g["estimate"]],
                    fmt="o-", capsize=3, color=PALETTE[i % len(PALETTE)], label=f"{arm} vs {g['reference'].iloc[0]}")
    ax.axhline(0, color="#999999", lw=0.8)
    ax.set_xlabel("adjustment iteration" if x_col else "")
    ax.set_ylabel("difference in mean outcome code")
    if x_col:
        ax.set_xticks(sorted(t[x_col].unique()))
    ax.set_title(title or "Observed effect over adjustment iterations")
    ax.legend(fontsize=8, frameon=False)
    return fig


def plot_fidelity(result: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """Share of specified attributes reported correctly, by attribute and arm (paper Fig. 7)."""
    s = result.shares()
    fig, ax = _one_axes(ax, width=6.5, height=3.6)
    terms = list(dict.fromkeys(s["term"]))
    arms = list(dict.fromkeys(s["arm"]))
    width = 0.8 / max(len(arms), 1)
    for a_i, arm in enumerate(arms):
        sub = s[s["arm"] == arm].drop_duplicates("term").set_index("term").reindex(terms)
        ax.bar(np.arange(len(terms)) + (a_i - (len(arms) - 1) / 2) * width, sub["share"], width=width,
               color=PALETTE[a_i % len(PALETTE)], label=str(arm))
    ax.set_xticks(range(len(terms)), terms)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share reported as specified")
    ax.set_title(title or "Persona fidelity by attribute and arm")
    ax.legend(fontsize=8, frameon=False)
    return fig


def plot_calibration(result: Any, *, title: str | None = None) -> Any:
    """Left: negative-control (placebo) estimates against their standard errors with the empirical
    null (mean and 95% band); right: uncalibrated vs calibrated intervals of each effect."""
    fig, axes = _figure(1, 2, width=9.0, height=3.6)
    ax, ax2 = axes[0]
    c = result.controls
    null = result.null
    se_grid = np.linspace(0, max(float(c["std_error"].max()) * 1.2, 1e-3), 50)
    half = 1.96 * np.sqrt(null.sd**2 + se_grid**2)
    ax.fill_betweenx(se_grid, null.mean - half, null.mean + half, color="#dddddd", label="empirical null (95%)")
    ax.axvline(null.mean, color="#777777", lw=1)
    ax.scatter(c["estimate"], c["std_error"], color=PALETTE[0], zorder=3, label="placebo contrasts")
    ax.axvline(0, color="#999999", lw=0.8, ls=":")
    ax.invert_yaxis()
    ax.set_xlabel("estimate")
    ax.set_ylabel("standard error")
    ax.legend(fontsize=8, frameon=False)
    t = result.tidy()
    labels = [f"{r.arm} ({'calibrated' if r.calibrated else 'raw'})" for r in t.itertuples()]
    y = np.arange(len(t))[::-1]
    colors = [PALETTE[1] if cal else PALETTE[0] for cal in t["calibrated"]]
    ax2.hlines(y, t["conf_low"], t["conf_high"], colors=colors, lw=2)
    ax2.scatter(t["estimate"], y, color=colors, zorder=3)
    ax2.axvline(0, color="#999999", lw=0.8)
    ax2.set_yticks(y, labels, fontsize=8)
    ax2.set_xlabel("effect estimate with interval")
    fig.suptitle(title or "Empirical calibration against placebo arms")
    return fig


def plot_corrections(rows: pd.DataFrame, *, ax: Any = None, title: str | None = None) -> Any:
    """Estimates with intervals side by side (columns ``label, estimate, conf_low, conf_high``):
    the naive contrast next to DiD-NCO, P2SLS and calibrated estimates."""
    need = {"label", "estimate", "conf_low", "conf_high"}
    if not need <= set(rows.columns):
        raise InvalidArgumentError(f"rows needs columns {sorted(need)}; got {sorted(rows.columns)}.")
    fig, ax = _one_axes(ax, width=7.0, height=0.42 * len(rows) + 1.3)
    y = np.arange(len(rows))[::-1]
    naive = rows["label"].str.startswith("naive").to_numpy()
    colors = np.where(naive, PALETTE[1], PALETTE[0])
    ax.hlines(y, rows["conf_low"], rows["conf_high"], colors=colors, lw=2)
    ax.scatter(rows["estimate"], y, c=colors, zorder=3)
    ax.axvline(0, color="#999999", lw=0.8)
    ax.set_yticks(y, rows["label"], fontsize=8)
    ax.set_xlabel("effect on the outcome (difference in mean code)")
    ax.set_title(title or "Naive contrast and corrected estimates")
    return fig


def figure_png(fig: Any, *, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes (deterministic: no timestamps in the metadata)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
