"""Train / validation / test splits (paper 4.5 and 5.1).

Both take the pipeline's ``data.split`` block (:class:`~socmap.config.SplitConfig`: fractions, strata, block
size, seed). ``stratified_split``: 90/5/5 stratified on ten quantile bins of log(1 + SOC), with a fixed seed, as
in the paper; nearby samples can fall in different parts, so held-out skill is transductive (an upper bound).
``block_split``: square blocks of ``block_km`` (in an equal-area projection) are held out whole, so the
held-out skill measures prediction away from training sites (inductive).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from socmap.config import SplitConfig

__all__ = ["SPLITS", "SPLIT_CODES", "block_folds", "block_ids", "block_split", "draw_held_blocks", "stratified_split"]

SPLITS = ("train", "val", "test")

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
"""Split name -> the integer code a model bundle stores per graph node."""


def _counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Sizes of (train, val, test) for n items: val and test rounded, train takes the rest."""
    n_val = round(n * fractions[1])
    n_test = round(n * fractions[2])
    return n - n_val - n_test, n_val, n_test


def stratified_split(soc_gkg: pd.Series | np.ndarray, split: SplitConfig) -> np.ndarray:
    """``train``/``val``/``test`` per sample, stratified on ``split.strata`` quantile bins of log(1 + SOC g/kg).

    Bins are equal-count quantiles of the ranks (ties broken by position, so every bin has n/strata samples
    even where SOC values repeat). Within a bin, samples are shuffled with ``seed`` and the first
    round(n_bin * f_val) go to val, the next round(n_bin * f_test) to test. Deterministic for a given seed
    and input order.
    """
    v = np.log1p(np.asarray(soc_gkg, dtype=float))
    n = len(v)
    out = np.full(n, "train", dtype=object)
    if n == 0:
        return out
    fractions, seed = split.fractions, split.seed
    k = max(1, min(split.strata, n))
    ranks = pd.Series(v).rank(method="first").to_numpy() - 1
    bins = np.floor(ranks * k / n).astype(int)
    rng = np.random.default_rng(seed)
    for b in range(k):
        idx = np.flatnonzero(bins == b)
        idx = idx[rng.permutation(len(idx))]
        _, n_val, n_test = _counts(len(idx), fractions)
        out[idx[:n_val]] = "val"
        out[idx[n_val:n_val + n_test]] = "test"
    return out


def block_ids(lon: np.ndarray, lat: np.ndarray, block_km: float,
              offset_km: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Integer id of the ``block_km`` square (EPSG:6933, World Cylindrical Equal Area) holding each point; the
    grid's origin moved by ``offset_km`` (x, y), so block borders fall elsewhere."""
    from pyproj import Transformer

    tr = Transformer.from_crs(4326, 6933, always_xy=True)
    x, y = tr.transform(np.asarray(lon, float), np.asarray(lat, float))
    size = block_km * 1000.0
    bx = np.floor((np.asarray(x) - 1000.0 * offset_km[0]) / size).astype(np.int64)
    by = np.floor((np.asarray(y) - 1000.0 * offset_km[1]) / size).astype(np.int64)
    return bx * 1_000_003 + by


def draw_held_blocks(lon: np.ndarray, lat: np.ndarray, block_km: float, fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float]]:
    """Hold out a random ``fraction`` of the occupied ``block_km`` blocks, the grid moved by a random offset: (N,)
    True at the points inside a held-out block, and the offset (km). At least one block is held out and at least
    one kept; ValueError where the points fill a single block."""
    offset = rng.uniform(0.0, block_km, 2)
    off = (float(offset[0]), float(offset[1]))
    ids = block_ids(lon, lat, block_km, off)
    blocks = np.unique(ids)
    if len(blocks) < 2:
        raise ValueError(f"the points fill one {block_km:g} km block")
    n_held = min(len(blocks) - 1, max(1, round(fraction * len(blocks))))
    return np.isin(ids, rng.choice(blocks, n_held, replace=False)), off


def block_split(lon: np.ndarray, lat: np.ndarray, split: SplitConfig) -> np.ndarray:
    """``train``/``val``/``test`` per sample, holding out whole ``split.block_km`` blocks.

    Blocks are shuffled with ``split.seed``; blocks go to val until it holds at least its share
    (``split.fractions``) of the samples, then to test likewise, the rest to train. Shares are met to within one
    block's sample count.
    """
    fractions = split.fractions
    ids = block_ids(lon, lat, split.block_km)
    n = len(ids)
    out = np.full(n, "train", dtype=object)
    if n == 0:
        return out
    uniq, inv, cnt = np.unique(ids, return_inverse=True, return_counts=True)
    order = np.random.default_rng(split.seed).permutation(len(uniq))
    _, n_val, n_test = _counts(n, fractions)
    part = np.full(len(uniq), "train", dtype=object)
    filled = {"val": 0, "test": 0}
    target = {"val": n_val, "test": n_test}
    for b in order:
        for name in ("val", "test"):
            slack = max(1, target[name] // 2)  # a block may overshoot the share by half at most
            if filled[name] < target[name] and filled[name] + cnt[b] <= target[name] + slack:
                part[b] = name
                filled[name] += cnt[b]
                break
        if filled["val"] >= n_val and filled["test"] >= n_test:
            break
    return part[inv]


def block_folds(lon: np.ndarray, lat: np.ndarray, split: SplitConfig, folds: int) -> list[np.ndarray]:
    """Spatial K-fold cross-validation over whole ``split.block_km`` blocks: one ``train``/``val``/``test`` array
    per fold, and every sample is ``test`` in exactly one fold.

    Why: one block split tests a few dozen blocks, so its RMSE moves with which blocks were drawn (on the Africa
    set one model can lead a baseline on a split's validation blocks and trail it on the same split's test
    blocks). K folds test every block once.

    Blocks are shuffled with ``split.seed`` and dealt, largest first, to the fold with the fewest samples so far,
    so the folds' test sets are within one block's count of n / K. In fold f the other folds' blocks are shuffled
    again (seed + f) and go to ``val`` until it holds ``split.fractions[1]`` of all samples (the same rule as
    :func:`block_split`); the rest is ``train``.
    """
    if folds < 2:
        raise ValueError(f"block_folds needs folds >= 2, got {folds}")
    ids = block_ids(lon, lat, split.block_km)
    n = len(ids)
    uniq, inv, cnt = np.unique(ids, return_inverse=True, return_counts=True)
    if len(uniq) < folds:
        raise ValueError(f"{len(uniq)} occupied {split.block_km:g} km blocks cannot make {folds} folds")
    rng = np.random.default_rng(split.seed)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-cnt[order], kind="stable")]  # largest first, ties in shuffled order
    fold_of = np.empty(len(uniq), np.int64)
    filled = np.zeros(folds, np.int64)
    for b in order:
        f = int(np.argmin(filled))
        fold_of[b] = f
        filled[f] += cnt[b]
    n_val = round(n * split.fractions[1])
    out = []
    for f in range(folds):
        part = np.where(fold_of == f, "test", "train").astype(object)
        got = 0
        for b in np.random.default_rng(split.seed + 1 + f).permutation(len(uniq)):
            if got >= n_val:
                break
            if fold_of[b] != f and got + cnt[b] <= n_val + max(1, n_val // 2):
                part[b] = "val"
                got += cnt[b]
        out.append(part[inv])
    return out
