"""Pairing and resampling shared by the corrections (NCO-DiD, categorical proximal) and calibration.

One rule (the project's pairing rule): a design is *paired* when some ``persona_id`` has units
in more than one of the compared arms (:func:`driftstats.log.query.design.paired_design` for a
log; the same test on a unit-level frame). In a paired design, standard errors cluster on
``persona_id`` and bootstraps resample personas (all of a persona's units together), so the
within-persona dependence between arms is kept; otherwise units are independent and a
bootstrap resamples units within each arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftstats.log.query.design import PAIRING_COLUMN, paired_design

__all__ = ["Cluster", "Pairing", "boot_counts", "pairing"]

Cluster = Literal["auto", "unit", "persona", "none"]

PAIRED_SENTENCE = ("paired design detected (persona_id shared across arms): standard errors cluster on persona_id "
                   "and bootstraps resample personas with all their units; pass cluster='unit' for an unpaired analysis")


class Pairing:
    """Cluster labels of the rows of a frame (None: independent units) and how they were chosen."""

    def __init__(self, clusters: np.ndarray | None, strata: str | None, sentence: str | None) -> None:
        self.clusters = clusters
        self.strata = strata
        self.sentence = sentence

    @property
    def paired(self) -> bool:
        return self.clusters is not None


def _frame_paired(frame: pd.DataFrame, arm_col: str) -> bool:
    if PAIRING_COLUMN not in frame.columns:
        return False
    sub = frame.dropna(subset=[PAIRING_COLUMN])
    if sub.empty:
        return False
    return bool((sub.groupby(PAIRING_COLUMN)[arm_col].nunique() > 1).any())


def pairing(frame: pd.DataFrame, arm_col: str, cluster: str, *, log: Any = None,
            arms: Sequence[Any] | None = None) -> Pairing:
    """The clusters of ``frame``'s rows under ``cluster`` ("auto": persona_id when the design is paired).

    ``frame`` holds one row per unit of the compared arms; units without a ``persona_id`` are
    their own cluster.
    """
    if cluster in ("unit", "none") or PAIRING_COLUMN not in frame.columns:
        return Pairing(None, None, None)
    if cluster == "auto":
        if log is not None:
            paired = paired_design(log, [str(a) for a in arms] if arms is not None else None)
        else:
            paired = _frame_paired(frame, arm_col)
        if not paired:
            return Pairing(None, None, None)
        sentence: str | None = PAIRED_SENTENCE
    else:
        sentence = "standard errors cluster on persona_id (cluster='persona')"
    pid = frame[PAIRING_COLUMN]
    labels = pid.astype(object).where(pid.notna(), "__unit__" + pd.Series(np.arange(len(frame)),
                                                                           index=frame.index).astype(str))
    return Pairing(pd.factorize(labels)[0], PAIRING_COLUMN, sentence)


def boot_counts(rng: np.random.Generator, n_boot: int, strata: np.ndarray, clusters: np.ndarray | None) -> np.ndarray:
    """Resampling multiplicities, shape (n_boot, n): how often each row enters each resample.

    Without clusters, rows are resampled with replacement within each stratum (arm), so every
    resample keeps the arm sizes. With clusters (paired designs), clusters are resampled with
    replacement and carry all their rows (a persona's units in every arm move together).
    """
    n = strata.size
    rows = np.arange(n_boot, dtype=np.int64)[:, None]
    if clusters is None:
        out = np.zeros((n_boot, n), dtype=np.int64)
        for s in np.unique(strata):
            idx = np.flatnonzero(strata == s)
            draw = rng.integers(0, idx.size, size=(n_boot, idx.size)) + rows * idx.size
            out[:, idx] = np.bincount(draw.ravel(), minlength=n_boot * idx.size).reshape(n_boot, idx.size)
        return out
    g = int(clusters.max()) + 1
    draw = rng.integers(0, g, size=(n_boot, g)) + rows * g
    per_cluster = np.bincount(draw.ravel(), minlength=n_boot * g).reshape(n_boot, g)
    return per_cluster[:, clusters]
