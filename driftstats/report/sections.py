"""The built-in report sections: data, drift, fidelity, effects and corrections."""

from __future__ import annotations

from typing import Any

import pandas as pd

from driftstats.report.render import Block, Section, figure, register_section, table
from driftstats.report.steps import group_label

__all__ = ["adjustment_section", "data_section", "drift_section", "effects_section", "fidelity_section"]

#: Above this many naive and corrected estimates (several runs), the corrections figure gives way to the tables.
MAX_CORRECTION_ROWS = 40
#: Above this many runs, the drift section's NCO distributions figure gives way to a pointer.
MAX_DISTRIBUTION_GROUPS = 6

_REGISTERED = False


def data_section(a: Any) -> Section:
    s = a.summary
    blocks = [
        Block("text", "What the log holds: sizes per arm, answers that failed validation (kept in the log, left out of "
                      "the analyses), and which provenance fields are missing."),
        table(pd.DataFrame([s.facts])),
        Block("heading", "Arms"),
        table(s.sizes),
        Block("heading", "Items"),
        table(s.items),
    ]
    inv = s.invalid[s.invalid["invalid"] > 0]
    blocks.append(Block("heading", "Invalid or refused answers by arm and item"))
    if len(inv):
        pivot = inv.pivot_table(index="item", columns="arm", values="invalid", aggfunc="sum", fill_value=0).reset_index()
        pivot.columns.name = None
        blocks.append(table(pivot))
    else:
        blocks.append(Block("text", "None: every answer passed validation."))
    blocks.append(Block("heading", "Provenance completeness (rows missing each field)"))
    blocks.append(table(s.provenance))
    for d in s.diagnostics:
        blocks.append(Block("skipped", d))
    blocks.append(Block("heading", "Audit steps"))
    blocks.append(table(pd.DataFrame([{"step": o.title, "status": o.status, "why": o.reason or "",
                                       "warnings": "; ".join(o.warnings)} for o in a.steps])))
    return Section("data", "The log", blocks)


def drift_section(a: Any) -> Section:
    blocks: list[Block] = [Block(
        "text",
        "Negative control outcomes (NCOs) are attributes the intervention cannot change. If their distribution differs "
        "between arms, the arms hold different implied populations (user drift). TVD = total variation distance between "
        "the arms' answer distributions; 'excess' is the TVD above its permutation-null mean (comparable across NCOs and "
        "sample sizes); the interval is the valid one (a score band over events: it covers also with rare or empty "
        "levels); p is the permutation p-value and p (FWER) the family-wise min-p adjusted one across the NCOs of a "
        "comparison. 'Equivalent' means the valid interval's upper bound (at level 1 - 2 alpha, the TOST convention) is "
        "below the margin: the intersection-union test over events shows TVD < margin.")]
    nco = a.results.get("nco")
    if nco is None:
        blocks.append(Block("skipped", a.skipped.get("nco", "no NCO results")))
        return Section("drift", "Drift: negative control outcomes", blocks)
    t = nco.tidy()
    eq = a.results.get("equivalence")
    keys = ["term", "arm", "reference", *nco.by]
    if eq is not None:
        e = eq.tidy()[[*keys, "equivalent", "upper_bound"]]
        t = t.merge(e, on=keys, how="left")
    else:
        t = t.assign(equivalent=pd.NA, upper_bound=float("nan"))
    cols = [*keys, "measure", "estimate", "excess", "conf_low", "conf_high", "p_value", "p_value_fwer", "equivalent"]
    blocks.append(table(t, cols, rename={"estimate": "TVD/KS", "conf_low": "CI low", "conf_high": "CI high",
                                         "p_value": "p", "p_value_fwer": "p (FWER)",
                                         "equivalent": f"equivalent (< {a.settings.margin})"}))
    blocks.append(Block("assumptions", list(nco.assumptions)))
    blocks.append(figure(nco.plot("forest"), "forest plot of NCO excess TVD"))
    if tuple(nco.by) == ("iteration",) and t["iteration"].nunique() > 1:  # iterations of one run (else: see below)
        blocks.append(figure(nco.plot("iterations"), "NCO TVD over adjustment iterations"))
    n_groups = len(t[list(nco.by)].drop_duplicates()) if nco.by else 1
    if n_groups <= MAX_DISTRIBUTION_GROUPS:
        blocks.append(figure(nco.plot("distributions"), "NCO distributions by arm"))
    else:
        blocks.append(Block("text", f"The NCO distributions of the {n_groups} runs are drawn per model and adjustment "
                                    "path in the Adjustment iterations section." if not a.log.iterations.empty else
                                    f"The NCO distributions of the {n_groups} runs are too many for one figure: "
                                    "draw one run with nco_test(...).plot('distributions') on its answers."))
    dist = a.results.get("nco_dist")
    if dist is not None:
        blocks.append(Block("heading", "The same tests on the model's option probabilities (distribution mode)"))
        dt = dist.tidy()
        blocks.append(table(dt, [*keys, "estimate", "excess", "p_value", "p_value_fwer"],
                            rename={"estimate": "TVD", "p_value": "p", "p_value_fwer": "p (FWER)"}))
    return Section("drift", "Drift: negative control outcomes", blocks)


