"""The built-in report sections: data, drift, dialogue, fidelity, effects and corrections, adjustment."""

from __future__ import annotations

from typing import Any

import pandas as pd

from driftstats.log.schema import DIALOGUE_END_ITEM, DIALOGUE_TURNS_ITEM
from driftstats.report.render import Block, Section, figure, register_section, table
from driftstats.report.steps import group_label

__all__ = ["adjustment_section", "data_section", "dialogue_section", "drift_section", "effects_section",
           "fidelity_section"]

#: Above this many naive and corrected estimates (several runs), the corrections figure gives way to the tables.
MAX_CORRECTION_ROWS = 40
#: Above this many runs, the drift section's NCO distributions figure gives way to a pointer.
MAX_DISTRIBUTION_GROUPS = 6
#: The dialogue section's transcript viewer shows this many units per arm (the first by unit_id).
TRANSCRIPTS_PER_ARM = 3

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
    # the dialogue step applies to dialogue logs only: other logs' reports do not list it
    steps = [o for o in a.steps if o.name != "dialogue" or a.log.has_transcripts]
    blocks.append(table(pd.DataFrame([{"step": o.title, "status": o.status, "why": o.reason or "",
                                       "warnings": "; ".join(o.warnings)} for o in steps])))
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


def _after_dialogue_text(a: Any, items: tuple[str, ...]) -> str | None:
    """Whether the fidelity probes were asked after the dialogue, as the log records it; None without transcripts."""
    from driftstats.log.query.dialogue import answers_after_dialogue

    if not a.log.has_transcripts or not items:
        return None
    with_hash, total = answers_after_dialogue(a.log, items)
    if total and with_hash == total:
        return (f"The intervention is a dialogue: the fidelity probes were asked after it ended (all {total} fidelity "
                "answers of units with a transcript carry the transcript's hash, answers.dialogue_sha256), so the shares "
                "below measure what the persona still reports after the whole conversation.")
    if with_hash:
        return (f"The intervention is a dialogue: {with_hash} of the {total} fidelity answers of units with a transcript "
                "carry the transcript's hash (answers.dialogue_sha256: asked after the dialogue); the log does not "
                "record when the others were asked.")
    return ("The intervention is a dialogue; the fidelity answers carry no transcript hash (answers.dialogue_sha256), "
            "so the log does not record whether the probes were asked after it.")


def fidelity_section(a: Any) -> Section:
    blocks = [Block("text", "Specified persona attributes, re-asked after the intervention: the share of units that report "
                            "what their persona specifies, per arm, and the arm difference (paired when personas are matched). "
                            "A fidelity gap between arms means drift reached even the specified attributes.")]
    after = _after_dialogue_text(a, a.log.item_names("fidelity"))
    if after:
        blocks.append(Block("text", after))
    fid = a.results.get("fidelity")
    if fid is None:
        blocks.append(Block("skipped", a.skipped.get("fidelity", "no fidelity results")))
    else:
        blocks.append(table(fid.tidy(), ["term", *fid.by, "arm", "reference", "measure", "share_1", "share_0", "estimate",
                                         "conf_low", "conf_high", "p_value", "note"],
                            rename={"share_1": "share (arm)", "share_0": "share (reference)", "estimate": "difference"}))
        blocks.append(figure(fid.plot(), "fidelity by attribute and arm"))
    return Section("fidelity", "Persona fidelity", blocks)


def _plain_text(value: Any) -> str | None:
    """A cell of the log as text (None for a missing value); escaped by the template, never marked safe."""
    return None if value is None or value is pd.NA or (isinstance(value, float) and value != value) else str(value)


def _transcript_blocks(a: Any, by: tuple[str, ...]) -> list[Block]:
    """The viewer: the first units of each arm, one collapsible ``transcript`` block per unit."""
    from driftstats.log.query.dialogue import transcript_sample, unit_ends

    sample = transcript_sample(a.log, TRANSCRIPTS_PER_ARM)
    ends = unit_ends(a.log)
    blocks: list[Block] = []
    by = by if by and len(sample[list(by)].drop_duplicates()) > 1 else ()  # name the run only when there are several
    for arm, units in sample.groupby("arm", sort=False):
        blocks.append(Block("heading", f"Transcripts: arm {arm}"))
        for unit, msgs in units.groupby("unit_id", sort=True):
            first = msgs.iloc[0]
            where = f", {group_label({k: first[k] for k in by})}" if by else ""
            end = _plain_text(ends.get(unit))
            n_turns = int(msgs["turn"].nunique())
            summary = (f"unit {unit}{where}: {len(msgs)} message{'s' if len(msgs) != 1 else ''}, {n_turns} "
                       f"turn{'s' if n_turns != 1 else ''}" + (f", ended: {end}" if end else ""))
            messages = []
            for m in msgs.to_dict("records"):
                notes = [f"turn {m['turn']}"]
                if _plain_text(m["finish_reason"]):
                    notes.append(f"finish: {m['finish_reason']}")
                if not bool(m["valid"]):
                    notes.append(f"invalid: {_plain_text(m['error']) or 'no reason given'}")
                text = _plain_text(m["text"])
                messages.append({"role": str(m["role"]), "note": " · ".join(notes),
                                 "text": "(no text)" if text is None else text,
                                 "tool_calls": _plain_text(m["tool_calls"])})
            blocks.append(Block("transcript", {"summary": summary, "messages": messages}))
    return blocks


