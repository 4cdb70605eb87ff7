"""Fuzz harness: generated malformed inputs for every public verb and the command line.

A *case* is a recipe for input data plus the verb calls to make on it. Recipes are plain data
(a base, a size, a seed and a list of mutations, each a name and a seed), so every input can be
rebuilt exactly from its ``repr``: that repr is the reproducer of a failure. Four kinds of case:

* ``log``: the four tables of a valid log (``driftstats.simulate.*``, or a small random log),
  mutated (missing, extra or renamed columns, wrong and mixed types, nulls in keys, duplicated
  keys, unknown options, empty tables, one arm, one option, 200 options, huge or negative numbers,
  inf/NaN probabilities, probabilities not summing to 1, all answers invalid, one unit per arm,
  arms without rows for an item, constant answers, every item one role, numeric items with huge
  or infinite values, persona values that are not options, iteration and replicate gaps, hostile
  strings), read with :func:`driftstats.read_log`, then given to the log verbs and, written in
  every file format, to the CLI (``driftstats validate | summary | audit``);
* ``frame``: a unit-level DataFrame (from :func:`driftstats.simulate_proxy_data`), mutated, for
  the verbs that take one;
* ``numbers``: estimates and standard errors (from :func:`driftstats.simulate_controls`), mutated
  (NaN, inf, huge, zero or negative SEs, lengths that disagree, empty), for the calibration verbs;
* ``params``: argument values for the verbs that take numbers only (power, sample size,
  decomposition, Manski bounds).

Outcomes of one verb call
-------------------------
``result``
    The verb returned, and every invariant below holds.
``named error``
    The verb raised a :class:`driftstats.errors.DriftstatsError` (counted by class).
``crash``
    Any other exception (or a call running past the time limit), including an exception raised
    by ``tidy()``, ``glance()``, ``repr``, ``summary()``, :meth:`Audit.to_html`, and an audit step
    that failed with an exception that is not a named error.
``nonsense``
    The verb returned a result that breaks an invariant. *Nonsense* is precisely one of:

    1. a p-value column (``p_value``, ``p_value_*``) outside [0, 1] (NaN is allowed);
    2. an infinite ``estimate``, ``std_error``, ``statistic`` or p-value, or a negative ``std_error``;
    3. a TVD-scale quantity (``estimate``, intervals, ``estimate_bc``, ``null_mean``, ``null_q95``,
       ``excess``, ``upper_bound`` of a row whose ``measure`` is a TVD or a KS distance) outside
       [0, 1]; a share (fidelity ``share_1``/``share_0``) outside [0, 1] or a share difference
       (fidelity ``estimate`` and its interval) outside [-1, 1]; a power outside [0, 1];
    4. an interval out of order: ``conf_low > conf_high``, or a point estimate outside its own
       interval (``conf_low <= estimate <= conf_high``, to a relative 1e-9) for the verbs whose
       interval is centred on their estimate (:data:`CONTAINS_ESTIMATE`);
    5. a row whose ``estimate`` or ``p_value`` is NaN without a non-empty ``note``, except the
       columns a verb documents as having no test (:data:`NO_TEST`);
    6. a *finding* that rests on NaN or on a not-testable row: :meth:`NcoTestResult.drifted` listing
       a row with a ``note`` or a NaN p-value (for every ``adjust``, at level 1.01), an
       ``equivalent`` flag set without a finite ``p_value_equiv`` below ``1 - conf_level``;
    7. results that differ between two identical calls with the same seed (``tidy()`` and
       ``glance()`` compared exactly, NaN equal to NaN; for the audit: the verdict and every step's
       outcome);
    8. a ``glance()`` without exactly one row, or with a negative count;
    9. for arrays and frames returned by the calibration verbs: a p-value outside [0, 1], an
       infinite calibrated estimate or bound, or ``conf_low > conf_high``;
    10. for the CLI: an exit code outside {0, 1, 2}; exit 1 or 2 without exactly one non-empty line
        on stderr, starting with ``error:``; a ``Traceback`` anywhere in the output; a report that
        holds a hostile ``<script>`` from the log unescaped (this also applies to
        :meth:`Audit.to_html`).

Warnings that are not driftstats' named warnings (``RuntimeWarning`` from numpy, pandas or
statsmodels warnings) are counted as *stray warnings*, apart from crashes and nonsense.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import operator
import re
import signal
import tempfile
import traceback
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import driftstats as ds
from driftstats import errors as E

# ------------------------------------------------------------------------------ constants
#: Strings that break naive rendering, SQL, markup and math text. No "nan" / "inf": a name like
#: that would be indistinguishable from a number in the invariant checks of the rendered text.
HOSTILE: tuple[str, ...] = (
    "$x$", "$", "<script>alert(1)</script>", '"quoted"', "it's", "a\nb", "tab\there", "[bold]red[/bold]", "[/]",
    "ünï✓ 数据", "\\", "%s {0}", "'; DROP TABLE answers; --", "  padded  ", "a,b", "\r\n", "{{x}}", "&amp;",
    "😀", "x" * 300, "_", "^", "#", "~", "0", "-1", "1e5", "null", "true",
)
SCRIPT = "<script>alert(1)</script>"
NUMERIC_EXTREMES: tuple[str, ...] = (
    "1e308", "-1e308", "inf", "-inf", "nan", "1e-320", "99999999999999999999", "-0", "0x10", "1,5", " 3 ", "",
)
ROLES = ("primary", "nco", "fidelity", "confounder", "covariate", "proxy", "other")
SCALES = ("ordinal", "nominal", "numeric")
TABLE_NAMES = ("answers", "items", "personas", "arms")
KEY_COLUMNS = ("unit_id", "arm", "item", "response", "mode", "iteration", "replicate", "persona_id", "valid", "study",
               "run_id", "model")

#: verbs whose interval is built around their point estimate (rule 4 of the module docstring)
CONTAINS_ESTIMATE: frozenset[str] = frozenset({
    "nco_test", "fidelity", "effect", "effect_model", "did_nco", "p2sls", "proximal_discrete", "calibrate_effect",
    "calibrate_effects", "retention", "equivalence_test", "adjustment_path",
})
#: columns documented as having no value on some rows, per verb and ``measure`` ("*": every row) (rule 5)
NO_TEST: dict[str, dict[str, tuple[str, ...]]] = {
    "nco_power": {"*": ("estimate", "p_value")},  # power rows: no estimate, no test
    "equivalence_test": {"*": ("p_value",)},  # the test is p_value_equiv
    "decompose": {"*": ("p_value",)},  # identities, no test
    "decompose_world": {"*": ("p_value",)},
    "proximal_discrete": {"*": ("p_value",)},  # percentile bootstrap intervals, no test (its docstring)
    # retention rows carry a share, no test; bound rows are identification intervals (conf_low, conf_high)
    "retention": {"*": ("p_value",), "mean_bounds": ("estimate",), "effect_bounds": ("estimate",)},
}
TVD_MEASURES = ("tvd", "ks", "tvd_iut", "tvd_projection")
TVD_COLUMNS = ("estimate", "conf_low", "conf_high", "conf_low_approx", "conf_high_approx", "estimate_bc", "null_mean",
               "null_q95", "excess", "upper_bound")
P_COLUMNS = ("p_value", "p_value_fwer", "p_value_holm", "p_value_bh", "p_value_equiv")


# ------------------------------------------------------------------------------ recipes
@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to build one input: ``kind`` x ``base`` (what it starts from), ``size``, ``seed``, mutations."""

    kind: str  # log | frame | numbers | params | adjust (a log verb outside the draws of cases())
    base: str
    size: int
    seed: int
    mutations: tuple[tuple[str, int], ...] = ()

    def without(self, i: int) -> Recipe:
        return dataclasses.replace(self, mutations=self.mutations[:i] + self.mutations[i + 1:])


@dataclasses.dataclass(frozen=True)
class Case:
    """A recipe and the calls to make on what it builds: ``(verb, seed)``; CLI calls are ``cli:<command>``."""

    recipe: Recipe
    calls: tuple[tuple[str, int], ...]


Tables = dict[str, pd.DataFrame | None]


# ------------------------------------------------------------------------------ valid bases
def _log_tables(log: Any) -> Tables:
    return {t: log.to_pandas(t) for t in TABLE_NAMES}


@functools.lru_cache(maxsize=256)
def _base_cached(base: str, size: int, seed: int) -> Tables:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _make_base(base, size, seed)


def base_tables(base: str, size: int, seed: int) -> Tables:
    """The four tables of a valid log (fresh copies)."""
    return {k: (None if v is None else v.copy()) for k, v in _base_cached(base, size, seed).items()}


def _make_base(base: str, size: int, seed: int) -> Tables:
    rng = np.random.default_rng(seed)
    n = max(int(size), 2) if base != "tiny" else max(int(size), 1)
    if base == "nco":
        arms = ("control", "treatment", "treatment_2")[: int(rng.choice([2, 2, 3]))]
        log = ds.simulate_nco_log(
            n_per_arm=n, n_levels=int(rng.choice([2, 3, 5])), tvd=float(rng.choice([0.0, 0.3])),
            n_nco=int(rng.integers(1, 4)), n_numeric=int(rng.integers(0, 2)), arms=arms, paired=bool(rng.random() < .5),
            iterations=int(rng.choice([1, 1, 2])), mode=str(rng.choice(["sample", "dist"])),
            replicates=int(rng.choice([1, 1, 2])), seed=seed)
    elif base == "study":
        log = ds.simulate_study_log(n_per_arm=n, n_placebo=int(rng.integers(0, 3)), iterations=int(rng.choice([1, 2])),
                                    seed=seed)
    elif base == "fidelity":
        log = ds.simulate_fidelity_log(n_per_arm=n, paired=bool(rng.random() < .5),
                                       units_per_persona=int(rng.choice([1, 1, 2])),
                                       replicates=int(rng.choice([1, 1, 2])), iterations=int(rng.choice([1, 2])),
                                       seed=seed)
    elif base == "placebo":
        log = ds.simulate_placebo_log(n_placebo=int(rng.choice([2, 3, 6])), n_per_arm=n, paired=bool(rng.random() < .5),
                                      seed=seed)
    elif base == "world":
        world = ds.simulate_latent_world(n_types=int(rng.integers(2, 5)), nco_levels=int(rng.integers(2, 5)),
                                         proxy_levels=int(rng.integers(2, 4)), selection=float(rng.choice([0., .5])),
                                         seed=seed)
        log = world.sample_log(n * 3, seed=seed)
    elif base == "tiny":
        return _tiny_tables(n, rng)
    else:  # pragma: no cover
        raise ValueError(base)
    return _log_tables(log)


def _tiny_tables(n: int, rng: np.random.Generator) -> Tables:
    """A small random log: 1-3 arms, 1-4 items of any scale and role, 1-200 options, maybe dist rows."""
    arms = ["control", "treatment", "placebo"][: int(rng.choice([1, 2, 2, 2, 3]))]
    items = []
    for j in range(int(rng.integers(1, 5))):
        scale = str(rng.choice(SCALES))
        k = None if scale == "numeric" else int(rng.choice([2, 2, 3, 4, 5, 200]))
        role = str(rng.choice(ROLES))
        items.append({"item": f"q{j}", "text": f"question {j}?", "scale": scale, "role": role,
                      "options": None if k is None else json.dumps([f"o{i}" for i in range(k)]),
                      "attribute": f"attr{j}" if role == "fidelity" else None})
    paired = rng.random() < 0.5
    dist = rng.random() < 0.3
    reps = int(rng.choice([1, 1, 2]))
    iters = int(rng.choice([1, 1, 2]))
    rows, personas = [], []
    for it in range(iters):
        for arm in arms:
            for u in range(n):
                unit = f"i{it}-{arm}-{u}"
                pid = f"i{it}-p{u}" if paired else None
                for spec in items:
                    if spec["role"] == "fidelity":
                        opts = json.loads(spec["options"]) if spec["options"] else ["1", "2"]
                        personas.append({"unit_id": unit, "attribute": spec["attribute"],
                                         "value": str(rng.choice(opts)), "specified": True})
                    for r in range(reps):
                        base = {"iteration": it, "unit_id": unit, "arm": arm, "item": spec["item"], "replicate": r,
                                "persona_id": pid, "valid": True}
                        if spec["options"] is None:
                            rows.append({**base, "mode": "sample", "response": f"{rng.normal(40, 10):.3f}"})
                            continue
                        opts = json.loads(spec["options"])
                        rows.append({**base, "mode": "sample", "response": str(rng.choice(opts))})
                        if dist and len(opts) <= 5:
                            pr = rng.dirichlet(np.ones(len(opts)))
                            for o, p in zip(opts, pr, strict=True):
                                rows.append({**base, "mode": "dist", "response": o, "prob": float(p)})
    answers = pd.DataFrame(rows)
    if "prob" not in answers:
        answers["prob"] = np.nan
    pers = pd.DataFrame(personas, columns=["unit_id", "attribute", "value", "specified"])
    pers = pers.drop_duplicates(["unit_id", "attribute"]).reset_index(drop=True)
    kinds = {"control": "control", "treatment": "treatment", "placebo": "placebo"}
    return {"answers": answers, "items": pd.DataFrame(items), "personas": pers,
            "arms": pd.DataFrame({"arm": arms, "kind": [kinds[a] for a in arms]})}


