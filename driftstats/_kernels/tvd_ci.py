"""The valid confidence interval for the TVD between two arms (methods.md 3.2a): one entry point.

Every engine and verb that reports the *valid* TVD interval (``conf_low`` / ``conf_high`` of a
drift row) calls :func:`tvd_conf_int` (unit-level share vectors) or :func:`tvd_conf_int_counts`
(count tables of sampled answers), so the method lives in one place. The equivalence tests
(:mod:`driftstats._kernels.equiv`) use the same event statistics and bounds, so an equivalence
test's upper bound is this interval's upper bound (same data, same bound).

Interface (stable; the method behind it may change):

* ``x1``: ``(n1, K)`` unit share vectors of arm 1 (each row sums to 1: one-hot for a sampled
  answer, option probabilities in distribution mode, replicate averages); ``x0``: ``(n0, K)``.
* ``paired=True``: row i of ``x1`` and row i of ``x0`` are one matched pair (``n1 == n0``).
* returns ``(conf_low, conf_high)`` with ``0 <= conf_low <= conf_high <= 1``.

Method: a score-type band over events
-------------------------------------
``TV = max_A D(A)`` over events ``A`` (sets of levels), ``D(A) = Q1(A) - Q0(A)``. Each event
difference gets a *score* interval, continuity-corrected: Miettinen-Nurminen for independent
arms, Tango for matched pairs. Score intervals take their variance at the hypothesised value,
so they cannot collapse when a level is empty (a Wald interval does, and then covers nothing);
the continuity correction (half a lattice step of the difference) keeps the coverage of these
discrete statistics above, rather than around, the nominal level.

* Upper bound at level ``1 - a``: ``max_A U_A(z_{1-a})`` with the *pointwise* critical value.
  It is valid because ``TV = D(A*)`` for the true maximising event ``A* = {k: q1k > q0k}`` and
  ``max_A U_A >= U_{A*}``.
* Lower bound at level ``1 - a``: ``max_A L_A(c)`` needs ``L_A <= TV`` for every event at once.
  ``c`` is the ``1 - a`` quantile of ``sup_{A in V} Z(A) / sd(A)`` under the Gaussian law of the
  event differences (sup-t; Montiel Olea & Plagborg-Moller 2019), over the events ``V`` that may
  be near-maximisers: adaptive inequality selection of Chernozhukov, Lee & Rosen (2013) with
  their pre-test level ``1 - 0.1 / log n``.
* Two-sided ``conf_level = 1 - alpha``: each side at ``1 - alpha / 2``.

:func:`tvd_conf_int_tables` computes the interval for many count tables at once.

Critical values come from ``N_DRAWS`` fixed draws (seed ``DRAW_SEED + K``): the interval is
deterministic. With ``K > MAX_EVENT_LEVELS`` levels (``2^K - 2`` events are too many) the band
runs over the levels at the Bonferroni level ``1 - a / K`` and
``TV in [sum_k (L_k)_+, sum_k (U_k)_+]`` (valid, conservative).

Units that are not one-hot (distribution mode, replicate averages) enter through an effective
sample size per arm and event, ``n p (1 - p) / s^2`` (``s^2`` the unbiased variance) clipped to ``[n, n^2]`` (Korn & Graubard
1998), and the critical values then come from Student t with ``n - 1`` degrees of freedom (a
multivariate t for the sup), since the dispersion is estimated; one-hot data give exactly the
binomial score methods. For pairs, the within-pair differences ``w = x1(A) - x0(A)`` enter
through their positive and negative parts (a trinomial whose variance bounds theirs), with the
same effective-size device.

References
----------
Miettinen & Nurminen (1985), doi:10.1002/sim.4780040211. Tango (1998),
doi:10.1002/(SICI)1097-0258(19980430)17:8<891::AID-SIM780>3.0.CO;2-B. Chernozhukov, Lee & Rosen
(2013), doi:10.3982/ECTA8718. Montiel Olea & Plagborg-Moller (2019), doi:10.1002/jae.2656.
Korn & Graubard (1998), Survey Methodology 24(2):193-201.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy import special

__all__ = [
    "DRAW_SEED",
    "MAX_EVENT_LEVELS",
    "N_DRAWS",
    "EventStats",
    "event_stats",
    "event_stats_counts",
    "lower_bound",
    "method_name",
    "quantile",
    "reference_cdf",
    "score_statistic",
    "score_upper",
    "tvd_conf_int",
    "tvd_conf_int_counts",
    "tvd_conf_int_tables",
    "upper_bound",
]

#: Up to this many levels the band runs over all ``2^K - 2`` events; above it, over levels.
MAX_EVENT_LEVELS = 10
#: Draws for the sup-t critical values, and their fixed seed (the interval is deterministic).
N_DRAWS = 4000
DRAW_SEED = 20190713
_TOL, _MAX_ITER = 1e-10, 80  # root finding: bracket width, iterations


def method_name(n_levels: int) -> str:
    """How the interval is computed for ``n_levels`` levels (for result metadata and docs)."""
    if n_levels > MAX_EVENT_LEVELS:
        return "score band over levels (Bonferroni) projected on the TVD"
    return "score band over events (pointwise upper bound; sup-t lower bound with inequality selection)"


# --------------------------------------------------------------------------- event layout
@lru_cache(maxsize=64)
def _event_matrix(k: int, level_wise: bool) -> np.ndarray:
    """``(E, K)`` 0/1 event indicators, ordered so that event ``e + E/2`` is the complement of ``e``."""
    if level_wise:
        half = np.eye(k)
    else:
        codes = np.arange(1, 2 ** (k - 1))  # nonempty subsets of the first K - 1 levels
        half = ((codes[:, None] >> np.arange(k)[None, :]) & 1).astype(float)
    return np.vstack([half, 1.0 - half])


@lru_cache(maxsize=64)
def _normal_draws(k: int) -> np.ndarray:
    """``(K, N_DRAWS)`` fixed standard normal draws (float32) for the sup-t critical values."""
    return np.random.default_rng(DRAW_SEED + k).standard_normal((k, N_DRAWS)).astype(np.float32)


@lru_cache(maxsize=256)
def _t_scale(df: float) -> np.ndarray:
    """``sqrt(df / chi2_df)`` per draw: turns the Gaussian draws into multivariate t draws."""
    chi2 = np.random.default_rng(DRAW_SEED - 1).chisquare(df, N_DRAWS)
    return np.sqrt(df / chi2).astype(np.float32)


@dataclass(frozen=True, slots=True)
class EventStats:
    """Score-test inputs of every event ``A`` (last axis; complements in the second half).

    Independent arms: effective successes ``a1``, ``a0`` out of effective sizes ``m1``, ``m0``.
    Pairs: effective positive and negative parts ``a1`` (``b``), ``a0`` (``c``) out of ``m1``
    pairs (``m0 = m1``). ``d``: the observed event differences. Leading axes (if any) index
    separate tables (the power simulation uses them); ``cov`` (single tables only) is the
    regularised covariance of the ``K`` share differences, for the sup-t critical values.
    ``df``: degrees of freedom of the reference distribution (``inf``: normal).
    ``correction``: continuity correction of the score statistics.
    """

    paired: bool
    n_levels: int
    level_wise: bool
    d: np.ndarray
    a1: np.ndarray
    m1: np.ndarray
    a0: np.ndarray
    m0: np.ndarray
    n_min: int
    cov: np.ndarray | None = None
    df: float = math.inf
    correction: bool = True

    @property
    def events(self) -> np.ndarray:
        return _event_matrix(self.n_levels, self.level_wise)

    @property
    def cc(self) -> np.ndarray:
        """Continuity correction of each event difference: half its lattice step."""
        if not self.correction:
            return np.zeros_like(self.d)
        if self.paired:
            return 0.5 / self.m1
        return 0.5 * (1.0 / self.m1 + 1.0 / self.m0)

    def take(self, idx: np.ndarray) -> EventStats:
        """The statistics of events ``idx`` (last axis)."""
        return replace(self, d=self.d[..., idx], a1=self.a1[..., idx], m1=self.m1[..., idx],
                       a0=self.a0[..., idx], m0=self.m0[..., idx])

    def flat(self) -> EventStats:
        """The same statistics as a ``(tables, events)`` array."""
        def two(v: np.ndarray) -> np.ndarray:
            v = np.asarray(v, dtype=np.float64)
            return v.reshape(-1, v.shape[-1])

        return replace(self, d=two(self.d), a1=two(self.a1), m1=two(self.m1), a0=two(self.a0), m0=two(self.m0))

    def singletons(self) -> EventStats:
        """The per-level statistics: events ``{k}`` for k = 0..K-1, then their complements."""
        if self.level_wise:
            return self
        ev = self.events
        single = np.flatnonzero(ev.sum(axis=1) == 1)
        order = single[np.argsort(np.argmax(ev[single], axis=1))]
        out = self.take(np.concatenate([order, _complement(order, ev.shape[0])]))
        return replace(out, level_wise=True)


def _complement(idx: np.ndarray, n_events: int) -> np.ndarray:
    half = n_events // 2
    return np.where(idx < half, idx + half, idx - half)


def _effective(p: np.ndarray, s2: np.ndarray, n: float) -> np.ndarray:
    """Effective sample size ``n v / s^2`` in ``[n, n^2]`` (``n`` where ``v`` vanishes)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(p > 1e-15, s2 / p, 1.0)
    return n / np.clip(phi, 1.0 / n, 1.0)


