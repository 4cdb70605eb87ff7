"""A simulated persona-augmentation study (methods.md section 4.1) with known truth.

The latent world: a true confounder ``C`` (``ideology``) changes how the intervention is received
(the LLM infers a different ``C`` in the treatment arm when the persona does not state it: user
drift) and drives the outcome; irrelevant attributes ``Z`` (``pet``, ``season``, ...) drift too but
affect nothing; diagnostic NCOs depend on ``C`` only, so they drift while ``C`` is unstated. The
log holds, per model, the base run (iteration 0, spec ``["age"]``), a ``targeted`` path that adds
``C`` at iteration 1 (then the ``Z``), an ``untargeted`` path that adds only ``Z``, and optionally a
full-information ``reference`` run (iteration 0 of path ``reference``; every attribute stated).
Stated attributes take the persona's real value (``values_from = population``), identically in
both arms, so once ``C`` is stated the NCO drift is gone and the contrast is the true effect.

:func:`simulate_adjustment_log` returns the log (``answers``, ``items``, ``personas``, ``arms``,
``iterations``, ``adjustments``) and the exact truth per model, path and iteration.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from driftstats._args import check_positive_int, rng_from
from driftstats.errors import InvalidArgumentError
from driftstats.log.simlog import SimLog, read_log

__all__ = ["simulate_adjustment_log"]

STUDY = "simulated_adjustment"
ARMS = ("control", "treatment")
OUTCOME = "support"
SUPPORT = ["Strongly oppose", "Oppose", "Neither", "Favor", "Strongly favor"]
AGE = ["18-34", "35-54", "55+"]
CONFOUNDER = "ideology"
IDEOLOGY = ["Liberal", "Moderate", "Conservative"]
IRRELEVANT: dict[str, list[str]] = {
    "pet": ["Cat", "Dog", "No pet"],
    "season": ["Winter", "Spring", "Summer", "Autumn"],
    "hand": ["Left", "Right"],
    "tea": ["Tea", "Coffee", "Neither"],
}
NCO_NAMES = ("religiosity", "area", "news", "volunteer")
NCO_OPTIONS = ["Never", "Sometimes", "Often", "Always"]
NCO_SIGNS = (1.0, -0.8, 0.7, -0.6)


def _ordinal(score: np.ndarray, n_levels: int, spread: float = 1.5) -> np.ndarray:
    """Cumulative-logit probabilities (..., n_levels) for scores of any shape."""
    cuts = np.linspace(-spread, spread, n_levels - 1)
    cdf = expit(cuts - np.asarray(score, dtype=float)[..., None])
    zeros, ones = np.zeros_like(cdf[..., :1]), np.ones_like(cdf[..., :1])
    return np.diff(np.concatenate([zeros, cdf, ones], axis=-1), axis=-1)


def _tilt(p: np.ndarray, gamma: float) -> np.ndarray:
    g = np.linspace(-1.0, 1.0, p.size)
    w = p * np.exp(gamma * g)
    return w / w.sum()


def _draw(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (n, K)."""
    probs = np.atleast_2d(probs)
    u = rng.random((probs.shape[0], 1))
    return (u > np.cumsum(probs, axis=1)).sum(axis=1).clip(max=probs.shape[1] - 1)


