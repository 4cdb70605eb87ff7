"""Fuzzing every public verb and the CLI: only valid results or named errors (tests/fuzz/harness.py).

CI runs a fixed number of hypothesis examples (:data:`CI_EXAMPLES` in all: logs, unit-level frames,
control estimates, argument values, and the CLI on logs written in every file format); the
harness' docstring defines crashes and nonsense precisely. The large batch is
``python bench/fuzz.py --examples 10000`` (results in bench/results/fuzz.txt).
"""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.harness import (
    CLI_COMMANDS,
    FORMATS,
    HOSTILE,
    MUTATIONS,
    SCRIPT,
    VERBS,
    Case,
    Outcome,
    Recipe,
    Tally,
    base_tables,
    cases,
    check_tidy,
    read_tables,
    run_cli,
    run_verb,
)

#: hypothesis examples per test below (CI_EXAMPLES in all); each example is one input and 1-3 calls.
#: Derandomized: CI runs the same examples every time (a regression shows as a red run, not as a
#: rare flake); the randomized search is the large batch of bench/fuzz.py.
EXAMPLES = {"verbs": 40, "non_log": 30, "cli": 6}
CI_EXAMPLES = sum(EXAMPLES.values())


def _run(case: Case) -> None:
    tally = Tally(shrink_failures=False, limit=None)
    tally.run_case(case)
    assert tally.crashes == 0, tally.report()
    assert tally.nonsense == 0, tally.report()


@settings(max_examples=EXAMPLES["verbs"], deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=cases(cli=0.0, audit=0.3))
def test_fuzz_log_verbs(case: Case) -> None:
    """Generated malformed logs through read_log and the log verbs."""
    _run(case)


@settings(max_examples=EXAMPLES["non_log"], deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=cases(cli=0.0).filter(lambda c: c.recipe.kind != "log"))
def test_fuzz_frames_numbers_and_arguments(case: Case) -> None:
    """Unit-level frames, control estimates and argument values for the verbs that take them."""
    _run(case)


@settings(max_examples=EXAMPLES["cli"], deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(recipe=st.builds(Recipe, kind=st.just("log"), base=st.sampled_from(["nco", "study", "tiny"]),
                        size=st.sampled_from([2, 3, 5]), seed=st.integers(0, 3),
                        mutations=st.lists(st.tuples(st.sampled_from(sorted(MUTATIONS)), st.integers(0, 2**16 - 1)),
                                           max_size=2).map(tuple)),
       command=st.sampled_from(CLI_COMMANDS[:2]), seed=st.integers(0, 2**16 - 1))
def test_fuzz_cli(recipe: Recipe, command: str, seed: int) -> None:
    """validate / summary on generated logs written in every file format: exit 0 or 2 with one error line."""
    _run(Case(recipe, ((command, seed),)))


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=cases(cli=0.0, audit=0.0).filter(lambda c: c.recipe.kind == "log"))
def test_fuzz_adjustment_path(case: Case) -> None:
    """adjustment_path on generated logs (no iterations table: a named error) and small simulated adjustment studies."""
    _run(Case(case.recipe, tuple(("adjustment_path", seed) for _, seed in case.calls)))


# ----------------------------------------------------------------------------- the harness itself
def test_every_public_verb_is_fuzzed() -> None:
    import driftstats as ds

    takes_data = set(ds.__all__) - {"__version__", "errors", "read_log", "from_wide", "SimLog", "simulate_nco_log",
                                    "simulate_fidelity_log", "simulate_latent_world", "simulate_proxy_data",
                                    "simulate_study_log", "simulate_controls", "simulate_placebo_log",
                                    "simulate_adjustment_log"}
    fuzzed = {v.split("[")[0] for v in VERBS}
    assert takes_data <= fuzzed, sorted(takes_data - fuzzed)
    assert {"validate", "summary", "audit"} == {c.split(":")[1] for c in CLI_COMMANDS}
    assert set(FORMATS) == {"parquet", "csv", "jsonl", "duckdb"}


def test_invariants_catch_nonsense() -> None:
    """The checks are not vacuous: each kind of nonsense in a tidy frame is reported."""
    good = pd.DataFrame({"term": ["a"], "estimate": [0.2], "std_error": [0.1], "statistic": [2.0], "p_value": [0.04],
                         "conf_low": [0.1], "conf_high": [0.3], "measure": ["tvd"], "note": [pd.NA]})
    assert check_tidy("nco_test", good) == []
    bad = {
        "p_value outside": good.assign(p_value=1.2),
        "infinite std_error": good.assign(std_error=np.inf),
        "TVD estimate outside": good.assign(estimate=1.5, conf_high=1.6),
        "conf_low > conf_high": good.assign(conf_low=0.4),
        "estimate outside its interval": good.assign(estimate=0.35, conf_low=0.1, conf_high=0.3),
        "NaN p_value without a note": good.assign(p_value=np.nan),
    }
    for what, frame in bad.items():
        found = check_tidy("nco_test", frame)
        assert any(what in f for f in found), (what, found)
    assert check_tidy("nco_test", good.assign(p_value=np.nan, note="not testable: no answers")) == []


def test_harness_reports_crashes_and_named_errors() -> None:
    """A raw exception is a crash with its location; a named error is counted by class."""
    import driftstats as ds

    log = ds.simulate_nco_log(n_per_arm=5, seed=1)
    o = run_verb("nco_test", log, 0)
    assert o.status in ("result", "named"), o
    t = base_tables("nco", 3, 0)
    t["answers"] = t["answers"].drop(columns=["arm"])
    read, sl = read_tables(t)
    assert (read.status, read.detail, sl) == ("named", "MissingColumnError", None)
    assert isinstance(Outcome("crash", "KeyError: 'x'"), Outcome)


@pytest.mark.parametrize("fmt_seed", range(4))
def test_cli_on_hostile_names_in_every_format(fmt_seed: int) -> None:
    """A log whose names are hostile strings: validate and summary exit 0 in every format."""
    t = base_tables("nco", 3, 0)
    a = t["answers"].copy()
    a["study"] = SCRIPT
    a["arm"] = a["arm"].astype(object).replace({"treatment": HOSTILE[7]})
    t["answers"] = a
    arms = list(dict.fromkeys(a["arm"]))
    t["arms"] = pd.DataFrame({"arm": arms, "kind": ["control" if x == "control" else "treatment" for x in arms]})
    # a seed of this format whose arguments are all valid (cli_args adds a bad one with probability .1)
    seed = next(s for s in range(fmt_seed, 400, len(FORMATS)) if np.random.default_rng(s).random() >= .1)
    for command in CLI_COMMANDS[:2]:
        o = run_cli(command, t, seed)
        assert o.status == "result", o
