"""The built-in report sections: data, drift, fidelity, effects and corrections."""

from __future__ import annotations

from typing import Any

import pandas as pd

from driftstats.report.render import Block, Section, figure, register_section, table

__all__ = ["data_section", "drift_section", "effects_section", "fidelity_section"]

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
    if "iteration" in t and t["iteration"].nunique() > 1:
        blocks.append(figure(nco.plot("iterations"), "NCO TVD over adjustment iterations"))
    blocks.append(figure(nco.plot("distributions"), "NCO distributions by arm"))
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
    rows = [{"label": f"naive: {r.arm}", "estimate": r.estimate, "conf_low": r.conf_low, "conf_high": r.conf_high}
            for r in et[et["measure"] == "mean_diff"].itertuples()]
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
        for r in dt[~dt["arm"].isin(placebo) & dt["measure"].astype(str).str.startswith("did_")].itertuples():
            rows.append({"label": f"DiD ({r.nco}): {r.arm}", "estimate": r.estimate, "conf_low": r.conf_low,
                         "conf_high": r.conf_high})
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
                it = f" (iteration {r['iteration']})" if "iteration" in cal.by else ""
                rows.append({"label": f"calibrated: {r['arm']}{it}", "estimate": r["estimate"],
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
    if len(rows) > 1:
        from driftstats.plot import plot_corrections

        blocks.append(figure(plot_corrections(pd.DataFrame(rows)), "naive and corrected estimates"))
    return Section("effects", "Effects and corrections", blocks)


def _register() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    for b in (data_section, drift_section, fidelity_section, effects_section):
        register_section(b)
    _REGISTERED = True


_register()
