"""Permutation generators (numpy only).

Units are the exchangeable objects. A chunk is a ``(c, n)`` matrix (float64 by default): row b
holds the arm-1 membership of each unit in permutation b. Statistics are then matrix products
with the unit x feature matrix, so memory is ``chunk x n`` whatever the number of draws.
Memberships are 0/1, so products with integer-valued features are exact (float64 below 2**53,
float32 below 2**24).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["StrataLayout", "layout", "log_n_relabellings", "perm_chunks"]


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


def log_n_relabellings(lay: StrataLayout) -> float:
    """Natural log of the number of distinct relabellings the permutation scheme draws from."""
    from math import lgamma

    def log_comb(n: int, k: int) -> float:
        return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)

    if lay.kind == "none":
        return log_comb(lay.n, int(lay.arm1.sum()))
    if lay.kind == "pairs":
        return float(lay.pair1.size * np.log(2.0))
    sizes = np.bincount(lay.strata)
    ones = np.bincount(lay.strata, weights=lay.arm1.astype(float)).astype(int)
    return float(sum(log_comb(int(n), int(k)) for n, k in zip(sizes, ones, strict=True)))


def perm_chunks(lay: StrataLayout, n_perm: int, rng: np.random.Generator, chunk: int = 256,
                dtype: type = np.float64) -> Iterator[np.ndarray]:
    """Yield ``(c, n)`` arm-1 membership matrices (0/1 of ``dtype``), ``n_perm`` rows in all.

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
        yield m.astype(dtype)