def dialogue_section(a: Any) -> Section | None:
    """How the units' intervention dialogues ran, by arm, with the drift test on them and a transcript viewer;
    absent when the log has no transcripts."""
    from driftstats._groups import resolve_by
    from driftstats.log.query.dialogue import ends_by_arm, turns_by_arm

    log = a.log
    if not log.has_transcripts:
        return None
    title = "The dialogues"
    res = a.results.get("dialogue")
    by = tuple(res.by) if res is not None else resolve_by("auto", log=log, columns=log.columns())
    blocks: list[Block] = [Block(
        "text",
        "The intervention of this log is a dialogue between the simulated user and an assistant, and the answers "
        "(the NCOs, the outcome, the fidelity probes) were asked after it. How long the dialogues ran and why they "
        "ended are outcomes of the arms too: a simulated user that stops early in one arm, or an assistant that ends "
        "the conversation, changes what every later answer was conditioned on. So the number of turns "
        f"({DIALOGUE_TURNS_ITEM!r}) and the end reason ({DIALOGUE_END_ITEM!r}) are tested across arms with the NCO "
        "drift test (KS for the turns, TVD for the end reasons; permutation p-values). Unlike an NCO, a dialogue item "
        "may legitimately respond to the intervention: a difference says that the arms' later answers were asked "
        "after different conversations (an effect of the intervention, drift of the simulated users, or both), not "
        "which of the two it is.")]
    blocks.append(Block("heading", "Turns per unit, by arm"))
    blocks.append(table(turns_by_arm(log, by), rename={
        "units": "units", "dialogues": "units with a transcript", "invalid_messages": "invalid messages",
        "turns_mean": "turns (mean)", "turns_min": "turns (min)", "turns_max": "turns (max)"}))
    blocks.append(Block("heading", "How the dialogues ended, by arm (units)"))
    if DIALOGUE_END_ITEM in log.item_names():
        ends = ends_by_arm(log, by)
        ends["end"] = ends["end"].astype(object).where(ends["end"].notna(), "(no valid answer)")
        order = list(dict.fromkeys(ends["end"]))
        wide = ends.pivot_table(index=[*by, "arm"], columns="end", values="units", aggfunc="sum", fill_value=0,
                                sort=False).reset_index()
        wide.columns.name = None
        blocks.append(table(wide, [*by, "arm", *order]))
    else:
        blocks.append(Block("skipped", f"the log has no item {DIALOGUE_END_ITEM!r} (why each dialogue ended)"))
    blocks.append(Block("heading", "Drift in how the dialogues ran"))
    if res is None:
        blocks.append(Block("skipped", a.skipped.get("dialogue", "not computed")))
    else:
        t = res.tidy()
        blocks.append(table(t, ["term", "arm", "reference", *res.by, "measure", "estimate", "excess", "conf_low",
                                "conf_high", "p_value", "p_value_fwer"],
                            rename={"estimate": "TVD/KS", "conf_low": "CI low", "conf_high": "CI high", "p_value": "p",
                                    "p_value_fwer": "p (FWER)"}))
        blocks.append(Block("assumptions", [*res.assumptions, f"{DIALOGUE_TURNS_ITEM!r} and {DIALOGUE_END_ITEM!r} are "
                                            "outcomes of the dialogue, not NCOs: the exclusion assumption (N1) does not "
                                            "hold for them, so a difference is not by itself evidence of user drift."]))
    after = _after_dialogue_text(a, log.item_names("fidelity"))
    if after:
        blocks.append(Block("heading", "Fidelity after the dialogue"))
        blocks.append(Block("text", after + " See the persona fidelity section."))
    blocks.append(Block("text", f"Below: the transcripts of the first {TRANSCRIPTS_PER_ARM} units of each arm (by "
                                "unit_id) that have one; open a unit to read its dialogue. Texts are shown exactly as "
                                "logged, as text."))
    blocks.extend(_transcript_blocks(a, by))
    return Section("dialogue", title, blocks)


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
    for b in (data_section, drift_section, dialogue_section, fidelity_section, effects_section, adjustment_section):
        register_section(b)
    _REGISTERED = True


_register()
