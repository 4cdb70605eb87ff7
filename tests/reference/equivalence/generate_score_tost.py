"""First-principles reference for the score TOST statistics (tests/reference/equivalence/score_tost.csv).

For each case, the restricted maximum-likelihood estimate under the hypothesised difference is
found by *numerical* maximisation of the restricted log-likelihood (scipy, bounded scalar
search on a fine grid then Brent refinement), not by the closed forms the library uses:

* independent arms (Miettinen-Nurminen): counts x1/n1, x0/n0, H: p1 - p0 = delta;
  var = (p1~(1 - p1~)/n1 + p0~(1 - p0~)/n0) * N / (N - 1); z = (x1/n1 - x0/n0 - delta) / sqrt(var).
* matched pairs (Tango): b pairs with the event in arm 1 only, c in arm 0 only, n pairs,
  H: p10 - p01 = delta; var = (2 p01~ + delta (1 - delta)) / n (the concordant share profiled out);
  z = ((b - c)/n - delta) / sqrt(var).

No continuity correction. The one-sided p-value of H0: d >= delta is Phi(z(delta)); of
H0: d <= -delta it is 1 - Phi(z(-delta)); the TOST p-value is their maximum.

Usage: python tests/reference/equivalence/generate_score_tost.py > tests/reference/equivalence/score_tost.csv
"""

from __future__ import annotations

import datetime
import platform
import sys

import numpy as np
import scipy
from scipy import optimize, stats

IND = [(7, 34, 1, 34), (0, 50, 0, 50), (0, 100, 2, 100), (40, 400, 55, 350), (199, 200, 180, 210), (3, 20, 0, 45)]
PAIRED = [(6, 16, 161), (0, 0, 50), (0, 2, 100), (12, 5, 80), (1, 7, 21)]
MARGINS = [0.02, 0.05, 0.1, 0.25]


def argmax_bounded(f, lo, hi):
    grid = np.linspace(lo, hi, 4001)
    vals = np.array([f(g) for g in grid])
    vals = np.where(np.isfinite(vals), vals, -np.inf)
    i = int(np.argmax(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = optimize.minimize_scalar(lambda v: -f(v), bounds=(a, b), method="bounded", options={"xatol": 1e-14})
    return res.x if -res.fun >= vals[i] else grid[i]


def xlogy(x, y):
    return 0.0 if x == 0 else x * np.log(y)


def mn_z(x1, n1, x0, n0, delta):
    eps = 1e-13
    lo, hi = max(0.0, -delta) + eps, min(1.0, 1.0 - delta) - eps

    def ll(p0):
        p1 = p0 + delta
        return xlogy(x1, p1) + xlogy(n1 - x1, 1 - p1) + xlogy(x0, p0) + xlogy(n0 - x0, 1 - p0)

    p0 = argmax_bounded(ll, lo, hi)
    p1 = p0 + delta
    big_n = n1 + n0
    var = (p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0) * big_n / (big_n - 1)
    return (x1 / n1 - x0 / n0 - delta) / np.sqrt(var)


def tango_z(b, c, n, delta):
    eps = 1e-13
    # cells: p10 = p01 + delta, concordant share 1 - 2 p01 - delta; profile over p01
    lo, hi = max(0.0, -delta) + eps, (1.0 - delta) / 2.0 - eps
    conc = n - b - c

    def ll(p01):
        return xlogy(b, p01 + delta) + xlogy(c, p01) + xlogy(conc, 1.0 - 2.0 * p01 - delta)

    p01 = argmax_bounded(ll, lo, hi)
    var = (2 * p01 + delta * (1 - delta)) / n
    return ((b - c) / n - delta) / np.sqrt(var)


def main() -> None:
    print(f"# generator: tests/reference/equivalence/generate_score_tost.py; python {platform.python_version()}, "
          f"numpy {np.__version__}, scipy {scipy.__version__}")
    print(f"# date: {datetime.date.today().isoformat()}")
    print("# restricted MLE by numerical maximisation; no continuity correction; see the generator's docstring")
    print("# command: python tests/reference/equivalence/generate_score_tost.py > tests/reference/equivalence/score_tost.csv")
    print("design,a,b,c,d,margin,z_upper,z_lower,p_tost")
    for x1, n1, x0, n0 in IND:
        for m in MARGINS:
            zu, zl = mn_z(x1, n1, x0, n0, m), mn_z(x1, n1, x0, n0, -m)
            p = max(stats.norm.cdf(zu), stats.norm.sf(zl))
            print(f"independent,{x1},{n1},{x0},{n0},{m},{zu:.17g},{zl:.17g},{p:.17g}")
    for b, c, n in PAIRED:
        for m in MARGINS:
            zu, zl = tango_z(b, c, n, m), tango_z(b, c, n, -m)
            p = max(stats.norm.cdf(zu), stats.norm.sf(zl))
            print(f"paired,{b},{c},{n},,{m},{zu:.17g},{zl:.17g},{p:.17g}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
