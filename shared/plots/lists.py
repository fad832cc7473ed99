"""Figures of the list chapters (find-min, find-median): training curves, attention curves from
the answer position, an OV table, component effects and the failure breakdown.

Built from :mod:`shared.plots.figures`: its width and fonts, :func:`~shared.plots.figures.lines`,
:func:`~shared.plots.figures.heatmap_panel`, integer ticks and :func:`~shared.plots.figures.finish`
(every function, called with ``name=``, shows the figure once and exports it).
"""
from __future__ import annotations

import textwrap
from typing import Any, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from shared.engine.ablation import KnockoutResult
from shared.plots.figures import WIDTH, finish, heatmap_panel, integer_ticks, lines


def _bar_panel(ax: Any, labels: Sequence[Any], values: Sequence[float], ylabel: str, title: str,
               color: "str | Sequence[str]", ylim: Optional[tuple[float, float]] = None,
               rotate: Optional[bool] = None) -> None:
    """Vertical bars on ``ax`` with one tick per label (turned when ``rotate``; default: when a
    label is longer than four characters) and a zero line."""
    pos = np.arange(len(labels))
    ax.bar(pos, list(values), 0.8, color=color)
    long = max((len(str(s)) for s in labels), default=0) > 4 if rotate is None else rotate
    ax.set_xticks(pos, [str(s) for s in labels], rotation=45 if long else 0, ha="right" if long else "center")
    ax.axhline(0, color="black", lw=0.6)
    ax.set(ylabel=ylabel, title=title)
    if ylim is not None:
        ax.set_ylim(*ylim)


def training_curves(metrics: Mapping[str, Any], title: str = "", name: Optional[str] = None) -> Any:
    """Answer loss (log scale) and held-out accuracy over training steps, from a model's recorded
    ``loss_curve`` and ``test_accuracy_curve`` ([step, value] pairs)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(WIDTH, 3.0))
    loss = np.array(metrics["loss_curve"])
    a.plot(loss[:, 0], loss[:, 1])
    a.set(yscale="log", xlabel="step", ylabel="answer loss (train)", title=title)
    acc = np.array(metrics["test_accuracy_curve"])
    b.plot(acc[:, 0], acc[:, 1], marker=".", label="held-out accuracy")
    b.axhline(0.99, color="gray", ls="--", lw=1, label="99%")
    b.set(xlabel="step", ylabel="held-out accuracy", ylim=(0, 1.02))
    b.legend(loc="lower right")
    for ax in (a, b):
        integer_ticks(ax, y=False, most=5)
        ax.grid(alpha=0.3)
    return finish(fig, name, vector=True)


def attention_curves(curves: Mapping[str, np.ndarray], xlabel: str, ylabel: str, title: str = "",
                     x: Optional[np.ndarray] = None, name: Optional[str] = None) -> Any:
    """One line per head of a quantity grouped by the key (value, rank, offset...); the x range is
    cut to the groups where some head has data (NaN points are gaps)."""
    grid = np.array(list(curves.values()), dtype=float)
    xs = np.arange(grid.shape[1]) if x is None else np.asarray(x)
    seen = np.flatnonzero(~np.isnan(grid).all(0))
    keep = slice(seen.min(), seen.max() + 1) if len(seen) else slice(None)
    return lines(xs[keep], {k: g[keep] for k, g in zip(curves, grid)}, xlabel, ylabel, title,
                 integer_x=True, height=3.4, name=name)


def ov_table(table: np.ndarray, title: str, name: Optional[str] = None) -> Any:
    """A head's OV table [attended value, output value] on a diverging scale centred at zero."""
    lim = float(np.nanmax(np.abs(table)))
    fig, ax = plt.subplots(figsize=(WIDTH * 0.65, WIDTH * 0.55))
    image = heatmap_panel(ax, table, title, -lim, lim, "RdBu_r", xlabel="output token (value)",
                          ylabel="attended token (value)", annotate=False)
    ax.set_aspect("equal")
    integer_ticks(ax)
    fig.colorbar(image, ax=ax, label="direct logit effect (centred)", fraction=0.046)
    return finish(fig, name)


def components(dla: pd.Series, knockout: KnockoutResult, title: str = "", name: Optional[str] = None) -> Any:
    """Direct logit attribution of every component next to the accuracy lost when each head or
    MLP is mean-ablated (``knockout``, scored with accuracy)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(WIDTH, 3.2))
    _bar_panel(a, list(dla.index), dla.values, "logit(answer) - mean logit", "direct logit attribution", "tab:blue")
    _bar_panel(b, knockout.nodes, knockout.effects.tolist(), "accuracy drop", "mean ablation", "tab:red",
               ylim=(0, 1))
    if title:
        fig.suptitle(title)
    return finish(fig, name, vector=True)


def failures(by_length: pd.DataFrame, by_answer: pd.DataFrame, repeats: pd.DataFrame,
             name: Optional[str] = None) -> Any:
    """Accuracy by list length (trained lengths green, the others orange, as the legend says), by
    answer value, and on lists with repeated values."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(WIDTH, 3.6), sharey=True,
                                  gridspec_kw={"width_ratios": [1.15, 1.15, 0.9]})
    colors = ["tab:green" if t else "tab:orange" for t in by_length["trained"]]
    a.bar(by_length.index, by_length["accuracy"], color=colors)
    a.set(xlabel="list length", ylabel="accuracy", ylim=(0, 1.02), title="by list length")
    a.legend(handles=[Patch(color="tab:green", label="trained"), Patch(color="tab:orange", label="not trained")],
             loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    b.plot(by_answer.index, by_answer["accuracy"], marker=".")
    b.set(xlabel="answer value", ylim=(0, 1.02), title="by answer value")
    for ax in (a, b):
        integer_ticks(ax, y=False, most=5)
    _bar_panel(c, [textwrap.fill(k, 8) for k in repeats.index], repeats["accuracy"], "",
               "repeated values", "tab:purple", ylim=(0, 1.02), rotate=False)
    return finish(fig, name, vector=True)


__all__ = ["attention_curves", "components", "failures", "ov_table", "training_curves"]
