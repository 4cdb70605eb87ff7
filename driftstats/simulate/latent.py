"""A simulated LLM population with known latent attributes (methods.md section 6).

:class:`LatentWorld` holds the exact quantities of methods section 2: latent types ``u``
with arm-specific implied populations ``p_t(u)`` (a drift tilt ``p_1 ∝ p_0 exp(gamma g(u))``),
outcome distributions ``P(Y | t, u)`` and means ``mu_t(u)``, an NCO ``N | U``, a
treatment-independent proxy ``Z | U``, and optional explicit selection ``P(S=1 | t, u, y)``.
From it come exact decompositions, exact population tables and sampled logs.

:func:`simulate_proxy_data` is a linear structural model with a continuous confounder and
two proxies of each kind, for proximal 2SLS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from driftstats._args import rng_from
from driftstats.errors import InvalidArgumentError
from driftstats.log.simlog import SimLog, read_log

__all__ = ["LatentWorld", "simulate_latent_world", "simulate_placebo_log", "simulate_proxy_data"]


def _ordinal_probs(score: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Cumulative-logit probabilities ``P(Y = k)`` for each row of ``score`` (..., K)."""
    cdf = expit(cuts[None, :] - score[:, None])
    cdf = np.concatenate([np.zeros((score.size, 1)), cdf, np.ones((score.size, 1))], axis=1)
    return np.diff(cdf, axis=1)


@dataclass(frozen=True)
class LatentWorld:
    p: np.ndarray  # (2, U) implied populations p_0, p_1
    py: np.ndarray  # (2, U, Ky) P(Y = y | t, u)
    pn: np.ndarray  # (U, Kn) P(N = n | u)
    pz: np.ndarray  # (U, Kz) P(Z = z | u)
    ps: np.ndarray  # (2, U, Ky) P(S = 1 | t, u, y)
    arm_share: float = 0.5  # pi_1

    @property
    def n_types(self) -> int:
        return self.p.shape[1]

    @property
    def y_values(self) -> np.ndarray:
        return np.arange(self.py.shape[2], dtype=float)

    @property
    def mu(self) -> np.ndarray:
        """``mu_t(u) = E[Y | t, u]`` (no selection), shape (2, U)."""
        return self.py @ self.y_values

    @property
    def nu(self) -> np.ndarray:
        """``nu(u) = E[N | u]``."""
        return self.pn @ np.arange(self.pn.shape[1], dtype=float)

    @property
    def retention(self) -> np.ndarray:
        """``s_t(u) = P(S = 1 | t, u)``, shape (2, U)."""
        return (self.py * self.ps).sum(axis=2)

    @property
    def p_selected(self) -> np.ndarray:
        """``p_t^S(u)``: the composition of retained users."""
        w = self.p * self.retention
        return w / w.sum(axis=1, keepdims=True)

    @property
    def mu_selected(self) -> np.ndarray:
        """``mu_t^S(u) = E[Y | t, u, S = 1]``."""
        num = (self.py * self.ps) @ self.y_values
        return num / self.retention

    @property
    def p_pooled(self) -> np.ndarray:
        return self.arm_share * self.p[1] + (1 - self.arm_share) * self.p[0]

    def tau(self, pi: np.ndarray) -> float:
        return float(pi @ (self.mu[1] - self.mu[0]))

    def population_table(self) -> pd.DataFrame:
        """The exact joint distribution of (arm, z, w = N, y) after marginalising U, as weighted rows."""
        rows = []
        share = [1 - self.arm_share, self.arm_share]
        for t in (0, 1):
            for z in range(self.pz.shape[1]):
                for w in range(self.pn.shape[1]):
                    for y in range(self.py.shape[2]):
                        weight = share[t] * np.sum(self.p[t] * self.pz[:, z] * self.pn[:, w] * self.py[t, :, y])
                        rows.append({"t": t, "z": z, "w": w, "y": y, "weight": float(weight)})
        return pd.DataFrame(rows)

    def sample_units(self, n_per_arm: int, *, seed: int | np.random.Generator | None = None,
                     select: bool = False) -> pd.DataFrame:
        """One row per simulated user: ``t, u, y, n, z`` and ``s`` (retained)."""
        rng = rng_from(seed)
        parts = []
        for t in (0, 1):
            u = rng.choice(self.n_types, size=n_per_arm, p=self.p[t])
            y = (rng.random((n_per_arm, 1)) > np.cumsum(self.py[t, u], axis=1)).sum(axis=1)
            n = (rng.random((n_per_arm, 1)) > np.cumsum(self.pn[u], axis=1)).sum(axis=1)
            z = (rng.random((n_per_arm, 1)) > np.cumsum(self.pz[u], axis=1)).sum(axis=1)
            s = rng.random(n_per_arm) < self.ps[t, u, y]
            parts.append(pd.DataFrame({"t": t, "u": u, "y": y, "n": n, "z": z, "s": s}))
        frame = pd.concat(parts, ignore_index=True)
        return frame[frame["s"]].reset_index(drop=True) if select else frame

    def sample_log(self, n_per_arm: int, *, seed: int | np.random.Generator | None = None,
                   arms: tuple[str, str] = ("control", "treatment")) -> SimLog:
        """A log with items ``y`` (primary), ``n`` (nco), ``z`` (proxy) and latent persona ``u``.

        Non-retained users (``S = 0``) get ``valid = false`` rows for ``y`` ("refused").
        """
        units = self.sample_units(n_per_arm, seed=seed)
        rows = []
        for i, r in enumerate(units.itertuples(index=False)):
            unit = f"u{i:05d}"
            arm = arms[r.t]
            for item, val in (("y", r.y), ("n", r.n), ("z", r.z)):
                ok = bool(r.s) or item != "y"
                rows.append({"unit_id": unit, "arm": arm, "item": item, "response": str(val) if ok else None,
                             "valid": ok, "error": None if ok else "refused (simulated selection)"})
        items = pd.DataFrame([
            {"item": "y", "options": [str(k) for k in range(self.py.shape[2])], "scale": "ordinal", "role": "primary"},
            {"item": "n", "options": [str(k) for k in range(self.pn.shape[1])], "scale": "ordinal", "role": "nco"},
            {"item": "z", "options": [str(k) for k in range(self.pz.shape[1])], "scale": "ordinal", "role": "proxy"},
        ])
        personas = pd.DataFrame({"unit_id": [f"u{i:05d}" for i in range(len(units))], "attribute": "u",
                                 "value": units["u"].astype(str).to_numpy(), "specified": False})
        arm_t = pd.DataFrame({"arm": list(arms), "kind": ["control", "treatment"]})
        return read_log(pd.DataFrame(rows), items=items, personas=personas, arms=arm_t)


