"""Coverage study: the valid projection interval vs the approximate basic bootstrap (methods 3.2).

Grid: K in {2, 5, 10} uniform levels, n in {50, 100, 500, 1000} units per arm, true TVD in
{0, 0.05, 0.1, 0.2, 0.3} (the treatment arm is tilted towards level 1). For each cell, 300
replications; the bootstrap uses 500 multinomial resamples per replication. Prints the table
and, last, the headline: the worst coverage of each interval against the nominal 0.95.
The Monte Carlo SE of a coverage near 0.95 with 300 replications is about 0.013.

Usage: python bench/coverage.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftstats._kernels.tvd import projection_interval
from driftstats.simulate import tilt_categorical

REPS, BOOT, LEVEL = 300, 500, 0.95


def cell(k: int, n: int, tv: float, rng: np.random.Generator) -> tuple[float, float, float]:
    q0 = np.full(k, 1 / k)
    q1 = tilt_categorical(q0, tv)
    proj = boot = 0
    widths = []
    for _ in range(REPS):
        h1 = rng.multinomial(n, q1) / n
        h0 = rng.multinomial(n, q0) / n
        se = np.sqrt(h1 * (1 - h1) / n + h0 * (1 - h0) / n)
        lo, hi = projection_interval(h1 - h0, se, LEVEL)
        proj += lo - 1e-12 <= tv <= hi + 1e-12
        widths.append(hi - lo)
        est = 0.5 * np.abs(h1 - h0).sum()
        b = 0.5 * np.abs(rng.multinomial(n, h1, size=BOOT) / n - rng.multinomial(n, h0, size=BOOT) / n).sum(1)
        qlo, qhi = np.quantile(b, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
        blo, bhi = max(2 * est - qhi, 0.0), min(max(2 * est - qlo, 0.0), 1.0)
        boot += blo - 1e-12 <= tv <= bhi + 1e-12
    return proj / REPS, boot / REPS, float(np.mean(widths))


def main() -> None:
    rng = np.random.default_rng(20261126)
    rows = []
    for k in (2, 5, 10):
        for n in (50, 100, 500, 1000):
            for tv in (0.0, 0.05, 0.1, 0.2, 0.3):
                p, b, w = cell(k, n, tv, rng)
                rows.append({"K": k, "n": n, "tvd": tv, "projection": p, "basic_bootstrap": b, "projection_width": w})
    t = pd.DataFrame(rows)
    pd.set_option("display.width", 120)
    print(t.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"bootstrap coverage at TVD = 0: {t.loc[t.tvd == 0, 'basic_bootstrap'].min():.2f}-"
          f"{t.loc[t.tvd == 0, 'basic_bootstrap'].max():.2f} (approximate interval; under-covers near 0)")
    print(f"coverage: projection worst {t['projection'].min():.3f} vs basic bootstrap worst "
          f"{t['basic_bootstrap'].min():.3f} = {t['projection'].min() / t['basic_bootstrap'].min():.2f}x "
          f"(target: projection >= {LEVEL} - MC error)")


if __name__ == "__main__":
    main()
