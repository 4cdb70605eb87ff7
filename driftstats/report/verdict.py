"""The verdict: one bottom line, and the findings that support it, written from the steps' results.

Everything the verdict says comes from the audit's step results; the significance level
(``1 - conf_level``), the equivalence margin and the minimum sizes are the audit's settings,
never literals. Each drift sentence names the mode it is about (sampled answers or the model's
option probabilities), and the bottom line says what to conclude.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftstats._groups import iter_groups, plain
from driftstats.log.simlog import SimLog
from driftstats.log.summary import LogSummary
from driftstats.report.steps import AuditSettings, StepOutcome, group_label

__all__ = ["MODE_LABELS", "DriftFinding", "Verdict", "drift_findings", "write_verdict"]

MODE_LABELS = {"sample": "sampled answers", "dist": "option probabilities (distribution mode)"}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The bottom line first, then the supporting findings; steps that failed (``keep_going``) lead."""

    bottom_line: str
    lines: tuple[str, ...]
    not_computed: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[str]:
        yield from self.not_computed
        yield self.bottom_line
        yield from self.lines

    def __len__(self) -> int:
        return len(self.not_computed) + 1 + len(self.lines)

    def __str__(self) -> str:
        return "\n".join(self)


#: A group of a result: ``(("model", "m"), ("run_id", "r"), ("iteration", 1))``; ``()`` is the whole log.
Key = tuple[tuple[str, Any], ...]

#: With more runs than this, the verdict spells out only the runs its bottom line is about.
MAX_RUNS_SPELLED_OUT = 6


@dataclass(frozen=True, slots=True)
class DriftFinding:
    """Drift of one arm against the reference, in one mode and group (one run of the study)."""

    mode: str
    group: Key
    arm: str
    reference: str
    tested: tuple[str, ...]
    drifted: tuple[str, ...]
    not_testable: tuple[str, ...]
    equivalent: tuple[str, ...] | None  # None: no equivalence test in this mode
    n_min: int
    n_levels: int
    placebo: bool


def _fmt(x: float) -> str:
    return "NA" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def _pct(level: float) -> str:
    return f"{level:g}"


def _groups(frame: pd.DataFrame, by: tuple[str, ...]) -> list[tuple[Key, pd.DataFrame]]:
    """``frame`` split by the audit's run columns ``by`` (those it has), each with its key."""
    cols = [c for c in by if c in frame.columns]
    if not cols or frame.empty:
        return [((), frame)]
    return [(tuple(g.items()), sub) for g, sub in iter_groups(frame, cols)]


def _select(frame: pd.DataFrame, key: Key) -> pd.DataFrame:
    """The rows of ``frame`` in group ``key`` (columns it lacks are not filtered on)."""
    for col, v in key:
        if col in frame.columns:
            frame = frame[frame[col] == v]
    return frame


def _label(key: Key) -> str:
    """``Iteration 1`` / ``Model m, run r, iteration 1``."""
    text = group_label(dict(key))
    return text[:1].upper() + text[1:]


def _testable(rows: pd.DataFrame) -> pd.Series:
    ok = rows["p_value"].notna() if "p_value" in rows else pd.Series(True, index=rows.index)
    if "note" in rows:
        ok &= rows["note"].isna()
    return ok


def drift_findings(res: Any, eq: Any, mode: str, placebo: set[str], level: float,
                   by: tuple[str, ...] = ("iteration",)) -> list[DriftFinding]:
    """Per arm and run: which NCOs were tested, drifted (family-wise p < level), not testable, equivalent."""
    t = res.tidy()
    out = []
    et = eq.tidy() if eq is not None else None
    for key, g in _groups(t, by):
        for arm, rows in g.groupby("arm", sort=False):
            ok = _testable(rows)
            tested = tuple(sorted(rows.loc[ok, "term"].unique()))
            drifted = tuple(sorted(rows.loc[ok & (rows["p_value_fwer"] < level), "term"].unique()))
            untestable = tuple(sorted(set(rows.loc[~ok, "term"]) - set(tested)))
            equivalent = None
            if et is not None:
                e = _select(et[et["arm"] == arm], key)
                equivalent = tuple(sorted(e.loc[e["equivalent"].fillna(False).astype(bool), "term"].unique()))
            n_min = int(rows["n_1"].min()) if len(rows) and rows["n_1"].notna().any() else 0
            k = int(rows["n_levels"].max()) if "n_levels" in rows and rows["n_levels"].notna().any() else 2
            out.append(DriftFinding(mode, key, str(arm), str(rows["reference"].iloc[0]), tested, drifted, untestable,
                                    equivalent, n_min, k, str(arm) in placebo))
    return out


