"""Simulated NCO logs with a chosen total variation distance between arms."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from driftstats._args import check_positive_int, rng_from
from driftstats.errors import InvalidArgumentError
from driftstats.log.simlog import SimLog, read_log

__all__ = ["simulate_nco_log", "tilt_categorical"]


def tilt_categorical(q0: np.ndarray, tvd: float) -> np.ndarray:
    """The distribution ``(1 - c) q0 + c e_0`` at total variation distance ``tvd`` from ``q0``.

    ``c = tvd / (1 - q0[0])``, so ``TV(q0, q1) = tvd`` exactly; works row-wise on a
    ``(..., K)`` array and needs ``tvd <= 1 - q0[..., 0]``.
    """
    q0 = np.asarray(q0, dtype=float)
    room = 1.0 - q0[..., :1]
    if np.any(tvd > room + 1e-12):
        raise InvalidArgumentError(f"tvd={tvd} is larger than 1 - q0[0] = {float(room.min()):.3g}; cannot tilt that far.")
    c = np.where(room > 0, tvd / np.where(room > 0, room, 1.0), 0.0)
    e0 = np.zeros_like(q0)
    e0[..., 0] = 1.0
    return (1 - c) * q0 + c * e0


def simulate_nco_log(
    *,
    n_per_arm: int = 200,
    n_levels: int = 5,
    tvd: float | Sequence[float] = 0.0,
    n_nco: int = 3,
    q0: Sequence[float] | None = None,
    arms: Sequence[str] = ("control", "treatment"),
    paired: bool = False,
    concentration: float = 2.0,
    iterations: int = 1,
    n_numeric: int = 0,
    numeric_shift: float = 0.0,
    mode: str = "sample",
    replicates: int = 1,
    seed: int | np.random.Generator | None = None,
) -> SimLog:
    """A log of NCO answers whose arms differ by a known TVD.

    Parameters
    ----------
    n_per_arm, n_levels, n_nco
        Units per arm, levels of every (ordinal) NCO, number of NCOs.
    tvd
        True TVD between the first arm and every other arm, per NCO (scalar or one per NCO).
    q0
        Level distribution in the first arm (default uniform).
    paired
        Same persona in every arm (``persona_id``); each persona has its own level
        distribution ``q_p ~ Dirichlet(concentration * q0)``, so answers are correlated
        within persona and the marginal TVD is still exactly ``tvd``. Without pairing every
        unit has its own ``persona_id``.
    iterations
        Adjustment iterations (independent replicates of the design, ``iteration`` 0..).
    n_numeric, numeric_shift
        Numeric NCOs (``stated_age_j``, Normal(45, 15)) shifted by ``numeric_shift`` in
        every arm but the first.
    mode
        ``"sample"``: one sampled answer per unit and NCO; ``"dist"``: each unit reports a
        probability vector ``~ Dirichlet(concentration * q)`` (its mean is the arm's ``q``).
    replicates
        Sampled answers per unit and categorical NCO (``replicate`` 0..R-1), drawn independently
        from the unit's distribution (mode ``"sample"`` only).
    seed
        Seed or Generator.

    Returns
    -------
    SimLog
        A validated log with the NCO items (role ``nco``) and the arms (the first is the control).

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_nco_log(n_per_arm=10, n_nco=1, replicates=3, seed=1)
    >>> log.n_rows
    60
    """
    rng = rng_from(seed)
    n_per_arm = check_positive_int("n_per_arm", n_per_arm, minimum=2)
    n_levels = check_positive_int("n_levels", n_levels, minimum=2)
    if mode not in ("sample", "dist"):
        raise InvalidArgumentError(f"mode must be 'sample' or 'dist'; got {mode!r}.")
    replicates = check_positive_int("replicates", replicates, minimum=1)
    if replicates > 1 and mode != "sample":
        raise InvalidArgumentError(f"replicates={replicates} needs mode='sample' (got mode={mode!r}); "
                                   "distribution-mode answers are not replicated.")
    tv = np.broadcast_to(np.asarray(tvd, dtype=float), (n_nco,))
    base = np.full(n_levels, 1.0 / n_levels) if q0 is None else np.asarray(q0, float) / np.sum(q0)
    if base.size != n_levels:
        raise InvalidArgumentError(f"q0 has {base.size} entries but n_levels={n_levels}.")
    options = [f"L{k + 1}" for k in range(n_levels)]
    cols: dict[str, list] = {c: [] for c in ("iteration", "unit_id", "persona_id", "arm", "item", "mode",
                                               "response", "prob", "replicate")}

    def add(it: int, unit: str, persona: str, arm: str, item: str, resp: str, prob: float | None,
            rep: int = 0) -> None:
        cols["iteration"].append(it)
        cols["unit_id"].append(unit)
        cols["persona_id"].append(persona)
        cols["arm"].append(arm)
        cols["item"].append(item)
        cols["mode"].append(mode)
        cols["response"].append(resp)
        cols["prob"].append(prob)
        cols["replicate"].append(rep)

    def persona_of(it: int, p: int, arm: str) -> str:
        return f"i{it}-p{p}" if paired else f"i{it}-p{p}-{arm}"

    for it in range(iterations):
        for j in range(n_nco):
            item = f"nco_{j + 1}"
            if paired:
                qp = rng.dirichlet(concentration * n_levels * base, size=n_per_arm)
            for a_i, arm in enumerate(arms):
                t = 0.0 if a_i == 0 else float(tv[j])
                if paired:
                    # one mixing weight for every persona: E[q1_p] = tilt(q0), so the marginal TV is t
                    c = t / (1.0 - base[0])
                    q = (1 - c) * qp + c * np.eye(n_levels)[0]
                else:
                    q = np.broadcast_to(tilt_categorical(base, t), (n_per_arm, n_levels))
                if mode == "sample":
                    for rep in range(replicates):
                        u = rng.random((n_per_arm, 1))
                        codes = (u > np.cumsum(q, axis=1)).sum(axis=1).clip(max=n_levels - 1)
                        for p in range(n_per_arm):
                            add(it, f"i{it}-p{p}-{arm}", persona_of(it, p, arm), arm, item, options[codes[p]], None, rep)
                else:
                    probs = np.stack([rng.dirichlet(concentration * n_levels * row + 1e-6) for row in q])
                    probs = probs / probs.sum(axis=1, keepdims=True)
                    for p in range(n_per_arm):
                        for k in range(n_levels):
                            add(it, f"i{it}-p{p}-{arm}", persona_of(it, p, arm), arm, item, options[k],
                                float(probs[p, k]))
        for j in range(n_numeric):
            item = f"stated_age_{j + 1}"
            for a_i, arm in enumerate(arms):
                x = rng.normal(45 + (numeric_shift if a_i else 0.0), 15, size=n_per_arm).round()
                for p in range(n_per_arm):
                    cols["iteration"].append(it)
                    cols["unit_id"].append(f"i{it}-p{p}-{arm}")
                    cols["persona_id"].append(persona_of(it, p, arm))
                    cols["arm"].append(arm)
                    cols["item"].append(item)
                    cols["mode"].append("sample")
                    cols["response"].append(str(int(x[p])))
                    cols["prob"].append(None)
                    cols["replicate"].append(0)
    answers = pd.DataFrame(cols)
    answers["study"] = "simulated"
    answers["model"] = "simulator"
    answers["role"] = "nco"
    items = [{"item": f"nco_{j + 1}", "text": f"Simulated NCO {j + 1}", "options": options, "scale": "ordinal",
              "role": "nco"} for j in range(n_nco)]
    items += [{"item": f"stated_age_{j + 1}", "text": "Stated age", "options": None, "scale": "numeric",
               "role": "nco"} for j in range(n_numeric)]
    arm_table = pd.DataFrame({"arm": list(arms), "kind": ["control"] + ["treatment"] * (len(arms) - 1)})
    return read_log(answers, items=pd.DataFrame(items), arms=arm_table)
