"""Figures of the sequence-continuation chapters, built from the vocabulary of :mod:`shared.plots.figures`.

Like every figure function of the book, each returns the figure, or with ``name=`` shows it once
and exports it to ``figures/<chapter>/<name>.png`` (line and bar plots also as ``.svg``).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
from matplotlib.ticker import StrMethodFormatter

from shared.analysis.lens import LensResult
from shared.plots.figures import WIDTH, finish, heatmap_panel, integer_ticks, matrix


def lens_ranks(results: Mapping[str, LensResult], title: str = "", log: bool = True,
               name: Optional[str] = None) -> Any:
    """Median rank + 1 (quartiles shaded) of each lens target after every layer, one panel per task."""
    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(WIDTH, 3.4), squeeze=False, sharey=True)
    for ax, (task, res) in zip(axes[0], results.items()):
        x = range(len(res.stages))
        for target, r in res.ranks.items():
            ax.plot(x, r.float().median(1).values + 1, marker="o", ms=4, label=target)
            ax.fill_between(x, r.float().quantile(0.25, 1) + 1, r.float().quantile(0.75, 1) + 1, alpha=0.2)
        ax.set_xticks(list(x), res.stages, rotation=45, ha="right")
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))  # 1, 10, 100 rather than powers of ten
        ax.set_title(task)
        ax.set_xlabel("residual stream")
    axes[0, 0].set_ylabel("rank + 1 (median, quartiles)")
    axes[0, -1].legend()
    if title:
        fig.suptitle(title)
    return finish(fig, name, vector=True)


def knockout_bars(table: pd.DataFrame, title: str = "Mean-ablating one node at a time",
                  name: Optional[str] = None) -> Any:
    """One bar panel per task (column of ``table``): drop of the logit difference (% of intact)
    when each head (blue) or MLP (orange) is knocked out alone."""
    columns = list(table.columns)
    fig, axes = plt.subplots(len(columns), 1, figsize=(WIDTH, 1.9 * len(columns) + 1.0), squeeze=False, sharex=True)
    colors = ["tab:orange" if n.startswith("m") else "tab:blue" for n in table.index]
    for ax, t in zip(axes[:, 0], columns):
        ax.bar(range(len(table)), table[t].to_numpy(), color=colors)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_ylabel("drop (% of\nintact)")
        ax.set_title(t, loc="left")
    axes[-1, 0].set_xticks(range(len(table)), list(table.index), rotation=90)
    fig.legend(handles=[Patch(color="tab:blue", label="head"), Patch(color="tab:orange", label="MLP")],
               loc="outside upper right", ncol=2, frameon=False)
    fig.suptitle(title, x=0.02, ha="left")
    fig.set_layout_engine("constrained")
    return finish(fig, name, vector=True)


def circuit_scores(circuits: Mapping[str, Any], threshold: float, title: str = "",
                   name: Optional[str] = None) -> Any:
    """Per task, the share of the logit difference its node circuit keeps on the prompts it was found
    on and on fresh prompts (``circuits``: results with ``percent``, ``heldout_percent``, ``size``),
    with the pruning threshold as a dashed line."""
    labels = [f"{t}\n({c.size} nodes)" for t, c in circuits.items()]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(WIDTH * 0.8, 3.0))
    ax.bar(x - 0.2, [c.percent for c in circuits.values()], 0.4, label="prompts it was found on")
    ax.bar(x + 0.2, [c.heldout_percent for c in circuits.values()], 0.4, label="fresh prompts")
    ax.axhline(100 * threshold, color="black", ls="--", lw=0.8, label="threshold")
    ax.set_xticks(x, labels)
    ax.set_ylabel("circuit logit diff.\n(% of intact model)")
    top = max([100 * threshold] + [v for c in circuits.values() for v in (c.percent, c.heldout_percent)])
    ax.set_ylim(0, 1.3 * top)  # room for the legend above the bars
    ax.legend(loc="upper center", ncol=3)
    if title:
        ax.set_title(title)
    return finish(fig, name, vector=True)


def table_matrix(table: pd.DataFrame, title: str = "", fmt: str = "{:.2f}", cmap: str = "viridis",
                 vmin: Optional[float] = None, vmax: Optional[float] = None, label: str = "",
                 name: Optional[str] = None) -> Any:
    """:func:`shared.plots.figures.matrix` of a DataFrame, axes named after its index and columns."""
    return matrix(table.to_numpy(dtype=float), list(table.index), list(table.columns), title,
                  xlabel=table.columns.name or "", ylabel=table.index.name or "", label=label, fmt=fmt,
                  cmap=cmap, vmin=vmin, vmax=vmax, name=name)


def circuit_membership(circuits: Mapping[str, Sequence[str]], order: Sequence[str], title: str = "",
                       name: Optional[str] = None) -> Any:
    """Task x node grid of which circuits contain each node (dark: every task's circuit, light:
    some; nodes in no circuit are left out)."""
    sets = {k: set(v) for k, v in circuits.items()}
    used = [n for n in order if any(n in s for s in sets.values())]
    everywhere = {n for n in used if all(n in s for s in sets.values())}
    grid = np.array([[(2.0 if n in everywhere else 1.0) if n in sets[t] else 0.0 for n in used] for t in sets])
    fig, ax = plt.subplots(figsize=(min(WIDTH, 0.42 * max(len(used), 4) + 2.2), 0.45 * len(sets) + 1.6))
    ax.imshow(grid, cmap=ListedColormap(["#f4f4f4", "#9fd39f", "#1b7a36"]), vmin=0, vmax=2, aspect="auto")
    ax.set_xticks(range(len(used)), used, rotation=90)
    ax.set_yticks(range(len(sets)), list(sets))
    ax.set_xticks([x - 0.5 for x in range(1, len(used))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(sets))], minor=True)
    ax.grid(which="minor", color="white", lw=2)
    ax.tick_params(which="minor", length=0)
    ax.set_title((title + "\n" if title else "") + "dark: in every task's circuit, light: in some")
    return finish(fig, name)


def role_attention_maps(mean_pattern: Any, labels: Sequence[str], heads: Sequence[str], title: str = "",
                        name: Optional[str] = None) -> Any:
    """Attention averaged over prompts [heads, query, key], one panel per head (three to a row).
    Only the positions with a role are named on the axes — ``BOS``, the members ``M1``…, ``END`` —
    so that the labels stay readable; the other positions are the template's words."""
    n = len(heads)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    side = (WIDTH - 0.8) / 3
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH if n > 1 else side + 1.6, side * rows + 0.9), squeeze=False)
    roles = [i for i, label in enumerate(labels) if label == "BOS" or label.startswith(("M", "END"))]
    names = [labels[i].split()[0] for i in roles]
    image = None
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        image = heatmap_panel(ax, np.asarray(mean_pattern[k]), heads[k], 0, 1, "Blues", annotate=False,
                              xlabel="key", ylabel="query" if k % cols == 0 else "")
        ax.set_xticks(roles, names, rotation=90)
        ax.set_yticks(roles, names if k % cols == 0 else [])
        ax.set_aspect("equal")
    fig.colorbar(image, ax=list(axes.flat)[:n], label="attention", fraction=0.03)
    if title:
        fig.suptitle(title)
    fig.set_layout_engine("constrained")
    return finish(fig, name)