def simulate_latent_world(
    *,
    n_types: int = 6,
    gamma: float = 0.8,
    effect: float = 0.5,
    beta: float = 1.0,
    n_levels: int = 5,
    nco_levels: int = 4,
    nco_strength: float = 1.0,
    proxy_levels: int | None = None,
    equi_confounding: bool = False,
    selection: float = 0.0,
    selection_on_y: float = 0.0,
    arm_share: float = 0.5,
    seed: int | np.random.Generator | None = 0,
) -> LatentWorld:
    """Build a :class:`LatentWorld`.

    Latent types ``u = 0..n_types-1`` with score ``g(u)`` evenly spaced in [-1, 1]; ``p_0``
    drawn from Dirichlet(2), ``p_1 ∝ p_0 exp(gamma g)``. Outcome: cumulative logit with score
    ``beta g(u) + effect * t`` over ``n_levels`` levels. NCO: cumulative logit with score
    ``nco_strength * g(u)``; with ``equi_confounding=True`` the NCO is instead built so that
    ``mu_0(u) - nu(u)`` is constant (additive equi-confounding holds exactly, ``nco_levels``
    is then ``n_levels``). Proxy Z: ``proxy_levels`` levels (default ``n_types``) with an
    invertible ``P(Z | U)``. Selection: ``P(S=1|t,u,y) = expit(2 + selection*t*g(u) + selection_on_y*(y - mean))``.
    """
    rng = rng_from(seed)
    if n_types < 2:
        raise InvalidArgumentError("n_types must be >= 2")
    g = np.linspace(-1, 1, n_types)
    p0 = rng.dirichlet(np.full(n_types, 2.0))
    p1 = p0 * np.exp(gamma * g)
    p1 /= p1.sum()
    cuts_y = np.linspace(-1.5, 1.5, n_levels - 1)
    py = np.stack([_ordinal_probs(beta * g + effect * t, cuts_y) for t in (0, 1)])
    if equi_confounding:
        # N distributed like Y(0) shifted... simplest exact construction: N | u ~ Y | (t=0, u)
        pn = py[0].copy()
    else:
        pn = _ordinal_probs(nco_strength * g, np.linspace(-1.0, 1.0, nco_levels - 1))
    kz = proxy_levels or n_types
    pz = 0.6 * np.eye(n_types, kz) + 0.4 / kz if kz == n_types else _ordinal_probs(1.5 * g, np.linspace(-1, 1, kz - 1))
    pz = pz / pz.sum(axis=1, keepdims=True)
    yc = np.arange(n_levels) - (n_levels - 1) / 2
    ps = np.stack([expit(2.0 + selection * t * g[:, None] + selection_on_y * yc[None, :]) for t in (0, 1)])
    return LatentWorld(p=np.stack([p0, p1]), py=py, pn=pn, pz=pz, ps=ps, arm_share=arm_share)