# ------------------------------------------------------------------------------ mutations
def _options(items: pd.DataFrame | None, item: str) -> list[str] | None:
    if items is None or "item" not in items or "options" not in items:
        return None
    hit = items.loc[items["item"].astype(object) == item, "options"]
    if not len(hit):
        return None
    v = hit.iloc[0]
    if isinstance(v, str):
        try:
            out = json.loads(v)
        except ValueError:
            return None
        return [str(o) for o in out] if isinstance(out, list) else None
    if isinstance(v, (list, tuple, np.ndarray)):
        return [str(o) for o in v]
    return None


def _set_options(items: pd.DataFrame, item: str, options: list[str] | None) -> None:
    mask = items["item"].astype(object) == item
    items["options"] = items["options"].astype(object)
    items.loc[mask, "options"] = None if options is None else json.dumps(options)


def _pick(rng: np.random.Generator, seq: Any) -> Any:
    seq = list(seq)
    return seq[int(rng.integers(len(seq)))] if seq else None


def _pick_table(rng: np.random.Generator, t: Tables, weights: tuple[float, ...] = (.55, .2, .15, .1)) -> str | None:
    names = [n for n in TABLE_NAMES if t.get(n) is not None]
    if not names:
        return None
    w = np.array([weights[TABLE_NAMES.index(n)] for n in names])
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def _items_of(t: Tables) -> list[str]:
    a = t.get("answers")
    if a is None or "item" not in a:
        return []
    return [str(x) for x in pd.unique(a["item"].dropna().astype(str))]


def _arms_of(t: Tables) -> list[str]:
    a = t.get("answers")
    if a is None or "arm" not in a:
        return []
    return [str(x) for x in pd.unique(a["arm"].dropna().astype(str))]


def _random_values(rng: np.random.Generator, n: int) -> list[Any]:
    kind = int(rng.integers(6))
    if kind == 0:
        return [str(_pick(rng, HOSTILE)) for _ in range(n)]
    if kind == 1:
        return list(rng.integers(-5, 5, n))
    if kind == 2:
        return list(rng.choice([np.nan, np.inf, -np.inf, 1e308, -0.0, 0.5], n))
    if kind == 3:
        return [bool(b) for b in rng.integers(0, 2, n)]
    if kind == 4:
        return [None] * n
    return [_pick(rng, [1, "a", 2.5, None, True, "2026-01-01", b"x"]) for _ in range(n)]


def m_drop_column(t: Tables, rng: np.random.Generator) -> Tables:
    name = _pick_table(rng, t)
    if name is None:
        return t
    f = t[name]
    cols = list(f.columns)
    if not cols:
        return t
    preferred = [c for c in cols if c in KEY_COLUMNS or c in ("options", "scale", "role", "value", "attribute", "kind",
                                                               "prob", "response_code", "specified")]
    col = _pick(rng, preferred if preferred and rng.random() < .7 else cols)
    t[name] = f.drop(columns=[col])
    return t


def m_extra_column(t: Tables, rng: np.random.Generator) -> Tables:
    name = _pick_table(rng, t)
    if name is None:
        return t
    f = t[name].copy()
    col = _pick(rng, ["extra", "note", *HOSTILE[:12], "options", "arm", "valid", "prob", "kind", "text", "Unit_ID",
                      "answers", "rowid", "__index_level_0__"])
    if col in f.columns and rng.random() < .5:
        col = f"{col}_2"
    f[col] = _random_values(rng, len(f))
    t[name] = f
    return t


def m_rename_column(t: Tables, rng: np.random.Generator) -> Tables:
    name = _pick_table(rng, t)
    if name is None or not len(t[name].columns):
        return t
    f = t[name]
    col = _pick(rng, f.columns)
    new = _pick(rng, [str(col).upper(), f"{col}s", f"{col} ", _pick(rng, HOSTILE), _pick(rng, list(f.columns)),
                      "item", "unit_id", "arm", "response"])
    if new in f.columns and new != col:  # two columns of one name
        t[name] = f.set_axis([new if c == col else c for c in f.columns], axis=1)
    else:
        t[name] = f.rename(columns={col: new})
    return t


def m_wrong_type(t: Tables, rng: np.random.Generator) -> Tables:
    name = _pick_table(rng, t)
    if name is None or not len(t[name].columns):
        return t
    f = t[name].copy()
    col = _pick(rng, f.columns)
    n = len(f)
    kind = int(rng.integers(5))
    if kind == 0:  # text where numbers were
        f[col] = f[col].astype(object).map(lambda v: "two" if v is not None else v)
    elif kind == 1:
        f[col] = rng.integers(0, 3, n)
    elif kind == 2:
        f[col] = rng.normal(size=n)
    elif kind == 3:
        f[col] = ["yes" if b else "no" for b in rng.integers(0, 2, n)]
    else:
        f[col] = pd.to_datetime(rng.integers(0, 10**9, n), unit="s")
    t[name] = f
    return t


def m_mixed_types(t: Tables, rng: np.random.Generator) -> Tables:
    name = _pick_table(rng, t)
    if name is None or not len(t[name].columns):
        return t
    f = t[name].copy()
    col = _pick(rng, f.columns)
    vals = f[col].astype(object).to_numpy().copy()
    for i in rng.choice(len(vals), size=min(len(vals), int(rng.integers(1, 4))), replace=False) if len(vals) else []:
        vals[i] = _pick(rng, [1, 2.5, "x", True, None, np.nan, [1, 2], {"a": 1}, 10**20])
    f[col] = pd.Series(list(vals), index=f.index, dtype=object)
    t[name] = f
    return t


def m_null_keys(t: Tables, rng: np.random.Generator) -> Tables:
    name = _pick_table(rng, t, (.7, .15, .1, .05))
    if name is None:
        return t
    f = t[name].copy()
    cols = [c for c in f.columns if c in (*KEY_COLUMNS, "attribute", "value", "options", "kind", "prob", "scale")]
    if not cols or not len(f):
        return t
    col = _pick(rng, cols)
    idx = rng.choice(len(f), size=min(len(f), int(rng.integers(1, 4))), replace=False)
    f[col] = f[col].astype(object)
    f.iloc[idx, f.columns.get_loc(col)] = _pick(rng, [None, np.nan, pd.NA])
    t[name] = f
    return t


def m_duplicate_rows(t: Tables, rng: np.random.Generator) -> Tables:
    name = _pick_table(rng, t)
    if name is None or not len(t[name]):
        return t
    f = t[name]
    idx = rng.choice(len(f), size=min(len(f), int(rng.integers(1, 4))), replace=False)
    t[name] = pd.concat([f, f.iloc[idx]], ignore_index=True)
    return t