def _smoothed_cov(m: np.ndarray, n: int) -> np.ndarray:
    """Multinomial covariance at the shares with 1/2 pseudo-count per level (the regulariser)."""
    k = m.size
    q = (n * m + 0.5) / (n + 0.5 * k)
    return np.diag(q) - np.outer(q, q)


def _is_one_hot(x: np.ndarray) -> bool:
    return bool(np.all((x == 0.0) | (x == 1.0)))


def event_stats(x1: np.ndarray, x0: np.ndarray, *, paired: bool = False,
                level_wise: bool | None = None) -> EventStats:
    """Event statistics from unit share vectors (see the module docstring)."""
    x1 = np.asarray(x1, dtype=np.float64)
    x0 = np.asarray(x0, dtype=np.float64)
    n1, k = x1.shape
    n0 = x0.shape[0]
    lw = k > MAX_EVENT_LEVELS if level_wise is None else level_wise
    half = _event_matrix(k, lw)
    half = half[: half.shape[0] // 2]
    m1, m0 = x1.mean(axis=0), x0.mean(axis=0)
    estimated = not (_is_one_hot(x1) and _is_one_hot(x0))
    if paired:
        if n1 != n0:
            raise ValueError("paired=True needs as many rows in x1 as in x0 (one row per pair)")
        wa = (x1 - x0) @ half.T  # (n, E/2) event differences within each pair
        pos, neg = np.clip(wa, 0, None).mean(axis=0), np.clip(-wa, 0, None).mean(axis=0)
        dh = pos - neg
        # the trinomial with these parts has variance pos + neg - dh^2 >= var(w)
        m = _effective(pos + neg - dh**2, wa.var(axis=0, ddof=1) if n1 > 1 else np.zeros(dh.size), float(n1))
        b, c = m * pos, m * neg
        s_w = np.cov(x1 - x0, rowvar=False, ddof=0) if n1 > 1 else np.zeros((k, k))
        cov = (n1 * s_w + _smoothed_cov(m1, n1) + _smoothed_cov(m0, n0)) / (n1 + 1) / n1
        return EventStats(True, k, lw, np.r_[dh, -dh], np.r_[b, c], np.r_[m, m], np.r_[c, b], np.r_[m, m],
                          n1, cov, float(n1 - 1) if estimated and n1 > 1 else math.inf)
    arms = []
    cov = np.zeros((k, k))
    for x, mean, n in ((x1, m1, n1), (x0, m0, n0)):
        s = np.cov(x, rowvar=False, ddof=0) if n > 1 else np.zeros((k, k))
        p = np.clip(half @ mean, 0.0, 1.0)
        s2 = np.einsum("ek,kl,el->e", half, s, half) * (n / (n - 1) if n > 1 else 1.0)  # unbiased
        ne = _effective(p * (1 - p), s2, float(n))
        arms.append((np.r_[ne * p, ne * (1 - p)], np.r_[ne, ne]))
        cov += (n * s + _smoothed_cov(mean, n)) / (n + 1) / n
    (a1, e1), (a0, e0) = arms
    n_min = min(n1, n0)
    return EventStats(False, k, lw, a1 / e1 - a0 / e0, a1, e1, a0, e0, n_min, cov,
                      float(n_min - 1) if estimated and n_min > 1 else math.inf)


def event_stats_counts(c1: np.ndarray, c0: np.ndarray, *, level_wise: bool | None = None) -> EventStats:
    """Event statistics from level counts of two independent arms; leading axes index tables."""
    c1 = np.asarray(c1, dtype=np.float64)
    c0 = np.asarray(c0, dtype=np.float64)
    k = c1.shape[-1]
    lw = k > MAX_EVENT_LEVELS if level_wise is None else level_wise
    ev = _event_matrix(k, lw)
    n1, n0 = c1.sum(axis=-1, keepdims=True), c0.sum(axis=-1, keepdims=True)
    a1, a0 = c1 @ ev.T, c0 @ ev.T
    e1, e0 = np.broadcast_to(n1, a1.shape), np.broadcast_to(n0, a0.shape)
    n_min = int(np.min(np.minimum(n1, n0))) if n1.size else 0
    if lw:  # the level-wise band needs no covariance (only the event band's sup-t does): K^2 per table saved
        return EventStats(False, k, lw, a1 / e1 - a0 / e0, a1, e1, a0, e0, n_min, None)
    cov = np.zeros((*c1.shape[:-1], k, k))
    eye = np.eye(k)
    for c, n in ((c1, n1), (c0, n0)):
        with np.errstate(divide="ignore", invalid="ignore"):
            m = c / n
            q = (n * m + 0.5) / (n + 0.5 * k)  # the regulariser of _smoothed_cov, per table
            nn = n[..., None]
            cov += (nn * (m[..., :, None] * eye - m[..., :, None] * m[..., None, :])
                    + q[..., :, None] * eye - q[..., :, None] * q[..., None, :]) / (nn + 1) / nn
    return EventStats(False, k, lw, a1 / e1 - a0 / e0, a1, e1, a0, e0, n_min, cov)


# --------------------------------------------------------------------------- score statistics
def _ratio(diff: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``diff / sqrt(var)``, with ``+-inf`` (or 0 when ``diff == 0``) where the variance vanishes."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = diff / np.sqrt(var)
    edge = np.where(diff > 0, np.inf, np.where(diff < 0, -np.inf, 0.0))
    return np.where(var > 0, z, edge)


def _shrink(diff: np.ndarray, cc: np.ndarray) -> np.ndarray:
    """Continuity correction: ``diff`` moved towards 0 by ``cc`` (not past it)."""
    return np.sign(diff) * np.maximum(np.abs(diff) - cc, 0.0)


def _mn_variance(x1: np.ndarray, n1: np.ndarray, x0: np.ndarray, n0: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Miettinen-Nurminen variance of ``p1 - p0`` at the constrained MLE under ``p1 - p0 = delta``.

    Closed-form root of the likelihood cubic (Miettinen & Nurminen 1985, appendix), times
    ``N / (N - 1)``. ``statsmodels`` (0.14, 0.15) has ``count0`` where this cubic has ``n0`` in
    its linear coefficient (statsmodels issue 10269), so its ``method="score"`` results for
    ``value != 0`` differ slightly; R ``PropCIs::diffscoreci`` agrees with this one.
    """
    big_n = n1 + n0
    x = x1 + x0
    t2 = (n1 + 2 * n0) * delta - big_n - x
    t1 = (n0 * delta - big_n - 2 * x0) * delta + x
    t0 = x0 * delta * (1 - delta)
    b = t2 / (3 * big_n)
    q = b**3 - t1 * t2 / (6 * big_n**2) + t0 / (2 * big_n)
    r = np.sqrt(np.maximum(b**2 - t1 / (3 * big_n), 0.0))
    p = np.where(q < 0, -r, r)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosarg = np.minimum(np.maximum(np.where(p != 0, q / p**3, 0.0), -1.0), 1.0)
    p0 = np.where(delta == 0, x / big_n, 2 * p * np.cos((np.pi + np.arccos(cosarg)) / 3) - b)
    p0 = np.minimum(np.maximum(p0, np.maximum(0.0, -delta)), np.minimum(1.0, 1.0 - delta))
    p1 = p0 + delta
    return (p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0) * big_n / (big_n - 1)


def _tango_variance(b: np.ndarray, c: np.ndarray, n: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Tango's variance of a paired difference ``p1 - p0`` under ``p1 - p0 = delta``.

    ``b``: pairs with the event in arm 1 only, ``c``: in arm 0 only, ``n`` pairs;
    ``(2 p01 + delta (1 - delta)) / n`` at the constrained MLE of the discordant share ``p01``
    (closed form, Tango 1998; as ``contingencytables::Tango_asymptotic_score_CI_paired_2x2``).
    """
    aa = 2 * n
    bb = -b - c + (2 * n - b + c) * delta
    cc = -c * delta * (1 - delta)
    p01 = (np.sqrt(np.maximum(bb**2 - 4 * aa * cc, 0.0)) - bb) / (2 * aa)
    return (2 * p01 + delta * (1 - delta)) / n


def _statistic(paired: bool, a1: np.ndarray, m1: np.ndarray, a0: np.ndarray, m0: np.ndarray,
               d: np.ndarray, cc: np.ndarray, delta: np.ndarray) -> np.ndarray:
    var = _tango_variance(a1, a0, m1, delta) if paired else _mn_variance(a1, m1, a0, m0, delta)
    return _ratio(_shrink(d - delta, cc), var)


def score_statistic(st: EventStats, delta: float | np.ndarray) -> np.ndarray:
    """Score statistic ``T_A(delta)`` of ``H: D(A) = delta`` for every event (non-increasing in delta)."""
    return _statistic(st.paired, st.a1, st.m1, st.a0, st.m0, st.d, st.cc, np.asarray(delta, dtype=np.float64))


def quantile(st: EventStats, p: float) -> float:
    """Quantile of the reference distribution of the score statistics (normal, or t with ``st.df``)."""
    return float(special.ndtri(p) if math.isinf(st.df) else special.stdtrit(st.df, p))


def reference_cdf(st: EventStats, t: np.ndarray) -> np.ndarray:
    """CDF of the reference distribution of the score statistics at ``t``."""
    return special.ndtr(t) if math.isinf(st.df) else special.stdtr(st.df, t)


# --------------------------------------------------------------------------- score bounds
def _solve(f: Callable[[np.ndarray, np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray,
           guess: np.ndarray) -> np.ndarray:
    """Roots of decreasing functions, one per problem: ``f(x, act)`` evaluates problems ``act`` at ``x``.

    Needs ``f(lo) >= 0`` (``f(hi)`` may be ``-inf``). Illinois (modified regula falsi) from the
    bracket split at ``guess``, a bisection step every fourth iteration, each problem iterated
    until its bracket is narrower than ``_TOL``. Returns the upper end of each bracket
    (``f <= 0`` there), so a confidence bound errs outwards, by less than ``_TOL``.
    """
    lo, hi = lo.astype(np.float64).copy(), hi.astype(np.float64).copy()
    everything = np.arange(lo.size)
    flo = f(lo, everything)
    fhi = np.full(lo.size, -np.inf)
    g = np.clip(guess, lo, hi)
    fg = f(g, everything)
    ok = fg >= 0
    lo[ok], flo[ok] = g[ok], fg[ok]
    hi[~ok], fhi[~ok] = g[~ok], fg[~ok]
    last = np.where(ok, 1, -1)
    act = everything[hi - lo > _TOL]
    for it in range(_MAX_ITER):
        if act.size == 0:
            break
        la, ha, fl, fh = lo[act], hi[act], flo[act], fhi[act]
        good = np.isfinite(fl) & np.isfinite(fh) & (fl > fh)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(good, (la * fh - ha * fl) / (fh - fl), 0.5 * (la + ha))
        if it % 4 == 3:
            x = 0.5 * (la + ha)
        x = np.clip(x, la, ha)
        fx = f(x, act)
        ok = fx >= 0
        up, dn = act[ok], act[~ok]
        # Illinois: an end that stays put twice in a row has its value halved
        fhi[up] = np.where(last[up] == 1, 0.5 * fhi[up], fhi[up])
        flo[dn] = np.where(last[dn] == -1, 0.5 * flo[dn], flo[dn])
        lo[up], flo[up] = x[ok], fx[ok]
        hi[dn], fhi[dn] = x[~ok], fx[~ok]
        last[act] = np.where(ok, 1, -1)
        act = act[hi[act] - lo[act] > _TOL]
    return hi


def _wald_guess(st: EventStats, z: float | np.ndarray) -> np.ndarray:
    """A starting point for the score bound: Wald with add-one shares."""
    if st.paired:
        pp, pm = (st.a1 + 0.5) / (st.m1 + 1), (st.a0 + 0.5) / (st.m1 + 1)
        var = np.clip(pp + pm - (pp - pm) ** 2, 1e-12, None) / st.m1
    else:
        p1, p0 = (st.a1 + 1) / (st.m1 + 2), (st.a0 + 1) / (st.m0 + 2)
        var = p1 * (1 - p1) / st.m1 + p0 * (1 - p0) / st.m0
    return st.d + st.cc + z * np.sqrt(var)


def score_upper(st: EventStats, z: float, idx: np.ndarray | None = None) -> np.ndarray:
    """Score upper bounds ``U_A(z) = sup{delta: T_A(delta) >= -z}`` of the events (``idx``: a subset).

    ``z >= 0``; exact to ``_TOL``. Lower bounds are ``L_A(z) = -U_{A^c}(z)``.
    """
    sub = st if idx is None else st.take(idx)
    fl = sub.flat()
    shape = fl.d.shape
    cols = [v.ravel() for v in (fl.a1, fl.m1, fl.a0, fl.m0, fl.d, fl.cc)]

    def f(x: np.ndarray, act: np.ndarray) -> np.ndarray:
        return _statistic(st.paired, *(v[act] for v in cols), x) + z

    out = _solve(f, np.clip(cols[4], -1.0, 1.0), np.ones(cols[4].size), _wald_guess(fl, z).ravel())
    return out.reshape(np.shape(sub.d)) if np.ndim(sub.d) > 1 else out.reshape(shape[1])


def _envelope(st: EventStats, z: float | np.ndarray, idx: np.ndarray | None, largest: bool,
              mask: np.ndarray | None = None) -> np.ndarray:
    """Per table, ``max_A U_A(z)`` (``largest``) or ``min_A U_A(z)`` over events ``idx``: one root each.

    ``max_A T_A(delta) + z`` (``min``) is decreasing in delta with its root at the largest
    (smallest) event bound, so one root per table replaces one per event. ``z`` may differ by
    table; ``mask`` (tables x events) restricts each table's events.
    """
    fl = (st if idx is None else st.take(idx)).flat()
    n_tab = fl.d.shape[0]
    zt = np.broadcast_to(np.asarray(z, dtype=np.float64).reshape(-1), (n_tab,))
    red = np.max if largest else np.min
    off = -np.inf if largest else np.inf
    use = np.ones(fl.d.shape, dtype=bool) if mask is None else mask.reshape(fl.d.shape)
    cols = (fl.a1, fl.m1, fl.a0, fl.m0, fl.d, fl.cc)

    def f(x: np.ndarray, act: np.ndarray) -> np.ndarray:
        t = _statistic(st.paired, *(v[act] for v in cols), x[:, None])
        return red(np.where(use[act], t, off), axis=1) + zt[act]

    d = np.where(use, np.clip(fl.d, -1.0, 1.0), off)
    guess = np.where(use, _wald_guess(fl, zt[:, None]), off)
    out = _solve(f, red(d, axis=1), np.ones(n_tab), red(guess, axis=1))
    lead = np.shape(st.d)[:-1]
    return out.reshape(lead) if lead else out.reshape(())


# --------------------------------------------------------------------------- the bounds
def upper_bound(st: EventStats, level: float) -> np.ndarray:
    """One-sided ``level`` upper confidence bound of the TVD (leading axes: tables).

    Events: ``max_A U_A(z_level)``; levels (``K > MAX_EVENT_LEVELS``):
    ``sum_k (U_k(z_{1 - (1 - level) / K}))_+``.
    """
    if st.level_wise:
        k = st.n_levels
        u = score_upper(st, quantile(st, 1 - (1 - level) / k), np.arange(k))
        return np.clip(np.clip(u, 0.0, None).sum(axis=-1), 0.0, 1.0)
    return np.clip(_envelope(st, quantile(st, level), None, largest=True), 0.0, 1.0)


def _sup_t_lower_crit(st: EventStats, level: float) -> tuple[float, np.ndarray]:
    """Critical value of the lower bound and the selected events (CLR 2013 inequality selection)."""
    if st.cov is None or np.ndim(st.d) != 1 or np.ndim(st.cov) != 2:
        raise ValueError("the sup-t critical value needs a single table with its covariance")
    ev = st.events
    half = ev.shape[0] // 2
    evh = ev[:half]
    w, v = np.linalg.eigh(st.cov)
    root = v * np.sqrt(np.clip(w, 0.0, None))
    sd = np.sqrt(np.clip(np.einsum("ek,kl,el->e", evh, st.cov, evh), 1e-300, None))
    # (E/2, R) standardised event differences; the complements are their negatives
    t = ((evh / sd[:, None]) @ root).astype(np.float32) @ _normal_draws(st.n_levels)
    if not math.isinf(st.df):
        t *= _t_scale(st.df)[None, :]
    tmax, tmin = t.max(axis=0), t.min(axis=0)
    gamma = 1.0 - 0.1 / math.log(max(st.n_min, 3))
    k_pre = float(np.quantile(np.maximum(tmax, -tmin), gamma, method="higher"))
    sd_all = np.r_[sd, sd]
    sel = st.d + 2.0 * k_pre * sd_all >= np.max(st.d - k_pre * sd_all)
    sh, sc = sel[:half], sel[half:]
    none = np.full(t.shape[1], -np.inf, dtype=np.float32)
    up = tmax if sh.all() else (t[sh].max(axis=0) if sh.any() else none)
    dn = -tmin if sc.all() else (-t[sc].min(axis=0) if sc.any() else none)
    return float(np.quantile(np.maximum(up, dn), level, method="higher")), np.flatnonzero(sel)


def lower_bound(st: EventStats, level: float) -> np.ndarray:
    """One-sided ``level`` lower confidence bound of the TVD (leading axes: tables, with their ``cov``).

    Events: ``max_{A in V} L_A(c)``, ``L_A = -U_{A^c}``, with the sup-t critical value ``c`` over
    the selected events ``V``; levels: ``sum_k (L_k(z_{1 - (1 - level) / K}))_+``.
    """
    n_ev = np.shape(st.d)[-1]
    if st.level_wise:
        k = st.n_levels
        low = -score_upper(st, quantile(st, 1 - (1 - level) / k), _complement(np.arange(k), n_ev))
        return np.clip(np.clip(low, 0.0, None).sum(axis=-1), 0.0, 1.0)
    if st.cov is None:
        raise ValueError("the lower bound needs the covariance of the share differences (event_stats)")
    lead = np.shape(st.d)[:-1]
    fl = st.flat()
    covs = np.asarray(st.cov).reshape(-1, st.n_levels, st.n_levels)
    crit = np.empty(fl.d.shape[0])
    mask = np.zeros(fl.d.shape, dtype=bool)
    for i in range(fl.d.shape[0]):
        one = replace(fl, d=fl.d[i], a1=fl.a1[i], m1=fl.m1[i], a0=fl.a0[i], m0=fl.m0[i], cov=covs[i])
        crit[i], sel = _sup_t_lower_crit(one, level)
        mask[i, _complement(sel, n_ev)] = True
    low = -_envelope(fl, crit, None, largest=False, mask=mask)
    return np.clip(low, 0.0, 1.0).reshape(lead) if lead else np.clip(low, 0.0, 1.0).reshape(())


def _interval(st: EventStats, conf_level: float) -> tuple[float, float]:
    level = 1.0 - (1.0 - conf_level) / 2.0
    hi = float(upper_bound(st, level))
    return min(float(lower_bound(st, level)), hi), hi


def tvd_conf_int(x1: np.ndarray, x0: np.ndarray, conf_level: float, *, paired: bool = False) -> tuple[float, float]:
    """Valid ``conf_level`` interval for ``TV(P1, P0)`` from unit share vectors.

    Parameters
    ----------
    x1, x0
        ``(n1, K)`` and ``(n0, K)`` unit share vectors (rows sum to 1).
    conf_level
        Two-sided level; each bound is a one-sided bound at ``1 - (1 - conf_level) / 2``.
    paired
        Row ``i`` of ``x1`` and of ``x0`` form a matched pair (Tango score intervals).

    Returns
    -------
    tuple of float
        ``(conf_low, conf_high)`` in ``[0, 1]``; NaN when an arm has no units.

    Notes
    -----
    A continuity-corrected score band over events: pointwise on the upper side, sup-t with
    inequality selection on the lower side; over levels with Bonferroni for ``K > 10``. See
    the module docstring.

    Examples
    --------
    Fifty identical answers per arm: the interval is not the point ``[0, 0]``.

    >>> import numpy as np
    >>> x = np.tile([1.0, 0.0], (50, 1))
    >>> lo, hi = tvd_conf_int(x, x, 0.95)
    >>> print(lo, round(hi, 3))
    0.0 0.106
    """
    x1 = np.asarray(x1, dtype=np.float64)
    x0 = np.asarray(x0, dtype=np.float64)
    if x1.shape[0] == 0 or x0.shape[0] == 0:
        return math.nan, math.nan
    return _interval(event_stats(x1, x0, paired=paired), conf_level)


def tvd_conf_int_counts(c1: np.ndarray, c0: np.ndarray, conf_level: float) -> tuple[float, float]:
    """Valid ``conf_level`` interval for ``TV`` from the answer counts per level of two independent arms.

    Parameters
    ----------
    c1, c0
        Answer counts per level (``K`` each) of arm 1 and arm 0.
    conf_level
        Two-sided level.

    Returns
    -------
    tuple of float
        ``(conf_low, conf_high)``: the interval of :func:`tvd_conf_int` on the one-hot unit
        vectors of these counts; NaN when an arm has no answers.

    Examples
    --------
    >>> lo, hi = tvd_conf_int_counts([100, 0], [98, 2], 0.95)
    >>> print(lo, round(hi, 3))
    0.0 0.085
    """
    c1 = np.asarray(c1, dtype=np.float64)
    c0 = np.asarray(c0, dtype=np.float64)
    if c1.sum() == 0 or c0.sum() == 0:
        return math.nan, math.nan
    return _interval(event_stats_counts(c1, c0), conf_level)


def tvd_conf_int_tables(c1: np.ndarray, c0: np.ndarray, conf_level: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tvd_conf_int_counts` for many tables at once: ``(T, K)`` counts, ``(conf_low, conf_high)`` arrays.

    The same numbers as calling :func:`tvd_conf_int_counts` table by table (one root per table
    and bound instead of one call each). Every table needs answers in both arms.
    """
    c1 = np.asarray(c1, dtype=np.float64)
    c0 = np.asarray(c0, dtype=np.float64)
    if (c1.sum(axis=-1) == 0).any() or (c0.sum(axis=-1) == 0).any():
        raise ValueError("every table needs answers in both arms")
    st = event_stats_counts(c1, c0)
    level = 1.0 - (1.0 - conf_level) / 2.0
    hi = upper_bound(st, level)
    return np.minimum(lower_bound(st, level), hi), hi