def simulate_proxy_data(
    n: int = 2000,
    *,
    tau: float = 1.0,
    confounding: float = 1.0,
    proxy_strength: float = 1.0,
    n_w: int = 2,
    n_z: int = 2,
    n_u: int = 1,
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Linear proximal model with ``n_u`` independent confounders ``U_1..U_{n_u} ~ N(0, 1)``.

    ``T ~ Bernoulli(expit(confounding * Ubar))`` with ``Ubar = sum_k U_k / sqrt(n_u)``;
    ``W_j = proxy_strength * U_{(j-1) mod n_u + 1} + e``, ``Z_j = proxy_strength * U_{(j-1) mod n_u + 1} + e``
    (independent errors), ``X ~ N(0,1)``, ``Y = tau*T + sum_k U_k + 0.5*X + e``. Columns
    ``y, t, x, w1.., z1.., u`` (``u`` = ``U_1``; ``u1..`` when ``n_u > 1``). ``tau`` is the true effect.

    With ``n_u = 1`` (the default) every proxy measures the same scalar U: one W (and one Z) identify
    the effect, but **two W with two Z are jointly under-identified** (the first-stage coefficient
    matrix has rank 1, although each W's own first-stage F is large). ``n_u = n_w`` gives each
    W its own confounder and a full-rank first stage.

    Examples
    --------
    >>> import driftstats as ds
    >>> ds.simulate_proxy_data(5, n_u=2, seed=1).columns.tolist()
    ['y', 't', 'x', 'w1', 'w2', 'z1', 'z2', 'u1', 'u2']
    """
    if not isinstance(n_u, (int, np.integer)) or n_u < 1:
        raise InvalidArgumentError(f"n_u must be an integer >= 1; got {n_u!r}.")
    rng = rng_from(seed)
    u = rng.normal(size=(n, n_u)) if n_u > 1 else rng.normal(size=n)[:, None]
    x = rng.normal(size=n)
    ubar = u.sum(axis=1) / np.sqrt(n_u)
    t = (rng.random(n) < expit(confounding * ubar)).astype(float)
    out = {"y": tau * t + u.sum(axis=1) + 0.5 * x + rng.normal(size=n), "t": t, "x": x}
    for j in range(n_w):
        out[f"w{j + 1}"] = proxy_strength * u[:, j % n_u] + rng.normal(size=n)
    for j in range(n_z):
        out[f"z{j + 1}"] = proxy_strength * u[:, j % n_u] + rng.normal(size=n)
    if n_u == 1:
        out["u"] = u[:, 0]
    else:
        for k in range(n_u):
            out[f"u{k + 1}"] = u[:, k]
    return pd.DataFrame(out)


def simulate_placebo_log(
    *,
    n_placebo: int = 20,
    n_per_arm: int = 100,
    effect: float = 0.5,
    bias_mean: float = 0.0,
    bias_sd: float = 0.1,
    treatment_bias: float | None = None,
    paired: bool = False,
    persona_sd: float = 0.0,
    seed: int | np.random.Generator | None = None,
) -> SimLog:
    """A log with a control, a treatment and ``n_placebo`` placebo arms of a numeric outcome ``y``.

    Each non-control arm ``a`` has a systematic error ``b_a ~ N(bias_mean, bias_sd^2)`` (the
    treatment arm's is ``treatment_bias`` when given); outcomes are
    ``y ~ N(b_a + effect * [a is treatment] + p_i, 1)`` with a persona effect
    ``p_i ~ N(0, persona_sd^2)``. The true treatment effect is ``effect``; placebo arms have true
    effect 0. ``paired=True`` instantiates the same ``n_per_arm`` personas in every arm (units share
    a ``persona_id``); otherwise every unit is its own persona. Every contrast with the control
    shares the control arm's mean (their errors are correlated).

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_placebo_log(n_placebo=3, n_per_arm=10, paired=True, seed=1)
    >>> sorted(log.arms_of_kind("placebo"))
    ['placebo_01', 'placebo_02', 'placebo_03']
    """
    rng = rng_from(seed)
    arms = ["control", "treatment", *[f"placebo_{j + 1:02d}" for j in range(n_placebo)]]
    kinds = ["control", "treatment", *["placebo"] * n_placebo]
    def persona_effects() -> np.ndarray:  # no draws when persona_sd = 0 (keeps the default stream)
        return rng.normal(0.0, persona_sd, n_per_arm) if persona_sd > 0 else np.zeros(n_per_arm)

    shared = persona_effects() if paired else None
    rows = []
    for a, kind in zip(arms, kinds, strict=True):
        b = 0.0 if kind == "control" else rng.normal(bias_mean, bias_sd)
        if kind == "treatment" and treatment_bias is not None:
            b = treatment_bias
        mean = b + (effect if kind == "treatment" else 0.0)
        y = rng.normal(mean, 1.0, n_per_arm)
        y = (y + (shared if shared is not None else persona_effects())).round(3)
        rows += [{"unit_id": f"{a}-{i}", "arm": a, "item": "y", "response": str(v),
                  **({"persona_id": f"p{i:04d}"} if paired else {})} for i, v in enumerate(y)]
    items = pd.DataFrame([{"item": "y", "options": None, "scale": "numeric", "role": "primary"}])
    return read_log(pd.DataFrame(rows), items=items, arms=pd.DataFrame({"arm": arms, "kind": kinds}))
