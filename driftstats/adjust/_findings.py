"""What the numbers of an adjustment path say: one row per model x path x arm, and the sentences.

Every sentence is driven by the numbers of :func:`~driftstats.adjust.adjustment_path`:

* drift: the mean excess TVD over the diagnostic NCOs (those diagnostic at every iteration of the
  path), at the first and the last iteration; it *fell* when the change is below minus its noise;
* noise: ``z * sqrt(s_a^2 + s_b^2)`` with ``z`` the two-sided normal quantile at ``conf_level``
  and ``s`` the standard error of the mean TVD at an iteration: the standard deviation of its
  bootstrap draws (personas resampled, both arms together in paired designs, one resample for
  every NCO so their correlation is kept; approximate, as every bootstrap of the TVD). Without
  draws (``n_boot = 0``, numeric NCOs) ``s`` comes from the valid intervals,
  ``(conf_high - conf_low) / (2 z)`` per NCO (wider than the plug-in's spread, so conservative),
  combined as ``sqrt(sum s_j^2) / J``. The effect's standard error is its own. Runs of different iterations are treated as independent
  samples, which is conservative when they share personas (the correlation is positive);
* non-monotone: two steps between consecutive iterations that change beyond their noise in
  opposite directions (of drift, or of the effect); a rise of drift beyond its noise is reported
  as counterproductive even when the path is otherwise monotone.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["PATH_COLUMNS", "audit_line", "path_findings", "path_lines"]

PATH_COLUMNS = [
    "model", "path", "arm", "reference", "first", "last", "added", "stopped_by", "n_nco",
    "drift_first", "drift_last", "drift_change", "drift_noise", "noise_from", "drift_fell", "drifting_first", "drifting_last",
    "equivalent_last", "effect_first", "effect_first_low", "effect_first_high", "effect_last", "effect_last_low",
    "effect_last_high", "effect_change", "effect_noise", "effect_moved", "vs_reference_first", "vs_reference_last",
    "vs_reference_low", "vs_reference_high", "truth_first", "truth_first_reference", "truth_last",
    "truth_last_reference", "non_monotone", "where", "estimand",
]

VALUES_FROM = {
    "population": "the real respondents' values",
    "model_control": "values sampled from the model's own control-arm answers at iteration 0",
}


def _z(conf_level: float) -> float:
    return float(stats.norm.ppf(1 - (1 - conf_level) / 2))


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or x is pd.NA:
        return "NA"
    return f"{float(x):.3g}"


def _text(x: Any) -> str | None:
    """A text cell, or None when it is missing (None, NaN, NA)."""
    return None if x is None or (not isinstance(x, str) and pd.isna(x)) else str(x)


def _drift_series(d: pd.DataFrame, ncos: list[str], iters: list[int], z: float, level: float,
                  draws: Any) -> tuple[dict[int, dict[str, float]], str]:
    out = {}
    boot = {k: draws(k) for k in iters}
    use_boot = bool(ncos) and all(b is not None and set(ncos) <= set(b) for b in boot.values())
    for k in iters:
        rows = d[(d["iteration"] == k) & d["nco"].isin(ncos)]
        if rows.empty:
            continue
        if use_boot:
            se_k = float(np.nanstd(np.mean([boot[k][n] for n in ncos], axis=0), ddof=1))
        else:
            se = (rows["conf_high"] - rows["conf_low"]).to_numpy(float) / (2 * z)
            se = se[np.isfinite(se)]
            se_k = float(np.sqrt(np.sum(se**2)) / se.size) if se.size else math.nan
        out[k] = {"mean": float(rows["excess"].mean()), "se": se_k, "drifting": int((rows["p_value_fwer"] < level).sum()),
                  "equivalent": int(rows["equivalent"].fillna(False).astype(bool).sum()), "n": len(rows)}
    return out, "bootstrap" if use_boot else "valid interval"


def _steps(series: dict[int, dict[str, float]], key: str, z: float) -> list[tuple[int, int, float, float]]:
    """(from, to, change, noise) for consecutive iterations."""
    ks = sorted(series)
    out = []
    for a, b in itertools.pairwise(ks):
        change = series[b][key] - series[a][key]
        noise = z * math.hypot(series[a]["se"], series[b]["se"])
        out.append((a, b, change, noise))
    return out


def _added(stops: pd.DataFrame, spec: pd.DataFrame, model: str, path: str, last: int) -> list[tuple[str, str | None]]:
    """(attribute, values_from) of every attribute added along the path up to ``last``."""
    s = spec[(spec["model"] == model) & (spec["path"] == path) & (spec["iteration"] <= last)
             & (spec["status"] == "added")] if len(spec) else spec
    if len(s):
        s = s.sort_values(["iteration", "attribute"])
        return [(str(r.attribute), None if pd.isna(r.values_from) else str(r.values_from))
                for r in s.itertuples(index=False)]
    st = stops[(stops["model"] == model) & (stops["path"] == path) & (stops["iteration"] <= last)]
    out: list[tuple[str, str | None]] = []
    for a in st.sort_values("iteration")["added"]:
        out += [(str(x), None) for x in json.loads(str(a))]
    return out


def _estimand(added: list[tuple[str, str | None]], last: int) -> str:
    if not added:
        return ("the implied populations of the base persona spec (nothing was added): the arms' populations may "
                "differ")
    groups: dict[str, list[str]] = {}
    for attr, src in added:
        groups.setdefault(VALUES_FROM.get(src or "", "their design values" if src is None else f"values from {src}"),
                          []).append(attr)
    parts = [f"{', '.join(attrs)} ({how})" for how, attrs in groups.items()]
    return (f"the population in which {'; '.join(parts)} follow their design distribution, set identically across "
            f"arms (iteration {last}); not the implied population of iteration 0")


def path_findings(drift: pd.DataFrame, effects: pd.DataFrame, stops: pd.DataFrame, spec: pd.DataFrame,
                  truth: pd.DataFrame, boot: Mapping[tuple[str, str, int, str], Mapping[str, np.ndarray]], *,
                  level: float, conf_level: float) -> pd.DataFrame:
    """One row per model x path (the reference path excluded) x non-reference arm (see module docstring)."""
    z = _z(conf_level)
    rows = []
    for (model, path), st in stops.groupby(["model", "path"], sort=False):
        if path == "reference":
            continue
        iters = sorted(int(k) for k in st["iteration"])
        first, last = iters[0], iters[-1]
        last_row = st[st["iteration"] == last].iloc[0]
        d_mp = drift[(drift["model"] == model) & (drift["path"] == path)]
        e_mp = effects[(effects["model"] == model) & (effects["path"] == path)]
        arms = list(dict.fromkeys([*d_mp["arm"].astype(str), *e_mp["arm"].astype(str)]))
        added = _added(stops, spec, str(model), str(path), last)
        for arm in arms:
            d = d_mp[(d_mp["arm"] == arm) & d_mp["diagnostic"].astype(bool) & d_mp["note"].isna()
                     & d_mp["excess"].notna()]
            # the NCOs diagnostic and testable at the first and the last iteration; an iteration in between
            # that lacks one of them takes no part in the step-by-step comparison
            present = {k: set(d.loc[d["iteration"] == k, "nco"]) for k in iters}
            common = sorted(present[first] & present[last])
            kept = [k for k in iters if common and set(common) <= present[k]]
            ds, noise_from = _drift_series(d, common, kept, z, level,
                                           lambda k, m=model, p=path, a=arm: boot.get((str(m), str(p), k, a)))
            e = e_mp[(e_mp["arm"] == arm) & e_mp["estimate"].notna()]
            es = {int(r.iteration): {"mean": float(r.estimate), "se": float(r.std_error), "low": float(r.conf_low),
                                     "high": float(r.conf_high), "vs": float(r.vs_reference),
                                     "vs_low": float(r.vs_reference_low), "vs_high": float(r.vs_reference_high)}
                  for r in e.itertuples(index=False)}
            ref = (d_mp.loc[d_mp["arm"] == arm, "reference"].iloc[0] if (d_mp["arm"] == arm).any()
                   else e_mp.loc[e_mp["arm"] == arm, "reference"].iloc[0])
            row: dict[str, Any] = {"model": model, "path": path, "arm": arm, "reference": ref, "first": first,
                                   "last": last, "added": json.dumps([a for a, _ in added]),
                                   "stopped_by": last_row["stopped_by"] if pd.notna(last_row["stopped_by"]) else None,
                                   "n_nco": len(common), "noise_from": noise_from, "estimand": _estimand(added, last)}
            if first in ds and last in ds:
                a, b = ds[first], ds[last]
                change = b["mean"] - a["mean"]
                noise = z * math.hypot(a["se"], b["se"])
                row.update(drift_first=a["mean"], drift_last=b["mean"], drift_change=change, drift_noise=noise,
                           drift_fell=bool(change < -noise) if last != first else False,
                           drifting_first=a["drifting"], drifting_last=b["drifting"], equivalent_last=b["equivalent"])
            if first in es and last in es:
                a, b = es[first], es[last]
                change = b["mean"] - a["mean"]
                noise = z * math.hypot(a["se"], b["se"])
                row.update(effect_first=a["mean"], effect_first_low=a["low"], effect_first_high=a["high"],
                           effect_last=b["mean"], effect_last_low=b["low"], effect_last_high=b["high"],
                           effect_change=change, effect_noise=noise,
                           effect_moved=bool(abs(change) > noise) if math.isfinite(noise) and last != first else False,
                           vs_reference_first=a["vs"], vs_reference_last=b["vs"], vs_reference_low=b["vs_low"],
                           vs_reference_high=b["vs_high"])
            tr = truth[(truth["model"] == model) & (truth["path"] == path)] if len(truth) else truth
            if len(tr):
                for k, label in ((first, "first"), (last, "last")):
                    at = tr[tr["iteration"] == k]
                    if at.empty:
                        continue
                    row[f"truth_{label}"] = float(at.loc[at["arm"] == arm, "estimate"].mean())
                    row[f"truth_{label}_reference"] = float(at.loc[at["arm"] == ref, "estimate"].mean())
            where = []
            d_steps = _steps(ds, "mean", z) if len(ds) > 2 else []
            e_steps = _steps(es, "mean", z) if len(es) > 2 else []
            dirs_d = [(b, "fell" if c < 0 else "rose", c) for a, b, c, n in d_steps if abs(c) > n]
            dirs_e = [(b, "down" if c < 0 else "up", c) for a, b, c, n in e_steps if abs(c) > n]
            non_mono = len({x[1] for x in dirs_d}) > 1 or len({x[1] for x in dirs_e}) > 1
            if dirs_d and (len({x[1] for x in dirs_d}) > 1 or any(x[1] == "rose" for x in dirs_d)):
                where.append("drift " + ", ".join(f"{how} at iteration {k}" for k, how, _ in dirs_d))
            if len({x[1] for x in dirs_e}) > 1:
                where.append("the effect moved " + ", ".join(f"{how} at iteration {k}" for k, how, _ in dirs_e))
            row["non_monotone"] = non_mono
            row["where"] = "; ".join(where) if where else None
            rows.append(row)
    out = pd.DataFrame(rows, columns=PATH_COLUMNS)
    for c in ("drift_fell", "effect_moved", "non_monotone"):
        out[c] = out[c].astype("boolean")
    for c in ("first", "last", "n_nco", "drifting_first", "drifting_last", "equivalent_last"):
        out[c] = pd.array(out[c], dtype="Int64")
    return out


def path_lines(paths: pd.DataFrame, *, level: float, margin: float, n_arms: int, n_models: int,
               reference_paths: bool) -> list[str]:
    """The sentences of the summary and of the report section, one per model x path x arm."""
    out = []
    for r in paths.to_dict("records"):
        r["where"], r["stopped_by"] = _text(r["where"]), _text(r["stopped_by"])
        who = (f"Model {r['model']}, path {r['path']}" if n_models > 1 else f"Path {r['path']}") + \
              (f", {r['arm']} vs {r['reference']}" if n_arms > 1 else "")
        added = json.loads(r["added"])
        head = (f"{who} (iterations {r['first']}-{r['last']}"
                + (f", added {', '.join(added)}" if added else ", nothing added")
                + (f", stopped by {r['stopped_by']}" if r["stopped_by"] else "") + "): ")
        parts = []
        if r["first"] == r["last"]:
            head = f"{who} (iteration {r['first']} only, nothing added yet): "
            if pd.notna(r["drift_first"]):
                parts.append(f"{r['drifting_first']} of {r['n_nco']} diagnostic NCOs drift (family-wise p < {level:g}; "
                             f"mean excess TVD {_fmt(r['drift_first'])}).")
            if pd.notna(r["effect_first"]):
                parts.append(f"The effect is {_fmt(r['effect_first'])} [{_fmt(r['effect_first_low'])}, "
                             f"{_fmt(r['effect_first_high'])}].")
            if reference_paths and pd.notna(r["vs_reference_first"]):
                parts.append(f"Against the full-information reference spec (a reference, not ground truth) it differs "
                             f"by {_fmt(r['vs_reference_first'])} [{_fmt(r['vs_reference_low'])}, "
                             f"{_fmt(r['vs_reference_high'])}].")
            out.append(head + " ".join(parts or ["nothing to compare yet."]))
            continue
        if pd.isna(r["drift_first"]) or pd.isna(r["drift_last"]):
            parts.append(f"drift cannot be compared across iterations (no NCO is diagnostic and testable at both "
                         f"iteration {r['first']} and iteration {r['last']}).")
        else:
            span = (f"from a mean excess TVD of {_fmt(r['drift_first'])} at iteration {r['first']} to "
                    f"{_fmt(r['drift_last'])} at iteration {r['last']} over {r['n_nco']} diagnostic NCOs (change "
                    f"{_fmt(r['drift_change'])}, noise ±{_fmt(r['drift_noise'])})")
            still = (f"at iteration {r['last']} no diagnostic NCO drifts (family-wise p >= {level:g})"
                     if r["drifting_last"] == 0 else
                     f"{r['drifting_last']} of {r['n_nco']} NCOs still drift at iteration {r['last']} (family-wise "
                     f"p < {level:g})")
            eq = (f", and all are within {margin:g} TVD (equivalence shown)"
                  if r["drifting_last"] == 0 and r["equivalent_last"] == r["n_nco"] and r["n_nco"] else "")
            if r["drift_fell"]:
                parts.append(f"drift fell beyond its noise, {span}; {still}{eq}.")
            elif r["drifting_first"] == 0 and r["drifting_last"] == 0:
                parts.append(f"no drift to remove: no diagnostic NCO drifts at iteration {r['first']} or {r['last']}; "
                             f"the drift went {span}{eq}.")
            else:
                parts.append(f"drift did not fall beyond its noise, {span}; {still}.")
        if pd.notna(r["effect_first"]) and pd.notna(r["effect_last"]):
            moved = ("moved beyond its noise" if r["effect_moved"] else "did not move beyond its noise")
            parts.append(f"The effect {moved}: {_fmt(r['effect_first'])} [{_fmt(r['effect_first_low'])}, "
                         f"{_fmt(r['effect_first_high'])}] at iteration {r['first']}, {_fmt(r['effect_last'])} "
                         f"[{_fmt(r['effect_last_low'])}, {_fmt(r['effect_last_high'])}] at iteration {r['last']} "
                         f"(change {_fmt(r['effect_change'])}, noise ±{_fmt(r['effect_noise'])}).")
        else:
            parts.append("The effect cannot be compared across iterations (no estimate at the first or last one).")
        if r["last"] - r["first"] >= 2:
            if r["non_monotone"]:
                parts.append(f"Non-monotone: {r['where']}; bias need not shrink as attributes are added.")
            elif r["where"]:
                parts.append(f"Counterproductive step: {r['where']}.")
            else:
                parts.append("No reversal beyond noise: no two steps change beyond their noise in opposite "
                             "directions (which does not show the path is monotone).")
        elif r["where"]:
            parts.append(f"Counterproductive step: {r['where']}.")
        if reference_paths and pd.notna(r["vs_reference_last"]):
            parts.append(f"Against the full-information reference spec (a reference, not ground truth) the effect "
                         f"differs by {_fmt(r['vs_reference_first'])} at iteration {r['first']} and by "
                         f"{_fmt(r['vs_reference_last'])} [{_fmt(r['vs_reference_low'])}, "
                         f"{_fmt(r['vs_reference_high'])}] at iteration {r['last']}.")
        if pd.notna(r["truth_first"]) and pd.notna(r["truth_first_reference"]):
            def cmp(a: float, b: float, *, bare: bool = False) -> str:
                word = "farther" if a > b else ("closer" if a < b else "as far")
                return word if bare else f"{word} {'to' if a < b else 'from'}"
            text = (f"Against the personas' true values, the NCO answers of {r['arm']} are "
                    f"{cmp(r['truth_first'], r['truth_first_reference'])} them than those of {r['reference']} at "
                    f"iteration {r['first']} (mean TVD {_fmt(r['truth_first'])} vs {_fmt(r['truth_first_reference'])})")
            if pd.notna(r["truth_last"]) and r["last"] != r["first"]:
                text += (f" and {cmp(r['truth_last'], r['truth_last_reference'], bare=True)} at iteration {r['last']} "
                         f"({_fmt(r['truth_last'])} vs {_fmt(r['truth_last_reference'])})")
            parts.append(text + ".")
        parts.append(f"The effect at iteration {r['last']} refers to {r['estimand']}.")
        out.append(head + " ".join(parts))
    return out


def audit_line(paths: pd.DataFrame) -> str:
    """One line for the audit's top verdict: on which paths drift fell, did not, or had nothing to remove."""
    if paths.empty:
        return "Adjustment iterations: no adjustment path could be assessed (see the Adjustment iterations section)."
    many_models = paths["model"].nunique() > 1
    many_arms = paths["arm"].nunique() > 1
    groups: dict[str, dict[str, list[str]]] = {"fell": {}, "not": {}, "none": {}, "unknown": {}}
    for r in paths.to_dict("records"):
        if pd.isna(r["drift_first"]) or pd.isna(r["drift_last"]):
            kind = "unknown"
        elif r["drift_fell"] is True:
            kind = "fell"
        elif r["drifting_first"] == 0 and r["drifting_last"] == 0:
            kind = "none"
        else:
            kind = "not"
        label = str(r["path"]) + (f" [{r['arm']} vs {r['reference']}]" if many_arms else "")
        models = groups[kind].setdefault(label, [])
        if str(r["model"]) not in models:
            models.append(str(r["model"]))

    def names(d: dict[str, list[str]]) -> str:
        return ", ".join(f"{p} ({', '.join(m)})" if many_models else p for p, m in d.items())

    parts = []
    if groups["fell"]:
        parts.append(f"drift fell beyond its noise on {names(groups['fell'])}")
    if groups["not"]:
        parts.append(f"{'it' if parts else 'drift'} did not fall beyond its noise on {names(groups['not'])}")
    if groups["none"]:
        parts.append(f"no drift to remove on {names(groups['none'])}")
    if groups["unknown"]:
        parts.append(f"drift cannot be compared across iterations on {names(groups['unknown'])}")
    nm = paths[paths["non_monotone"].fillna(False).astype(bool)]
    text = "Adjustment iterations: " + "; ".join(parts)
    if len(nm):
        text += "; non-monotone: " + ", ".join(
            dict.fromkeys(f"{r.path} ({r.model})" if many_models else str(r.path) for r in nm.itertuples(index=False)))
    return text + ". Each adjusted effect refers to the population in which the added attributes follow their design " \
                  "distribution (see the Adjustment iterations section)."