def _prefix(f: DriftFinding, many_groups: bool) -> str:
    where = f"In the {MODE_LABELS[f.mode]}"
    return (f"{_label(f.group)}, {where[0].lower() + where[1:]}" if many_groups and f.group else where) + ": "


def _effect_text(eff: Any, arm: str, key: Key) -> str:
    if eff is None:
        return ""
    e = eff.tidy()
    e = _select(e[(e["measure"] == "mean_diff") & (e["arm"] == arm)], key)
    if len(e) and pd.notna(e["estimate"].iloc[0]):
        return f" of {_fmt(float(e['estimate'].iloc[0]))}"
    return ""


def _drift_lines(findings: list[DriftFinding], s: AuditSettings, eff: Any, power: Any) -> list[str]:
    out = []
    many = len({f.group for f in findings}) > 1
    lv = _pct(s.level)
    for (_mode, _key), group in _by_mode_group(findings).items():
        for f in group:
            if not f.placebo:
                out.append(_treated_line(f, s, eff, power, many, lv))
        placebo = [f for f in group if f.placebo]
        n_pl = sum(len(f.drifted) for f in placebo)
        n_all = sum(len(f.tested) for f in placebo)
        if n_all:
            out.append(f"{_prefix(placebo[0], many)}placebo arms (meaning-preserving texts) drift on {n_pl} of {n_all} NCO "
                       "comparisons: " + ("the model's answers move even under sham interventions (response-style "
                                          "drift), so NCO drift is not specific to the treatment's content." if n_pl else
                                          "sham interventions leave the NCOs in place."))
    return out


def _treated_line(f: DriftFinding, s: AuditSettings, eff: Any, power: Any, many: bool, lv: str) -> str:
    p = _prefix(f, many)
    nt = (f" Not testable: {', '.join(f.not_testable)} (no valid answers in one arm or mode)."
          if f.not_testable else "")
    if not f.tested:
        return f"{p}no NCO could be tested between {f.arm} and {f.reference}.{nt}"
    if f.drifted:
        return (f"{p}drift detected on {len(f.drifted)} of {len(f.tested)} NCOs between {f.arm} and {f.reference} "
                f"(family-wise p < {lv}: {', '.join(f.drifted)}): the arms hold different implied populations, "
                f"so the observed effect{_effect_text(eff, f.arm, f.group)} is not interpretable as causal "
                f"without adjustment.{nt}")
    if f.equivalent is None:
        return (f"{p}no drift detected between {f.arm} and {f.reference} on {len(f.tested)} NCOs (no "
                f"equivalence test in this mode, so this is not evidence of no drift).{nt}")
    if set(f.tested) <= set(f.equivalent):
        return (f"{p}no drift beyond {s.margin} TVD on all {len(f.tested)} NCOs between {f.arm} and "
                f"{f.reference} (equivalence shown). NCOs bound latent drift only from below; corrections still "
                f"rest on their assumptions.{nt}")
    n_eq = len(set(f.equivalent) & set(f.tested))
    shown = "none of them" if n_eq == 0 else f"only {n_eq}"
    pw = power(f)
    pw_text = f" ({pw})" if pw else ""
    return (f"{p}no drift detected between {f.arm} and {f.reference} on {len(f.tested)} NCOs, but "
            f"equivalence within {s.margin} TVD was shown for {shown}: absence of evidence is not evidence "
            f"of absence{pw_text}.{nt}")


def _by_mode_group(findings: list[DriftFinding]) -> dict[tuple[str, Key], list[DriftFinding]]:
    out: dict[tuple[str, Key], list[DriftFinding]] = {}
    for f in findings:
        out.setdefault((f.mode, f.group), []).append(f)
    return out


