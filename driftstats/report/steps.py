"""The audit's steps: registered units that declare what they need and return a typed result.

A step is a :class:`Step`: a name, a title (shown as progress), the inputs it needs from the
log (:data:`NEEDS`: NCO items, a primary outcome, placebo arms, ...), a minimum number of
units per arm, and a ``run`` function from the :class:`Context` to a
:class:`~driftstats._result.Result`. :func:`run_step` checks the needs and sizes first: a
step whose inputs are absent is *skipped* with the reason (the report says why), a step that
raises is *failed* (the audit stops, or with ``keep_going`` records why). Warnings a step's
verbs raise travel with its outcome instead of being lost.

New analyses (a Bayesian drift model, say) join with :func:`register_step` without touching
the others, as report sections join with :func:`driftstats.report.render.register_section`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from driftstats._groups import plain
from driftstats._result import Result
from driftstats.errors import DriftstatsError
from driftstats.log.query.audit import answered_units, invalid_rows
from driftstats.log.query.design import varying_run_columns
from driftstats.log.schema import DIALOGUE_END_ITEM, DIALOGUE_TURNS_ITEM
from driftstats.log.simlog import SimLog

__all__ = [
    "NEEDS",
    "STEPS",
    "AuditSettings",
    "Context",
    "Step",
    "StepOutcome",
    "group_label",
    "register_step",
    "run_step",
]

Mode = Literal["sample", "dist"]
Status = Literal["ok", "skipped", "failed"]


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """Every number that shapes the audit (recorded in the report's header)."""

    outcome: str | None
    margin: float
    mode: Mode
    strata: str | None
    paired: bool
    n_perm: int
    n_boot: int
    conf_level: float
    seed: int
    min_units: int
    keep_going: bool

    @property
    def level(self) -> float:
        """The significance level of every decision in the verdict: ``1 - conf_level``."""
        return 1.0 - self.conf_level

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Context:
    """What a step may read: the log, the settings and the log's roles (resolved once)."""

    log: SimLog
    settings: AuditSettings
    ncos: tuple[str, ...]
    fidelity_items: tuple[str, ...]
    placebos: tuple[str, ...]
    proxies: tuple[str, ...]
    by: tuple[str, ...] = ("iteration",)  # the log's runs: every step's groups (``by="auto"`` of the verbs)

    @property
    def outcome(self) -> str | None:
        return self.settings.outcome


def _need_nco(c: Context) -> str | None:
    return None if c.ncos else "the log declares no NCO items (role 'nco'): drift cannot be diagnosed"


def _need_categorical_nco(c: Context) -> str | None:
    if not c.ncos:
        return _need_nco(c)
    if all(c.log.item(n).scale == "numeric" for n in c.ncos):
        return "every NCO is numeric: equivalence on the TVD scale needs categorical NCOs"
    return None


def _need_outcome(c: Context) -> str | None:
    return None if c.outcome else "no single primary outcome (role 'primary'); pass outcome=..."


def _ordered(c: Context, item: str) -> bool:
    info = c.log.item(item)
    return info.scale != "nominal" or info.n_levels == 2


def _need_ordered_outcome(c: Context) -> str | None:
    if not c.outcome:
        return _need_outcome(c)
    if not _ordered(c, c.outcome):
        return (f"the outcome {c.outcome!r} is nominal with more than two options (order unknown): mean contrasts need "
                "ordered options (declare the items table with scale 'ordinal')")
    return None


def _need_ordered_nco(c: Context) -> str | None:
    if not c.ncos:
        return _need_nco(c)
    if not any(_ordered(c, n) for n in c.ncos):
        return "every NCO is nominal with more than two options: NCO difference-in-differences needs ordered NCOs"
    return None


def _need_fidelity(c: Context) -> str | None:
    return None if c.fidelity_items else "no fidelity items (role 'fidelity') re-ask the specified persona attributes"


def _need_placebo(c: Context) -> str | None:
    return None if c.placebos else (
        "no placebo arms (arms of kind 'placebo'): calibration needs negative-control interventions")


def _need_proxy(c: Context) -> str | None:
    return None if c.proxies else (
        "no proxies declared: proximal 2SLS needs negative control exposures Z (items of role 'proxy', e.g. "
        "attributes elicited before the intervention in a separate branch)")


def _need_dist(c: Context) -> str | None:
    if "dist" not in c.log.modes:
        return "the log has no option probabilities (mode 'dist')"
    if c.settings.mode == "dist":
        return "the main drift tests already use the option probabilities (mode='dist')"
    return None


def dialogue_items(c: Context) -> tuple[str, ...]:
    """The log's dialogue items (``dialogue_end``, ``dialogue_turns``) when it holds transcripts; else none."""
    if not c.log.has_transcripts:
        return ()
    return tuple(i for i in (DIALOGUE_END_ITEM, DIALOGUE_TURNS_ITEM) if i in c.log.item_names())


def _need_dialogue(c: Context) -> str | None:
    if not c.log.has_transcripts:
        return "the log has no transcripts: the intervention is not a dialogue"
    if not dialogue_items(c):
        return (f"the log has transcripts but no dialogue items ({DIALOGUE_END_ITEM!r}, {DIALOGUE_TURNS_ITEM!r}): "
                "add them with driftstats.log.dialogue.dialogue_answers / dialogue_items")
    return None


def _need_one_run(c: Context) -> str | None:
    if not varying_run_columns(c.log):
        return None
    return (f"the log holds several runs (by {', '.join(c.by)}) and this verb does not group: run it on one "
            "run's answers (filter the log first)")


def _need_adjustment(c: Context) -> str | None:
    if c.log.iterations.empty:
        return ("the log has no iterations rows: not an adjustment study (run one with `driftstats simulate` and an "
                "[adjustment] section)")
    return None


#: The inputs a step can declare, and the check that says why one is missing.
NEEDS: dict[str, Callable[[Context], str | None]] = {
    "nco": _need_nco,
    "categorical_nco": _need_categorical_nco,
    "outcome": _need_outcome,
    "ordered_outcome": _need_ordered_outcome,
    "ordered_nco": _need_ordered_nco,
    "fidelity": _need_fidelity,
    "placebo": _need_placebo,
    "proxy": _need_proxy,
    "dist": _need_dist,
    "adjustment": _need_adjustment,
    "dialogue": _need_dialogue,
    "one_run": _need_one_run,
}


@dataclass(frozen=True, slots=True)
class Step:
    """One analysis of the audit.

    ``items`` names the log items whose valid answers the size check counts (from the
    context); ``mode`` the answers' mode (default: the audit's); ``run`` returns a Result.
    """

    name: str
    title: Callable[[Context], str]
    needs: tuple[str, ...]
    run: Callable[[Context], Result]
    items: Callable[[Context], tuple[str, ...]] = lambda c: ()
    mode: Mode | None = None

    def __post_init__(self) -> None:
        unknown = [n for n in self.needs if n not in NEEDS]
        if unknown:
            raise ValueError(f"step {self.name!r} declares unknown needs {unknown}; known: {sorted(NEEDS)}")


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What became of a step: ``ok`` (with its result), ``skipped`` (a need or size unmet) or ``failed``."""

    name: str
    title: str
    status: Status
    result: Result | None = None
    reason: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


STEPS: list[Step] = []


def register_step(step: Step, *, position: int | None = None) -> Step:
    """Add a step to the audit (after the built-in ones unless ``position`` is given)."""
    if any(s.name == step.name for s in STEPS):
        raise ValueError(f"an audit step named {step.name!r} is already registered")
    if position is None:
        STEPS.append(step)
    else:
        STEPS.insert(position, step)
    return step


def _size_problem(c: Context, step: Step) -> str | None:
    items = step.items(c)
    if not items:
        return None
    mode = step.mode or c.settings.mode
    counts = answered_units(c.log, items, mode)
    arms = [a for a in c.log.arm_names]
    counts = counts[counts["arm"].isin(arms)]
    if counts.empty or counts["units"].max() == 0:
        n_bad, n_all = invalid_rows(c.log, items, mode)
        if n_all and n_bad == n_all:
            return f"every answer to {_names(items)} in mode {mode!r} is invalid ({n_all} rows): nothing to analyse"
        return f"no answers to {_names(items)} in mode {mode!r}"
    small = counts[counts["units"] < c.settings.min_units]
    if len(small):
        r = small.sort_values("units").iloc[0]
        where = f" in {group_label({k: r[k] for k in c.by})}" if len(counts[list(c.by)].drop_duplicates()) > 1 else ""
        return (f"cannot conclude: arm {r['arm']!r}{where} has {int(r['units'])} unit(s) with valid answers to "
                f"{_names(items)}, below the minimum of {c.settings.min_units} per arm (min_units)")
    return None


def group_label(key: Mapping[str, Any]) -> str:
    """A run's key (``{"model": ..., "run_id": ..., "iteration": ...}``) as text: ``"iteration 1"``,
    ``"model m, run r, iteration 1"``."""
    names = {"run_id": "run"}
    return ", ".join(f"{names.get(k, k)} {plain(v)}" for k, v in key.items())


def _names(items: tuple[str, ...]) -> str:
    return repr(items[0]) if len(items) == 1 else f"{len(items)} items"


def run_step(c: Context, step: Step, *, on_start: Callable[[str], None] | None = None) -> StepOutcome:
    """Check the step's needs and sizes, run it, and record its warnings.

    ``on_start`` is called with the step's title just before it runs (not for skipped steps).
    """
    title = step.title(c)
    for need in step.needs:
        why = NEEDS[need](c)
        if why:
            return StepOutcome(step.name, title, "skipped", reason=why)
    why = _size_problem(c, step)
    if why:
        return StepOutcome(step.name, title, "skipped", reason=why)
    if on_start is not None:
        on_start(title)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = step.run(c)
        except (DriftstatsError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            return StepOutcome(step.name, title, "failed", reason=f"{type(exc).__name__}: {exc}",
                               warnings=_messages(caught))
    return StepOutcome(step.name, title, "ok", result=result, warnings=_messages(caught))


def _messages(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))


def did_all(c: Context) -> Result:
    """``did_nco`` with every ordered NCO at once (location-scale mapping onto the outcome's scale): a corrected
    estimate per NCO, the test of their agreement and the sensitivity interval."""
    from driftstats.correct import did_nco

    s = c.settings
    ncos = [n for n in c.ncos if _ordered(c, n)]
    return did_nco(c.log, outcome=s.outcome, nco=ncos, by=c.by, scale="location_scale", mode=s.mode, n_boot=s.n_boot,
                   conf_level=s.conf_level, seed=s.seed)


def adjustment_all(c: Context) -> Result:
    """``adjustment_path`` on every model and path of an adjustment study, with the audit's settings."""
    from driftstats.adjust import adjustment_path

    s = c.settings
    return adjustment_path(c.log, outcome=s.outcome, nco=list(c.ncos), margin=s.margin, mode=s.mode, strata=s.strata,
                           n_perm=s.n_perm, n_boot=s.n_boot, conf_level=s.conf_level, min_units=s.min_units,
                           seed=s.seed)


def _adjustment_title(c: Context) -> str:
    it = c.log.iterations
    n_models, n_paths = it["model"].nunique(), it[["model", "path"]].drop_duplicates().shape[0]
    return (f"adjustment iterations ({_plural(n_paths, 'path')} of {_plural(n_models, 'model')}, "
            f"{c.settings.n_perm} permutations)")


# ------------------------------------------------------------------------------ the built-in steps
def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _register_builtin() -> None:
    from driftstats.calibrate import calibrate_effect
    from driftstats.correct import p2sls
    from driftstats.effects import effect
    from driftstats.nco import equivalence_test, nco_test
    from driftstats.persona import fidelity

    def nco(c: Context, mode: Mode) -> Result:
        s = c.settings
        return nco_test(c.log, by=c.by, strata=s.strata, mode=mode, n_perm=s.n_perm, n_boot=s.n_boot if mode == s.mode else 0,
                        conf_level=s.conf_level, seed=s.seed)

    def cat_ncos(c: Context) -> tuple[str, ...]:
        return tuple(n for n in c.ncos if c.log.item(n).scale != "numeric")

    steps = [
        Step("nco", lambda c: f"NCO drift tests ({_plural(len(c.ncos), 'NCO')}, {c.settings.n_perm} permutations)",
             ("nco",), lambda c: nco(c, c.settings.mode), items=lambda c: c.ncos),
        Step("equivalence", lambda c: f"equivalence tests at margin {c.settings.margin}", ("categorical_nco",),
             lambda c: equivalence_test(c.log, margin=c.settings.margin, nco=list(cat_ncos(c)), by=c.by,
                                        strata=c.settings.strata,
                                        mode=c.settings.mode, method="projection", conf_level=c.settings.conf_level),
             items=cat_ncos),
        Step("nco_dist", lambda c: "NCO drift tests on the option probabilities (distribution mode)", ("nco", "dist"),
             lambda c: nco(c, "dist"), items=lambda c: c.ncos, mode="dist"),
        Step("fidelity", lambda c: "persona fidelity", ("fidelity",),
             lambda c: fidelity(c.log, by=c.by, mode=c.settings.mode, conf_level=c.settings.conf_level,
                                min_units=c.settings.min_units),
             items=lambda c: c.fidelity_items),
        Step("dialogue", lambda c: f"drift in how the dialogues ran ({', '.join(dialogue_items(c))}; "
                                   f"{c.settings.n_perm} permutations)", ("dialogue",),
             lambda c: nco_test(c.log, nco=list(dialogue_items(c)), by=c.by, strata=c.settings.strata, mode="sample",
                                n_perm=c.settings.n_perm, n_boot=0, conf_level=c.settings.conf_level,
                                seed=c.settings.seed),
             items=dialogue_items, mode="sample"),
        Step("effect", lambda c: f"observed effect on {c.outcome!r}", ("outcome",),
             lambda c: effect(c.log, outcome=c.outcome, by=c.by, mode=c.settings.mode, n_perm=c.settings.n_perm,
                              conf_level=c.settings.conf_level, seed=c.settings.seed, min_units=c.settings.min_units),
             items=lambda c: (c.outcome,) if c.outcome else ()),
        Step("did", lambda c: "NCO difference-in-differences (one per NCO)", ("ordered_outcome", "ordered_nco"), did_all,
             items=lambda c: (c.outcome, *c.ncos) if c.outcome else ()),
        Step("calibration", lambda c: f"empirical calibration against {_plural(len(c.placebos), 'placebo arm')}",
             ("ordered_outcome", "placebo"),
             lambda c: calibrate_effect(c.log, outcome=c.outcome, by=c.by, mode=c.settings.mode,
                                        conf_level=c.settings.conf_level),
             items=lambda c: (c.outcome,) if c.outcome else ()),
        Step("adjustment", _adjustment_title, ("adjustment", "nco", "outcome"), adjustment_all, items=lambda c: c.ncos),
        Step("p2sls", lambda c: "proximal 2SLS", ("ordered_outcome", "nco", "proxy", "one_run"),
             lambda c: p2sls(data=c.log, outcome=c.outcome, treatment="arm", nco=list(c.ncos[: len(c.proxies)]),
                             nce=list(c.proxies), mode=c.settings.mode, conf_level=c.settings.conf_level),
             items=lambda c: (c.outcome, *c.ncos[: len(c.proxies)], *c.proxies) if c.outcome else ()),
    ]
    for s in steps:
        register_step(s)


def outcomes_by_name(outcomes: tuple[StepOutcome, ...]) -> Mapping[str, StepOutcome]:
    return {o.name: o for o in outcomes}


_register_builtin()