def m_unknown_option(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or "response" not in a or not len(a):
        return t
    a = a.copy()
    idx = rng.choice(len(a), size=min(len(a), int(rng.integers(1, 4))), replace=False)
    a["response"] = a["response"].astype(object)
    a.iloc[idx, a.columns.get_loc("response")] = _pick(rng, ["ninety", "", _pick(rng, HOSTILE), "L99", "o999"])
    if "valid" in a and rng.random() < .5:  # sometimes honestly flagged
        a["valid"] = a["valid"].astype(object)
        a.iloc[idx, a.columns.get_loc("valid")] = False
    t["answers"] = a
    return t


def m_empty_table(t: Tables, rng: np.random.Generator) -> Tables:
    name = _pick_table(rng, t, (.4, .3, .2, .1))
    if name is not None:
        t[name] = t[name].iloc[:0]
    return t


def m_drop_table(t: Tables, rng: np.random.Generator) -> Tables:
    names = [n for n in TABLE_NAMES[1:] if t.get(n) is not None]
    name = _pick(rng, names)
    if name is not None:
        t[name] = None
    return t


def _keep_answers(t: Tables, mask: np.ndarray) -> Tables:
    a = t["answers"]
    t["answers"] = a[mask].reset_index(drop=True)
    return t


def m_one_arm(t: Tables, rng: np.random.Generator) -> Tables:
    arms = _arms_of(t)
    if not arms:
        return t
    keep = _pick(rng, arms)
    t = _keep_answers(t, (t["answers"]["arm"].astype(object) == keep).to_numpy())
    if t.get("arms") is not None and "arm" in t["arms"] and rng.random() < .7:
        t["arms"] = t["arms"][t["arms"]["arm"].astype(object) == keep].reset_index(drop=True)
    return t


def m_one_option(t: Tables, rng: np.random.Generator) -> Tables:
    items = t.get("items")
    item = _pick(rng, _items_of(t))
    opts = _options(items, item) if item else None
    if not opts:
        return t
    items = items.copy()
    keep = opts[:1] if rng.random() < .5 else []
    _set_options(items, item, keep)
    t["items"] = items
    a = t["answers"].copy()
    if keep and "response" in a and rng.random() < .7:
        a.loc[a["item"].astype(object) == item, "response"] = keep[0]
        if "response_code" in a:
            a.loc[a["item"].astype(object) == item, "response_code"] = 0
    t["answers"] = a
    return t


def _remap_item(t: Tables, item: str, new_opts: list[str], rng: np.random.Generator) -> Tables:
    """Give ``item`` the options ``new_opts`` and answer it with them (sample rows; dist rows dropped)."""
    items = t["items"].copy()
    _set_options(items, item, new_opts)
    t["items"] = items
    a = t["answers"].copy()
    on = a["item"].astype(object) == item
    if "mode" in a:
        a = a[~(on & (a["mode"].astype(object) == "dist"))].reset_index(drop=True)
        on = a["item"].astype(object) == item
    a["response"] = a["response"].astype(object)
    a.loc[on, "response"] = [str(_pick(rng, new_opts)) for _ in range(int(on.sum()))]
    if "response_code" in a:
        a["response_code"] = a["response_code"].astype(object)
        a.loc[on, "response_code"] = None
    t["answers"] = a
    return t


def m_few_options(t: Tables, rng: np.random.Generator) -> Tables:
    item = _pick(rng, _items_of(t))
    if item is None or _options(t.get("items"), item) is None:
        return t
    return _remap_item(t, item, ["no", "yes"], rng)


def m_huge_options(t: Tables, rng: np.random.Generator) -> Tables:
    item = _pick(rng, _items_of(t))
    if item is None or _options(t.get("items"), item) is None:
        return t
    return _remap_item(t, item, [f"opt {i}" for i in range(200)], rng)


def m_huge_numbers(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or not len(a):
        return t
    a = a.copy()
    col = _pick(rng, [c for c in ("iteration", "replicate", "seed", "response_code", "response_value", "temperature",
                                  "top_p", "prob") if c in a.columns] or ["iteration"])
    v = _pick(rng, [2**62, -(2**62), -1, -5, 10**6, 2**63 - 1, 1e308, -1e308, 1e-300, np.inf, -np.inf, np.nan])
    idx = rng.choice(len(a), size=min(len(a), int(rng.integers(1, 5))), replace=False)
    a[col] = a[col].astype(object) if col in a else None
    a.iloc[idx, a.columns.get_loc(col)] = v
    t["answers"] = a
    return t


def m_bad_probs(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or "mode" not in a or "prob" not in a:
        return t
    a = a.copy()
    dist = np.flatnonzero((a["mode"].astype(object) == "dist").to_numpy())
    if not len(dist):
        return t
    kind = int(rng.integers(5))
    idx = rng.choice(dist, size=min(len(dist), int(rng.integers(1, 4))), replace=False)
    p = a["prob"].astype(float).to_numpy().copy()
    if kind == 0:
        p[idx] = rng.choice([np.inf, -np.inf, np.nan])
    elif kind == 1:
        p[idx] = p[idx] * float(rng.choice([0.5, 2.0, 1.0001]))
    elif kind == 2:
        p[idx] = -p[idx]
    elif kind == 3:  # exactly summing to 1 but all mass on one option, others 0
        p[dist] = 0.0
        key = [c for c in ("unit_id", "item", "replicate", "iteration") if c in a]
        first = a.iloc[dist].drop_duplicates(key).index
        p[first] = 1.0
    else:
        p[dist] = p[dist] * 1e-9 + 1e-300
    a["prob"] = p
    t["answers"] = a
    return t


def m_all_invalid(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or not len(a):
        return t
    a = a.copy()
    scope = int(rng.integers(3))
    if scope == 0:
        mask = np.ones(len(a), bool)
    elif scope == 1 and "item" in a:
        mask = (a["item"].astype(object) == _pick(rng, _items_of(t))).to_numpy()
    elif "arm" in a:
        mask = (a["arm"].astype(object) == _pick(rng, _arms_of(t))).to_numpy()
    else:
        mask = np.ones(len(a), bool)
    a["valid"] = (~mask) if "valid" not in a else np.where(mask, False, a["valid"].fillna(True).astype(bool))
    a["error"] = a["error"].astype(object) if "error" in a else None
    a.loc[mask, "error"] = _pick(rng, ["refused", SCRIPT, "$x$", "not an option"])
    if rng.random() < .3 and "response" in a:
        a["response"] = a["response"].astype(object)
        a.loc[mask, "response"] = None
    t["answers"] = a
    return t


def m_some_invalid(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or not len(a):
        return t
    a = a.copy()
    mask = rng.random(len(a)) < float(rng.choice([.05, .3, .8]))
    valid = a["valid"].fillna(True).astype(bool).to_numpy() if "valid" in a else np.ones(len(a), bool)
    a["valid"] = valid & ~mask
    a["error"] = a["error"].astype(object) if "error" in a else None
    a.loc[mask, "error"] = "refused"
    t["answers"] = a
    return t


def m_one_unit_per_arm(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or "unit_id" not in a or "arm" not in a:
        return t
    per = int(rng.choice([1, 1, 2]))
    units = a.drop_duplicates("unit_id").groupby(a["arm"].astype(object), dropna=False).head(per)["unit_id"]
    return _keep_answers(t, a["unit_id"].isin(set(units)).to_numpy())


def m_arm_item_gap(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or "arm" not in a or "item" not in a:
        return t
    arm, item = _pick(rng, _arms_of(t)), _pick(rng, _items_of(t))
    mask = (a["arm"].astype(object) == arm) & (a["item"].astype(object) == item)
    if "mode" in a and rng.random() < .5:  # or only its rows in one mode
        mask &= a["mode"].astype(object) == _pick(rng, ["sample", "dist"])
    return _keep_answers(t, ~mask.to_numpy())


def m_constant_answers(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    item = _pick(rng, _items_of(t))
    if a is None or item is None or "response" not in a:
        return t
    a = a.copy()
    on = a["item"].astype(object) == item
    if "mode" in a:
        a = a[~(on & (a["mode"].astype(object) == "dist"))].reset_index(drop=True)
        on = a["item"].astype(object) == item
    opts = _options(t.get("items"), item)
    value = opts[int(rng.integers(len(opts)))] if opts else str(rng.choice(["3", "0", "1e308"]))
    a["response"] = a["response"].astype(object)
    a.loc[on, "response"] = value
    for c in ("response_code", "response_value"):
        if c in a:
            a[c] = a[c].astype(object)
            a.loc[on, c] = None
    t["answers"] = a
    return t


def m_one_role(t: Tables, rng: np.random.Generator) -> Tables:
    role = _pick(rng, ROLES)
    items = t.get("items")
    if items is not None and "role" in items:
        items = items.copy()
        items["role"] = role if rng.random() < .7 else [str(_pick(rng, ROLES)) for _ in range(len(items))]
        t["items"] = items
    a = t.get("answers")
    if a is not None and "role" in a:
        a = a.copy()
        a["role"] = None if rng.random() < .6 else role
        t["answers"] = a
    return t


def m_scale_change(t: Tables, rng: np.random.Generator) -> Tables:
    items = t.get("items")
    if items is None or "scale" not in items or not len(items):
        return t
    items = items.copy()
    i = int(rng.integers(len(items)))
    items["scale"] = items["scale"].astype(object)
    items.iloc[i, items.columns.get_loc("scale")] = _pick(rng, [*SCALES, "likert", None])
    t["items"] = items
    return t


def m_numeric_extremes(t: Tables, rng: np.random.Generator) -> Tables:
    a, items = t.get("answers"), t.get("items")
    if a is None or "response" not in a or not len(a):
        return t
    a = a.copy()
    numeric = []
    if items is not None and "scale" in items and "item" in items:
        numeric = [str(x) for x in items.loc[items["scale"].astype(object) == "numeric", "item"]]
    item = _pick(rng, numeric) if numeric else _pick(rng, _items_of(t))
    on = np.flatnonzero((a["item"].astype(object) == item).to_numpy())
    if not len(on):
        return t
    idx = rng.choice(on, size=min(len(on), int(rng.integers(1, 6))), replace=False)
    a["response"] = a["response"].astype(object)
    a.iloc[idx, a.columns.get_loc("response")] = [str(_pick(rng, NUMERIC_EXTREMES)) for _ in idx]
    if "response_value" in a:
        a["response_value"] = a["response_value"].astype(object)
        a.iloc[idx, a.columns.get_loc("response_value")] = None
    t["answers"] = a
    return t


def m_huge_values_all(t: Tables, rng: np.random.Generator) -> Tables:
    """Every answer of a numeric item scaled to huge (or tiny) magnitudes."""
    a, items = t.get("answers"), t.get("items")
    if a is None or items is None or "scale" not in items or "response" not in a:
        return t
    numeric = [str(x) for x in items.loc[items["scale"].astype(object) == "numeric", "item"]]
    if not numeric:
        return t
    item = _pick(rng, numeric)
    a = a.copy()
    on = (a["item"].astype(object) == item).to_numpy()
    vals = pd.to_numeric(a.loc[on, "response"], errors="coerce").to_numpy(float)
    factor = float(rng.choice([1e300, 1e-300, 1e150, -1e300, 1e16]))
    a["response"] = a["response"].astype(object)
    a.loc[on, "response"] = [repr(float(v * factor)) for v in vals]
    if "response_value" in a:
        a["response_value"] = a["response_value"].astype(object)
        a.loc[on, "response_value"] = None
    t["answers"] = a
    return t


def m_persona_bad_values(t: Tables, rng: np.random.Generator) -> Tables:
    p = t.get("personas")
    if p is None or "value" not in p or not len(p):
        return t
    p = p.copy()
    idx = rng.choice(len(p), size=min(len(p), int(rng.integers(1, len(p) + 1))), replace=False)
    p["value"] = p["value"].astype(object)
    p.iloc[idx, p.columns.get_loc("value")] = [str(_pick(rng, ["Martian", "", "999", *HOSTILE[:6]])) for _ in idx]
    if "specified" in p and rng.random() < .3:
        p["specified"] = _pick(rng, [False, None, True])
    t["personas"] = p
    return t


def m_gaps(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or not len(a):
        return t
    a = a.copy()
    col = _pick(rng, [c for c in ("iteration", "replicate") if c in a] or ["iteration"])
    if col not in a:
        a[col] = 0
    v = pd.to_numeric(a[col], errors="coerce").fillna(0).astype("int64")
    table = {int(x): int(x) * int(rng.choice([3, 7, 1000])) + int(rng.choice([0, 1, 5])) for x in pd.unique(v)}
    a[col] = v.map(table)
    t["answers"] = a
    return t


def m_hostile_rename(t: Tables, rng: np.random.Generator) -> Tables:
    """Rename one item, arm, option, attribute or study consistently in every table (stays valid)."""
    what = int(rng.integers(5))
    new = str(_pick(rng, HOSTILE))
    a, items, p, arms = (t.get(n) for n in TABLE_NAMES)
    if a is None:
        return t
    a = a.copy()

    def swap(frame: pd.DataFrame | None, col: str, old: str) -> pd.DataFrame | None:
        if frame is None or col not in frame:
            return frame
        frame = frame.copy()
        frame[col] = frame[col].astype(object).map(lambda v: new if v == old else v)
        return frame

    if what == 0:
        old = _pick(rng, _items_of(t))
        if old is None:
            return t
        t["answers"], t["items"] = swap(a, "item", old), swap(items, "item", old)
    elif what == 1:
        old = _pick(rng, _arms_of(t))
        if old is None:
            return t
        t["answers"], t["arms"] = swap(a, "arm", old), swap(arms, "arm", old)
    elif what == 2:
        item = _pick(rng, _items_of(t))
        opts = _options(items, item) if item else None
        if not opts:
            return t
        old = _pick(rng, opts)
        if new in opts:
            return t
        items = items.copy()
        _set_options(items, item, [new if o == old else o for o in opts])
        on = (a["item"].astype(object) == item) & (a["response"].astype(object) == old)
        a["response"] = a["response"].astype(object)
        a.loc[on, "response"] = new
        t["answers"], t["items"] = a, items
        if p is not None and "value" in p:
            t["personas"] = swap(p, "value", old)
    elif what == 3:
        if p is None or "attribute" not in p or not len(p):
            return t
        old = str(_pick(rng, pd.unique(p["attribute"].dropna().astype(str))))
        t["personas"], t["items"] = swap(p, "attribute", old), swap(items, "attribute", old)
    else:
        for col in ("study", "model", "run_id", "persona_id", "unit_id"):
            if col in a and rng.random() < .5:
                old = _pick(rng, pd.unique(a[col].dropna().astype(str)))
                a = swap(a, col, old)
                if col == "unit_id":
                    t["personas"] = swap(t.get("personas"), "unit_id", old)
        if items is not None and "text" in items:
            items = items.copy()
            items["text"] = new
            t["items"] = items
        if arms is not None and rng.random() < .5:
            arms = arms.copy()
            arms["intervention"] = SCRIPT + " $\\frac{1}{2}$ " + new
            t["arms"] = arms
        t["answers"] = a
    return t


def m_hostile_cells(t: Tables, rng: np.random.Generator) -> Tables:
    name = _pick_table(rng, t)
    if name is None or not len(t[name]):
        return t
    f = t[name].copy()
    col = _pick(rng, f.columns)
    idx = rng.choice(len(f), size=min(len(f), int(rng.integers(1, 4))), replace=False)
    f[col] = f[col].astype(object)
    f.iloc[idx, f.columns.get_loc(col)] = [str(_pick(rng, HOSTILE)) for _ in idx]
    t[name] = f
    return t


def m_subsample(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or not len(a):
        return t
    return _keep_answers(t, rng.random(len(a)) < float(rng.choice([.2, .5, .9])))


def m_shuffle(t: Tables, rng: np.random.Generator) -> Tables:
    for name in TABLE_NAMES:
        f = t.get(name)
        if f is not None and len(f):
            t[name] = f.iloc[rng.permutation(len(f))].reset_index(drop=True)
    return t


def m_pairing(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or "unit_id" not in a:
        return t
    a = a.copy()
    kind = int(rng.integers(4))
    if kind == 0:
        a["persona_id"] = a["unit_id"]
    elif kind == 1:
        a["persona_id"] = "same"
    elif kind == 2:
        a["persona_id"] = None
    else:  # pairs that cross: persona shared by units of the same arm
        codes = pd.factorize(a["unit_id"])[0]
        a["persona_id"] = [f"p{c // 2}" for c in codes]
    t["answers"] = a
    return t


def m_option_order(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or not len(a):
        return t
    a = a.copy()
    a["option_order"] = [str(_pick(rng, ["2|0|1", "0|1", "9|x", "", "0|0", "1|0|2|3|4", None])) for _ in range(len(a))]
    t["answers"] = a
    return t


def m_code_mismatch(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or not len(a):
        return t
    a = a.copy()
    idx = rng.choice(len(a), size=min(len(a), int(rng.integers(1, 4))), replace=False)
    a["response_code"] = a["response_code"].astype(object) if "response_code" in a else None
    a.iloc[idx, a.columns.get_loc("response_code")] = [int(_pick(rng, [-1, 0, 1, 7, 10**6])) for _ in idx]
    t["answers"] = a
    return t


def m_mode_flip(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or "mode" not in a or not len(a):
        return t
    a = a.copy()
    idx = rng.choice(len(a), size=min(len(a), int(rng.integers(1, 4))), replace=False)
    a["mode"] = a["mode"].astype(object)
    a.iloc[idx, a.columns.get_loc("mode")] = _pick(rng, ["dist", "sample", "Sample", "both"])
    t["answers"] = a
    return t


def m_arm_kinds(t: Tables, rng: np.random.Generator) -> Tables:
    arms = t.get("arms")
    if arms is None or not len(arms):
        return t
    arms = arms.copy()
    kind = int(rng.integers(4))
    if kind == 0:
        arms["kind"] = "treatment"
    elif kind == 1:
        arms["kind"] = "control"
    elif kind == 2:
        arms["kind"] = [str(_pick(rng, ["placebo", "treatment", "control", "foo", None])) for _ in range(len(arms))]
    else:  # an extra declared arm with no rows
        arms = pd.concat([arms, pd.DataFrame({"arm": ["ghost"], "kind": ["placebo"]})], ignore_index=True)
    t["arms"] = arms
    return t


def m_attribute(t: Tables, rng: np.random.Generator) -> Tables:
    items = t.get("items")
    if items is None or not len(items):
        return t
    items = items.copy()
    i = int(rng.integers(len(items)))
    if "attribute" not in items:
        items["attribute"] = None
    items["attribute"] = items["attribute"].astype(object)
    items.iloc[i, items.columns.get_loc("attribute")] = _pick(rng, ["unknown_attr", None, "party", "age", "u"])
    if "role" in items and rng.random() < .5:
        items["role"] = items["role"].astype(object)
        items.iloc[i, items.columns.get_loc("role")] = "fidelity"
    t["items"] = items
    return t


def m_many_iterations(t: Tables, rng: np.random.Generator) -> Tables:
    a = t.get("answers")
    if a is None or not len(a) or len(a) > 3000:
        return t
    k = int(rng.choice([2, 3, 5]))
    parts = []
    for i in range(k):
        b = a.copy()
        b["iteration"] = i * int(rng.choice([1, 2]))
        if "unit_id" in b:
            b["unit_id"] = b["unit_id"].astype(object).map(lambda u, i=i: f"{u}#{i}")
        parts.append(b)
    t["answers"] = pd.concat(parts, ignore_index=True)
    p = t.get("personas")
    if p is not None and "unit_id" in p:
        t["personas"] = pd.concat([p.assign(unit_id=p["unit_id"].astype(object).map(lambda u, i=i: f"{u}#{i}"))
                                   for i in range(k)], ignore_index=True)
    return t


def m_drop_item_row(t: Tables, rng: np.random.Generator) -> Tables:
    items = t.get("items")
    if items is None or not len(items):
        return t
    t["items"] = items.drop(index=items.index[int(rng.integers(len(items)))]).reset_index(drop=True)
    return t


def m_categorical_dtype(t: Tables, rng: np.random.Generator) -> Tables:
    """A pandas Categorical (ordered or not, with or without unused categories) as a column."""
    a = t.get("answers")
    if a is None or not len(a):
        return t
    a = a.copy()
    col = _pick(rng, [c for c in ("response", "arm", "item", "unit_id", "mode") if c in a])
    if col is None:
        return t
    vals = a[col].astype(object)
    cats = list(pd.unique(vals.dropna()))
    if rng.random() < .5:
        cats = [*cats, "unused"]
    rng.shuffle(cats)
    a[col] = pd.Categorical(vals, categories=cats, ordered=bool(rng.random() < .5))
    t["answers"] = a
    return t


MUTATIONS: dict[str, Callable[[Tables, np.random.Generator], Tables]] = {
    name[2:]: fn for name, fn in sorted(globals().items()) if name.startswith("m_") and callable(fn)
}
#: mutations that usually leave the log valid (drawn more often, so that the verbs see data)
SEMANTIC = ("one_arm", "few_options", "huge_options", "all_invalid", "some_invalid", "one_unit_per_arm",
            "arm_item_gap", "constant_answers", "one_role", "numeric_extremes", "huge_values_all",
            "persona_bad_values", "gaps", "hostile_rename", "subsample", "shuffle", "pairing", "arm_kinds",
            "attribute", "many_iterations", "scale_change", "categorical_dtype", "extra_column", "drop_table")


def build_tables(recipe: Recipe, skipped: list[str] | None = None) -> Tables:
    """The tables of a log recipe: the base, then each mutation (a mutation that cannot apply is a no-op)."""
    t = base_tables(recipe.base, recipe.size, recipe.seed)
    for name, seed in recipe.mutations:
        rng = np.random.default_rng(seed)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = MUTATIONS[name](dict(t), rng)
        except Exception as exc:  # a harness limitation, never counted against the library
            if skipped is not None:
                skipped.append(f"{name}: {type(exc).__name__}: {exc}")
    return t


# ------------------------------------------------------------------------------ frames and numbers
FRAME_MUTATIONS = ("nan", "inf", "huge", "tiny", "constant", "one_arm", "one_unit", "strings", "mixed", "drop",
                   "bool", "categorical", "negative", "empty", "duplicate_index", "three_arms", "all_nan")


def build_frame(recipe: Recipe) -> pd.DataFrame:
    """A unit-level frame (``y``, ``t``, ``arm``, ``x``, ``w1``, ``w2``, ``z1``, ``z2``, discrete ``wd``/``zd``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = ds.simulate_proxy_data(max(recipe.size * 4, 2), seed=recipe.seed)
    d = d.drop(columns=["u"])
    d["arm"] = np.where(d["t"] > 0, "treatment", "control")
    rng = np.random.default_rng(recipe.seed)
    d["wd"] = (d["w1"] > 0).astype(int)
    d["zd"] = (d["z1"] > 0).astype(int)
    d["wd3"] = (d["w1"] > -0.5).astype(int) + (d["w1"] > 0.5).astype(int)
    d["zd3"] = (d["z1"] > -0.5).astype(int) + (d["z1"] > 0.5).astype(int)
    d["persona_id"] = [f"p{i // 2}" for i in range(len(d))] if rng.random() < .3 else None
    for name, seed in recipe.mutations:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with np.errstate(all="ignore"):
                    d = _frame_mutation(d, name, np.random.default_rng(seed))
        except Exception:
            pass
    return d


def _frame_mutation(d: pd.DataFrame, name: str, r: np.random.Generator) -> pd.DataFrame:
    cols = [c for c in ["y", "t", "x", "w1", "w2", "z1", "z2", "wd", "zd", "wd3", "zd3", "arm"] if c in d]
    col = _pick(r, cols) or "y"
    if col not in d:
        return d
    idx = r.choice(len(d), size=min(len(d), int(r.integers(1, 4))), replace=False) if len(d) else []
    d = d.copy()
    if name == "nan":
        d[col] = d[col].astype(object)
        d.iloc[idx, d.columns.get_loc(col)] = np.nan
    elif name == "inf":
        if col != "arm":
            d[col] = d[col].astype(float)
        d.iloc[idx, d.columns.get_loc(col)] = r.choice([np.inf, -np.inf]) if col != "arm" else "inf"
    elif name == "huge":
        if col != "arm":
            d[col] = d[col] * float(r.choice([1e300, 1e154, -1e200]))
    elif name == "tiny":
        if col != "arm":
            d[col] = d[col] * 1e-300
    elif name == "constant":
        d[col] = d[col].iloc[0] if len(d) else 0
    elif name == "one_arm":
        d = d[d["t"] == d["t"].iloc[0]] if len(d) else d
    elif name == "one_unit":
        d = d.groupby("arm").head(int(r.choice([1, 2])))
    elif name == "strings":
        d[col] = d[col].astype(str)
    elif name == "mixed":
        d[col] = d[col].astype(object)
        d.iloc[idx, d.columns.get_loc(col)] = _pick(r, ["x", None, True, "1.5"])
    elif name == "drop":
        d = d.drop(columns=[col])
    elif name == "bool":
        d[col] = r.integers(0, 2, len(d)).astype(bool)
    elif name == "categorical":
        d[col] = pd.Categorical(d[col].astype(str), ordered=bool(r.random() < .5))
    elif name == "negative":
        if col != "arm":
            d[col] = -d[col].abs() - 1
    elif name == "empty":
        d = d.iloc[:0]
    elif name == "duplicate_index":
        d.index = [0] * len(d)
    elif name == "three_arms":
        d["arm"] = [("control", "treatment", "other")[i % 3] for i in range(len(d))]
    elif name == "all_nan" and col != "arm":
        d[col] = np.nan
    return d


NUMBER_MUTATIONS = ("nan", "inf", "huge", "zero_se", "negative_se", "mismatch", "empty", "one", "two", "strings",
                    "constant", "tiny_se", "huge_se", "none")


def build_numbers(recipe: Recipe) -> dict[str, Any]:
    """Control estimates (``est``, ``se``, ``truth``) and estimates to calibrate (``t_est``, ``t_se``)."""
    c = ds.simulate_controls(max(recipe.size * 3, 1), mean=0.1, sd=0.1, true_effects=[0.0, 0.0, 1.0],
                             seed=recipe.seed)
    out: dict[str, Any] = {"est": c["estimate"].to_numpy(), "se": c["std_error"].to_numpy(),
                           "truth": c["true_effect"].to_numpy(), "t_est": np.array([0.5, -0.2]),
                           "t_se": np.array([0.1, 0.2])}
    for name, seed in recipe.mutations:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                out = _number_mutation(out, name, np.random.default_rng(seed))
        except Exception:
            pass
    return out


def _number_mutation(out: dict[str, Any], name: str, r: np.random.Generator) -> dict[str, Any]:
    out = dict(out)
    key = _pick(r, ["est", "se", "truth", "t_est", "t_se"])
    v = np.asarray(out[key])
    if name == "nan" and v.size:
        v = v.astype(float).copy()
        v[r.integers(v.size)] = np.nan
    elif name == "inf" and v.size:
        v = v.astype(float).copy()
        v[r.integers(v.size)] = r.choice([np.inf, -np.inf])
    elif name == "huge":
        v = v * float(r.choice([1e300, 1e200, -1e250]))
    elif name == "zero_se":
        key, v = "se" if r.random() < .5 else "t_se", np.zeros_like(np.asarray(out["se" if key != "t_se" else key]))
    elif name == "negative_se":
        key = _pick(r, ["se", "t_se"])
        v = -np.abs(np.asarray(out[key], float))
    elif name == "mismatch":
        v = v[:-1] if v.size else np.array([1.0])
    elif name == "empty":
        v = v[:0]
    elif name == "one":
        v = v[:1]
    elif name == "two":
        v = v[:2]
    elif name == "strings":
        v = np.array([str(x) for x in v] + ["x"], dtype=object)
    elif name == "constant" and v.size:
        v = np.full_like(v, v.flat[0])
    elif name == "tiny_se":
        key, v = "se", np.asarray(out["se"], float) * 1e-300
    elif name == "huge_se":
        key, v = "se", np.asarray(out["se"], float) * 1e300
    elif name == "none":
        v = np.array([None] * max(v.size, 1), dtype=object)
    out[key] = v
    return out


# ------------------------------------------------------------------------------ the verbs
@dataclasses.dataclass(frozen=True)
class Verb:
    """A public verb: the kind of input it takes and how to make one call from ``(input, rng)``."""

    name: str
    kind: str  # log | frame | numbers | params | adjust (a log verb outside the draws of cases())
    make: Callable[[Any, np.random.Generator], tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]
    weight: float = 1.0


def _roles(log: Any, role: str) -> list[str]:
    try:
        return list(log.item_names(role))
    except Exception:
        return []


def _item(rng: np.random.Generator, log: Any, role: str | None, *, other: float = .2, bad: float = .03) -> str | None:
    if rng.random() < bad:
        return str(_pick(rng, ["nope", "$x$", ""]))
    pool = _roles(log, role) if role else []
    if not pool or rng.random() < other:
        pool = list(log.item_names())
    return _pick(rng, pool)


def _outcome(rng: np.random.Generator, log: Any, p_default: float) -> str | None:
    """None (the verb's default) when the log has one primary item (and, rarely, when it has not)."""
    one = len(_roles(log, "primary")) == 1
    if rng.random() < (p_default if one else .03):
        return None
    if rng.random() < .7 and not _roles(log, "primary"):
        return _pick(rng, _ordered_items(log) or list(log.item_names()))
    return _item(rng, log, "primary")


def _attrs(log: Any) -> list[str]:
    try:
        return [str(a) for a in pd.unique(log.personas["attribute"].dropna())]
    except Exception:
        return []


def _maybe_bad(rng: np.random.Generator, kwargs: dict[str, Any], bad: dict[str, list[Any]], p: float = .06
               ) -> dict[str, Any]:
    """With probability ``p``, replace one argument by a value that is not allowed."""
    # the shared bad values only for arguments the verb takes (an unknown keyword is Python's TypeError)
    keys = sorted(k for k in bad if k in kwargs or k not in COMMON_BAD)
    if keys and rng.random() < p:
        k = _pick(rng, keys)
        kwargs[k] = _pick(rng, bad[k])
    return kwargs


COMMON_BAD = {"conf_level": [1.5, 0, -0.1, 1.0, float("nan"), "0.95"], "mode": ["both", "Sample", None],
              "reference": ["nope", 0], "by": ["nope", ("iteration", "nope")]}


def _by(rng: np.random.Generator) -> Any:
    return _pick(rng, [("iteration",), ("iteration",), (), "iteration", ("iteration", "model"), ("model",)])


def _arm_or_none(rng: np.random.Generator, log: Any) -> str | None:
    return _pick(rng, list(log.arm_names)) if rng.random() < .25 else None


def _mode(rng: np.random.Generator, log: Any) -> str:
    """'dist' half of the time when the log has option probabilities (and now and then when it has none)."""
    has = "dist" in tuple(log.modes)
    return "dist" if rng.random() < (.5 if has else .05) else "sample"


def _some(rng: np.random.Generator, pool: list[str], k_max: int | None = None) -> list[str]:
    k = int(rng.integers(1, (k_max or len(pool)) + 1))
    return [str(x) for x in rng.choice(pool, size=min(k, len(pool)), replace=False)]


def _categorical_items(log: Any) -> list[str]:
    out = []
    for name in log.item_names():
        try:
            if log.item(name).scale != "numeric":
                out.append(name)
        except Exception:
            pass
    return out


def _ordered_items(log: Any, exclude: tuple[str, ...] = ()) -> list[str]:
    out = []
    for name in log.item_names():
        try:
            info = log.item(name)
        except Exception:
            continue
        if name not in exclude and (info.scale != "nominal" or (info.n_levels or 0) <= 2):
            out.append(name)
    return out


def make_nco_test(log: Any, rng: np.random.Generator):
    ncos = _roles(log, "nco")
    nco: Any = None
    if not ncos or rng.random() < .3:
        pool = list(log.item_names()) if rng.random() < .5 or not _categorical_items(log) else _categorical_items(log)
        nco = _some(rng, pool, 3) if pool else None
    kw = dict(nco=nco, by=_by(rng), strata=_pick(rng, ["auto", "auto", None, "persona_id", *(_attrs(log)[:2])]),
              reference=_arm_or_none(rng, log), pairs=_pick(rng, ["reference", "all"]), mode=_mode(rng, log),
              n_perm=int(_pick(rng, [19, 49])), n_boot=int(_pick(rng, [0, 20])),
              conf_level=float(_pick(rng, [0.95, 0.9, 0.5])), seed=int(_pick(rng, [0, 1])),
              engine=_pick(rng, ["auto", "auto", "auto", "exact", "counts"]))
    return ds.nco_test, (log,), _maybe_bad(rng, kw, {**COMMON_BAD, "n_perm": [5, 0, -1, 2.5], "n_boot": [-1],
                                                     "engine": ["fast"], "strata": ["nope"], "pairs": ["some"],
                                                     "nco": ["nope", [], ["nope"]]})


def make_equivalence(log: Any, rng: np.random.Generator):
    ncos = _roles(log, "nco")
    nco = _some(rng, _categorical_items(log) or list(log.item_names()), 3) if not ncos or rng.random() < .3 else None
    kw = dict(nco=nco, margin=float(_pick(rng, [0.05, 0.2, 0.5])), method=_pick(rng, [("iut", "projection"), "iut", "projection"]),
              by=_by(rng), strata=_pick(rng, [None, None, "persona_id"]), reference=_arm_or_none(rng, log),
              pairs=_pick(rng, ["reference", "all"]), mode=_mode(rng, log), conf_level=float(_pick(rng, [0.95, 0.9])))
    return ds.equivalence_test, (log,), _maybe_bad(rng, kw, {**COMMON_BAD, "margin": [0, 1.5, -0.1, float("nan")],
                                                             "method": ["tost"]})


def make_fidelity(log: Any, rng: np.random.Generator):
    fid = _roles(log, "fidelity")
    items = None if rng.random() < .8 or not fid else [_pick(rng, fid)]
    if not fid and rng.random() < .7:
        items = _some(rng, list(log.item_names()), 2)
    kw = dict(items=items, by=_by(rng), reference=_arm_or_none(rng, log), pairs=_pick(rng, ["reference", "all"]),
              paired=_pick(rng, [None, None, True, False]), mode=_mode(rng, log),
              conf_level=float(_pick(rng, [0.95, 0.8])), min_units=int(_pick(rng, [2, 5])))
    return ds.fidelity, (log,), _maybe_bad(rng, kw, {**COMMON_BAD, "min_units": [0, -1, 1.5], "items": ["nope"]})


def make_effect(log: Any, rng: np.random.Generator):
    kw = dict(outcome=_outcome(rng, log, .4), by=_by(rng),
              reference=_arm_or_none(rng, log), pairs=_pick(rng, ["reference", "all"]),
              mode=_mode(rng, log), cluster=_pick(rng, ["auto", "auto", "unit", "persona", "none"]),
              tvd=bool(rng.random() < .7), n_perm=int(_pick(rng, [19, 49])), conf_level=float(_pick(rng, [0.95, 0.9])),
              min_units=int(_pick(rng, [2, 5])), seed=int(_pick(rng, [0, 3])))
    return ds.effect, (log,), _maybe_bad(rng, kw, {**COMMON_BAD, "n_perm": [3], "cluster": ["arm"], "min_units": [0]})


def make_adjustment_path(log: Any, rng: np.random.Generator):
    """The generated log (no iterations table: a named error) or, half the time, a small simulated adjustment study."""
    if rng.random() < .5:
        log, _ = ds.simulate_adjustment_log(n_personas=int(_pick(rng, [5, 12])), n_nco=int(_pick(rng, [1, 2])),
                                            n_iterations=int(_pick(rng, [1, 2])), reference=bool(rng.random() < .5),
                                            seed=int(rng.integers(1000)))
    kw = dict(margin=float(_pick(rng, [0.05, 0.2])), mode=_mode(rng, log), n_perm=int(_pick(rng, [19, 49])),
              n_boot=int(_pick(rng, [0, 20])), conf_level=float(_pick(rng, [0.95, 0.9])), seed=int(_pick(rng, [0, 1])))
    return ds.adjustment_path, (log,), _maybe_bad(rng, kw, {**COMMON_BAD, "n_perm": [5], "margin": [0.0, 1.5]})


def make_effect_model(log: Any, rng: np.random.Generator):
    y = _item(rng, log, "primary") or "response"
    rhs = "arm"
    extra = _attrs(log) + [i for i in log.item_names() if i != y]
    if extra and rng.random() < .4:
        rhs += " + " + str(_pick(rng, extra))
    formula = _pick(rng, [f"{y} ~ {rhs}", f"response ~ {rhs}", f"Q('{y}') ~ {rhs}"]) if rng.random() < .95 else \
        _pick(rng, ["~ arm", "y ~", "y ~ arm +", "__import__('os') ~ arm", ""])
    kw = dict(family=_pick(rng, ["gaussian", "gaussian", "logit", "ordinal"]),
              outcome=y if "response" in formula else None, reference=_arm_or_none(rng, log),
              mode=_mode(rng, log), cluster=_pick(rng, ["auto", "unit", "persona"]),
              conf_level=float(_pick(rng, [0.95, 0.9])))
    return ds.effect_model, (formula, log), _maybe_bad(rng, kw, {**COMMON_BAD, "family": ["poisson"]})


def make_did(log: Any, rng: np.random.Generator):
    outcome = _item(rng, log, "primary")
    ncos = [n for n in _roles(log, "nco") if n != outcome]
    if rng.random() < .8:  # mostly items that can be used as numbers, the outcome excluded
        ncos = [n for n in ncos if n in _ordered_items(log)] or _ordered_items(log, (outcome or "",))
    nco: Any = _pick(rng, ncos) if ncos else _item(rng, log, "nco")
    if len(ncos) > 1 and rng.random() < .4:
        nco = _some(rng, ncos)
    kw = dict(outcome=outcome, nco=nco, by=_pick(rng, [None, None, "iteration", ()]),
              reference=_arm_or_none(rng, log), scale=_pick(rng, ["additive", "location_scale", "qq"]),
              mode=_mode(rng, log), cluster=_pick(rng, ["auto", "unit", "persona"]),
              n_boot=int(_pick(rng, [0, 20])), violation=float(_pick(rng, [0.0, 0.0, 0.2])),
              conf_level=float(_pick(rng, [0.95, 0.9])), seed=int(_pick(rng, [0, 2])))
    return ds.did_nco, (log,), _maybe_bad(rng, kw, {**COMMON_BAD, "scale": ["log"], "violation": [-1, float("inf")],
                                                    "n_boot": [-5], "nco": [[]]})


def make_p2sls(log: Any, rng: np.random.Generator):
    outcome = _item(rng, log, "primary")
    w = [n for n in _roles(log, "nco") if n != outcome] or _ordered_items(log, (outcome or "",))
    z = [n for n in _roles(log, "proxy") if n != outcome] or _ordered_items(log, (outcome or "",))
    kw = dict(outcome=outcome, treatment="arm", nco=_pick(rng, w or ["nope"]), nce=_pick(rng, z or ["nope"]),
              covariates=_pick(rng, [(), (), tuple(_attrs(log)[:1])]), vcov=_pick(rng, ["robust", "classic"]),
              debiased=bool(rng.random() < .3), reference=_arm_or_none(rng, log),
              mode=_mode(rng, log), conf_level=float(_pick(rng, [0.95, 0.9])))
    return ds.p2sls, (None, log), _maybe_bad(rng, kw, {**COMMON_BAD, "vcov": ["hc3"], "weak_f": [-1]})


def make_proximal(log: Any, rng: np.random.Generator):
    kw = dict(outcome=_item(rng, log, "primary"), nco=_item(rng, log, "nco"), nce=_item(rng, log, "proxy"),
              treatment="arm", reference=_arm_or_none(rng, log), mode=_mode(rng, log),
              cluster=_pick(rng, ["auto", "unit", "persona"]), n_boot=int(_pick(rng, [0, 20])),
              conf_level=float(_pick(rng, [0.95, 0.9])), seed=int(_pick(rng, [0, 4])))
    return ds.proximal_discrete, (log,), _maybe_bad(rng, kw, {**COMMON_BAD, "max_singular": [-1, 2], "n_boot": [-1]})


def make_calibrate_effect(log: Any, rng: np.random.Generator):
    plc = list(log.arms_of_kind("placebo"))
    placebo = None if rng.random() < .7 or not plc else plc[: int(rng.integers(1, len(plc) + 1))]
    kw = dict(outcome=_outcome(rng, log, .5), placebo=placebo,
              by=_pick(rng, [None, None, "iteration"]), reference=_arm_or_none(rng, log),
              mode=_mode(rng, log), null=_pick(rng, ["auto", "asymptotic", "mcmc"]),
              min_controls=int(_pick(rng, [2, 5])), cluster=_pick(rng, ["auto", "unit"]),
              conf_level=float(_pick(rng, [0.95, 0.9])), n_iter=2000, seed=int(_pick(rng, [0, 5])))
    return ds.calibrate_effect, (log,), _maybe_bad(rng, kw, {**COMMON_BAD, "null": ["bayes"], "min_controls": [0],
                                                             "n_iter": [10], "placebo": [["nope"], []]})


def make_retention(log: Any, rng: np.random.Generator):
    kw = dict(outcome=_outcome(rng, log, .5), reference=_arm_or_none(rng, log),
              conf_level=float(_pick(rng, [0.95, 0.9])))
    return ds.retention, (log,), _maybe_bad(rng, kw, {"conf_level": [2.0], "reference": ["nope"]})


def make_audit(log: Any, rng: np.random.Generator):
    kw = dict(outcome=None if rng.random() < .8 else _item(rng, log, "primary"),
              margin=float(_pick(rng, [0.05, 0.2])), mode=_mode(rng, log),
              strata=_pick(rng, ["auto", "auto", None]), n_perm=19, n_boot=int(_pick(rng, [0, 20])),
              conf_level=float(_pick(rng, [0.95, 0.9])), seed=int(_pick(rng, [0, 1])),
              min_units=int(_pick(rng, [2, 3, 10])), keep_going=True)
    return ds.audit, (log,), _maybe_bad(rng, kw, {"margin": [0, 1], "n_perm": [3], "min_units": [1], "seed": [1.5]})


# -- unit-level frames
def _col(rng: np.random.Generator, frame: pd.DataFrame, prefer: str) -> str:
    if rng.random() < .85 or not len(frame.columns):
        return prefer
    return str(_pick(rng, [*list(frame.columns), "nope"]))


def fr_effect(d: pd.DataFrame, rng: np.random.Generator):
    return ds.effect, (d,), dict(outcome=_col(rng, d, "y"), arm=_pick(rng, ["arm", "t"]), by=(), n_perm=19,
                                 tvd=bool(rng.random() < .5), min_units=2, cluster=_pick(rng, ["auto", "unit"]))


def fr_effect_model(d: pd.DataFrame, rng: np.random.Generator):
    y = _col(rng, d, "y")
    return ds.effect_model, (f"{y} ~ t + x", d), dict(family=_pick(rng, ["gaussian", "gaussian", "logit", "ordinal"]))


def fr_did(d: pd.DataFrame, rng: np.random.Generator):
    nco: Any = _col(rng, d, "w1") if rng.random() < .7 else ["w1", "w2"]
    return ds.did_nco, (d,), dict(outcome=_col(rng, d, "y"), nco=nco, arm=_pick(rng, ["t", "arm"]),
                                  scale=_pick(rng, ["additive", "location_scale", "qq"]), n_boot=20)


def fr_p2sls(d: pd.DataFrame, rng: np.random.Generator):
    f = _pick(rng, ["y ~ t + x | w1 ~ z1", "y ~ t + x | w1 + w2 ~ z1 + z2", "y ~ t | w1 ~ z1 + z2", "y ~ t | w1 + w2 ~ z1"])
    return ds.p2sls, (f, d), dict(vcov=_pick(rng, ["robust", "classic"]), debiased=bool(rng.random() < .3))


def fr_proximal(d: pd.DataFrame, rng: np.random.Generator):
    w, z = _pick(rng, [("wd", "zd"), ("wd3", "zd3"), ("wd", "zd"), ("wd3", "zd")])
    return ds.proximal_discrete, (d,), dict(outcome=_col(rng, d, "y"), nco=_col(rng, d, w), nce=_col(rng, d, z),
                                            treatment=_pick(rng, ["t", "t", "arm"]), n_boot=int(_pick(rng, [0, 20])))


def fr_calibrate_effect(d: pd.DataFrame, rng: np.random.Generator):
    d = d.copy()
    if "arm" in d:
        d["arm"] = [f"p{i % 4}" if i % 3 == 0 else a for i, a in enumerate(d["arm"].astype(object))]
    return ds.calibrate_effect, (d,), dict(outcome=_col(rng, d, "y"), placebo=["p0", "p1", "p2", "p3"],
                                           reference="control", null=_pick(rng, ["asymptotic", "mcmc"]), n_iter=2000,
                                           min_controls=2)


# -- numbers
def nu_fit_null(n: dict[str, Any], rng: np.random.Generator):
    return ds.fit_null, (n["est"], n["se"]), dict(max_abs=_pick(rng, [None, 4.6, 0.0]))


def nu_fit_mcmc_null(n: dict[str, Any], rng: np.random.Generator):
    return ds.fit_mcmc_null, (n["est"], n["se"]), dict(n_iter=2000, n_chains=int(_pick(rng, [2, 4])), seed=0)


def _chain(fit: Callable[..., Any], then: Callable[..., Any]) -> Callable[..., Any]:
    def run(est: Any, se: Any, t_est: Any, t_se: Any, **kw: Any) -> Any:
        return then(fit(est, se), t_est, t_se, **kw)

    run.__name__ = f"{getattr(then, '__name__', 'then')}(fit)"
    return run


def nu_calibrate_p(n: dict[str, Any], rng: np.random.Generator):
    if rng.random() < .5:
        f = _chain(ds.fit_null, ds.calibrate_p)
        kw = dict(alternative=_pick(rng, ["two-sided", "greater", "less"]))
    else:
        f = _chain(lambda e, s: ds.fit_mcmc_null(e, s, n_iter=2000, n_chains=2), ds.calibrate_p)
        kw = dict(alternative=_pick(rng, ["two-sided", "less"]), summary=_pick(rng, ["median", "predictive"]))
    return f, (n["est"], n["se"], n["t_est"], n["t_se"]), kw


def nu_calibrate_ci(n: dict[str, Any], rng: np.random.Generator):
    kind = int(rng.integers(3))
    if kind == 0:
        fit = ds.fit_null
    elif kind == 1:
        def fit(e, s):
            return ds.fit_systematic_error_model(e, s, n["truth"])
    else:
        def fit(e, s):
            return ds.fit_mcmc_null(e, s, n_iter=2000, n_chains=2)
    return _chain(fit, ds.calibrate_ci), (n["est"], n["se"], n["t_est"], n["t_se"]), dict(
        conf_level=float(_pick(rng, [0.95, 0.5])))


def nu_calibrate_p_interval(n: dict[str, Any], rng: np.random.Generator):
    return (_chain(lambda e, s: ds.fit_mcmc_null(e, s, n_iter=2000, n_chains=2), ds.calibrate_p_interval),
            (n["est"], n["se"], n["t_est"], n["t_se"]), dict(conf_level=float(_pick(rng, [0.95, 0.5]))))


def nu_ease(n: dict[str, Any], rng: np.random.Generator):
    def run(est: Any, se: Any) -> Any:
        return ds.ease(ds.fit_null(est, se))
    return run, (n["est"], n["se"]), {}


def nu_fit_sem(n: dict[str, Any], rng: np.random.Generator):
    return ds.fit_systematic_error_model, (n["est"], n["se"], n["truth"]), {}


def nu_evaluate(n: dict[str, Any], rng: np.random.Generator):
    return ds.evaluate_calibration, (n["est"], n["se"], n["truth"]), dict(conf_levels=(0.5, 0.95))


def nu_calibrate_effects(n: dict[str, Any], rng: np.random.Generator):
    def frame(e: Any, s: Any, arm: str) -> pd.DataFrame:
        e, s = list(np.atleast_1d(e)), list(np.atleast_1d(s))
        m = max(len(e), len(s))
        return pd.DataFrame({"term": "y", "arm": arm, "reference": "c",
                             "estimate": (e + [np.nan] * m)[:m], "std_error": (s + [np.nan] * m)[:m]})

    return ds.calibrate_effects, (frame(n["t_est"], n["t_se"], "t"), frame(n["est"], n["se"], "p")), dict(
        null=_pick(rng, ["auto", "asymptotic", "mcmc"]), n_iter=2000, min_controls=int(_pick(rng, [2, 5])))


# -- parameters
def pa_power(_: Any, rng: np.random.Generator):
    n = _pick(rng, [[20, 50], 10, [0], [2**40], [-5], [], 1.5, [100]])
    return ds.nco_power, (n,), dict(margin=float(_pick(rng, [0.1, 0.5, 0, 1.5, float("nan")])),
                                    n_levels=int(_pick(rng, [2, 3, 200, 1, 0])),
                                    tvd=float(_pick(rng, [0.0, 0.05, 1.0, -0.1])),
                                    q0=_pick(rng, [None, None, [0.5, 0.5], [0.2, 0.2], [np.nan, 1.0], [1.0, 0.0]]),
                                    draws=int(_pick(rng, [200, 50, 0])), seed=0)


def pa_sample_size(_: Any, rng: np.random.Generator):
    return ds.nco_sample_size, (), dict(margin=float(_pick(rng, [0.2, 0.5, 0, 1.2])),
                                        n_levels=int(_pick(rng, [2, 3, 1])),
                                        power=float(_pick(rng, [0.8, 0.5, 1.0, 0.0, 1.5])),
                                        tvd=float(_pick(rng, [0.0, 0.1, 0.3])), draws=200, n_max=2000)


def pa_decompose(_: Any, rng: np.random.Generator):
    u = int(_pick(rng, [1, 2, 3, 0]))
    mu = rng.normal(size=(2, u))
    if rng.random() < .2:
        mu[0, 0 if u else slice(None)] = _pick(rng, [np.nan, np.inf, 1e308])
    p = rng.dirichlet(np.ones(max(u, 1)), size=2)[:, :u] if u else np.zeros((2, 0))
    if rng.random() < .2 and u:
        p = p * _pick(rng, [2.0, -1.0, np.nan])
    kw: dict[str, Any] = dict(arm_share=float(_pick(rng, [0.5, 0.0, 1.0, 1.5, -0.5])))
    if rng.random() < .3:
        kw["p_selected"], kw["mu_selected"] = p, mu
    return ds.decompose, (mu.tolist(), p.tolist()), kw


def pa_decompose_world(_: Any, rng: np.random.Generator):
    world = ds.simulate_latent_world(n_types=int(rng.integers(2, 5)), selection=float(_pick(rng, [0.0, 1.0, 3.0])),
                                     selection_on_y=float(_pick(rng, [0.0, 1.0])),
                                     arm_share=float(_pick(rng, [0.5, 0.1])), seed=int(rng.integers(5)))
    return ds.decompose_world, (world,), {}


def pa_manski(_: Any, rng: np.random.Generator):
    vals = [0.5, 0.0, 1.0, -1.0, 2.0, float("nan"), float("inf")]
    return ds.manski_bounds, (*tuple(float(_pick(rng, vals)) for _ in range(2)), float(_pick(rng, [0.0, 1.0, 5.0])), float(_pick(rng, [1.0, 0.0, 10.0]))), {}


VERBS: dict[str, Verb] = {v.name: v for v in (
    Verb("nco_test", "log", make_nco_test, 3), Verb("equivalence_test", "log", make_equivalence),
    Verb("fidelity", "log", make_fidelity, 2), Verb("effect", "log", make_effect, 2),
    Verb("effect_model", "log", make_effect_model), Verb("did_nco", "log", make_did, 2),
    Verb("p2sls", "log", make_p2sls), Verb("proximal_discrete", "log", make_proximal),
    Verb("calibrate_effect", "log", make_calibrate_effect), Verb("retention", "log", make_retention),
    Verb("audit", "log", make_audit, 0.6),
    # takes a log, but has a kind of its own so that the draws of cases() (and the derandomized CI examples) stay
    # as they were; tests/test_fuzz.py fuzzes it on generated logs in a test of its own
    Verb("adjustment_path", "adjust", make_adjustment_path),
    Verb("effect[frame]", "frame", fr_effect), Verb("effect_model[frame]", "frame", fr_effect_model),
    Verb("did_nco[frame]", "frame", fr_did), Verb("p2sls[frame]", "frame", fr_p2sls),
    Verb("proximal_discrete[frame]", "frame", fr_proximal),
    Verb("calibrate_effect[frame]", "frame", fr_calibrate_effect),
    Verb("fit_null", "numbers", nu_fit_null), Verb("fit_mcmc_null", "numbers", nu_fit_mcmc_null, 0.5),
    Verb("calibrate_p", "numbers", nu_calibrate_p), Verb("calibrate_ci", "numbers", nu_calibrate_ci),
    Verb("calibrate_p_interval", "numbers", nu_calibrate_p_interval, 0.5), Verb("ease", "numbers", nu_ease),
    Verb("fit_systematic_error_model", "numbers", nu_fit_sem), Verb("evaluate_calibration", "numbers", nu_evaluate, .5),
    Verb("calibrate_effects", "numbers", nu_calibrate_effects),
    Verb("nco_power", "params", pa_power), Verb("nco_sample_size", "params", pa_sample_size, .5),
    Verb("decompose", "params", pa_decompose), Verb("decompose_world", "params", pa_decompose_world, .5),
    Verb("manski_bounds", "params", pa_manski),
)}
CLI_COMMANDS = ("cli:validate", "cli:summary", "cli:audit")
FORMATS = ("parquet", "csv", "jsonl", "duckdb")


def base_verb(name: str) -> str:
    """``effect[frame]`` -> ``effect`` (the public name, used by the invariant tables)."""
    return name.split("[")[0]


# ------------------------------------------------------------------------------ invariants
def _finite(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x)


def _floats(t: pd.DataFrame, col: str) -> np.ndarray | None:
    if col not in t:
        return None
    return pd.to_numeric(t[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def check_tidy(verb: str, t: pd.DataFrame, conf_level: float | None = None) -> list[str]:
    """Rules 1-6 of the module docstring on a tidy frame; returns the broken rules (empty: none)."""
    out: list[str] = []
    v = base_verb(verb)
    tol = 1e-9
    for col in P_COLUMNS:
        p = _floats(t, col)
        if p is not None and ((p < 0) | (p > 1)).any():
            out.append(f"{col} outside [0, 1]: {p[(p < 0) | (p > 1)][:3].tolist()}")
    for col in ("estimate", "std_error", "statistic", *P_COLUMNS):
        x = _floats(t, col)
        if x is not None and np.isinf(x).any():
            out.append(f"infinite {col}")
    se = _floats(t, "std_error")
    if se is not None and (se < 0).any():
        out.append("negative std_error")
    measure = t["measure"].astype(object).to_numpy() if "measure" in t else np.array([None] * len(t), dtype=object)
    tvd_rows = np.isin(measure, TVD_MEASURES)
    if v == "equivalence_test":
        tvd_rows = np.ones(len(t), bool)
    if tvd_rows.any():
        for col in TVD_COLUMNS:
            x = _floats(t, col)
            if x is None:
                continue
            x = x[tvd_rows]
            bad = (x < -tol) | (x > 1 + tol)
            if bad.any():
                out.append(f"TVD {col} outside [0, 1]: {x[bad][:3].tolist()}")
    if v == "fidelity":
        for col in ("share_1", "share_0"):
            x = _floats(t, col)
            if x is not None and ((x < -tol) | (x > 1 + tol)).any():
                out.append(f"fidelity {col} outside [0, 1]")
        for col in ("estimate", "conf_low", "conf_high"):
            x = _floats(t, col)
            if x is not None and ((x < -1 - tol) | (x > 1 + tol)).any():
                out.append(f"fidelity {col} outside [-1, 1]")
    pw = _floats(t, "power")
    if pw is not None and ((pw < 0) | (pw > 1)).any():
        out.append("power outside [0, 1]")
    lo, hi, est = _floats(t, "conf_low"), _floats(t, "conf_high"), _floats(t, "estimate")
    if lo is not None and hi is not None:
        both = _finite(lo) & _finite(hi)
        scale = np.maximum(1.0, np.maximum(np.abs(lo), np.abs(hi)))
        if (both & (lo > hi + tol * scale)).any():
            out.append("conf_low > conf_high")
        if est is not None and v in CONTAINS_ESTIMATE:
            three = both & _finite(est)
            outside = three & ((est < lo - tol * scale) | (est > hi + tol * scale))
            if outside.any():
                i = int(np.flatnonzero(outside)[0])
                out.append(f"estimate outside its interval (row {i}: {est[i]!r} not in [{lo[i]!r}, {hi[i]!r}]"
                           f"{', measure ' + str(measure[i]) if measure[i] is not None else ''})")
    note = t["note"].astype(object).to_numpy() if "note" in t else np.array([None] * len(t), dtype=object)
    marked = np.array([isinstance(n, str) and bool(n.strip()) for n in note], dtype=bool)
    exempt = NO_TEST.get(v, {})
    for col in ("estimate", "p_value"):
        x = _floats(t, col)
        if x is None:
            continue
        documented = np.array([col in exempt.get("*", ()) or col in exempt.get(str(m), ()) for m in measure], dtype=bool)
        unmarked = np.isnan(x) & ~marked & ~documented
        if unmarked.any():
            i = int(np.flatnonzero(unmarked)[0])
            out.append(f"NaN {col} without a note (row {i}, term {t['term'].iloc[i]!r}"
                       f"{', measure ' + str(measure[i]) if measure[i] is not None else ''})")
    if "equivalent" in t and conf_level is not None:
        eq = t["equivalent"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        pe = _floats(t, "p_value_equiv")
        if pe is not None:
            bad = eq & ~(_finite(pe) & (pe < 1 - conf_level + 1e-12))
            if bad.any():
                out.append("equivalent without a finite p_value_equiv below the level")
        if (eq & marked).any():
            out.append("equivalent on a row with a note")
    return out


def check_result(verb: str, res: Any) -> list[str]:
    """Every invariant on a driftstats Result (builds tidy, glance, reprs and summaries first)."""
    t = res.tidy()
    g = res.glance()
    repr(res)
    res._repr_html_()
    res.summary().as_latex()
    out: list[str] = []
    if len(g) != 1:
        out.append(f"glance has {len(g)} rows")
    for col in ("n_obs", "n_groups", "n_dropped", "n_tests", "n_perm", "n_boot"):
        if col in g:
            x = pd.to_numeric(g[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            if (x < 0).any():
                out.append(f"negative glance {col}")
    cl = g["conf_level"].iloc[0] if "conf_level" in g and len(g) else None
    cl = float(cl) if cl is not None and cl is not pd.NA and not pd.isna(cl) else None
    out.extend(check_tidy(verb, t, cl))
    if hasattr(res, "drifted"):
        for adjust in ("fwer", "holm", "bh", "none"):
            d = res.drifted(level=1.01, adjust=adjust)
            col = {"fwer": "p_value_fwer", "holm": "p_value_holm", "bh": "p_value_bh", "none": "p_value"}[adjust]
            notes = d["note"].astype(object).to_numpy() if "note" in d else []
            if any(isinstance(n, str) for n in notes) or (len(d) and np.isnan(_floats(d, col)).any()):
                out.append(f"drifted(adjust={adjust!r}) lists a not-testable row")
    return out


def check_value(verb: str, value: Any) -> list[str]:
    """Rule 9: arrays and frames of the calibration verbs, plain floats and tuples."""
    v = base_verb(verb)
    out: list[str] = []
    if isinstance(value, np.ndarray):
        x = value.astype(float)
        if v.startswith("calibrate_p") and ((x < 0) | (x > 1)).any():
            out.append("calibrated p outside [0, 1]")
        if np.isinf(x).any():
            out.append("infinite value")
    elif isinstance(value, pd.DataFrame):
        if v in ("calibrate_ci", "calibrate_p_interval"):
            t = value.assign(term="x") if "term" not in value else value
            out.extend(r for r in check_tidy("calibrate_ci" if v == "calibrate_ci" else v, t) if "note" not in r)
            for col in ("estimate", "conf_low", "conf_high"):
                x = _floats(value, col)
                if x is not None and np.isinf(x).any():
                    out.append(f"infinite {col}")
            if v == "calibrate_p_interval":
                for col in ("p_value", "conf_low", "conf_high"):
                    x = _floats(value, col)
                    if x is not None and ((x < 0) | (x > 1)).any():
                        out.append(f"{col} outside [0, 1]")
        if v == "evaluate_calibration":
            for col in ("coverage_calibrated", "coverage_uncalibrated"):
                x = _floats(value, col)
                if x is not None and ((x < 0) | (x > 1)).any():
                    out.append(f"{col} outside [0, 1]")
    elif isinstance(value, float):
        if math.isinf(value):
            out.append("infinite value")
        if v == "ease" and value < 0:
            out.append("negative expected absolute error")
    elif isinstance(value, tuple) and v == "manski_bounds":
        lo, hi = value
        if not (math.isnan(lo) or math.isnan(hi)) and lo > hi:
            out.append("bounds out of order")
    elif hasattr(value, "mean") and hasattr(value, "sd"):  # a null distribution
        for attr in ("mean", "sd"):
            x = float(getattr(value, attr))
            if math.isinf(x):
                out.append(f"infinite null {attr}")
        if float(value.sd) < 0:
            out.append("negative null sd")
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame):
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        except AssertionError:
            return False
        return True
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a.astype(float), b.astype(float), equal_nan=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        return repr(a) == repr(b)
    return a == b


def fingerprint(verb: str, value: Any) -> Any:
    """What must be equal between two identical calls (rule 7)."""
    if verb == "audit":
        return (*tuple((o.name, o.status, o.reason, None if o.result is None else o.result.tidy().to_json()) for o in value.steps), tuple(value.verdict))
    if hasattr(value, "tidy") and hasattr(value, "glance"):
        return (value.tidy(), value.glance())
    return value


def check_audit(value: Any) -> tuple[list[str], list[str]]:
    """(crashes, nonsense) of an audit: steps that failed with unnamed exceptions; invariants of every step."""
    crashes, nonsense = [], []
    for o in value.steps:
        if o.status == "failed":
            kind = (o.reason or "").split(":", 1)[0].strip()
            if not isinstance(getattr(E, kind, None), type):
                crashes.append(f"audit step {o.name!r} failed with {kind}: {(o.reason or '')[:200]}")
        elif o.ok and o.result is not None:
            verb = {"nco": "nco_test", "nco_dist": "nco_test", "equivalence": "equivalence_test", "did": "did_nco",
                    "calibration": "calibrate_effect", "p2sls": "p2sls", "proximal": "proximal_discrete"}.get(o.name,
                                                                                                              o.name)
            nonsense.extend(f"audit step {o.name!r}: {r}" for r in check_result(verb, o.result))
    for line in value.verdict:
        if re.search(r"(?<![\w.])nan(?![\w])", str(line), flags=re.IGNORECASE):
            nonsense.append(f"verdict shows NaN: {str(line)[:160]}")
    return crashes, nonsense


def check_html(html: str) -> list[str]:
    return [f"unescaped {SCRIPT!r} in the report"] if SCRIPT in html else []


# ------------------------------------------------------------------------------ running one call
class CallTimeout(Exception):
    """A call ran past its time limit (counted as a crash)."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CallTimeout` once the call has used ``seconds`` of CPU time (the process' own, all
    threads: ``ITIMER_PROF``), so that a busy machine or a paused batch never makes a call time out."""
    if not seconds or not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise CallTimeout(f"the call used more than {seconds:g} s of CPU time")

    old = signal.signal(signal.SIGPROF, handler)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


@dataclasses.dataclass
class Outcome:
    """What one call gave: ``status`` in result | named | crash | nonsense, with details."""

    status: str
    detail: str = ""  # error class, or the broken rules
    where: str = ""  # innermost driftstats frame of a crash
    warnings: tuple[tuple[str, str], ...] = ()  # (category, message) of warnings that are not named ones
    named_warnings: tuple[str, ...] = ()
    kwargs: str = ""


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if "/driftstats/" in f.filename.replace("\\", "/")]
    f = (mine or frames or [None])[-1]
    if f is None:
        return "?"
    path = f.filename.replace("\\", "/")
    path = path[path.rfind("/driftstats/") + 1:] if "/driftstats/" in path else path.rsplit("/", 1)[-1]
    return f"{path}:{f.lineno} ({f.name})"


def _harness_fault(exc: BaseException) -> bool:
    """Whether an exception comes from the harness' own checks (after the library returned), not from driftstats."""
    frames = traceback.extract_tb(exc.__traceback__)
    lib = max((i for i, f in enumerate(frames) if "/driftstats/" in f.filename.replace("\\", "/")), default=-1)
    own = max((i for i, f in enumerate(frames) if f.filename.endswith("harness.py")
               and f.name.startswith(("check_", "_floats", "fingerprint", "_same"))), default=-1)
    return own > lib


def _split_warnings(caught: list[warnings.WarningMessage]) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    stray, named = [], []
    for w in caught:
        if issubclass(w.category, E.DriftstatsWarning):
            named.append(w.category.__name__)
        else:
            stray.append((w.category.__name__, str(w.message)[:120]))
    return tuple(dict.fromkeys(stray)), tuple(dict.fromkeys(named))


def _render_kwargs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    shown = [("<input>" if isinstance(a, (pd.DataFrame, ds.SimLog)) else _short(a)) for a in args]
    shown += [f"{k}={_short(v)}" for k, v in kwargs.items()]
    return ", ".join(shown)


def _short(v: Any) -> str:
    if isinstance(v, (pd.DataFrame, ds.SimLog)):
        return "<input>"
    if isinstance(v, np.ndarray):
        return f"array({v.tolist()!r})" if v.size <= 8 else f"array(<{v.size} values>)"
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def run_verb(verb: str, data: Any, seed: int, *, limit: float | None = 120.0, twice: bool = True) -> Outcome:
    """One verb call on ``data`` (a SimLog, frame, numbers dict or None), checked against every invariant."""
    spec = VERBS[verb]
    rng = np.random.default_rng(seed)
    try:
        fn, args, kwargs = spec.make(data, rng)
    except Exception as exc:  # the harness could not make a call from this input (e.g. an empty log)
        return Outcome("skip", f"{type(exc).__name__}: {exc}")
    shown = _render_kwargs(args, kwargs)
    values = []
    stray: tuple[tuple[str, str], ...] = ()
    named: tuple[str, ...] = ()
    for _ in range(2 if twice else 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with time_limit(limit):
                    value = fn(*args, **kwargs)
                    problems: list[str] = []
                    crashes: list[str] = []
                    if verb == "audit":
                        crashes, problems = check_audit(value)
                        if seed % 4 == 0:  # the report (slow: figures) for a quarter of the audits
                            problems += check_html(value.to_html())
                    elif hasattr(value, "tidy"):
                        problems = check_result(verb, value)
                    else:
                        problems = check_value(verb, value)
                    fp = fingerprint(verb, value)
            except E.DriftstatsError as exc:
                s, n = _split_warnings(caught)
                return Outcome("named", type(exc).__name__, warnings=stray + s, named_warnings=named + n,
                               kwargs=shown)
            except Exception as exc:
                s, n = _split_warnings(caught)
                if _harness_fault(exc):
                    return Outcome("skip", f"harness error {type(exc).__name__}: {exc} at {_where(exc)}")
                return Outcome("crash", f"{type(exc).__name__}: {str(exc)[:300]}", where=_where(exc),
                               warnings=stray + s, named_warnings=named + n, kwargs=shown)
        s, n = _split_warnings(caught)
        stray, named = stray + s, named + n
        if crashes:
            return Outcome("crash", crashes[0], where="audit step", warnings=stray, named_warnings=named, kwargs=shown)
        if problems:
            return Outcome("nonsense", "; ".join(dict.fromkeys(problems)), warnings=stray, named_warnings=named,
                           kwargs=shown)
        values.append(fp)
    if twice and not _same_fp(values[0], values[1]):
        return Outcome("nonsense", "two identical calls with the same seed differ", warnings=stray,
                       named_warnings=named, kwargs=shown)
    return Outcome("result", warnings=tuple(dict.fromkeys(stray)), named_warnings=tuple(dict.fromkeys(named)),
                   kwargs=shown)


def _same_fp(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return all(_same_fp(x, y) for x, y in zip(a, b, strict=True))
    return _same(a, b)


# ------------------------------------------------------------------------------ reading
def read_tables(tables: Tables, *, limit: float | None = 120.0) -> tuple[Outcome, Any]:
    """``read_log`` on the tables: (outcome, the log or None)."""
    parts = {k: v for k, v in tables.items() if v is not None}
    answers = parts.pop("answers", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with time_limit(limit):
                if answers is None:
                    log = ds.read_log(pd.DataFrame(), **parts)
                else:
                    log = ds.read_log(answers, **parts)
                repr(log)
                log._repr_html_()
                log.summary()
        except E.DriftstatsError as exc:
            s, n = _split_warnings(caught)
            return Outcome("named", type(exc).__name__, warnings=s, named_warnings=n), None
        except Exception as exc:
            s, n = _split_warnings(caught)
            return Outcome("crash", f"{type(exc).__name__}: {str(exc)[:300]}", where=_where(exc), warnings=s,
                           named_warnings=n), None
    s, n = _split_warnings(caught)
    return Outcome("result", warnings=s, named_warnings=n), log


# ------------------------------------------------------------------------------ the command line
def write_files(tables: Tables, folder: Path, fmt: str) -> Path | None:
    """Write the tables as a log file of ``fmt`` (sidecars for the side tables); None if they cannot be stored."""
    import duckdb

    from driftstats.log._sql import qi, ql
    from driftstats.log.io import CSV_OPTIONS, sidecar

    suffix = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl", "duckdb": ".duckdb"}[fmt]
    path = folder / f"runs{suffix}"
    con = duckdb.connect()
    try:
        for name, frame in tables.items():
            if frame is None:
                continue
            f = frame.copy()
            f.columns = [str(c) for c in f.columns]
            if f.columns.duplicated().any():
                f = f.loc[:, ~f.columns.duplicated()]
            for c in f.columns:
                col = f[c]
                if col.dtype == object or isinstance(col.dtype, pd.CategoricalDtype):
                    f[c] = col.astype(object).map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v))
                                                  else (json.dumps(v) if isinstance(v, (list, dict)) else str(v)))
            con.register("frame_view", f)
            con.execute(f"CREATE TABLE {qi(name)} AS SELECT * FROM frame_view")
            con.unregister("frame_view")
        if fmt == "duckdb":
            con.execute(f"ATTACH {ql(str(path))} AS out_db")
            for name, frame in tables.items():
                if frame is not None:
                    con.execute(f"CREATE TABLE out_db.{qi(name)} AS SELECT * FROM {qi(name)}")
            con.execute("DETACH out_db")
            return path
        options = {"parquet": "FORMAT parquet", "csv": CSV_OPTIONS, "jsonl": "FORMAT json"}[fmt]
        for name, frame in tables.items():
            if frame is None:
                continue
            target = path if name == "answers" else sidecar(path, name)
            con.execute(f"COPY (SELECT * FROM {qi(name)}) TO {ql(str(target))} ({options})")
        return path
    except Exception:
        return None
    finally:
        con.close()


def cli_args(command: str, path: Path, folder: Path, rng: np.random.Generator) -> list[str]:
    args = [command.split(":", 1)[1], str(path)]
    if command == "cli:audit":
        args += ["--report", str(folder / "report.html"), "--n-perm", "19", "--n-boot", str(_pick(rng, [0, 20])),
                 "--min-units", str(_pick(rng, [2, 3, 10])), "--seed", "0"]
        if rng.random() < .5:
            args.append("--keep-going")
        if rng.random() < .1:
            args += _pick(rng, [["--margin", "1.5"], ["--n-perm", "3"], ["--mode", "both"], ["--conf-level", "2"],
                                ["--outcome", "nope"], ["--report", str(folder / "missing" / "r.html")],
                                ["--min-units", "1"], ["--mode", "dist"], ["--report", str(folder)]])
    if rng.random() < .1:
        args += _pick(rng, [["--format", "bogus"], ["--nco", "nope"], ["--arm", "nope"], ["--primary", "nope"]])
    return args


def run_cli(command: str, tables: Tables, seed: int, *, limit: float | None = 300.0) -> Outcome:
    """One CLI command on the tables written in a format chosen by ``seed`` (rule 10)."""
    from typer.testing import CliRunner

    from driftstats.cli import app

    rng = np.random.default_rng(seed)
    fmt = FORMATS[seed % len(FORMATS)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = write_files(tables, folder, fmt)
        if path is None:
            return Outcome("skip", f"tables cannot be written as {fmt}")
        args = cli_args(command, path, folder, rng)
        shown = " ".join(["driftstats", *args]).replace(tmp, "$TMP")
        runner = CliRunner()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with time_limit(limit):
                    r = runner.invoke(app, args, catch_exceptions=True)
            except CallTimeout as exc:
                return Outcome("crash", f"CallTimeout: {exc}", where="cli", kwargs=shown)
        stray, named = _split_warnings(caught)
        problems = []
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            exc = r.exception
            return Outcome("crash", f"{type(exc).__name__}: {str(exc)[:300]}", where=_where(exc), warnings=stray,
                           named_warnings=named, kwargs=shown)
        out, err = r.stdout, r.stderr
        if r.exit_code not in (0, 1, 2):
            problems.append(f"exit code {r.exit_code}")
        if "Traceback" in out or "Traceback" in err:
            problems.append("a traceback in the output")
        if r.exit_code in (1, 2):
            lines = [x for x in err.splitlines() if x.strip()]
            if len(lines) != 1 or not lines[0].startswith("error:"):
                problems.append(f"exit {r.exit_code} without one 'error:' line on stderr: {err[:200]!r}")
        report = folder / "report.html"
        if command == "cli:audit" and r.exit_code == 0 and report.exists():
            problems += check_html(report.read_text(encoding="utf-8"))
        if problems:
            return Outcome("nonsense", "; ".join(problems), warnings=stray, named_warnings=named, kwargs=shown)
        if r.exit_code:
            line = next((x for x in err.splitlines() if x.startswith("error:")), "error: ?")
            cls = line[len("error: "):].split(":", 1)[0]
            return Outcome("named", f"exit {r.exit_code} {cls}", warnings=stray, named_warnings=named, kwargs=shown)
        return Outcome("result", "exit 0", warnings=stray, named_warnings=named, kwargs=shown)


# ------------------------------------------------------------------------------ cases
def build_input(recipe: Recipe) -> Any:
    if recipe.kind == "frame":
        return build_frame(recipe)
    if recipe.kind == "numbers":
        return build_numbers(recipe)
    if recipe.kind == "params":
        return None
    return build_tables(recipe)


def replay(recipe: Recipe, verb: str, seed: int) -> Outcome:
    """Rebuild the input of ``recipe`` and make the call ``(verb, seed)`` again: the reproducer of a failure."""
    data = build_input(recipe)
    if verb.startswith("cli:"):
        return run_cli(verb, data, seed)
    if recipe.kind == "log":
        read, log = read_tables(data)
        if verb == "read_log" or log is None:
            return read
        data = log
    return run_verb(verb, data, seed)


def shrink(recipe: Recipe, verb: str, seed: int, target: Outcome, budget: int = 12) -> Recipe:
    """Drop mutations one at a time while the same failure (status and location or rule) persists."""
    def same(o: Outcome) -> bool:
        if o.status != target.status:
            return False
        if o.status == "crash":
            return o.where == target.where and o.detail.split(":", 1)[0] == target.detail.split(":", 1)[0]
        return o.detail.split(":", 1)[0] == target.detail.split(":", 1)[0]

    i = len(recipe.mutations) - 1
    while i >= 0 and budget > 0:
        cand = recipe.without(i)
        budget -= 1
        try:
            ok = same(replay(cand, verb, seed))
        except Exception:
            ok = False
        if ok:
            recipe = cand
        i -= 1
    return recipe


def reproducer(recipe: Recipe, verb: str, seed: int) -> str:
    return f"from tests.fuzz.harness import *; print(replay({recipe!r}, {verb!r}, {seed}))"


# ------------------------------------------------------------------------------ the tally
@dataclasses.dataclass
class VerbTally:
    calls: int = 0
    results: int = 0
    skips: int = 0
    named: Counter[str] = dataclasses.field(default_factory=Counter)
    crashes: int = 0
    nonsense: int = 0


@dataclasses.dataclass
class Failure:
    verb: str
    outcome: Outcome
    recipe: Recipe
    seed: int
    count: int = 1
    minimal: Recipe | None = None


class Tally:
    """Counts of every case and call; the first occurrence of each distinct failure with its reproducer."""

    def __init__(self, *, shrink_failures: bool = True, limit: float | None = 120.0) -> None:
        self.examples: Counter[str] = Counter()
        self.read: VerbTally = VerbTally()
        self.verbs: dict[str, VerbTally] = defaultdict(VerbTally)
        self.failures: dict[tuple[str, str, str, str], Failure] = {}
        self.stray: Counter[tuple[str, str, str]] = Counter()
        self.named_warnings: Counter[str] = Counter()
        self.harness_skips: Counter[str] = Counter()
        self.shrink_failures = shrink_failures
        self.limit = limit
        #: called with each new distinct failure as it is found (a long batch shows them at once)
        self.on_failure: Callable[[Failure], None] | None = None

    # -- recording
    def _record(self, verb: str, vt: VerbTally, o: Outcome, recipe: Recipe, seed: int) -> None:
        if o.status == "skip":
            vt.skips += 1
            self.harness_skips[f"{verb}: {o.detail[:80]}"] += 1
            return
        vt.calls += 1
        for cat, msg in o.warnings:
            self.stray[(verb, cat, re.sub(r"\d+", "N", msg)[:100])] += 1
        self.named_warnings.update(o.named_warnings)
        if o.status == "result":
            vt.results += 1
        elif o.status == "named":
            vt.named[o.detail] += 1
        else:
            if o.status == "crash":
                vt.crashes += 1
                key = (verb, "crash", o.detail.split(":", 1)[0], o.where)
            else:
                vt.nonsense += 1
                key = (verb, "nonsense", re.sub(r"[-\d.e+]+|\(.*", "", o.detail)[:80], "")
            if key in self.failures:
                self.failures[key].count += 1
            else:
                f = Failure(verb, o, recipe, seed)
                if self.shrink_failures and not o.detail.startswith("CallTimeout"):  # replaying hangs costs minutes
                    f.minimal = shrink(recipe, "read_log" if verb == "read_log" else verb, seed, o)
                self.failures[key] = f
                if self.on_failure is not None:
                    self.on_failure(f)

    def run_case(self, case: Case) -> None:
        """Build the input of ``case``, read it (logs), make every call, and count."""
        r = case.recipe
        self.examples[r.kind] += 1
        skipped: list[str] = []
        if r.kind == "log":
            tables = build_tables(r, skipped)
            for s in skipped:
                self.harness_skips[f"mutation {s[:80]}"] += 1
            o, log = read_tables(tables, limit=self.limit)
            self._record("read_log", self.read, o, r, 0)
            for verb, seed in case.calls:
                if verb.startswith("cli:"):
                    self._record(verb, self.verbs[verb], run_cli(verb, tables, seed), r, seed)
                elif log is not None:
                    self._record(verb, self.verbs[verb], run_verb(verb, log, seed, limit=self.limit), r, seed)
            return
        data = build_input(r)
        for verb, seed in case.calls:
            self._record(verb, self.verbs[verb], run_verb(verb, data, seed, limit=self.limit), r, seed)

    def merge(self, other: Tally) -> None:
        """Add the counts of ``other`` (a shard of the same batch run with another seed) to these."""
        self.examples.update(other.examples)
        for mine, theirs in [(self.read, other.read)] + [(self.verbs[k], v) for k, v in other.verbs.items()]:
            mine.calls += theirs.calls
            mine.results += theirs.results
            mine.skips += theirs.skips
            mine.named.update(theirs.named)
            mine.crashes += theirs.crashes
            mine.nonsense += theirs.nonsense
        for key, f in other.failures.items():
            if key in self.failures:
                self.failures[key].count += f.count
            else:
                self.failures[key] = f
        self.stray.update(other.stray)
        self.named_warnings.update(other.named_warnings)
        self.harness_skips.update(other.harness_skips)

    # -- totals
    @property
    def calls(self) -> int:
        return self.read.calls + sum(v.calls for v in self.verbs.values())

    @property
    def crashes(self) -> int:
        return self.read.crashes + sum(v.crashes for v in self.verbs.values())

    @property
    def nonsense(self) -> int:
        return self.read.nonsense + sum(v.nonsense for v in self.verbs.values())

    def report(self) -> str:
        lines = []
        ex = self.examples
        lines.append(f"examples: {sum(ex.values()):,} ({', '.join(f'{k} {v:,}' for k, v in sorted(ex.items()))})")
        rd = self.read
        lines.append(f"read_log: {rd.calls:,} logs: {rd.results:,} valid, {sum(rd.named.values()):,} named errors "
                     f"({_fmt_counter(rd.named)}), {rd.crashes} crashes, {rd.nonsense} nonsense")
        lines.append("")
        head = f"{'verb':28s} {'calls':>7s} {'results':>8s} {'named':>7s} {'crashes':>8s} {'nonsense':>9s}  named errors by class"
        lines.append(head)
        lines.append("-" * len(head))
        for name in sorted(self.verbs):
            v = self.verbs[name]
            lines.append(f"{name:28s} {v.calls:7,d} {v.results:8,d} {sum(v.named.values()):7,d} {v.crashes:8d} "
                         f"{v.nonsense:9d}  {_fmt_counter(v.named)}")
        tot_calls = sum(v.calls for v in self.verbs.values())
        lines.append(f"{'all verbs':28s} {tot_calls:7,d} {sum(v.results for v in self.verbs.values()):8,d} "
                     f"{sum(sum(v.named.values()) for v in self.verbs.values()):7,d} "
                     f"{sum(v.crashes for v in self.verbs.values()):8d} {sum(v.nonsense for v in self.verbs.values()):9d}")
        lines.append("")
        lines.append(f"named warnings: {_fmt_counter(self.named_warnings) or 'none'}")
        n_stray = sum(self.stray.values())
        lines.append(f"stray warnings (not driftstats' named ones): {n_stray}")
        for (verb, cat, msg), n in self.stray.most_common(15):
            lines.append(f"  {n:6d}  {verb}: {cat}: {msg}")
        if self.harness_skips:
            lines.append(f"harness skips (inputs the harness could not use; not library outcomes): "
                         f"{sum(self.harness_skips.values())}")
            for what, n in self.harness_skips.most_common(5):
                lines.append(f"  {n:6d}  {what}")
        lines.append("")
        if not self.failures:
            lines.append("crashes: none; nonsense: none")
        for (verb, status, _what, where), f in sorted(self.failures.items()):
            lines.append(f"{status.upper()} x{f.count} {verb}: {f.outcome.detail[:300]}" + (f" at {where}" if where else ""))
            lines.append(f"    call: {verb}({f.outcome.kwargs})")
            lines.append(f"    reproducer: {reproducer(f.minimal or f.recipe, verb, f.seed)}")
        return "\n".join(lines)


def _fmt_counter(c: Counter[str]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in c.most_common())


def headline(tally: Tally) -> str:
    bad = tally.crashes + tally.nonsense
    return (f"fuzz: {bad:,} vs {tally.calls:,} calls = {tally.crashes} crashes + {tally.nonsense} nonsense "
            f"(target 0)")


# ------------------------------------------------------------------------------ hypothesis strategies
def cases(*, cli: float = 0.1, audit: float = 1.0):
    """Hypothesis strategy of cases: mostly logs, then frames, numbers and parameters."""
    import hypothesis.strategies as st

    seeds = st.integers(0, 2**16 - 1)
    log_verbs = [n for n, v in VERBS.items() if v.kind == "log" and (audit > 0 or n != "audit")]

    @st.composite
    def draw(draw_: Any) -> Case:
        kind = draw_(st.sampled_from(["log"] * 14 + ["frame"] * 3 + ["numbers"] * 2 + ["params"]))
        if kind == "log":
            base = draw_(st.sampled_from(["nco", "nco", "study", "study", "study", "fidelity", "placebo", "world",
                                          "world", "tiny", "tiny"]))
            size = draw_(st.sampled_from([1, 2, 3, 4, 6, 10]))
            pool = st.sampled_from(list(SEMANTIC) * 2 + sorted(MUTATIONS))
            muts = draw_(st.lists(st.tuples(pool, seeds), max_size=4))
            w = [VERBS[n].weight * (audit if n == "audit" else 1) for n in log_verbs]
            verbs = draw_(st.lists(st.sampled_from(functools.reduce(operator.iadd, ([n] * max(round(x * 2), 1) for n, x in zip(log_verbs, w,
                                                                                                          strict=True)), [])), min_size=1, max_size=3))
            calls = [(v, draw_(seeds)) for v in verbs]
            if draw_(st.floats(0, 1)) < cli:
                calls.append((draw_(st.sampled_from(CLI_COMMANDS)), draw_(seeds)))
            return Case(Recipe("log", base, size, draw_(st.integers(0, 5)), tuple(muts)), tuple(calls))
        pool_ = {"frame": FRAME_MUTATIONS, "numbers": NUMBER_MUTATIONS, "params": ("none",)}[kind]
        muts = draw_(st.lists(st.tuples(st.sampled_from(pool_), seeds), max_size=3)) if kind != "params" else []
        names = [n for n, v in VERBS.items() if v.kind == kind]
        verbs = draw_(st.lists(st.sampled_from(names), min_size=1, max_size=3))
        return Case(Recipe(kind, kind, draw_(st.sampled_from([1, 2, 3, 5, 10])), draw_(st.integers(0, 5)),
                           tuple(muts)), tuple((v, draw_(seeds)) for v in verbs))

    return draw()


__all__ = [
    "CLI_COMMANDS", "HOSTILE", "MUTATIONS", "VERBS", "Case", "Outcome", "Recipe", "Tally", "base_tables",
    "build_frame", "build_input", "build_numbers", "build_tables", "cases", "check_result", "check_tidy", "headline",
    "read_tables", "replay", "reproducer", "run_cli", "run_verb", "shrink",
]