def _bottom_line(findings: list[DriftFinding], s: AuditSettings, nco: StepOutcome | None, eff: Any,
                 power: Any) -> str:
    if nco is None or not nco.ok:
        why = nco.reason if nco is not None else "no drift test ran"
        return (f"Bottom line: drift could not be assessed ({why}), so the observed effect cannot be checked for "
                "confounding by the simulated users.")
    treated = [f for f in findings if not f.placebo]
    drifting = [f for f in treated if f.drifted]
    placebo_drift = any(f.drifted for f in findings if f.placebo)
    if drifting:
        first = max(drifting, key=lambda f: len(f.drifted) / max(len(f.tested), 1))
        arms = sorted({f.arm for f in drifting})
        modes = [m for m in ("sample", "dist") if any(f.mode == m for f in drifting)]
        where = " and in the ".join(MODE_LABELS[m] for m in modes)
        who = f"{first.arm} and {first.reference}" if len(arms) == 1 else f"{', '.join(arms)} and {first.reference}"
        text = (f"Bottom line: the arms are not comparable. Drift on {len(first.drifted)} of {len(first.tested)} NCOs "
                f"in the {where} means {who} hold different implied populations: read the observed "
                f"effect{_effect_text(eff, first.arm, first.group)} as confounded, not as the intervention's causal "
                "effect, unless a correction's assumptions hold.")
        quiet = [m for m in ("sample", "dist") if m not in modes and any(f.mode == m for f in treated)]
        if quiet:
            text += (f" The {' and '.join(MODE_LABELS[m] for m in quiet)} show no drift at family-wise level "
                     f"{_pct(s.level)}, which does not show its absence.")
        if placebo_drift:
            text += (" Placebo arms drift too: the model's answers move under any text change (response-style drift), "
                     "not only under the treatment's content.")
        return text
    tested = [f for f in treated if f.tested]
    if not tested:
        return "Bottom line: no NCO could be tested between the arms, so drift could not be assessed."
    main = [f for f in tested if f.mode == s.mode]
    if main and all(f.equivalent is not None and set(f.tested) <= set(f.equivalent) for f in main):
        return (f"Bottom line: no drift beyond {s.margin} TVD on any NCO (equivalence shown in the {MODE_LABELS[s.mode]}). "
                "NCOs bound latent drift only from below: the effect is interpretable as far as the NCOs capture who "
                "the simulated users are.")
    f = min(main or tested, key=lambda x: x.n_min)
    pw = power(f)
    pw_text = f" ({pw})" if pw else ""
    return (f"Bottom line: inconclusive. No drift detected at family-wise level {_pct(s.level)}, but the equivalence "
            f"test cannot show that drift stays below {s.margin} TVD{pw_text}: simulate more users before reading the "
            "observed effect as causal.")


def _key_of(r: dict[str, Any], by: tuple[str, ...]) -> Key:
    return tuple((c, plain(r[c])) for c in by if c in r)


def _fidelity_lines(res: Any, log: SimLog, s: AuditSettings, placebo: set[str], by: tuple[str, ...],
                    shown: Any) -> list[str]:
    ft = res.tidy()
    levels = [log.item(i).n_levels for i in log.item_names("fidelity") if log.item(i).n_levels]
    chance = float(np.mean([1 / k for k in levels])) if levels else math.nan
    out = []
    ov = ft[(ft["term"] == "overall") & ~ft["arm"].isin(placebo)]
    many = len(_groups(ov, by)) > 1
    for r in ov.to_dict("records"):
        key = _key_of(r, by)
        if not shown(key):
            continue
        label = f"{_label(key)}: " if many and key else ""
        if pd.isna(r["p_value"]):
            how = f"no test: {r['note']}" if "note" in r and isinstance(r.get("note"), str) else "no test"
        else:
            sig = "significantly" if r["p_value"] < s.level else "not significantly"
            how = f"{sig} different, p = {_fmt(r['p_value'])}"
        guess = f"; guessing would give about {chance:.0%}" if not math.isnan(chance) else ""
        if pd.isna(r["share_0"]) or pd.isna(r["share_1"]):  # no share to show, only why
            out.append(f"{label}Persona fidelity cannot be compared between {r['reference']} and {r['arm']} ({how}).")
            continue
        out.append(f"{label}Persona fidelity: specified attributes were reported as specified by {r['share_0']:.0%} of "
                   f"units in {r['reference']} and {r['share_1']:.0%} in {r['arm']} ({how}{guess}).")
    return out