@dataclass(frozen=True)
class _World:
    """The exact quantities of one model's world."""

    effect: float
    confounding: float
    age_effect: float
    p_c: np.ndarray  # population distribution of C
    implied_c: np.ndarray  # (2, Kc): the LLM's implied C per arm when C is not stated
    p_z: dict[str, np.ndarray]
    implied_z: dict[str, np.ndarray]  # name -> (2, Kz)
    nco_strength: tuple[float, ...]

    @property
    def g_c(self) -> np.ndarray:
        return np.linspace(-1.0, 1.0, len(IDEOLOGY))

    @property
    def g_age(self) -> np.ndarray:
        return np.linspace(-1.0, 1.0, len(AGE))

    def py(self, t: int) -> np.ndarray:
        """``P(Y | t, c, age)``, shape (Kc, Ka, Ky)."""
        score = self.effect * t + self.confounding * self.g_c[:, None] + self.age_effect * self.g_age[None, :]
        return _ordinal(score, len(SUPPORT))

    def mu(self, t: int) -> np.ndarray:
        """``E[Y | t, c, age]`` on the option-code scale, shape (Kc, Ka)."""
        return self.py(t) @ np.arange(len(SUPPORT), dtype=float)

    def pn(self, j: int) -> np.ndarray:
        """``P(N_j | c)``, shape (Kc, Kn)."""
        return _ordinal(self.nco_strength[j] * self.g_c, len(NCO_OPTIONS), spread=1.0)

    def c_dist(self, t: int, stated: bool) -> np.ndarray:
        return self.p_c if stated else self.implied_c[t]

    def true_effect(self) -> float:
        """``tau``: the effect in the population where C follows its real distribution (age uniform)."""
        return float(self.p_c @ (self.mu(1) - self.mu(0)).mean(axis=1))

    def expected_contrast(self, stated: bool) -> float:
        """What the observed difference in mean codes converges to under a spec that does (not) state C."""
        m1 = self.c_dist(1, stated) @ self.mu(1).mean(axis=1)
        m0 = self.c_dist(0, stated) @ self.mu(0).mean(axis=1)
        return float(m1 - m0)

    def nco_marginal(self, j: int, t: int, stated: bool) -> np.ndarray:
        return self.c_dist(t, stated) @ self.pn(j)


def _spec_paths(n_iterations: int, reference: bool) -> list[tuple[str, int, list[str], str | None]]:
    """(path, iteration, spec, select) for every iteration row of one model."""
    zs = list(IRRELEVANT)
    rows: list[tuple[str, int, list[str], str | None]] = []
    for path in ("targeted", "untargeted"):
        rows.append((path, 0, ["age"], None))
        for k in range(1, n_iterations + 1):
            added = [CONFOUNDER, *zs[: k - 1]] if path == "targeted" else zs[:k]
            rows.append((path, k, ["age", *added], path))
    if reference:
        rows.append(("reference", 0, ["age", CONFOUNDER, *zs[:n_iterations]], "reference"))
    return rows


def _run_id(model: str, path: str, iteration: int) -> str:
    if iteration == 0 and path != "reference":
        return f"{model}:base"
    return f"{model}:{path}:{iteration}"


