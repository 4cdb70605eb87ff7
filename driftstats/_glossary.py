"""The column glossary: every column a ``tidy()`` or ``glance()`` frame may hold.

A contract test (``tests/test_contract.py``) checks every public estimator against
this registry: columns are a subset, in canonical order, with the registered dtype.
Columns that do not apply to a row are ``NaN``/``<NA>``; a registered column of an
estimator is never dropped.

Grouping columns named in an estimator's ``by=`` argument come right after ``term``
(they are the user's own columns, so they are not registered here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verb = Literal["tidy", "glance"]
DType = Literal["str", "float", "int", "bool"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    verb: Verb
    dtype: DType
    description: str


_TIDY: list[tuple[str, DType, str]] = [
    ("term", "str", "what the row is about: an item (NCO, outcome), attribute, coefficient or contrast"),
    ("estimate", "float", "point estimate (plug-in TVD for drift tests; see each method)"),
    ("std_error", "float", "standard error, where one exists"),
    ("statistic", "float", "test statistic (z, t, chi-square, KS D, ...)"),
    ("p_value", "float", "p-value of the row's test (permutation p for drift tests)"),
    ("conf_low", "float", "lower bound of the *valid* interval at glance()['conf_level']"),
    ("conf_high", "float", "upper bound of the *valid* interval at glance()['conf_level']"),
    # --- what is compared
    ("arm", "str", "the arm whose value is the first term of the contrast"),
    ("reference", "str", "the arm the contrast is taken against"),
    ("measure", "str", "which distance or contrast the row reports (tvd, ks, mean_diff, ...)"),
    ("level", "str", "a category of the item, for per-level rows"),
    ("n_1", "int", "observations in `arm`"),
    ("n_0", "int", "observations in `reference`"),
    ("n_levels", "int", "number of categories of the item"),
    # --- permutation / bootstrap extras
    ("null_mean", "float", "mean of the statistic under the permutation null"),
    ("null_q95", "float", "95th percentile of the statistic under the permutation null"),
    ("excess", "float", "max(estimate - null_mean, 0): the magnitude comparable across n and K"),
    ("estimate_bc", "float", "bootstrap bias-corrected estimate max(2*est - mean(boot), 0)"),
    ("conf_low_approx", "float", "approximate interval (basic bootstrap, floored at 0) - may under-cover"),
    ("conf_high_approx", "float", "approximate interval (basic bootstrap) - may under-cover"),
    ("p_value_fwer", "float", "family-wise p-value: Westfall-Young single-step min-p over the NCO family on the same permutations"),
    ("p_value_holm", "float", "Holm-adjusted p-value within the family"),
    ("p_value_bh", "float", "Benjamini-Hochberg adjusted p-value within the family"),
    ("mean_shift", "float", "difference in mean response code (ordinal) or value (numeric)"),
    ("mean_shift_low", "float", "lower Welch interval bound of mean_shift"),
    ("mean_shift_high", "float", "upper Welch interval bound of mean_shift"),
    # --- equivalence
    ("margin", "float", "equivalence margin delta on the estimate's scale"),
    ("p_value_equiv", "float", "p-value of H0: |effect| >= margin (equivalence)"),
    ("equivalent", "bool", "whether equivalence is concluded at 1 - conf_level"),
    ("upper_bound", "float", "one-sided upper confidence bound used by the projection equivalence test"),
    ("power", "float", "probability of the test concluding its alternative"),
    ("n_per_arm", "int", "sample size per arm"),
    # --- fidelity, effects, corrections, calibration
    ("share_1", "float", "share / mean in `arm`"),
    ("share_0", "float", "share / mean in `reference`"),
    ("df", "float", "degrees of freedom"),
    ("naive_std_error", "float", "the naive (second-stage OLS) standard error, shown for contrast"),
    ("bias", "float", "the bias estimate removed by a correction"),
    ("calibrated", "bool", "whether the row is calibrated against an empirical null"),
    ("r_hat", "float", "potential scale reduction factor (Bayesian rows)"),
    ("ess_bulk", "float", "bulk effective sample size"),
    ("ess_tail", "float", "tail effective sample size"),
    ("mcse_mean", "float", "Monte Carlo standard error of the posterior mean"),
    ("note", "str", "why a row carries no test or no estimate (e.g. 'not testable: arm X has no valid answers')"),
    ("nco", "str", "the negative control outcome a row uses (NCO difference-in-differences with several NCOs)"),
]

_GLANCE: list[tuple[str, DType, str]] = [
    ("method", "str", "the procedure that produced the result"),
    ("n_obs", "int", "observations used (rows of the log after filtering)"),
    ("n_groups", "int", "groups / units / clusters"),
    ("conf_level", "float", "confidence level of conf_low / conf_high"),
    ("alternative", "str", "alternative hypothesis"),
    ("seed", "int", "seed of the random generator, when one was given as an int"),
    ("n_perm", "int", "number of permutations"),
    ("n_boot", "int", "number of bootstrap resamples"),
    ("converged", "bool", "whether every optimiser converged"),
    ("n_dropped", "int", "rows left out (invalid answers, missing values)"),
    ("n_tests", "int", "rows carrying a test in tidy()"),
    ("first_stage_f", "float", "minimum first-stage partial F statistic (proximal)"),
    ("vcov", "str", "covariance estimator"),
    ("null_mean", "float", "mean of the empirical null"),
    ("null_sd", "float", "standard deviation of the empirical null"),
    ("log_lik", "float", "maximised log-likelihood"),
    ("strata", "str", "permutation / pairing strata used ('persona_id' when a paired design was detected)"),
    ("sw_f", "float", "smallest Sanderson-Windmeijer conditional first-stage F over the NCO proxies W (proximal)"),
    ("cragg_donald_f", "float", "Cragg-Donald Wald F: joint first-stage strength of all W (homoskedastic; proximal)"),
    ("kp_f", "float", "Kleibergen-Paap rk Wald F: heteroskedasticity-robust joint first-stage strength (proximal)"),
]

TIDY_CORE: tuple[str, ...] = (
    "term",
    "estimate",
    "std_error",
    "statistic",
    "p_value",
    "conf_low",
    "conf_high",
)
GLANCE_CORE: tuple[str, ...] = (
    "method",
    "n_obs",
    "n_groups",
    "conf_level",
    "alternative",
    "seed",
    "converged",
    "n_dropped",
)

TIDY: dict[str, Column] = {n: Column(n, "tidy", d, s) for n, d, s in _TIDY}
GLANCE: dict[str, Column] = {n: Column(n, "glance", d, s) for n, d, s in _GLANCE}
TIDY_ORDER: dict[str, int] = {n: i for i, n in enumerate(TIDY)}
GLANCE_ORDER: dict[str, int] = {n: i for i, n in enumerate(GLANCE)}


def describe(name: str) -> str:
    """Describe a registered column (for docs and error messages)."""
    col = TIDY.get(name) or GLANCE.get(name)
    if col is None:
        raise KeyError(f"{name!r} is not a registered column")
    return f"{col.name} ({col.verb}, {col.dtype}): {col.description}"
