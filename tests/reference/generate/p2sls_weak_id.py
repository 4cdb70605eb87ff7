"""Golden first-stage statistics for p2sls, computed from their definitions with statsmodels and linearmodels.

Sanderson-Windmeijer conditional F (Sanderson & Windmeijer 2016, J. Econometrics 190:212-221), by the
"replication by hand" route of Stata's ivreg2: for each endogenous W_j, 2SLS of W_j on the other W
(instruments Z, exogenous regressors included), its residual regressed by OLS on the exogenous
regressors and Z, the classical F test of the Z coefficients rescaled by k / (k - m + 1).
Cragg-Donald F, Kleibergen-Paap rk Wald F (robust), partial and Shea R^2: linearmodels 7
(IVResults.first_stage). Debiased 2SLS standard errors: linearmodels IV2SLS(..., debiased=True).

Writes tests/reference/p2sls/weak_id.csv. Run from the repository root:
    python tests/reference/generate/p2sls_weak_id.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import linearmodels
import numpy as np
import pandas as pd
import statsmodels
import statsmodels.api as sm
from linearmodels.iv import IV2SLS

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import driftstats as ds  # only to draw the data (after the path insert)

OUT = Path(__file__).resolve().parents[1] / "p2sls" / "weak_id.csv"
CASES = {  # name: simulate_proxy_data arguments
    "rank1_2w2z": {"n": 800, "n_w": 2, "n_z": 2, "n_u": 1, "seed": 18},
    "full_2w2z": {"n": 800, "n_w": 2, "n_z": 2, "n_u": 2, "seed": 18},
    "full_3w4z": {"n": 600, "n_w": 3, "n_z": 4, "n_u": 3, "seed": 7},
    "one_w_2z": {"n": 300, "n_w": 1, "n_z": 2, "n_u": 1, "seed": 3},
}


def sw_f(d: pd.DataFrame, ws: list[str], zs: list[str], exog: list[str], j: str) -> float:
    k, m = len(zs), len(ws)
    x = sm.add_constant(d[exog])
    if m == 1:
        resid = d[j]
    else:
        others = [w for w in ws if w != j]
        resid = IV2SLS(d[j], x, d[others], d[zs]).fit(cov_type="unadjusted").resids
    ols = sm.OLS(resid, pd.concat([x, d[zs]], axis=1)).fit()
    f = ols.f_test(" = 0, ".join(zs) + " = 0")
    return float(f.fvalue) * k / (k - m + 1)


def main() -> None:
    rows = []
    for name, args in CASES.items():
        d = ds.simulate_proxy_data(**args)
        ws = [f"w{i + 1}" for i in range(args["n_w"])]
        zs = [f"z{i + 1}" for i in range(args["n_z"])]
        exog = ["t", "x"]
        for w in ws:
            rows.append((name, f"sw_f_{w}", sw_f(d, ws, zs, exog, w)))
        fit = IV2SLS(d["y"], sm.add_constant(d[exog]), d[ws], d[zs]).fit(cov_type="robust")
        fs = fit.first_stage
        rows.append((name, "cragg_donald_f", float(fs.cragg_donald_f)))
        rows.append((name, "kp_f", float(fs.kleibergen_paap_f)))
        for w in ws:
            rows.append((name, f"partial_r2_{w}", float(fs.diagnostics.loc[w, "partial.rsquared"])))
            rows.append((name, f"shea_r2_{w}", float(fs.diagnostics.loc[w, "shea.rsquared"])))
        for cov_type, label in (("unadjusted", "classic"), ("robust", "robust")):
            deb = IV2SLS(d["y"], sm.add_constant(d[exog]), d[ws], d[zs]).fit(cov_type=cov_type, debiased=True)
            rows.append((name, f"se_t_{label}_debiased", float(deb.std_errors["t"])))
            rows.append((name, f"p_t_{label}_debiased", float(deb.pvalues["t"])))
    header = [
        "# generator: tests/reference/generate/p2sls_weak_id.py (data: driftstats.simulate_proxy_data with the",
        "#   arguments listed in the script; statistics from their definitions with statsmodels and linearmodels)",
        f"# python {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}, statsmodels "
        f"{statsmodels.__version__}, linearmodels {linearmodels.__version__}",
        "# model: y ~ 1 + t + x, W endogenous, Z excluded instruments",
    ]
    body = "case,quantity,value\n" + "".join(f"{c},{q},{v:.17g}\n" for c, q, v in rows)
    OUT.write_text("\n".join(header) + "\n" + body)
    print(OUT.read_text())


if __name__ == "__main__":
    main()