def _did_lines(res: Any, s: AuditSettings, placebo: set[str], by: tuple[str, ...], shown: Any) -> list[str]:
    t = res.tidy()
    t = t[~t["arm"].isin(placebo)]
    out = []
    groups = _groups(t, by)
    many = len(groups) > 1
    for key, d in groups:
        if not shown(key):
            continue
        label = f"{_label(key)}: " if many and key else ""
        for arm, g in d.groupby("arm", sort=False):
            est = g[g["measure"].astype(str).str.startswith("did_") & g["estimate"].notna()]
            het = g[(g["measure"] == "heterogeneity") & g["p_value"].notna()]
            if est.empty:
                continue
            if len(est) == 1:
                r = est.iloc[0]
                out.append(f"{label}NCO difference-in-differences with {r['nco']} moves the estimate for {arm} to "
                           f"{_fmt(r['estimate'])} [{_fmt(r['conf_low'])}, {_fmt(r['conf_high'])}] (assumes additive "
                           "equi-confounding after rescaling the NCO to the outcome's scale; with one NCO the assumption "
                           "cannot be checked).")
                continue
            text = (f"{label}NCO difference-in-differences moves the estimate for {arm} to between "
                    f"{_fmt(est['estimate'].min())} and {_fmt(est['estimate'].max())} depending on the NCO ({len(est)} NCOs; "
                    "assumes additive equi-confounding after rescaling each NCO to the outcome's scale).")
            if len(het):
                h = het.iloc[0]
                if h["p_value"] < s.level:
                    text += (f" The NCOs disagree (heterogeneity chi-square {_fmt(h['statistic'])}, p = "
                             f"{_fmt(h['p_value'])}): equi-confounding fails for at least one NCO, so no single DiD "
                             "estimate should be trusted.")
                else:
                    text += (f" Their agreement (heterogeneity p = {_fmt(h['p_value'])}) is consistent with, but does "
                             "not prove, equi-confounding.")
            out.append(text)
    return out


def _calibration_lines(res: Any, s: AuditSettings, by: tuple[str, ...], shown: Any) -> list[str]:
    if not getattr(res, "calibrated", True):
        return [f"Empirical calibration is not reported: {res.not_calibrated}."]
    ct = res.tidy()
    cal = ct[ct["calibrated"].fillna(False).astype(bool)]
    g = res.glance().iloc[0]
    n_ctrl = int(g["n_obs"]) if pd.notna(g["n_obs"]) else None
    kind = "MCMC" if "MCMC" in str(g["method"]) else "asymptotic"
    out = []
    many = len(_groups(cal, by)) > 1
    for r in cal.to_dict("records"):
        key = _key_of(r, by)
        if not shown(key):
            continue
        label = f"{_label(key)}: " if many and key else ""
        if pd.isna(r["estimate"]) or pd.isna(r.get("conf_low")):
            note = r.get("note") if isinstance(r.get("note"), str) else "the empirical null could not be fitted"
            out.append(f"{label}The effect of {r['arm']} is not calibrated ({note}).")
            continue
        few = n_ctrl is not None and n_ctrl < 20
        out.append(f"{label}Calibrated against {n_ctrl} placebo contrast(s) ({kind} null), the effect of {r['arm']} is "
                   f"{_fmt(r['estimate'])} [{_fmt(r['conf_low'])}, {_fmt(r['conf_high'])}], p = {_fmt(r['p_value'])}"
                   + (" (few controls: the empirical null is poorly determined)." if few else "."))
    return out


