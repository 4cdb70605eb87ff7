"""The audit: every registered analysis on a log, and a verdict written from their results.

:func:`audit` validates its settings before any work, resolves the log's roles once, runs the
registered steps (:mod:`driftstats.report.steps`) and lets :mod:`driftstats.report.verdict`
write the verdict. The :class:`Audit` it returns is immutable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from driftstats._args import (
    DEFAULT_N_BOOT,
    DEFAULT_N_PERM,
    DEFAULT_SEED,
    check_choice,
    check_conf_level,
    check_margin,
    check_positive_int,
)
from driftstats._groups import resolve_by
from driftstats._result import Result
from driftstats.errors import DriftstatsError, InsufficientDataError, InvalidArgumentError
from driftstats.log.query.design import resolve_strata
from driftstats.log.simlog import SimLog, Source, as_log
from driftstats.log.summary import LogSummary
from driftstats.report.steps import STEPS, AuditSettings, Context, StepOutcome, run_step
from driftstats.report.verdict import Verdict, write_verdict

__all__ = ["DEFAULT_MIN_UNITS", "Audit", "AuditStepError", "audit", "check_report_path"]

Progress = Callable[[str], None]
Mode = Literal["sample", "dist"]

#: Below this many units with valid answers per arm, an audit step says it cannot conclude.
DEFAULT_MIN_UNITS = 10


class AuditStepError(DriftstatsError, RuntimeError):
    """An audit step failed (the computation raised); ``keep_going=True`` records it instead."""

    def __init__(self, outcome: StepOutcome) -> None:
        super().__init__(f"audit step {outcome.name!r} ({outcome.title}) failed: {(outcome.reason or '').rstrip('.')}. "
                         "Fix the cause, or pass keep_going=True (CLI: --keep-going) to list it as not computed.")
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class Audit:
    """The outcome of every audit step and the verdict; render with :meth:`to_html` / :meth:`write_html`.

    ``audit["nco"]`` is the result of a step that ran; ``audit.steps`` holds every step's
    :class:`~driftstats.report.steps.StepOutcome` (ran, skipped with why, or failed with why).
    """

    log: SimLog
    summary: LogSummary
    settings: AuditSettings
    steps: tuple[StepOutcome, ...]
    verdict: Verdict

    @property
    def results(self) -> Mapping[str, Result]:
        """The results of the steps that ran, by step name (read-only)."""
        return MappingProxyType({o.name: o.result for o in self.steps if o.ok and o.result is not None})

    @property
    def skipped(self) -> Mapping[str, str]:
        """Why each step that did not run was skipped or failed, by step name (read-only)."""
        return MappingProxyType({o.name: o.reason or "" for o in self.steps if not o.ok})

    @property
    def failed(self) -> tuple[StepOutcome, ...]:
        return tuple(o for o in self.steps if o.status == "failed")

    def outcome(self, name: str) -> StepOutcome:
        for o in self.steps:
            if o.name == name:
                return o
        raise KeyError(f"no audit step named {name!r}; steps: {[o.name for o in self.steps]}")

    def __getitem__(self, name: str) -> Result:
        o = self.outcome(name)
        if not o.ok or o.result is None:
            raise KeyError(f"audit step {name!r} has no result: {o.status} ({o.reason})")
        return o.result

    def __contains__(self, name: object) -> bool:
        return name in self.results

    def to_html(self) -> str:
        from driftstats.report.render import render_html

        return render_html(self)

    def write_html(self, path: str | Path) -> Path:
        """Write the self-contained HTML report atomically (the directory must exist and be writable)."""
        path = check_report_path(path)
        html = self.to_html()
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            tmp.write_text(html, encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def __repr__(self) -> str:
        return "\n".join([f"driftstats audit of {self.summary.source}", *[f"  {v}" for v in self.verdict]])

    def _repr_html_(self) -> str:
        import html

        items = "".join(f"<li>{html.escape(v)}</li>" for v in self.verdict.lines)
        return (f"<div><b>driftstats audit</b> of {html.escape(self.summary.source)}"
                f"<p><b>{html.escape(self.verdict.bottom_line)}</b></p><ul>{items}</ul>"
                "<p>Full report: <code>.write_html(path)</code>; results: <code>audit['nco']</code>, "
                "<code>.steps</code></p></div>")


def check_report_path(path: str | Path) -> Path:
    """The report path, checked before any work: its folder exists and is writable, and it is not a folder."""
    path = Path(path)
    if path.is_dir():
        raise InvalidArgumentError(f"report path {str(path)!r} is a directory; give a file name such as audit.html.")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidArgumentError(
            f"cannot write the report {str(path)!r}: the folder {str(parent)!r} does not exist. Create it first.")
    probe = parent / f".{path.name}.{uuid.uuid4().hex[:8]}.probe"
    try:
        probe.write_bytes(b"")
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot write the report {str(path)!r}: {exc.strerror or exc} in {str(parent)!r}. "
            "Choose a writable location with --report.") from None
    else:
        probe.unlink(missing_ok=True)
    if path.exists() and not os.access(path, os.W_OK):
        raise InvalidArgumentError(f"cannot write the report {str(path)!r}: the file is read-only.")
    return path


def audit(
    log: SimLog | Source,
    *,
    outcome: str | None = None,
    margin: float = 0.05,
    mode: Mode = "sample",
    strata: str | Literal["auto"] | None = "auto",
    n_perm: int = DEFAULT_N_PERM,
    n_boot: int = DEFAULT_N_BOOT,
    conf_level: float = 0.95,
    seed: int = DEFAULT_SEED,
    min_units: int = DEFAULT_MIN_UNITS,
    keep_going: bool = False,
    progress: Progress | None = None,
) -> Audit:
    """Audit a simulation log: data quality, NCO drift, equivalence, fidelity, effects and corrections.

    Parameters
    ----------
    log
        A :class:`~driftstats.SimLog`, a DataFrame or a path (read with :func:`~driftstats.read_log`).
    outcome
        The primary outcome (default: the log's single primary item).
    margin
        Equivalence margin on the TVD scale ("no drift beyond margin"), in (0, 1).
    mode
        ``"sample"`` (sampled answers) or ``"dist"`` (option probabilities); the other mode's drift
        tests run too when the log has option probabilities.
    strata
        Permutation / pairing strata; ``"auto"`` pairs on ``persona_id`` in paired designs.
    n_perm, n_boot, conf_level, seed
        Passed to every step; ``1 - conf_level`` is the significance level of every decision in the
        verdict. The default seed makes the audit reproducible.
    min_units
        A step whose smallest arm has fewer units with valid answers says it cannot conclude.
    keep_going
        ``False`` (default): a step that fails raises :class:`AuditStepError`. ``True``: it is listed
        at the top of the verdict as not computed, with why.
    progress
        Called with a short message before each step (the CLI shows it).

    Returns
    -------
    Audit

    Raises
    ------
    InvalidArgumentError
        An argument is out of range, or ``mode`` / ``outcome`` is not in the log (checked before any work).
    InsufficientDataError
        The log has fewer than two arms: there is nothing to compare.
    AuditStepError
        A step failed and ``keep_going`` is False.
    """
    margin = check_margin(margin)
    check_choice("mode", mode, Mode)
    n_perm = check_positive_int("n_perm", n_perm, minimum=19)
    n_boot = check_positive_int("n_boot", n_boot, minimum=0)
    conf_level = check_conf_level(conf_level)
    min_units = check_positive_int("min_units", min_units, minimum=2)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError(f"seed must be an integer (the audit is reproducible by design); got {seed!r}.")
    say = progress or (lambda _msg: None)
    say("reading and validating the log")
    sl = as_log(log)
    if len(sl.arm_names) < 2:
        raise InsufficientDataError(
            f"the log has one arm ({sl.arm_names[0]!r}): an audit compares arms. Check the arm column "
            "(read_log(..., arm=...) / --arm) or add the other arms' answers.")
    if mode not in sl.modes:
        raise InvalidArgumentError(f"mode={mode!r}: the log has no answers in that mode; modes in this log: "
                                   f"{list(sl.modes)}.")
    prim = sl.item_names("primary")
    if outcome is not None:
        sl.item(outcome)  # names the item or raises with the list of items
    else:
        outcome = prim[0] if len(prim) == 1 else None
    strata_used, _note = resolve_strata(sl, strata)
    settings = AuditSettings(outcome=outcome, margin=margin, mode=mode, strata=strata_used,
                             paired=strata_used == "persona_id" and strata == "auto", n_perm=n_perm, n_boot=n_boot,
                             conf_level=conf_level, seed=seed, min_units=min_units, keep_going=keep_going)
    ctx = Context(log=sl, settings=settings, ncos=sl.item_names("nco"), fidelity_items=sl.item_names("fidelity"),
                  placebos=sl.arms_of_kind("placebo"), proxies=sl.item_names("proxy"),
                  by=resolve_by("auto", log=sl, columns=sl.columns()))
    outcomes: list[StepOutcome] = []
    for step in STEPS:
        o = run_step(ctx, step, on_start=say)
        if o.status == "failed" and not keep_going:
            raise AuditStepError(o)
        outcomes.append(o)
    say("writing the verdict")
    summary = sl.summary()
    done = tuple(outcomes)
    return Audit(log=sl, summary=summary, settings=settings, steps=done,
                 verdict=write_verdict(sl, summary, settings, done, by=ctx.by))


