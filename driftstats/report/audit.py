"""The audit: every analysis driftstats can run on a log, and a verdict driven by the numbers."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftstats.errors import DriftstatsError, WeakProxyWarning
from driftstats.log.simlog import SimLog, Source, as_log
from driftstats.log.summary import LogSummary

__all__ = ["Audit", "audit"]

Progress = Callable[[str], None]


@dataclass
class Audit:
    """The results of :func:`audit`; render with :meth:`to_html` / :meth:`write_html`."""

    log: SimLog
    summary: LogSummary
    settings: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    verdict: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.results[name]

    def to_html(self) -> str:
        from driftstats.report.render import render_html

        return render_html(self)

    def write_html(self, path: str | Path) -> Path:
        """Write the self-contained HTML report (atomically)."""
        import os

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_html(), encoding="utf-8")
        os.replace(tmp, path)
        return path

    def __repr__(self) -> str:
        lines = [f"driftstats audit of {self.summary.source}", *[f"  {v}" for v in self.verdict]]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        items = "".join(f"<li>{html.escape(v)}</li>" for v in self.verdict)
        return (f"<div><b>driftstats audit</b> of {html.escape(self.summary.source)}<ul>{items}</ul>"
                "<p>Full report: <code>.write_html(path)</code>; results: <code>.results</code></p></div>")


def _paired(log: SimLog) -> bool:
    return bool(log.con.execute(
        "SELECT count(*) FROM (SELECT persona_id FROM answers WHERE persona_id IS NOT NULL "
        "GROUP BY persona_id HAVING count(DISTINCT arm) > 1)").fetchall()[0][0])


def audit(
    log: SimLog | Source,
    *,
    outcome: str | None = None,
    margin: float = 0.05,
    mode: Literal["sample", "dist"] = "sample",
    strata: str | Literal["auto"] | None = "auto",
    n_perm: int = 2000,
    n_boot: int = 500,
    conf_level: float = 0.95,
    seed: int = 0,
    progress: Progress | None = None,
) -> Audit:
    """Audit a simulation log: data quality, NCO drift, equivalence, fidelity, effects and corrections.

    Parameters
    ----------
    outcome
        The primary outcome (default: the log's single primary item).
    margin
        Equivalence margin on the TVD scale ("no drift beyond margin").
    strata
        Permutation strata for drift tests; ``"auto"`` uses ``persona_id`` in paired designs.
    progress
        Called with a short message before each step (the CLI shows it).

    Returns
    -------
    Audit
    """
    from driftstats.calibrate import calibrate_effect
    from driftstats.correct import did_nco, p2sls
    from driftstats.effects import effect
    from driftstats.nco import equivalence_test, nco_power, nco_test
    from driftstats.persona import fidelity

    say = progress or (lambda _msg: None)
    say("reading and validating the log")
    sl = as_log(log)
    paired = _paired(sl)
    strata_used = ("persona_id" if paired else None) if strata == "auto" else strata
    a = Audit(log=sl, summary=sl.summary(), settings={
        "margin": margin, "mode": mode, "strata": strata_used, "n_perm": n_perm, "n_boot": n_boot,
        "conf_level": conf_level, "seed": seed, "paired": paired})
    ncos = sl.item_names("nco")
    prim = sl.item_names("primary")
    outcome = outcome or (prim[0] if len(prim) == 1 else None)
    a.settings["outcome"] = outcome

    def step(name: str, message: str, fn: Callable[[], Any]) -> None:
        say(message)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", WeakProxyWarning)
                a.results[name] = fn()
        except (DriftstatsError, ValueError, np.linalg.LinAlgError) as exc:
            a.skipped[name] = f"{type(exc).__name__}: {exc}"

    if ncos:
        step("nco", f"NCO drift tests ({len(ncos)} NCOs, {n_perm} permutations)",
             lambda: nco_test(sl, strata=strata_used, mode=mode, n_perm=n_perm, n_boot=n_boot,
                              conf_level=conf_level, seed=seed))
        step("equivalence", f"equivalence tests at margin {margin}",
             lambda: equivalence_test(sl, margin=margin, strata=strata_used, mode=mode, method="iut",
                                      conf_level=conf_level))
        if "dist" in sl.modes and mode == "sample":
            step("nco_dist", "NCO drift tests on the option probabilities (distribution mode)",
                 lambda: nco_test(sl, strata=strata_used, mode="dist", n_perm=n_perm, n_boot=0,
                                  conf_level=conf_level, seed=seed))
    else:
        a.skipped["nco"] = "the log declares no NCO items (role 'nco'): drift cannot be diagnosed"
    if sl.item_names("fidelity"):
        step("fidelity", "persona fidelity", lambda: fidelity(sl, mode=mode, conf_level=conf_level))
    else:
        a.skipped["fidelity"] = "no fidelity items (role 'fidelity') re-ask the specified persona attributes"
    if outcome:
        step("effect", f"observed effect on {outcome!r}",
             lambda: effect(sl, outcome=outcome, mode=mode, n_perm=n_perm, conf_level=conf_level, seed=seed))
        if ncos:
            def dids() -> pd.DataFrame:
                frames = []
                for n in ncos:
                    r = did_nco(sl, outcome=outcome, nco=n, scale="location_scale", mode=mode, n_boot=n_boot,
                                conf_level=conf_level, seed=seed).tidy()
                    frames.append(r[r["measure"] == "did_location_scale"].assign(nco=n))
                return pd.concat(frames, ignore_index=True)

            step("did", "NCO difference-in-differences (one per NCO)", dids)
        placebos = sl.arms_of_kind("placebo")
        if placebos:
            step("calibration", f"empirical calibration against {len(placebos)} placebo arm(s)",
                 lambda: calibrate_effect(sl, outcome=outcome, mode=mode, conf_level=conf_level))
        else:
            a.skipped["calibration"] = "no placebo arms (arms of kind 'placebo'): calibration needs negative-control interventions"
        proxies = sl.item_names("proxy")
        if proxies and ncos:
            w = list(ncos[: len(proxies)])
            step("p2sls", "proximal 2SLS", lambda: p2sls(data=sl, outcome=outcome, treatment="arm", nco=w,
                                                        nce=list(proxies), mode=mode, conf_level=conf_level))
        else:
            a.skipped["p2sls"] = ("no proxies declared: proximal 2SLS needs negative control exposures Z (items of "
                                  "role 'proxy', e.g. attributes elicited before the intervention in a separate branch)")
    else:
        a.skipped["effect"] = "no single primary outcome (pass outcome=...)"
    say("writing the verdict")
    a.verdict = _verdict(a, nco_power)
    return a


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Split a tidy frame by iteration; the label prefixes verdict lines when there are several."""
    if "iteration" not in frame or frame["iteration"].nunique() <= 1:
        return [("", frame)]
    return [(f"Iteration {int(i)}: ", g) for i, g in frame.groupby("iteration", sort=True)]


def _verdict(a: Audit, nco_power: Callable[..., Any]) -> list[str]:
    out: list[str] = []
    log = a.log
    ref = log.reference_arm
    treated = [arm for arm in log.arm_names if arm != ref and log.arm_kind(arm) != "placebo"]
    placebo = set(log.arms_of_kind("placebo"))
    margin = a.settings["margin"]
    invalid = int(a.summary.facts["invalid_rows"])
    if invalid:
        out.append(f"{invalid} answer row(s) failed validation and were left out of every analysis "
                   "(kept in the log; see the data section).")
    eff = a.results.get("effect")
    eq = a.results.get("equivalence")
    nco = a.results.get("nco")
    if nco is not None:
        out += _drift_lines(nco, log, treated, placebo, ref, margin, eff, eq, nco_power, source="")
    dist = a.results.get("nco_dist")
    if dist is not None:
        out += _drift_lines(dist, log, treated, placebo, ref, margin, None, None, nco_power,
                            source="On the model's option probabilities (distribution mode, no sampling noise): ")
    fid = a.results.get("fidelity")
    if fid is not None:
        ft = fid.tidy()
        chance = float(np.mean([1 / log.item(i).n_levels for i in log.item_names("fidelity")]))
        for label, ov in _groups(ft[(ft["term"] == "overall") & ~ft["arm"].isin(placebo)]):
            for r in ov.itertuples():
                if np.isnan(r.p_value):
                    how = "no test: the arms do not differ within any pair" if r.share_0 == r.share_1 else "no test"
                else:
                    how = f"{'significantly' if r.p_value < 0.05 else 'not significantly'} different, p = {_fmt(r.p_value)}"
                out.append(f"{label}Persona fidelity: specified attributes were reported as specified by {r.share_0:.0%} "
                           f"of units in {r.reference} and {r.share_1:.0%} in {r.arm} ({how}; guessing would give about "
                           f"{chance:.0%}).")
    did = a.results.get("did")
    if did is not None and len(did):
        for label, d in _groups(did[~did["arm"].isin(placebo)]):
            if len(d):
                out.append(f"{label}NCO difference-in-differences moves the estimate to between {_fmt(d['estimate'].min())} "
                           f"and {_fmt(d['estimate'].max())} depending on the NCO (assumes additive equi-confounding "
                           "after rescaling each NCO to the outcome's scale); disagreement across NCOs signals that the "
                           "assumption fails.")
    cal = a.results.get("calibration")
    if cal is not None:
        ct = cal.tidy()
        for label, c in _groups(ct[ct["calibrated"].astype(bool)]):
            for r in c.itertuples():
                out.append(f"{label}Calibrated against {cal.null.n_used} placebo contrast(s), the effect of {r.arm} is "
                           f"{_fmt(r.estimate)} [{_fmt(r.conf_low)}, {_fmt(r.conf_high)}], p = {_fmt(r.p_value)} "
                           + ("(few controls: the empirical null is poorly determined)." if cal.null.n_used < 20 else "."))
    if not out:
        out.append("Nothing to conclude: the log has no NCOs, fidelity items or outcome to analyse.")
    return out


def _drift_lines(res: Any, log: SimLog, treated: list[str], placebo: set[str], ref: str, margin: float,
                 eff: Any, eq: Any, nco_power: Callable[..., Any], *, source: str) -> list[str]:
    """Verdict sentences about NCO drift for one drift-test result."""
    out: list[str] = []
    t = res.tidy()
    for label, cat in _groups(t[t["measure"] == "tvd"]):
        it = cat["iteration"].iloc[0] if "iteration" in cat and len(cat) else None
        prefix = label + source

        def say(text: str, prefix: str = prefix) -> None:
            # a sentence after a prefix ("Iteration 1: ...") continues in lower case
            out.append(prefix + (text[:1].lower() + text[1:] if prefix else text))

        for arm in treated or [x for x in log.arm_names if x != ref]:
            rows = cat[cat["arm"] == arm]
            terms = sorted(rows["term"].unique())
            drifted = sorted(rows.loc[rows["p_value_fwer"] < 0.05, "term"].unique())
            if drifted:
                eff_txt = ""
                if eff is not None:
                    e = eff.tidy()
                    e = e[(e["measure"] == "mean_diff") & (e["arm"] == arm)]
                    if it is not None and "iteration" in e:
                        e = e[e["iteration"] == it]
                    if len(e):
                        eff_txt = f" of {_fmt(e['estimate'].iloc[0])}"
                say(
                    f"Drift detected on {len(drifted)} of {len(terms)} NCOs between {arm} and {ref} "
                    f"(family-wise p < 0.05: {', '.join(drifted)}): the arms hold different implied populations, "
                    f"so the observed effect{eff_txt} is not interpretable as causal without adjustment.")
            elif eq is None:
                say(f"No drift detected between {arm} and {ref} on {len(terms)} NCOs.")
            else:
                et = eq.tidy()
                et = et[(et["arm"] == arm) & et["equivalent"].fillna(False).astype(bool)]
                if it is not None and "iteration" in et:
                    et = et[et["iteration"] == it]
                n_eq = int(et["term"].nunique())
                if n_eq == len(terms) and terms:
                    say(f"No drift beyond {margin} TVD on all {len(terms)} NCOs between {arm} and "
                               f"{ref} (equivalence shown). NCOs bound latent drift only from below; corrections "
                               "still rest on their assumptions.")
                else:
                    n1 = int(rows["n_1"].min()) if len(rows) else 0
                    k = int(rows["n_levels"].max()) if len(rows) else 2
                    pw = nco_power(max(n1, 2), margin=margin, n_levels=max(k, 2), method="iut", draws=2000).tidy()
                    shown = "none of them" if n_eq == 0 else f"only {n_eq}"
                    say(
                        f"No drift detected between {arm} and {ref} on {len(terms)} NCOs, but equivalence "
                        f"within {margin} TVD was shown for {shown}: absence of evidence is not evidence of absence "
                        f"(with {n1} units per arm the equivalence test has power {_fmt(pw['power'].iloc[0])}).")
        pl = cat[cat["arm"].isin(placebo)]
        if len(pl):
            n_pl = int((pl["p_value_fwer"] < 0.05).sum())
            say(f"Placebo arms (meaning-preserving texts) drift on {n_pl} of {len(pl)} NCO comparisons: "
                       + ("the model's answers move even under sham interventions (response-style drift), so NCO "
                          "drift is not specific to the treatment's content." if n_pl else
                          "sham interventions leave the NCOs in place."))
    return out
