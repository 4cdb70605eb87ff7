"""The frames of :func:`~driftstats.adjust.adjustment_path` that come straight from the log.

``iterations`` and ``adjustments`` (the side tables of an adjustment study), the answer
distributions per iteration and arm, and the comparison of each arm's NCO answers with the
personas' latent true values. Every frame is keyed by ``(study, model, run_id, iteration)``
first and joined with the iterations rows afterwards, so a run shared by several paths (iteration
0) is read once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from driftstats.log.query import adjustment as query
from driftstats.log.query.adjustment import RUN_KEYS
from driftstats.log.simlog import SimLog

__all__ = ["RUN_KEYS", "distributions", "resample_runs", "spec_sets"]

#: The columns that name one run of an iteration in the answers.


def spec_sets(iterations: pd.DataFrame) -> dict[tuple[str, str, int], frozenset[str]]:
    """``(model, path, iteration) -> the attributes stated at that iteration`` (from ``iterations.spec``)."""
    out = {}
    for r in iterations.itertuples(index=False):
        try:
            spec = json.loads(str(r.spec))
        except ValueError:
            spec = []
        out[(str(r.model), str(r.path), int(r.iteration))] = frozenset(map(str, spec if isinstance(spec, list) else []))
    return out


def _runs_frame(iterations: pd.DataFrame) -> pd.DataFrame:
    runs = iterations[[*RUN_KEYS, "path"]].copy()
    for c in ("study", "model", "run_id", "path"):
        runs[c] = runs[c].astype(str)
    runs["iteration"] = runs["iteration"].astype("int64")
    return runs


def distributions(log: SimLog, iterations: pd.DataFrame, *, mode: str) -> pd.DataFrame:
    """Answer shares per (model, path, iteration, arm, item, option) of the runs named by ``iterations``.

    Categorical items only; every option of the item has a row (share 0 when nobody chose it);
    ``n`` = units with a valid answer to the item. In distribution mode a unit's option
    probabilities are summed.
    """
    cols = ["model", "path", "iteration", "arm", "item", "role", "option", "position", "share", "n"]
    runs = _runs_frame(iterations)
    if runs.empty:
        return pd.DataFrame(columns=cols)
    shares = query.answer_weights(log, mode=mode)
    units = query.units_answering(log, mode=mode)
    opts = pd.DataFrame([{"item": name, "option": o, "position": i, "role": log.item(name).role}
                         for name in log.item_names() if log.item(name).options is not None
                         for i, o in enumerate(log.item(name).options or ())])
    if opts.empty or shares.empty:
        return pd.DataFrame(columns=cols)
    shares = shares[shares["item"].isin(opts["item"])]
    total = shares.groupby([*RUN_KEYS, "arm", "item"], sort=False)["w"].transform("sum")
    shares = shares.assign(share=shares["w"] / total.where(total > 0)).rename(columns={"response": "option"})
    grid = shares[[*RUN_KEYS, "arm", "item"]].drop_duplicates().merge(opts, on="item")
    d = grid.merge(shares[[*RUN_KEYS, "arm", "item", "option", "share"]], on=[*RUN_KEYS, "arm", "item", "option"],
                   how="left")
    d["share"] = d["share"].fillna(0.0)
    d = d.merge(units, on=[*RUN_KEYS, "arm", "item"], how="left")
    for c in ("study", "model", "run_id", "arm", "item"):
        d[c] = d[c].astype(str)
    d["iteration"] = d["iteration"].astype("int64")
    d = runs.merge(d, on=list(RUN_KEYS), how="inner")
    d["n"] = d["n"].fillna(0).astype("int64")
    d["share"] = d["share"].astype("float64")
    return d[cols].sort_values(["model", "path", "iteration", "item", "arm", "position"], kind="stable") \
        .reset_index(drop=True)


def _weights(rng: np.random.Generator, m: int, n_boot: int) -> np.ndarray:
    """Bootstrap weights (n_boot, m): how often each of ``m`` clusters is drawn (m draws with replacement)."""
    idx = rng.integers(m, size=(n_boot, m)) + m * np.arange(n_boot)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * m).reshape(n_boot, m).astype(float)


def _cluster_sums(s: pd.DataFrame, column: str, m: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster: the summed per-unit share vectors of ``column`` (codes) and the number of units.

    ``s["share"]`` is each row's share of its unit's answers to the item (1 for one sampled answer),
    so a unit's shares sum to 1 and the unit count of a cluster is the sum of its shares.
    """
    c = s["_c"].to_numpy(int)
    share = s["share"].to_numpy(float)
    mat = np.zeros((m, k))
    np.add.at(mat, (c, s[column].to_numpy(int)), share)
    return mat, np.bincount(c, weights=share, minlength=m)


