"""A complete simulated study log: paired personas, control/treatment/placebo arms, a primary
outcome, NCOs and fidelity probes, with planted drift of known size (for tests, docs, notebooks)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftstats._args import rng_from
from driftstats.log.simlog import SimLog, read_log

__all__ = ["simulate_study_log"]

PARTY = ["Democrat", "Independent", "Republican"]
AGE = ["18-29", "30-44", "45-64", "65+"]
SUPPORT = ["Strongly oppose", "Oppose", "Neither", "Favor", "Strongly favor"]
NCOS = {
    "education": ["High school or less", "Some college", "College degree", "Graduate degree"],
    "income": ["Under $30k", "$30k-$50k", "$50k-$75k", "$75k+"],
    "religion": ["Never", "Yearly", "Monthly", "Weekly"],
    "area": ["City", "Suburb", "Town", "Rural"],
}


def _draw(rng: np.random.Generator, p: np.ndarray) -> int:
    return int(rng.choice(p.size, p=p / p.sum()))


def simulate_study_log(
    *,
    n_per_arm: int = 300,
    n_placebo: int = 2,
    drift: float = 0.8,
    effect: float = 0.6,
    placebo_drift: float = 0.1,
    fidelity: tuple[float, float] = (0.9, 0.75),
    iterations: int = 1,
    drift_decay: float = 0.5,
    seed: int | np.random.Generator | None = 0,
) -> SimLog:
    """Simulate the log of a paired persona study with user drift.

    Each persona has a party and an age band (specified) and a latent type ``u`` in -1..1
    (e.g. progressive to conservative). In the treatment arm the implied latent type shifts by
    ``drift`` (user drift); placebo arms shift by ``placebo_drift`` (response style). The
    outcome ``support_tax`` depends on ``u`` and on the treatment (true effect ``effect`` on
    the latent score scale); the NCOs depend on ``u`` only; fidelity items re-ask party and age
    band, answered correctly with probability ``fidelity`` = (control, treatment). With
    ``iterations > 1`` the drift shrinks by ``drift_decay`` per adjustment iteration.
    """
    rng = rng_from(seed)
    arms = ["control", "treatment", *[f"placebo_{j + 1}" for j in range(n_placebo)]]
    kinds = ["control", "treatment", *["placebo"] * n_placebo]
    rows, personas = [], []
    for it in range(iterations):
        d_it = drift * drift_decay**it
        for p in range(n_per_arm):
            party = int(rng.integers(3))
            age = int(rng.integers(4))
            base_u = np.clip(rng.normal((party - 1) * 0.5, 0.5), -2, 2)
            for a, kind in zip(arms, kinds, strict=True):
                shift = {"control": 0.0, "treatment": -d_it}.get(kind, rng.choice([-1, 1]) * placebo_drift)
                u = base_u + shift + rng.normal(0, 0.3)
                unit = f"i{it}-p{p:04d}-{a}"
                persona = f"i{it}-p{p:04d}"
                personas += [{"unit_id": unit, "attribute": "party", "value": PARTY[party], "specified": True},
                             {"unit_id": unit, "attribute": "age", "value": AGE[age], "specified": True}]
                score = -0.9 * u + (effect if kind == "treatment" else 0.0)
                cuts = np.array([-1.5, -0.5, 0.5, 1.5])
                py = np.diff(np.r_[0, 1 / (1 + np.exp(-(cuts - score))), 1])
                answers = {"support_tax": SUPPORT[_draw(rng, py)]}
                for j, (name, opts) in enumerate(NCOS.items()):
                    s = (0.8 if j % 2 == 0 else -0.6) * u
                    pn = np.diff(np.r_[0, 1 / (1 + np.exp(-(np.array([-1.0, 0.0, 1.0]) - s))), 1])
                    answers[name] = opts[_draw(rng, pn)]
                fid = fidelity[1] if kind == "treatment" else fidelity[0]
                answers["party_check"] = PARTY[party] if rng.random() < fid else PARTY[(party + 1 + int(rng.integers(2))) % 3]
                answers["age_check"] = AGE[age] if rng.random() < fid else AGE[(age + 1 + int(rng.integers(3))) % 4]
                for item, resp in answers.items():
                    rows.append({"iteration": it, "unit_id": unit, "persona_id": persona, "arm": a, "item": item,
                                 "response": resp, "model": "simulator", "study": "simulated_study"})
    items = [{"item": "support_tax", "text": "Do you favor raising taxes on the wealthy?", "options": SUPPORT,
              "scale": "ordinal", "role": "primary"}]
    items += [{"item": n, "text": f"Your {n}?", "options": o, "scale": "ordinal" if n != "area" else "nominal",
               "role": "nco"} for n, o in NCOS.items()]
    items += [{"item": "party_check", "text": "Your party?", "options": PARTY, "scale": "nominal", "role": "fidelity",
               "attribute": "party"},
              {"item": "age_check", "text": "Your age?", "options": AGE, "scale": "ordinal", "role": "fidelity",
               "attribute": "age"}]
    arm_table = pd.DataFrame({"arm": arms, "kind": kinds,
                              "intervention": ["Library hours.", "Essay for taxing the rich.",
                                               *[f"Sham text {j + 1}." for j in range(n_placebo)]]})
    return read_log(pd.DataFrame(rows), items=pd.DataFrame(items), personas=pd.DataFrame(personas), arms=arm_table)
