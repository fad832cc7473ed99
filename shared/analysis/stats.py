"""Small statistics of measured curves and tables: group means, monotonicity, the diagonal of a
token-to-token table, and a held-out linear probe. No model runs here."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def grouped_mean(values: torch.Tensor, group: torch.Tensor, valid: torch.Tensor, groups: int) -> np.ndarray:
    """Mean of ``values`` [prompt, layer, head, pos] over the positions in ``valid`` [prompt, pos],
    grouped by ``group`` [prompt, pos] (integer ids in ``0..groups-1``): [layer, head, groups],
    NaN where a group is empty."""
    width = valid.shape[1]
    picked = values[:, :, :, :width].permute(1, 2, 0, 3)[:, :, valid]  # [layer, head, items]
    g = group[valid]
    total = torch.zeros(*picked.shape[:2], groups).index_add_(2, g, picked.float())
    count = torch.zeros(groups).index_add_(0, g, torch.ones_like(g, dtype=torch.float))
    out = (total / count).numpy()
    out[:, :, count.numpy() == 0] = np.nan
    return out


@dataclass
class Monotonicity:
    """How steadily a curve moves with its index: the Spearman correlation (-1: always falling),
    the share of adjacent steps that fall, and the number of points that were not NaN."""

    spearman: float
    falling_share: float
    points: int


def monotonicity(curve: np.ndarray) -> Monotonicity:
    """:class:`Monotonicity` of ``curve`` against its index, skipping NaN points."""
    idx = np.flatnonzero(~np.isnan(curve))
    c = curve[idx]
    rank_c = c.argsort().argsort().astype(float)
    rank_i = np.arange(len(c), dtype=float)
    spearman = float(np.corrcoef(rank_i, rank_c)[0, 1]) if len(c) > 2 else float("nan")
    steps = np.diff(c)
    return Monotonicity(spearman, float((steps < 0).mean()), int(len(c)))


def ov_diagonal_argmax_share(table: np.ndarray) -> float:
    """Share of the rows of a square [source token, output token] table (rows without data are NaN)
    whose largest entry lies on the diagonal: the source tokens whose top output is themselves.

    This is a count over an OV table read from activations, not the eigenvalue copying score of
    :func:`shared.analysis.weights.copying_score`."""
    rows = np.flatnonzero(~np.isnan(table[:, 0]))
    return float((np.nanargmax(table[rows], axis=1) == rows).mean())


def linear_probe_r2(features: torch.Tensor, target: torch.Tensor) -> float:
    """Fit ``target`` [n, k] from ``features`` [n, d] (plus a constant) by least squares on the first
    half of the rows and return the mean R² over the target columns on the second half (columns
    that barely vary there are skipped)."""
    x = torch.cat([features, torch.ones(len(features), 1)], 1).double()
    half = len(features) // 2
    coef = torch.linalg.lstsq(x[:half], target[:half].double()).solution
    pred = x[half:] @ coef
    test = target[half:].double()
    var = test.var(0, unbiased=False)
    keep = var > 1e-6
    r2 = 1 - ((pred - test) ** 2).mean(0)[keep] / var[keep]
    return float(r2.mean())


__all__ = ["Monotonicity", "grouped_mean", "linear_probe_r2", "monotonicity", "ov_diagonal_argmax_share"]