def resample_runs(log: SimLog, iterations: pd.DataFrame, ncos: Sequence[str], *, mode: str, reference: str,
                  clustered: bool, n_boot: int, conf_level: float, rng: np.random.Generator
                  ) -> tuple[dict[tuple[str, str, int, str], dict[str, np.ndarray]], pd.DataFrame, list[str]]:
    """Bootstrap draws of the NCO drift per run, and each arm's NCO answers against the personas' true values.

    One pass over the categorical NCOs' valid answers of the runs named by ``iterations``. Per run,
    personas are resampled (``clustered``: both arms of a persona together, as the paired tests do;
    otherwise units) with one set of weights shared by its arms and NCOs, so the draws keep the
    NCOs' correlation.

    Returns
    -------
    draws
        ``(model, run_id, iteration, arm) -> {nco: plug-in TVD draws against the reference arm}``
        (empty when ``n_boot == 0``).
    truth
        For every run, arm and NCO whose attribute the personas table holds as a latent value
        (``specified = false``, attribute = the item's name): ``estimate`` = TVD between the arm's
        answer distribution and the distribution of its units' true values; ``agreement`` = mean share
        of a unit's answer on its own true value; a basic-bootstrap interval (approximate: the
        bootstrap under-covers near TV = 0; floored at 0); ``vs_reference`` = the arm's TVD minus the
        reference arm's; ``closest`` marks the arm nearest the true values.
    notes
        Sentences for the diagnostics.
    """
    cols = ["model", "path", "iteration", "arm", "nco", "estimate", "conf_low_approx", "conf_high_approx",
            "agreement", "n", "vs_reference", "closest"]
    notes: list[str] = []
    draws: dict[tuple[str, str, int, str], dict[str, np.ndarray]] = {}
    cat = [n for n in ncos if log.item(n).options is not None]
    runs = _runs_frame(iterations)
    if not cat or runs.empty:
        return draws, pd.DataFrame(columns=cols), notes
    raw = query.answers_with_truth(log, mode=mode, items=cat)
    if raw.empty:
        return draws, pd.DataFrame(columns=cols), notes
    for c in ("study", "model", "run_id"):
        raw[c] = raw[c].astype(str)
    raw["iteration"] = raw["iteration"].astype("int64")
    raw = raw.merge(runs.drop(columns="path").drop_duplicates(), on=list(RUN_KEYS), how="inner")
    raw["share"] = raw["w"] / raw.groupby(["unit_id", "item"], sort=False)["w"].transform("sum")
    levels = {n: list(log.item(n).options or ()) for n in cat}
    raw["tcode"] = np.nan
    for item, opts in levels.items():
        sel = raw["item"] == item
        raw.loc[sel, "tcode"] = raw.loc[sel, "truth"].map({o: i for i, o in enumerate(opts)})
    unknown = raw["truth"].notna() & raw["tcode"].isna()
    if unknown.any():
        bad = sorted(set(raw.loc[unknown, "truth"].astype(str)))[:3]
        notes.append(f"truth comparison: {int(raw.loc[unknown, 'unit_id'].nunique())} unit(s) have a true NCO value that "
                     f"is not one of the item's options (e.g. {bad}); left out of it")
    level = 1.0 - conf_level
    rows: list[dict[str, Any]] = []
    for key, g in raw.groupby(list(RUN_KEYS), sort=True):
        study, model, run_id, iteration = key
        cluster_of = g["persona_id"].astype(object).where(g["persona_id"].notna() & clustered, g["unit_id"])
        clusters, c_idx = np.unique(cluster_of.astype(str).to_numpy(), return_inverse=True)
        m = clusters.size
        g = g.assign(_c=c_idx)
        w = _weights(rng, m, n_boot) if n_boot > 0 and m > 1 else None
        sums: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        for (arm, item), s in g.groupby(["arm", "item"], sort=True):
            k = len(levels[str(item)])
            sums[(str(arm), str(item))] = _cluster_sums(s, "code", m, k)
            t = s[s["tcode"].notna()]
            if t.empty:
                continue
            a_mat, a_cnt = _cluster_sums(t, "code", m, k)
            t_mat = np.zeros((m, k))
            first = t.drop_duplicates("unit_id")
            np.add.at(t_mat, (first["_c"].to_numpy(int), first["tcode"].to_numpy(int)), 1.0)
            n = float(a_cnt.sum())
            est = 0.5 * float(np.abs(a_mat.sum(0) / n - t_mat.sum(0) / n).sum())
            # agreement: each unit's answer share on its own true value
            on_truth = (t["code"].to_numpy(int) == t["tcode"].to_numpy(int)) * t["share"].to_numpy(float)
            agree = float(on_truth.sum() / n)
            low = high = math.nan
            if w is not None:
                denom = w @ a_cnt
                with np.errstate(invalid="ignore", divide="ignore"):
                    boot = 0.5 * np.abs((w @ a_mat - w @ t_mat) / denom[:, None]).sum(axis=1)
                boot = boot[np.isfinite(boot)]
                if boot.size:
                    q_lo, q_hi = np.quantile(boot, [level / 2, 1 - level / 2])
                    low, high = max(2 * est - q_hi, 0.0), max(2 * est - q_lo, 0.0)
            rows.append({"study": str(study), "model": str(model), "run_id": str(run_id), "iteration": int(iteration),
                         "arm": str(arm), "nco": str(item), "estimate": est, "conf_low_approx": low,
                         "conf_high_approx": high, "agreement": agree, "n": int(n)})
        if w is None:
            continue
        for arm in sorted({a for a, _ in sums} - {reference}):
            out: dict[str, np.ndarray] = {}
            for item in cat:
                if (arm, item) not in sums or (reference, item) not in sums:
                    continue
                (m1, c1), (m0, c0) = sums[(arm, item)], sums[(reference, item)]
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[item] = 0.5 * np.abs((w @ m1) / (w @ c1)[:, None] - (w @ m0) / (w @ c0)[:, None]).sum(axis=1)
            if out:
                draws[(str(model), str(run_id), int(iteration), arm)] = out
    if not rows:
        return draws, pd.DataFrame(columns=cols), notes
    t = pd.DataFrame(rows)
    grp = [*RUN_KEYS, "nco"]
    ref = t[t["arm"] == reference][[*grp, "estimate"]].rename(columns={"estimate": "_ref"})
    t = t.merge(ref, on=grp, how="left")
    t["vs_reference"] = np.where(t["arm"] == reference, np.nan, t["estimate"] - t["_ref"])
    t["closest"] = t["estimate"] == t.groupby(grp)["estimate"].transform("min")
    t = runs.merge(t, on=list(RUN_KEYS), how="inner")
    t["n"] = t["n"].astype("int64")
    return draws, t[cols].sort_values(["model", "path", "iteration", "nco", "arm"], kind="stable") \
        .reset_index(drop=True), notes