def simulate_adjustment_log(
    *,
    n_personas: int = 200,
    models: Sequence[str] = ("sim-model",),
    drift: float | Sequence[float] = 1.5,
    prior_shift: float = 0.3,
    effect: float = 0.6,
    confounding: float = 1.5,
    age_effect: float = 0.4,
    n_nco: int = 3,
    nco_strength: float = 2.0,
    n_iterations: int = 2,
    reference: bool = True,
    fidelity: float = 0.95,
    seed: int | np.random.Generator | None = 0,
) -> tuple[SimLog, pd.DataFrame]:
    """Simulate an adjustment study (the persona-augmentation loop) with known truth.

    Parameters
    ----------
    n_personas
        Personas per run; each persona is simulated in both arms (``persona_id`` pairs them; the
        same personas, with the same real attributes, are used in every run and model).
    models
        Model names; each model runs every path.
    drift
        Drift strength ``gamma`` (one value, or one per model): when ``ideology`` (C) is not
        stated, the treatment arm's implied C is ``p_1 ∝ p_0 exp(gamma g(C))``. The irrelevant
        attributes drift with ``0.8 gamma``.
    prior_shift
        The model's own prior for unstated C in the control arm: ``p_0 ∝ p exp(prior_shift g(C))``
        (``p`` = the real population), so even the control arm misrepresents the population.
    effect
        The intervention's effect on the outcome's cumulative-logit score.
    confounding
        The effect of C on the outcome's score (``age_effect``: of the stated base attribute age).
    n_nco, nco_strength
        Diagnostic NCOs (1 to 4; ``religiosity``, ``area``, ``news``, ``volunteer``), each a
        cumulative logit in ``± nco_strength g(C)``: they depend on C only.
    n_iterations
        Iterations per path after the base (1 to 4). ``targeted`` adds C at iteration 1 and then
        one irrelevant attribute per iteration; ``untargeted`` adds one irrelevant attribute per
        iteration.
    reference
        Also run the full-information reference spec (path ``reference``, iteration 0): every
        attribute the population holds is stated. It is a reference, not ground truth.
    fidelity
        The probability that a probe re-asking a stated attribute reports it as stated.
    seed
        Seed or Generator.

    Returns
    -------
    (SimLog, pandas.DataFrame)
        The log, and the truth: one row per (``model``, ``path``, ``iteration``, ``arm``,
        ``item``, ``quantity``) with ``value``. Quantities: ``true_effect`` (``tau``, the
        difference in mean outcome codes in the population where C and age follow their real
        distribution: the target of adjustment), ``expected_contrast`` (what the observed
        difference in means converges to under that iteration's spec), ``bias`` (their
        difference), ``nco_tvd`` (the exact TVD between the arms' NCO distributions, per NCO) and
        ``tvd_to_population`` (per NCO and arm: the exact TVD between the arm's NCO distribution
        and the real population's).

    Raises
    ------
    InvalidArgumentError
        An argument out of range.

    Notes
    -----
    The log's item roles: ``support`` is the primary outcome; the NCOs have role ``nco`` (never
    adjusted); ``ideology`` and the irrelevant attributes are asked by probes of role
    ``confounder``. The personas table holds each unit's stated attributes (``specified`` true)
    and the persona's real values of every other attribute, the NCOs included (``specified``
    false), so drift can be compared with the real population.

    Examples
    --------
    >>> import driftstats as ds
    >>> log, truth = ds.simulate_adjustment_log(n_personas=20, seed=1)
    >>> sorted(log.iterations["path"].unique())
    ['reference', 'targeted', 'untargeted']
    >>> t = truth.query("quantity == 'bias' and iteration == 2")
    >>> bool(abs(t.query("path == 'targeted'")["value"].iloc[0]) < 1e-12)
    True
    """
    n_personas = check_positive_int("n_personas", n_personas, minimum=5)
    n_nco = check_positive_int("n_nco", n_nco, minimum=1)
    if n_nco > len(NCO_NAMES):
        raise InvalidArgumentError(f"n_nco must be between 1 and {len(NCO_NAMES)}; got {n_nco}.")
    n_iterations = check_positive_int("n_iterations", n_iterations, minimum=1)
    if n_iterations > len(IRRELEVANT):
        raise InvalidArgumentError(f"n_iterations must be between 1 and {len(IRRELEVANT)}; got {n_iterations}.")
    models = [str(m) for m in models]
    if not models or len(set(models)) != len(models):
        raise InvalidArgumentError(f"models must be distinct names (at least one); got {models!r}.")
    gammas = np.broadcast_to(np.asarray(drift, dtype=float), (len(models),)) if np.ndim(drift) == 0 else \
        np.asarray(drift, dtype=float)
    if gammas.shape != (len(models),):
        raise InvalidArgumentError(f"drift must be one number or one per model ({len(models)}); got {drift!r}.")
    if not 0.0 <= fidelity <= 1.0:
        raise InvalidArgumentError(f"fidelity must be a probability in [0, 1]; got {fidelity!r}.")
    rng = rng_from(seed)
    zs = list(IRRELEVANT)[:n_iterations]
    ncos = list(NCO_NAMES[:n_nco])
    strengths = tuple(nco_strength * s for s in NCO_SIGNS[:n_nco])

    # the real population: one draw of personas shared by every model and run
    p_c = np.array([0.35, 0.35, 0.30])
    p_z = {z: np.full(len(IRRELEVANT[z]), 1.0 / len(IRRELEVANT[z])) for z in zs}
    age_true = rng.integers(len(AGE), size=n_personas)
    c_true = _draw(rng, np.broadcast_to(p_c, (n_personas, p_c.size)))
    z_true = {z: _draw(rng, np.broadcast_to(p_z[z], (n_personas, p_z[z].size))) for z in zs}

    worlds = {}
    for m, gamma in zip(models, gammas, strict=True):
        p0 = _tilt(p_c, prior_shift)
        implied_z = {}
        for z in zs:
            q0 = p_z[z]
            implied_z[z] = np.stack([q0, _tilt(q0, 0.8 * gamma)])
        worlds[m] = _World(effect=effect, confounding=confounding, age_effect=age_effect, p_c=p_c,
                           implied_c=np.stack([p0, _tilt(p0, gamma)]), p_z=p_z, implied_z=implied_z,
                           nco_strength=strengths)
    n_true = {j: _draw(rng, worlds[models[0]].pn(i)[c_true]) for i, j in enumerate(ncos)}

    probes = [CONFOUNDER, *zs]
    options = {CONFOUNDER: IDEOLOGY, **{z: IRRELEVANT[z] for z in zs}}
    true_value = {CONFOUNDER: c_true, **z_true}
    cols: dict[str, list[Any]] = {c: [] for c in ("study", "run_id", "iteration", "model", "unit_id", "arm", "item",
                                                  "response", "persona_id")}
    personas: dict[str, list[Any]] = {c: [] for c in ("unit_id", "attribute", "value", "specified")}
    it_rows: list[dict[str, Any]] = []
    adj_rows: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    pid = np.array([f"p{p:04d}" for p in range(n_personas)], dtype=object)

    def add_answers(run: str, it: int, model: str, units: np.ndarray, arm: str, item: str, codes: np.ndarray,
                    opts: list[str]) -> None:
        n = units.size
        cols["study"].extend([STUDY] * n)
        cols["run_id"].extend([run] * n)
        cols["iteration"].extend([it] * n)
        cols["model"].extend([model] * n)
        cols["unit_id"].extend(units.tolist())
        cols["arm"].extend([arm] * n)
        cols["item"].extend([item] * n)
        cols["response"].extend(np.asarray(opts, dtype=object)[codes].tolist())
        cols["persona_id"].extend(pid.tolist())

    def add_personas(units: np.ndarray, attribute: str, values: np.ndarray, specified: bool) -> None:
        n = units.size
        personas["unit_id"].extend(units.tolist())
        personas["attribute"].extend([attribute] * n)
        personas["value"].extend(values.tolist())
        personas["specified"].extend([specified] * n)

    for m in models:
        w = worlds[m]
        specs = _spec_paths(n_iterations, reference)
        done_runs: set[str] = set()
        previous: dict[str, list[str]] = {}
        last = {path: max(k for p, k, _, _ in specs if p == path) for path, _, _, _ in specs}
        for path, k, spec, select in specs:
            run = _run_id(m, path, k)
            stated_c = CONFOUNDER in spec
            # --- the iterations row
            fired = ["max_iterations"] if (k == last[path] and path != "reference") else []
            it_rows.append({"study": STUDY, "model": m, "path": path, "iteration": k, "run_id": run, "select": select,
                            "spec": json.dumps(spec), "units": 2 * n_personas, "rules_fired": json.dumps(fired),
                            "stopped_by": fired[0] if fired else None,
                            "stop_detail": json.dumps({"max_iterations": n_iterations}) if fired else None})
            # --- the adjustments rows (scores from the previous iteration's exact drift)
            before = previous.get(path, [])
            for attr in spec:
                status = "specified" if (attr in before or k == 0) else "added"
                source = "base" if attr == "age" else ("population" if path == "reference" else "model")
                adj_rows.append(_adjustment_row(m, path, k, attr, status, source, options, w, before))
            if k > 0:
                for attr in probes:
                    if attr not in spec:
                        adj_rows.append(_adjustment_row(m, path, k, attr, "candidate", "model", options, w, before))
            previous[path] = spec
            # --- the truth
            tau = w.true_effect()
            expected = w.expected_contrast(stated_c)
            base = {"model": m, "path": path, "iteration": k}
            truth += [{**base, "arm": "treatment", "reference": "control", "item": OUTCOME, "quantity": q, "value": v}
                      for q, v in (("true_effect", tau), ("expected_contrast", expected), ("bias", expected - tau))]
            for j, name in enumerate(ncos):
                q1, q0 = w.nco_marginal(j, 1, stated_c), w.nco_marginal(j, 0, stated_c)
                truth.append({**base, "arm": "treatment", "reference": "control", "item": name, "quantity": "nco_tvd",
                              "value": 0.5 * float(np.abs(q1 - q0).sum())})
                pop = p_c @ w.pn(j)
                for t, arm in enumerate(ARMS):
                    q = w.nco_marginal(j, t, stated_c)
                    truth.append({**base, "arm": arm, "reference": None, "item": name,
                                  "quantity": "tvd_to_population", "value": 0.5 * float(np.abs(q - pop).sum())})
            if run in done_runs:  # iteration 0 of a second path: the same run
                continue
            done_runs.add(run)
            # --- the answers and personas of the run
            for t, arm in enumerate(ARMS):
                units = np.array([f"{m}|{run}|{p}|{arm}" for p in pid], dtype=object)
                add_personas(units, "age", np.asarray(AGE, dtype=object)[age_true], True)
                c = c_true if stated_c else _draw(rng, np.broadcast_to(w.implied_c[t], (n_personas, len(IDEOLOGY))))
                implied = {CONFOUNDER: c}
                for z in zs:
                    implied[z] = z_true[z] if z in spec else _draw(
                        rng, np.broadcast_to(w.implied_z[z][t], (n_personas, len(IRRELEVANT[z]))))
                for attr in probes:
                    add_personas(units, attr, np.asarray(options[attr], dtype=object)[true_value[attr]], attr in spec)
                for name in ncos:
                    add_personas(units, name, np.asarray(NCO_OPTIONS, dtype=object)[n_true[name]], False)
                y = _draw(rng, w.py(t)[c, age_true])
                add_answers(run, k, m, units, arm, OUTCOME, y, SUPPORT)
                for j, name in enumerate(ncos):
                    add_answers(run, k, m, units, arm, name, _draw(rng, w.pn(j)[c]), NCO_OPTIONS)
                for attr in probes:
                    kk = len(options[attr])
                    said = implied[attr].copy()
                    if attr in spec and kk > 1:  # a stated attribute is re-asked: reported as stated w.p. fidelity
                        wrong = rng.random(n_personas) >= fidelity
                        shift = rng.integers(1, kk, size=n_personas)
                        said = np.where(wrong, (said + shift) % kk, said)
                    add_answers(run, k, m, units, arm, attr, said, options[attr])
    items = [{"item": OUTCOME, "text": "Do you favor the policy in the essay?", "options": SUPPORT, "scale": "ordinal",
              "role": "primary", "attribute": None}]
    items += [{"item": n, "text": f"How often: {n}?", "options": NCO_OPTIONS, "scale": "ordinal", "role": "nco",
               "attribute": None} for n in ncos]
    items += [{"item": a, "text": f"Your {a}?", "options": options[a],
               "scale": "ordinal" if a == CONFOUNDER else "nominal", "role": "confounder", "attribute": a}
              for a in probes]
    arms = pd.DataFrame({"arm": list(ARMS), "kind": ["control", "treatment"],
                         "intervention": ["A notice about library opening hours.", "An essay for the policy."]})
    log = read_log({"answers": pd.DataFrame(cols), "items": pd.DataFrame(items), "personas": pd.DataFrame(personas),
                    "arms": arms, "iterations": pd.DataFrame(it_rows), "adjustments": pd.DataFrame(adj_rows)})
    return log, pd.DataFrame(truth)


def _adjustment_row(model: str, path: str, iteration: int, attr: str, status: str, source: str,
                    options: dict[str, list[str]], w: _World, before: list[str]) -> dict[str, Any]:
    """One adjustments row; the score is the exact drift of ``attr`` at the previous iteration times its
    association with the outcome."""
    score = detail = None
    if status in ("added", "candidate") and attr in options:
        if attr == CONFOUNDER:
            imp = w.implied_c if attr not in before else np.stack([w.p_c, w.p_c])
            assoc = abs(w.confounding)
        else:
            imp = w.implied_z[attr] if attr not in before else np.stack([w.p_z[attr]] * 2)
            assoc = 0.0
        drift = 0.5 * float(np.abs(imp[1] - imp[0]).sum())
        score, detail = drift * assoc, json.dumps({"drift": drift, "association": assoc})
    probe = attr in options
    return {"study": STUDY, "model": model, "path": path, "iteration": iteration, "attribute": attr, "status": status,
            "source": source, "score": score, "score_detail": detail,
            "values_from": "population" if status in ("added", "specified") else None,
            "item": attr if probe else None, "question": f"Your {attr}?" if probe else None,
            "options": json.dumps(options[attr]) if probe else None, "raw": None, "note": None}