def _dialogue_lines(res: Any, s: AuditSettings, by: tuple[str, ...], shown: Any) -> list[str]:
    """One line on how the dialogues ran (number of turns, end reason) across arms: drift or none detected."""
    t = res.tidy()
    t = t[t["p_value_fwer"].notna()]
    if t.empty:
        return []
    rows = [r for r in t.to_dict("records") if shown(_key_of(r, by))]
    many = len(_groups(t, by)) > 1
    drifted = [r for r in rows if r["p_value_fwer"] < s.level]
    if drifted:
        parts = [f"{r['term']} between {r['arm']} and {r['reference']}"
                 f"{' (' + _label(_key_of(r, by)) + ')' if many and by else ''} ({r['measure'].upper()} "
                 f"{_fmt(r['estimate'])}, p (FWER) = {_fmt(r['p_value_fwer'])})" for r in drifted]
        return ["The dialogues ran differently across arms: " + "; ".join(parts) + ". Every answer asked after the "
                "dialogue is conditioned on a different conversation (an effect of the intervention, drift of the "
                "simulated users, or both; see the dialogues section)."]
    if not rows:
        return []
    low = min(r["p_value_fwer"] for r in rows)
    return [f"No drift detected in how the dialogues ran (number of turns, end reason) across arms (smallest p (FWER) "
            f"= {_fmt(low)}); absence of evidence is not evidence of absence."]


def _p2sls_lines(res: Any) -> list[str]:
    r = res.tidy().iloc[0]
    return [f"Proximal 2SLS estimates the effect at {_fmt(r['estimate'])} [{_fmt(r['conf_low'])}, "
            f"{_fmt(r['conf_high'])}] (rests on the proxies' exclusion and relevance assumptions)."]


def _final_runs(log: SimLog) -> set[str]:
    """The run of each adjustment path's last iteration (the reference spec excluded)."""
    it = log.iterations
    if it.empty:
        return set()
    it = it[it["path"] != "reference"]
    last = it.sort_values("iteration").groupby(["model", "path"], sort=False).tail(1)
    return set(map(str, last["run_id"]))