def fidelity_section(a: Any) -> Section:
    blocks = [Block("text", "Specified persona attributes, re-asked after the intervention: the share of units that report "
                            "what their persona specifies, per arm, and the arm difference (paired when personas are matched). "
                            "A fidelity gap between arms means drift reached even the specified attributes.")]
    fid = a.results.get("fidelity")
    if fid is None:
        blocks.append(Block("skipped", a.skipped.get("fidelity", "no fidelity results")))
    else:
        blocks.append(table(fid.tidy(), ["term", *fid.by, "arm", "reference", "measure", "share_1", "share_0", "estimate",
                                         "conf_low", "conf_high", "p_value", "note"],
                            rename={"share_1": "share (arm)", "share_0": "share (reference)", "estimate": "difference"}))
        blocks.append(figure(fid.plot(), "fidelity by attribute and arm"))
    return Section("fidelity", "Persona fidelity", blocks)


def effects_section(a: Any) -> Section:
    outcome = a.settings.outcome
    blocks: list[Block] = [Block("text", f"The observed contrast of the outcome {outcome!r} between arms, and what it "
                                         "becomes under each correction. Each correction rests on an assumption the "
                                         "data cannot confirm; read them before the numbers.")]
    eff = a.results.get("effect")
    if eff is None:
        blocks.append(Block("skipped", a.skipped.get("effect", "no effect results")))
        return Section("effects", "Effects and corrections", blocks)
    et = eff.tidy()
    blocks.append(Block("heading", "Observed contrast (naive)"))
    blocks.append(table(et, ["term", *eff.by, "arm", "reference", "measure", "share_1", "share_0", "estimate", "conf_low",
                             "conf_high", "p_value", "note"], rename={"share_1": "mean (arm)", "share_0": "mean (reference)"}))
    blocks.append(Block("assumptions", list(eff.assumptions)))
    many = len(et[list(eff.by)].drop_duplicates()) > 1 if eff.by else False

    def where(r: Any, by: Any) -> str:
        return f" ({group_label({k: r[k] for k in by})})" if many and by else ""

    rows = [{"label": f"naive: {r['arm']}{where(r, eff.by)}", "estimate": r["estimate"], "conf_low": r["conf_low"],
             "conf_high": r["conf_high"]} for r in et[et["measure"] == "mean_diff"].to_dict("records")]
    did = a.results.get("did")
    blocks.append(Block("heading", "NCO difference-in-differences (one estimate per NCO)"))
    if did is not None:
        dt = did.tidy()
        dt = dt[dt["measure"].astype(str).str.startswith("did_") | dt["measure"].isin(["heterogeneity", "sensitivity"])]
        blocks.append(table(dt, ["nco", *did.by, "arm", "reference", "measure", "estimate", "bias", "conf_low",
                                 "conf_high", "statistic", "p_value", "note"],
                            rename={"estimate": "corrected", "bias": "NCO contrast on Y's scale"}))
        blocks.append(Block("assumptions", list(did.assumptions)))
        placebo = set(a.log.arms_of_kind("placebo"))
        for r in dt[~dt["arm"].isin(placebo) & dt["measure"].astype(str).str.startswith("did_")].to_dict("records"):
            rows.append({"label": f"DiD ({r['nco']}): {r['arm']}{where(r, did.by)}", "estimate": r["estimate"],
                         "conf_low": r["conf_low"], "conf_high": r["conf_high"]})
    else:
        blocks.append(Block("skipped", a.skipped.get("did", "not computed")))
    blocks.append(Block("heading", "Empirical calibration against placebo arms"))
    cal = a.results.get("calibration")
    if cal is not None:
        blocks.append(table(cal.tidy(), ["term", *cal.by, "arm", "reference", "calibrated", "estimate", "std_error",
                                         "conf_low", "conf_high", "p_value", "note"]))
        blocks.append(Block("assumptions", list(cal.assumptions) + list(cal.diagnostics)))
        blocks.append(figure(cal.plot(), "calibration plot"))
        for r in cal.tidy().to_dict("records"):
            if r["calibrated"]:
                rows.append({"label": f"calibrated: {r['arm']}{where(r, cal.by)}", "estimate": r["estimate"],
                             "conf_low": r["conf_low"], "conf_high": r["conf_high"]})
    else:
        blocks.append(Block("skipped", a.skipped.get("calibration", "not computed")))
    blocks.append(Block("heading", "Proximal 2SLS"))
    p2 = a.results.get("p2sls")
    if p2 is not None:
        blocks.append(table(p2.tidy(), ["term", "estimate", "std_error", "naive_std_error", "conf_low", "conf_high",
                                        "p_value"]))
        blocks.append(Block("assumptions", list(p2.assumptions) + list(p2.diagnostics)))
        r = p2.tidy().iloc[0]
        rows.append({"label": "P2SLS", "estimate": r["estimate"], "conf_low": r["conf_low"], "conf_high": r["conf_high"]})
    else:
        blocks.append(Block("skipped", a.skipped.get("p2sls", "not computed")))
    if len(rows) > MAX_CORRECTION_ROWS:
        blocks.append(Block("text", f"The {len(rows)} naive and corrected estimates (one set per run) are too many for "
                                    "one figure: read them in the tables above."))
    elif len(rows) > 1:
        from driftstats.plot import plot_corrections

        blocks.append(figure(plot_corrections(pd.DataFrame(rows)), "naive and corrected estimates"))
    return Section("effects", "Effects and corrections", blocks)


