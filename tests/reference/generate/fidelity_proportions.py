"""First-principles reference values for the fidelity proportion tests (tests/reference/fidelity/).

Independent of driftstats: every restricted maximum-likelihood estimate is found by direct
numerical maximisation of the constrained log-likelihood (no closed form), the score
statistics are built from those estimates, and each interval endpoint is found by bisection
of |z(delta)| = z_{1 - alpha/2}. Run from the repository root:

    python tests/reference/generate/fidelity_proportions.py

Independent samples: Miettinen & Nurminen (1985) score statistic
    z(d) = (p1^ - p0^ - d) / sqrt([p1~(1 - p1~)/n1 + p0~(1 - p0~)/n0] * N / (N - 1)),
with (p1~, p0~) maximising the binomial likelihood subject to p1 - p0 = d.
Paired samples: Tango (1998) score statistic
    z(d) = (b - c - n d) / sqrt(n (2 q~ + d (1 - d))),
with q~ = pi_01 maximising the multinomial likelihood of (b, c, n - b - c) subject to
pi_10 - pi_01 = d.
"""

from __future__ import annotations

import math
import platform
import sys
from pathlib import Path

import numpy as np
import scipy
from scipy import optimize, stats

OUT = Path(__file__).parents[1] / "fidelity" / "proportion_intervals.csv"
TINY = 1e-15


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0 else x * math.log(max(y, 1e-300))


def mn_restricted(x1: int, n1: int, x0: int, n0: int, d: float) -> tuple[float, float]:
    def nll(p0: float) -> float:
        p1 = p0 + d
        return -(_xlogy(x1, p1) + _xlogy(n1 - x1, 1 - p1) + _xlogy(x0, p0) + _xlogy(n0 - x0, 1 - p0))

    lo, hi = max(0.0, -d) + TINY, min(1.0, 1.0 - d) - TINY
    r = optimize.minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-14, "maxiter": 5000})
    return r.x + d, r.x


def mn_z(x1: int, n1: int, x0: int, n0: int, d: float) -> float:
    est = x1 / n1 - x0 / n0
    if est == d:
        return 0.0
    p1, p0 = mn_restricted(x1, n1, x0, n0, d)
    n = n1 + n0
    var = (p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0) * n / (n - 1)
    return (est - d) / math.sqrt(var) if var > 0 else math.copysign(math.inf, est - d)


def tango_restricted(b: int, c: int, n: int, d: float) -> float:
    a = n - b - c

    def nll(q: float) -> float:  # q = pi_01, pi_10 = q + d, pi_rest = 1 - 2q - d
        return -(_xlogy(b, q + d) + _xlogy(c, q) + _xlogy(a, 1 - 2 * q - d))

    lo, hi = max(0.0, -d) + TINY, (1 - d) / 2 - TINY  # pi_01 >= 0, pi_10 >= 0, pi_rest >= 0
    r = optimize.minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-14, "maxiter": 5000})
    return r.x


def tango_z(b: int, c: int, n: int, d: float) -> float:
    num = b - c - n * d
    if num == 0:
        return 0.0
    q = tango_restricted(b, c, n, d)
    var = n * (2 * q + d * (1 - d))
    return num / math.sqrt(var) if var > 0 else math.copysign(math.inf, num)


def invert(z_of, est: float, level: float) -> tuple[float, float]:
    q = stats.norm.ppf(0.5 + level / 2)

    def bisect(f, lo: float, hi: float) -> float:  # f(lo) > 0 > f(hi)
        for _ in range(200):
            mid = (lo + hi) / 2
            if f(mid) > 0:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    edge = 1 - 1e-12
    low = -1.0 if est <= -edge or z_of(-edge) - q <= 0 else bisect(lambda d: z_of(d) - q, -edge, est)
    high = 1.0 if est >= edge or z_of(edge) + q >= 0 else bisect(lambda d: z_of(d) + q, est, edge)
    return low, high


INDEPENDENT = [(7, 34, 1, 34), (40, 50, 30, 50), (5, 5, 5, 5), (0, 5, 5, 5), (0, 12, 0, 9), (3, 10, 9, 10),
               (45, 60, 38, 55), (1, 7, 6, 6), (18, 20, 11, 25), (2, 3, 1, 4)]
PAIRED = [(28, 25, 618), (1, 7, 21), (6, 16, 161), (30, 12, 100), (3, 9, 100), (0, 0, 100), (20, 0, 20),
          (0, 4, 10), (12, 12, 50), (2, 1, 5)]


def main() -> None:
    lines = [
        "# generator: tests/reference/generate/fidelity_proportions.py (first principles: numerically maximised "
        "restricted likelihoods, bisection of the score statistic)",
        f"# python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}",
        f"# command: {' '.join([Path(sys.executable).name, *sys.argv])}",
        "# kind=independent: a, b, c, d = x1, n1, x0, n0 (Miettinen-Nurminen score interval, N/(N-1) correction);"
        " kind=paired: a, b, c = b (arm only), c (reference only), n pairs (Tango score interval)",
        "kind,a,b,c,d,level,estimate,conf_low,conf_high",
    ]
    for level in (0.95, 0.90):
        for x1, n1, x0, n0 in INDEPENDENT:
            est = x1 / n1 - x0 / n0
            lo, hi = invert(lambda d, a=(x1, n1, x0, n0): mn_z(*a, d), est, level)
            lines.append(f"independent,{x1},{n1},{x0},{n0},{level},{est:.17g},{lo:.17g},{hi:.17g}")
        for b, c, n in PAIRED:
            est = (b - c) / n
            lo, hi = invert(lambda d, a=(b, c, n): tango_z(*a, d), est, level)
            lines.append(f"paired,{b},{c},{n},,{level},{est:.17g},{lo:.17g},{hi:.17g}")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({len(lines) - 5} rows)")


if __name__ == "__main__":
    main()