def task_accuracy(summary: pd.DataFrame, task_names: Sequence[str], title: str = "",
                  name: Optional[str] = None) -> Any:
    """Top-1 accuracy and logit difference per task, one bar per template (``summary``: columns
    ``(accuracy|logit_diff, template)``, one row per task)."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.8))
    for ax, column in zip(axes, ["accuracy", "logit_diff"]):
        summary[column].reindex(task_names).plot.bar(ax=ax, rot=45, width=0.75)
        ax.set_title({"accuracy": "top-1 accuracy", "logit_diff": "logit(answer) − logit(last member)"}[column])
        ax.set_xlabel("")
        for label in ax.get_xticklabels():
            label.set_ha("right")
        ax.get_legend().remove()
    axes[0].axhline(0.9, color="grey", ls="--", lw=1)
    axes[0].set_ylim(0, 1.05)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="template", loc="outside upper right", ncol=len(labels), frameon=False)
    if title:
        fig.suptitle(title, x=0.02, ha="left")
    fig.set_layout_engine("constrained")
    return finish(fig, name, vector=True)


def edge_circuit_sizes(circuits: pd.DataFrame, target: float, title: str = "", name: Optional[str] = None) -> Any:
    """Per task (groups) and model (colours): the share of the model's edges its edge circuit keeps,
    each bar labelled with the number of edges, and the circuit's normalised faithfulness with the
    ``target`` as a dashed line (``circuits``: columns ``model``, ``task``, ``edges kept``, ``edges in
    model``, ``faithfulness``; a model without a circuit for a task leaves a gap)."""
    tasks = list(dict.fromkeys(circuits["task"]))
    models = list(dict.fromkeys(circuits["model"]))
    width = 0.8 / len(models)
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.4))
    for i, m in enumerate(models):
        rows = circuits[circuits["model"] == m].set_index("task").reindex(tasks)
        at = np.arange(len(tasks)) + (i - (len(models) - 1) / 2) * width
        share = 100 * rows["edges kept"] / rows["edges in model"]
        bars = axes[0].bar(at, share, width * 0.95, label=m, color=f"C{i}")
        axes[0].bar_label(bars, ["" if np.isnan(k) else f"{k:.0f}" for k in rows["edges kept"]], fontsize=9, padding=1)
        axes[1].bar(at, rows["faithfulness"], width * 0.95, color=f"C{i}")
    axes[1].axhline(target, color="black", ls="--", lw=0.8, label=f"target {target:g}")
    for ax, label in zip(axes, ["edges kept (% of the model's;\nlabel: number of edges)",
                                "normalised faithfulness\n(re-measured by patching)"]):
        turn = len(tasks) > 4 and max(len(t) for t in tasks) > 8
        ax.set_xticks(range(len(tasks)), tasks, rotation=30 if turn else 0, ha="right" if turn else "center")
        ax.set_ylabel(label)
        ax.axhline(0, color="black", lw=0.6)
    axes[0].set_ylim(0, 1.2 * max(100 * circuits["edges kept"] / circuits["edges in model"]))
    axes[1].set_ylim(min(0.0, circuits["faithfulness"].min()), max(1.2, 1.1 * circuits["faithfulness"].max()))
    axes[1].legend(loc="upper right")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=len(models), frameon=False)
    if title:
        fig.suptitle(title, x=0.02, ha="left")
    fig.set_layout_engine("constrained")
    return finish(fig, name, vector=True)


def accuracy_by_place_and_length(by_position: pd.DataFrame, by_length: pd.DataFrame,
                                 name: Optional[str] = None) -> Any:
    """Accuracy per task by where the answer sits in its list (rows of ``by_position``: fifths) and
    by how many members are shown (rows of ``by_length``)."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.2))
    by_position.plot(ax=axes[0], marker="o", ms=4, legend=False)
    axes[0].set(title="by where the answer sits in its list", xlabel="answer's fifth of the list",
                ylabel="top-1 accuracy", ylim=(-0.02, 1.05))
    axes[0].set_xticks(range(5), ["1st", "2nd", "3rd", "4th", "5th"])
    by_length.plot(ax=axes[1], marker="o", ms=4)
    axes[1].set(title="by number of members shown", xlabel="members shown", ylim=(-0.02, 1.05))
    integer_ticks(axes[1], y=False)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    return finish(fig, name, vector=True)


__all__ = ["accuracy_by_place_and_length", "circuit_membership", "circuit_scores", "edge_circuit_sizes", "knockout_bars",
           "lens_ranks", "role_attention_maps", "table_matrix", "task_accuracy"]
