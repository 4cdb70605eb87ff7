"""Exact posterior of EmpiricalCalibration's MCMC null for the sccs example, by quadrature.

The model of ``fitMcmcNull`` (EmpiricalCalibration 3.1.4, R/EmpiricalCalibrationUsingMcmc.R and
R/Likelihoods.R): control estimates theta_j ~ N(mu, 1/tau + s_j^2), a flat prior on mu and a
Gamma(shape = 1e-4, rate = 1e-4) prior on the precision tau. The posterior is two-dimensional, so
its medians and quantiles can be computed on a grid instead of sampled: this script does that
(independently of driftstats' sampler) and writes tests/reference/calibrate/sccs_mcmc_exact.csv.

Run from the repository root:  python tests/reference/generate/calibrate_mcmc_exact.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
from scipy import special, stats

ROOT = Path(__file__).resolve().parents[3]
DATA = next(p for p in (Path(os.environ.get("DRIFTSTATS_SHARED", "/nonexistent")), ROOT.parent / "shared",
                         Path("/work/shared")) if (p / "reference-data").exists()) / "reference-data" / "ec_sccs.csv"
OUT = ROOT / "tests" / "reference" / "calibrate" / "sccs_mcmc_exact.csv"


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: list[float]) -> np.ndarray:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    cw /= cw[-1]
    return np.interp(q, cw, x[order])


def main() -> None:
    d = pd.read_csv(DATA)
    neg, pos = d[d["groundTruth"] == 0], d[d["groundTruth"] == 1]
    est, se2 = neg["logRr"].to_numpy(), neg["seLogRr"].to_numpy() ** 2
    mu = np.linspace(0.3, 1.3, 1601)
    log_tau = np.linspace(np.log(0.5), np.log(400.0), 1601)
    tau = np.exp(log_tau)
    logpost = np.empty((mu.size, tau.size))
    for j, t in enumerate(tau):
        var = 1 / t + se2
        ll = -0.5 * np.sum(np.log(2 * np.pi * var)[None, :] + (est[None, :] - mu[:, None]) ** 2 / var[None, :], axis=1)
        prior = (1e-4 - 1) * np.log(t) - 1e-4 * t + 1e-4 * np.log(1e-4) - special.gammaln(1e-4)
        logpost[:, j] = ll + prior + log_tau[j]  # + log tau: the grid is uniform in log(tau)
    w = np.exp(logpost - logpost.max())
    w /= w.sum()
    edge = (w[[0, -1], :].sum(), w[:, [0, -1]].sum())
    print("posterior mass on the grid edges (mu, tau):", edge)
    assert max(edge) < 1e-9, "grid does not cover the posterior"
    mm, tt = np.meshgrid(mu, tau, indexing="ij")
    t_hat, s_hat = float(pos["logRr"].iloc[0]), float(pos["seLogRr"].iloc[0])
    scale = np.sqrt(1 / tt + s_hat**2)
    upper, lower = stats.norm.cdf((mm - t_hat) / scale), stats.norm.cdf((t_hat - mm) / scale)
    p = 2 * np.minimum(upper, lower)
    rows = []
    probs = [0.5, 0.025, 0.975]
    # marginals: the CDF at cell edges, interpolated linearly within cells (sub-grid accuracy)
    for name, axis, grid in (("mean", 1, mu), ("precision", 0, log_tau)):
        marg = w.sum(axis=axis)
        edges = np.r_[grid[0] - (grid[1] - grid[0]) / 2, (grid[1:] + grid[:-1]) / 2, grid[-1] + (grid[1] - grid[0]) / 2]
        q = np.interp(probs, np.r_[0.0, np.cumsum(marg)], edges)
        q = np.exp(q) if name == "precision" else q
        rows += [(f"{name}_median", q[0]), (f"{name}_q025", q[1]), (f"{name}_q975", q[2])]
    q = weighted_quantile(p.ravel(), w.ravel(), probs)
    rows += [("calibrated_p_median", q[0]), ("calibrated_p_q025", q[1]), ("calibrated_p_q975", q[2])]
    rows.append(("calibrated_p_predictive", float(2 * min((upper * w).sum(), (lower * w).sum()))))
    header = [
        "# generator: tests/reference/generate/calibrate_mcmc_exact.py (2-D quadrature, 1601 x 1601 grid,",
        "#   mu in [0.3, 1.3], log precision in [log 0.5, log 400]; the posterior mass on the grid edges is < 1e-9)",
        f"# python {sys.version.split()[0]}, numpy {np.__version__}, scipy {scipy.__version__}, pandas {pd.__version__}",
        "# model: fitMcmcNull of OHDSI EmpiricalCalibration 3.1.4 (flat prior on the mean, Gamma(1e-4, 1e-4) on",
        "#   the precision); data: ../shared/reference-data/ec_sccs.csv (45 negative controls; sertraline)",
        "# quantities: posterior median and 2.5% / 97.5% quantiles; calibrated_p = calibrateP.mcmcNull's per-draw",
        "#   two-sided p for sertraline (its median is what calibrateP reports); calibrated_p_predictive = 2 min(E[upper tail], E[lower tail])",
    ]
    OUT.write_text("\n".join(header) + "\nquantity,value\n" + "".join(f"{k},{v:.17g}\n" for k, v in rows))
    print(OUT.read_text())


if __name__ == "__main__":
    main()
