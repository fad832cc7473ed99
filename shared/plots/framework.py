"""Figures of the framework chapters (zero, one and two attention layers; induction across
training), built from the vocabulary in :mod:`shared.plots.figures`."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from matplotlib.ticker import StrMethodFormatter

from shared.analysis.weights import Composition
from shared.engine.graph import head_name
from shared.plots.figures import WIDTH, bars, finish, head_heatmap

COPYING, SUPPRESSING = "tab:green", "tab:red"


def bigram_fit(panels: Mapping[str, tuple[np.ndarray, np.ndarray, float]], name: Optional[str] = None) -> Any:
    """One hexbin panel per model: corpus bigram log-probability (x) against the direct path's
    log-probability (y) for the same token pairs, with the correlation ``r`` in the title."""
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 3.8), sharex=True, sharey=True, squeeze=False)
    image = None
    for ax, (model, (x, y, r)) in zip(axes[0], panels.items()):
        image = ax.hexbin(x, y, gridsize=50, bins="log", cmap="viridis", mincnt=1)
        lim = [min(x.min(), y.min()), 0]
        ax.plot(lim, lim, color="red", lw=1, label="y = x")
        ax.set_title(f"{model} (r = {r:.2f})")
        ax.set_xlabel("corpus log P(next | current)")
        ax.legend(loc="upper left")
    axes[0, 0].set_ylabel("direct path log-probability")
    fig.colorbar(image, ax=list(axes[0]), label="token pairs in the bin", fraction=0.04)
    fig.suptitle("Direct path against corpus bigrams")
    fig.set_layout_engine("constrained")
    return finish(fig, name)


def ov_eigenvalues(eigenvalues: Mapping[str, torch.Tensor], copying: Sequence[float], columns: int = 4,
                   name: Optional[str] = None) -> Any:
    """Each head's OV-circuit eigenvalues in the complex plane, the modulus scaled to the head's
    largest and cube-rooted so that small eigenvalues stay visible; green where the copying score
    is positive, red where it is negative."""
    n = len(eigenvalues)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    size = WIDTH / cols
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, size * rows + 0.8), squeeze=False, sharex=True, sharey=True)
    for ax, (head, e), score in zip(axes.flat, eigenvalues.items(), copying):
        e = e.numpy()
        e = np.exp(1j * np.angle(e)) * np.cbrt(np.abs(e) / np.abs(e).max())
        ax.scatter(e.real, e.imag, s=12, alpha=0.8, color=COPYING if score > 0 else SUPPRESSING)
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set(xlim=(-1.1, 1.1), ylim=(-1.1, 1.1), xticks=[-1, 0, 1], yticks=[-1, 0, 1], aspect="equal")
        ax.set_title(f"{head} ({float(score):+.2f})")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("real part")
    for ax in axes[:, 0]:
        ax.set_ylabel("imaginary part")
    signs = {float(score) > 0 for score in copying}
    handles = [Line2D([], [], marker="o", ls="", color=c, label=t)
               for c, t, positive in ((COPYING, "copying score > 0", True), (SUPPRESSING, "copying score ≤ 0", False))
               if positive in signs]
    fig.legend(handles=handles, loc="upper center", ncol=2, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle("OV-circuit eigenvalues in the complex plane, per head (copying score in brackets)\n"
                 "modulus scaled to the head's largest, then cube-rooted")
    return finish(fig, name)


def composition(comp: Composition, baseline: float, name: Optional[str] = None) -> Any:
    """Q-, K- and V-composition scores, one panel each: later heads (rows) reading earlier heads (columns)."""
    panels = {f"{kind}-composition": comp.grid(kind) for kind in "QKV"}
    return head_heatmap(panels, title=f"Composition scores (random baseline {baseline:.2f})", vmin=0,
                        cmap="viridis", label="composition score", xlabel="earlier head (writes)",
                        ylabel="later head (reads)", xticklabels=comp.earlier, yticklabels=comp.later, name=name)


def ablation_losses(table: pd.DataFrame, name: Optional[str] = None) -> Any:
    """Mean loss on each copy of repeated random tokens (columns of ``table``) for each set of
    mean-ablated heads (its rows), as horizontal bars with the legend beside the plot."""
    fig = bars(list(table.index), {"first (random) half": table["loss first half"],
                                   "repeated half": table["loss repeated half"]},
               ylabel="mean loss (nats)", title="Loss on repeated random tokens with heads mean-ablated",
               horizontal=True)
    fig.axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, frameon=False)
    fig.set_size_inches(WIDTH, fig.get_size_inches()[1] + 0.6)
    return finish(fig, name, vector=True)


def phase_change(tokens_seen: np.ndarray, validation_loss: Sequence[float], icl: Sequence[float],
                 prefix: torch.Tensor, top: Sequence[str], interval: tuple[int, int], icl_label: str,
                 name: Optional[str] = None) -> Any:
    """Validation loss, ICL score and every head's prefix-matching score ([checkpoint, layer, head])
    over training tokens, with the checkpoint interval ``interval`` (indices) shaded; heads in
    ``top`` are drawn thick and named, the others thin in one colour per layer group."""
    fig, axes = plt.subplots(3, 1, figsize=(WIDTH, 7.5), sharex=True)
    axes[0].plot(tokens_seen, validation_loss, marker="o", ms=4)
    axes[0].set_ylabel("validation loss (nats)")
    axes[1].plot(tokens_seen, icl, marker="o", ms=4, color="tab:purple")
    axes[1].axhline(0, color="grey", lw=0.5)
    axes[1].set_ylabel(icl_label)
    others = {0: ("tab:grey", "other layer-0 heads"), 1: ("tab:olive", "other later heads")}
    labelled: set[int] = set()
    for layer in range(prefix.shape[1]):
        for head in range(prefix.shape[2]):
            label = head_name(layer, head)
            if label in top:
                axes[2].plot(tokens_seen, prefix[:, layer, head], lw=2, label=label)
                continue
            group = min(layer, 1)
            colour, text = others[group]
            axes[2].plot(tokens_seen, prefix[:, layer, head], lw=0.8, alpha=0.5, color=colour,
                         label=None if group in labelled else text)
            labelled.add(group)
    axes[2].set_ylabel("prefix-matching score")
    axes[2].set_xlabel("training tokens seen")
    axes[2].legend(title="heads (thick: final top heads)", ncol=2)
    lo, hi = interval
    for ax in axes:
        ax.axvspan(tokens_seen[lo], tokens_seen[hi], color="orange", alpha=0.2)
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_title("Shaded: the checkpoint interval where prefix matching rises the most")
    return finish(fig, name, vector=True)


def loss_by_position(position_losses: torch.Tensor, steps: Sequence[int], labelled: Sequence[int],
                     name: Optional[str] = None) -> Any:
    """Validation loss at each token position, one curve per checkpoint ([checkpoint, pos]),
    coloured from early (dark) to late (yellow) checkpoints as the colour bar says; checkpoints at
    indices ``labelled`` are drawn thick and named in the legend. The y range leaves out the flat
    early curves' top."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8))
    order = Normalize(0, max(len(steps) - 1, 1))
    positions = np.arange(1, position_losses.shape[1] + 1)
    for i, step in enumerate(steps):
        ax.plot(positions, position_losses[i], color=plt.cm.viridis(order(i)), lw=2 if i in labelled else 0.8,
                label=f"step {step}" if i in labelled else None)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.set_xlabel("token position in the window")
    ax.set_ylabel("validation loss (nats)")
    ax.set_ylim(float(position_losses[-1].min()) - 0.2, float(position_losses[len(steps) // 3:].max()) + 0.3)
    bar = fig.colorbar(ScalarMappable(order, "viridis"), ax=ax, label="checkpoint (training step)", fraction=0.04)
    shown = sorted({0, len(steps) - 1, *labelled})
    bar.set_ticks(shown, labels=[str(steps[i]) for i in shown])
    ax.legend(title="thick lines", loc="lower left")
    ax.grid(alpha=0.3)
    return finish(fig, name, vector=True)


__all__ = ["ablation_losses", "bigram_fit", "composition", "loss_by_position", "ov_eigenvalues", "phase_change"]
