"""Permutation and bootstrap weight generators (numpy only).

Units are the exchangeable objects. A chunk is a ``(c, n)`` float32 matrix: row b holds
the arm-1 membership (permutation) or the resampling counts (bootstrap) of each unit in
draw b. Statistics are then matrix products with the unit x feature matrix, so memory is
``chunk x n`` whatever the number of draws.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["StrataLayout", "boot_chunks", "layout", "perm_chunks"]


class StrataLayout:
    """How units are grouped for permutation: none, pairs (1+1 per stratum), or general strata."""

    def __init__(self, arm1: np.ndarray, strata: np.ndarray | None) -> None:
        self.arm1 = np.asarray(arm1, dtype=bool)
        self.n = self.arm1.size
        self.kind = "none"
        if strata is None:
            return
        codes, inv = np.unique(strata, return_inverse=True)
        self.strata = inv
        sizes = np.bincount(inv)
        ones = np.bincount(inv, weights=self.arm1.astype(float))
        if np.all(sizes == 2) and np.all(ones == 1):
            self.kind = "pairs"
            order = np.argsort(inv, kind="stable")
            first, second = order[0::2], order[1::2]
            # orient each pair as (arm-1 unit, arm-0 unit)
            swap = ~self.arm1[first]
            self.pair1 = np.where(swap, second, first)
            self.pair0 = np.where(swap, first, second)
        else:
            self.kind = "strata"
            self.order = np.argsort(inv, kind="stable")
            self.sorted_strata = inv[self.order].astype(np.float64)
            self.sorted_arm1 = self.arm1[self.order]
        self.n_strata = codes.size


def layout(arm1: np.ndarray, strata: np.ndarray | None) -> StrataLayout:
    return StrataLayout(arm1, strata)


def perm_chunks(lay: StrataLayout, n_perm: int, rng: np.random.Generator, chunk: int = 256) -> Iterator[np.ndarray]:
    """Yield ``(c, n)`` float32 arm-1 membership matrices, ``n_perm`` rows in all.

    Without strata: uniformly random relabellings with the arm sizes fixed. With pairs:
    each pair swaps its labels with probability 1/2. With general strata: labels are
    shuffled within each stratum.
    """
    done = 0
    while done < n_perm:
        c = min(chunk, n_perm - done)
        if lay.kind == "none":
            m = rng.permuted(np.broadcast_to(lay.arm1, (c, lay.n)), axis=1)
        elif lay.kind == "pairs":
            flip = rng.random((c, lay.pair1.size)) < 0.5
            m = np.zeros((c, lay.n), dtype=bool)
            m[:, lay.pair1] = ~flip
            m[:, lay.pair0] = flip
        else:
            keys = lay.sorted_strata + rng.random((c, lay.n))
            idx = np.argsort(keys, axis=1, kind="stable")
            m_sorted = lay.sorted_arm1[idx]
            m = np.empty((c, lay.n), dtype=bool)
            m[:, lay.order] = m_sorted
        done += c
        yield m.astype(np.float32)


def boot_chunks(
    lay: StrataLayout, n_boot: int, rng: np.random.Generator, chunk: int = 256
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield bootstrap count matrices ``(w1, w0)``, each ``(c, n)`` float32.

    Units are resampled with replacement within their arm (pairs are resampled as pairs,
    keeping the pairing); ``w1`` counts arm-1 draws, ``w0`` arm-0 draws.
    """
    idx1 = np.flatnonzero(lay.arm1)
    idx0 = np.flatnonzero(~lay.arm1)
    done = 0
    while done < n_boot:
        c = min(chunk, n_boot - done)
        w1 = np.zeros((c, lay.n), dtype=np.float32)
        w0 = np.zeros((c, lay.n), dtype=np.float32)
        rows = np.arange(c)[:, None]
        if lay.kind == "pairs":
            k = lay.pair1.size
            draw = rng.integers(0, k, size=(c, k))
            np.add.at(w1, (rows, lay.pair1[draw]), 1.0)
            np.add.at(w0, (rows, lay.pair0[draw]), 1.0)
        else:
            d1 = idx1[rng.integers(0, idx1.size, size=(c, idx1.size))]
            d0 = idx0[rng.integers(0, idx0.size, size=(c, idx0.size))]
            np.add.at(w1, (rows, d1), 1.0)
            np.add.at(w0, (rows, d0), 1.0)
        done += c
        yield w1, w0