def adjustment_section(a: Any) -> Section | None:
    """The adjustment iterations of the persona-augmentation loop; absent when the log has no iterations rows."""
    if a.log.iterations.empty:
        return None
    title = "Adjustment iterations"
    blocks: list[Block] = [Block(
        "text",
        "The persona-augmentation loop: at each iteration setting-relevant attributes are added to the persona spec and "
        "set by design identically across arms, the study is re-run, and drift on the diagnostic NCOs and the observed "
        "effect are measured again, per model and adjustment path. Iteration 0 (the base spec) is one run shared by "
        "every path of a model. Drift is the excess TVD over the permutation null (bands: the valid 95% intervals); "
        "'fell' and 'moved' mean a change beyond its noise. The path 'reference' is the full-information reference "
        "spec: a reference, not ground truth. The drift and effects sections above hold one row per run (model, "
        "path and iteration, never pooled); this section follows each path across its iterations.")]
    res = a.results.get("adjustment")
    if res is None:
        blocks.append(Block("skipped", a.skipped.get("adjustment", "not computed")))
        return Section("adjustment", title, blocks)
    blocks.append(Block("heading", "Findings"))
    blocks.extend(Block("text", line) for line in res.lines)
    blocks.append(Block("assumptions", list(res.assumptions)))
    blocks.append(Block("heading", "Iterations, added attributes and stopping rules"))
    blocks.append(table(res.stops, ["model", "path", "iteration", "select", "spec", "added", "units", "rules_fired",
                                    "stopped_by", "stop_detail"]))
    spec = res.spec
    if len(spec):
        blocks.append(Block("heading", "Attributes of each spec and the candidates considered"))
        blocks.append(table(spec, ["model", "path", "iteration", "attribute", "status", "source", "score", "values_from",
                                   "item", "note"]))
    blocks.append(Block("heading", "Drift on the diagnostic NCOs"))
    blocks.append(table(res.drift, ["model", "path", "iteration", "nco", "arm", "reference", "estimate", "excess",
                                    "conf_low", "conf_high", "null_q95", "p_value", "p_value_fwer", "equivalent",
                                    "diagnostic", "note"],
                        rename={"estimate": "TVD/KS", "conf_low": "CI low", "conf_high": "CI high", "p_value": "p",
                                "p_value_fwer": "p (FWER)", "equivalent": f"equivalent (< {a.settings.margin})"}))
    from driftstats.plot import (
        plot_adjustment_distributions,
        plot_adjustment_drift,
        plot_adjustment_effect,
        plot_adjustment_outcome,
    )

    blocks.append(figure(plot_adjustment_drift(res), "excess TVD of the diagnostic NCOs over adjustment iterations"))
    blocks.append(Block("heading", "Observed effect over the iterations"))
    blocks.append(table(res.effects, ["model", "path", "iteration", "arm", "reference", "estimate", "conf_low",
                                      "conf_high", "p_value", "vs_reference", "vs_reference_low", "vs_reference_high",
                                      "note"],
                        rename={"vs_reference": "minus reference spec", "vs_reference_low": "low",
                                "vs_reference_high": "high"}))
    blocks.append(figure(plot_adjustment_effect(res), "observed effect over adjustment iterations"))
    truth = res.truth
    if len(truth):
        blocks.append(Block("heading", "NCO answers against the personas' true values"))
        blocks.append(Block("text", "TVD between each arm's NCO answers and the true values of the same personas (from "
                                    "the population table): which arm is closer to the real population. Intervals are "
                                    "approximate (basic bootstrap over personas)."))
        blocks.append(table(truth, ["model", "path", "iteration", "arm", "nco", "estimate", "conf_low_approx",
                                    "conf_high_approx", "agreement", "vs_reference", "closest"],
                            rename={"estimate": "TVD to true values"}))
    blocks.append(Block("heading", "Answer distributions"))
    d = res.distributions
    for model in dict.fromkeys(d.loc[d["role"] == "nco", "model"].astype(str)):
        blocks.append(figure(plot_adjustment_distributions(res, model=model),
                             f"NCO answer distributions by arm and iteration, model {model}"))
    if len(d) and ((d["item"] == res.outcome) & (d["iteration"] == 0)).any():
        blocks.append(figure(plot_adjustment_outcome(res), "outcome distribution by arm at iteration 0"))
    if res.diagnostics:
        blocks.append(Block("heading", "Diagnostics"))
        blocks.extend(Block("text", d) for d in res.diagnostics)
    return Section("adjustment", title, blocks)


def _register() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    for b in (data_section, drift_section, fidelity_section, effects_section, adjustment_section):
        register_section(b)
    _REGISTERED = True


_register()