def write_verdict(log: SimLog, summary: LogSummary, s: AuditSettings, steps: tuple[StepOutcome, ...],
                  by: tuple[str, ...] = ("iteration",)) -> Verdict:
    """The verdict of an audit from its step outcomes (``by``: the run columns its steps grouped by)."""
    from driftstats._kernels.tvd_ci import MAX_EVENT_LEVELS
    from driftstats.nco import nco_power, nco_sample_size

    outcomes = {o.name: o for o in steps}

    def result(name: str) -> Any:
        o = outcomes.get(name)
        return o.result if o is not None and o.ok else None

    placebo = set(log.arms_of_kind("placebo"))
    eff = result("effect")
    findings: list[DriftFinding] = []
    if result("nco") is not None:
        findings += drift_findings(result("nco"), result("equivalence"), s.mode, placebo, s.level, by)
    if result("nco_dist") is not None:
        findings += drift_findings(result("nco_dist"), None, "dist", placebo, s.level, by)
    # Which runs the verdict spells out: all of them, unless an adjustment study holds many; then the
    # last persona spec of each path (the adjustment line and the report's sections hold the rest).
    finals = _final_runs(log) if "run_id" in by else set()
    n_runs = len({f.group for f in findings})
    few = n_runs <= MAX_RUNS_SPELLED_OUT or not finals

    def shown(key: Key) -> bool:
        return few or dict(key).get("run_id") in finals
    cache: dict[tuple[int, int], float] = {}

    def power(f: DriftFinding) -> float | None:
        key = (max(f.n_min, 2), max(f.n_levels, 2))
        if key not in cache:
            # above MAX_EVENT_LEVELS the level-wise band costs K root finds per draw: fewer draws suffice
            # for a sentence that reports power to two digits
            draws = 2000 if key[1] <= MAX_EVENT_LEVELS else 500
            try:
                cache[key] = float(nco_power(key[0], margin=s.margin, n_levels=key[1], method="projection", draws=draws,
                                             conf_level=s.conf_level).tidy()["power"].iloc[0])
            except (ValueError, ArithmeticError):
                return None
        return cache[key]

    needed_cache: dict[int, int | None] = {}

    def needed(f: DriftFinding) -> int | None:
        """Units per arm for 80% power of the equivalence test at this margin (no drift)."""
        k = max(f.n_levels, 2)
        if k > MAX_EVENT_LEVELS:  # the bisection over n would take minutes with the level-wise band
            return None
        if k not in needed_cache:
            try:
                needed_cache[k] = int(nco_sample_size(margin=s.margin, n_levels=k, power=0.8, method="projection",
                                                      conf_level=s.conf_level, draws=2000))
            except (ValueError, ArithmeticError):
                needed_cache[k] = None
        return needed_cache[k]

    def power_text(f: DriftFinding) -> str:
        pw = power(f)
        if pw is None:
            return ""
        n = needed(f) if pw < 0.8 else None
        more = f"; about {float(f'{n:.2g}'):,.0f} per arm would give 80%" if n else ""
        return f"with {f.n_min} units per arm the equivalence test has power {_fmt(pw)}{more}"

    lines: list[str] = []
    invalid = int(summary.facts["invalid_rows"])
    if invalid:
        lines.append(f"{invalid} answer row(s) failed validation and were left out of every analysis (kept in the "
                     "log; see the data section).")
    adjustment = result("adjustment")
    if adjustment is not None:
        lines.append(adjustment.audit_line())
    spelled = [f for f in findings if shown(f.group)]
    if not few:
        lines.append(f"The drift, fidelity and correction lines below are about the last persona spec of each "
                     f"adjustment path ({len(finals)} of {n_runs} runs); the other runs' results (base spec, earlier "
                     "iterations, the full-information reference) are in the report's sections, one row per run.")
    lines += _drift_lines(spelled, s, eff, power_text)
    for name, writer in (("fidelity", lambda r: _fidelity_lines(r, log, s, placebo, by, shown)),
                         ("dialogue", lambda r: _dialogue_lines(r, s, by, shown)),
                         ("did", lambda r: _did_lines(r, s, placebo, by, shown)),
                         ("calibration", lambda r: _calibration_lines(r, s, by, shown)),
                         ("p2sls", _p2sls_lines)):
        r = result(name)
        if r is not None:
            lines += writer(r)
    for name in ("fidelity", "did", "calibration"):
        o = outcomes.get(name)
        if o is not None and o.status == "skipped" and o.reason and o.reason.startswith("cannot conclude"):
            lines.append(f"{o.title[:1].upper() + o.title[1:]}: {o.reason}.")
    failed = tuple(f"Not computed: {o.title} ({o.reason})" for o in steps if o.status == "failed")
    groups = sorted({f.group for f in findings})
    nco_step = outcomes.get("nco")
    if finals and len(groups) > 1:  # an adjustment study: the conclusion is about each path's last persona spec
        last = [f for f in findings if dict(f.group).get("run_id") in finals]
        bottom = _bottom_line(last, s, nco_step, eff, power_text).replace(
            "Bottom line: ", f"Bottom line (the last persona spec of each of the {len(finals)} adjustment paths, worst "
                             "case): ", 1)
    elif len(groups) > 1 and [c for c, _ in groups[-1]] == ["iteration"]:  # iterations of one run
        it = dict(groups[-1])["iteration"]
        last = [f for f in findings if f.group == groups[-1]]
        earlier = sorted({dict(f.group)["iteration"] for f in findings
                          if f.group != groups[-1] and f.drifted and not f.placebo})
        bottom = _bottom_line(last, s, nco_step, eff, power_text).replace(
            "Bottom line: ", f"Bottom line (last adjustment iteration, {it}): ", 1)
        if earlier:
            bottom += f" Earlier iterations with drift: {', '.join(map(str, earlier))}."
    elif len(groups) > 1:  # several models or runs, no adjustment path to follow: the worst of them
        bottom = _bottom_line(findings, s, nco_step, eff, power_text).replace(
            "Bottom line: ", f"Bottom line (worst case over {len(groups)} runs, each tested on its own): ", 1)
    else:
        bottom = _bottom_line(findings, s, nco_step, eff, power_text)
    return Verdict(bottom_line=bottom, lines=tuple(lines), not_computed=failed)
