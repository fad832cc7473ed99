"""Figures of the ``training_*`` chapters: abilities over training tokens, one line per model, and
each role's head scores as a heads x checkpoints picture per model.

The x axis of the curves is tokens seen on a log scale; checkpoint 0 (no tokens) sits on a short
linear stretch at the left (a symlog axis whose linear part ends at the first non-zero checkpoint),
marked ``0``. Colour is the model size; the first seed of a size is a thick line with markers, the
other seeds thin lines of the same colour.
"""
from __future__ import annotations

import textwrap

from typing import Any, Mapping, Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from shared.plots.figures import WIDTH, finish, heatmap_panel

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def size_colours(series: pd.DataFrame) -> dict[str, str]:
    """One colour per model size, in order of first appearance."""
    return {size: PALETTE[i % len(PALETTE)] for i, size in enumerate(dict.fromkeys(series["size"]))}


def _token_axis(ax: Any, tokens: np.ndarray) -> None:
    positive = tokens[tokens > 0]
    if len(positive):
        ax.set_xscale("symlog", linthresh=float(positive.min()), linscale=0.4)
        powers = range(int(np.ceil(np.log10(positive.min()))), int(np.floor(np.log10(positive.max()))) + 1)
        ax.set_xticks([0] + [10 ** k for k in powers], ["0"] + [f"$10^{{{k}}}$" for k in powers])
        ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlim(left=0)
    ax.set_xlabel("tokens seen (log scale; 0 at the left)")


def ability_curves(series: pd.DataFrame, metrics: Mapping[str, str], title: str = "",
                   reference: Optional[Mapping[str, float]] = None, name: Optional[str] = None) -> Any:
    """One panel per metric (``column -> axis label``) over tokens seen, one line per model;
    ``reference`` draws a dashed line per metric (the criterion of presence), named in the legend."""
    colours = size_colours(series)
    fig, axes = plt.subplots(1, len(metrics), figsize=(WIDTH if len(metrics) > 1 else WIDTH * 0.75, 3.4),
                             squeeze=False)
    first_seed = series.groupby("size")["seed"].min()
    for ax, (column, label) in zip(axes.flat, metrics.items()):
        for model, group in series.sort_values("step").groupby("model", sort=False):
            size = group["size"].iloc[0]
            main = group["seed"].iloc[0] == first_seed[size]
            ax.plot(group["tokens"], group[column], color=colours[size], lw=1.8 if main else 0.8,
                    alpha=1.0 if main else 0.6, marker="o" if main else None, ms=3)
        if reference and column in reference:
            ax.axhline(reference[column], color="grey", ls="--", lw=1)
        _token_axis(ax, series["tokens"].to_numpy())
        ax.set_ylabel(textwrap.fill(label, 30))  # two lines rather than into the title or the next panel
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=c, lw=1.8, marker="o", ms=3, label=f"size {s}") for s, c in colours.items()]
    if (series.groupby("size")["seed"].nunique() > 1).any():
        handles.append(Line2D([], [], color="black", lw=0.8, alpha=0.6, label="other seed"))
    if reference:
        handles.append(Line2D([], [], color="grey", ls="--", lw=1, label="criterion"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1 + 0.06 * (len(handles) > 4), 1, 1))
    return finish(fig, name, vector=True, tight=False)


def emergence_chart(tables: Mapping[str, pd.DataFrame], labels: Mapping[str, str], title: str = "",
                    name: Optional[str] = None) -> Any:
    """Where each ability appears: one row per ability (``labels``: metric -> row label), one marker
    per model at the tokens of its first checkpoint with the ability (colour: size; hollow: a later
    seed), and the row marked "absent in every model" when no model has it at its last checkpoint."""
    every = pd.concat([t.assign(metric=m) for m, t in tables.items()])
    colours = size_colours(every.reset_index())
    fig, ax = plt.subplots(figsize=(WIDTH * 0.85, 0.55 * len(tables) + 1.6))
    rows = list(tables)
    present = every[every["present"]]
    first_of_size: dict[str, str] = {}
    for model, size in zip(every.index, every["size"]):
        first_of_size.setdefault(size, model)
    for y, metric in enumerate(rows):
        have = present[present["metric"] == metric]
        if have.empty:
            ax.text(0.5, y, "absent in every model", transform=ax.get_yaxis_transform(), ha="center", va="center",
                    color="grey", fontsize=9)
        for k, (model, r) in enumerate(have.iterrows()):
            first = first_of_size[r["size"]] == model
            ax.plot(r["tokens"], y + 0.12 * (k - (len(have) - 1) / 2), "o", ms=7, color=colours[r["size"]],
                    mfc=colours[r["size"]] if first else "white")
    _token_axis(ax, np.append(present["tokens"].dropna().to_numpy(dtype=float), 0.0))
    ax.set_yticks(range(len(rows)), [textwrap.fill(labels[m], 30) for m in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.grid(alpha=0.3, axis="x")
    handles = [Line2D([], [], color=c, marker="o", ls="", ms=7, label=f"size {s}") for s, c in colours.items()]
    handles.append(Line2D([], [], color="black", marker="o", mfc="white", ls="", ms=7, label="other seed"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))  # room for the legend row at the bottom
    return finish(fig, name, vector=True, tight=False)


def probe_curves(probes: Mapping[str, pd.DataFrame], metrics: Mapping[str, str], title: str = "",
                 reference: Optional[Mapping[str, float]] = None, name: Optional[str] = None) -> Any:
    """The held-out probes of training runs (``probes``: run -> table with ``tokens`` and the metric
    columns): one panel per metric (``column -> axis label``, two panels a row), one line per run over
    millions of tokens (linear axis: the runs are compared at equal tokens); ``reference`` draws a dashed
    criterion line per metric."""
    rows = (len(metrics) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(WIDTH, 2.7 * rows + 0.9), squeeze=False)
    colours = {run: PALETTE[i % len(PALETTE)] for i, run in enumerate(probes)}
    for ax, (column, label) in zip(axes.flat, metrics.items()):
        for run, table in probes.items():
            ax.plot(table["tokens"] / 1e6, table[column], color=colours[run], lw=1.5, marker="o", ms=2.5)
        if reference and column in reference:
            ax.axhline(reference[column], color="grey", ls="--", lw=1)
        ax.set_ylabel(textwrap.fill(label, 28))
        ax.set_xlabel("tokens seen (millions)")
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=c, lw=1.5, marker="o", ms=3, label=run) for run, c in colours.items()]
    if reference:
        handles.append(Line2D([], [], color="grey", ls="--", lw=1, label="criterion"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    legend_rows = (len(handles) + 2) // 3
    fig.tight_layout(rect=(0, (0.25 * legend_rows + 0.1) / fig.get_figheight(), 1, 1))
    return finish(fig, name, vector=True, tight=False)


def role_map(components: pd.DataFrame, counts: pd.DataFrame, role: str, threshold: float, title: str = "",
             name: Optional[str] = None) -> Any:
    """For one role: per model, its heads (rows) x checkpoints (columns, labelled by step) coloured by
    the score; a last panel counts the heads at or above ``threshold`` per checkpoint and model."""
    data = components[components["role"] == role]
    models = list(dict.fromkeys(data["model"]))
    n = len(models) + 1
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    n_heads = data.groupby("model")["head"].nunique().max()
    panel_h = max(2.2, 0.16 * n_heads + 1.3)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, panel_h * rows + 0.6), squeeze=False)
    image = None
    for ax, model in zip(axes.flat, models):
        wide = data[data["model"] == model].pivot(index="head", columns="step", values="score")
        wide = wide.reindex(list(dict.fromkeys(data.loc[data["model"] == model, "head"])))
        image = heatmap_panel(ax, wide.to_numpy(), model, 0.0, 1.0, "viridis", annotate=False, xlabel="step",
                              ylabel="head", xticklabels=[str(s) for s in wide.columns],
                              yticklabels=list(wide.index))
        if len(wide.index) > 8:
            ax.set_yticks(range(0, len(wide.index), 2), list(wide.index)[::2])
    ax = list(axes.flat)[len(models)]
    colours = size_colours(data)
    part = counts[counts["role"] == role]
    for model in models:
        group = part[part["model"] == model].sort_values("step")
        ax.plot(range(len(group)), group["above"], color=colours[group["size"].iloc[0]], marker="o", ms=3,
                lw=1.8 if group["seed"].iloc[0] == part["seed"].min() else 0.8, label=model)
    steps = part.sort_values("step")["step"].unique()
    ax.set_xticks(range(len(steps)), [str(s) for s in steps], rotation=45, ha="right")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("step")
    ax.set_ylabel(f"heads with score ≥ {threshold:g}")
    ax.legend(ncol=1 if len(models) < 4 else 2)
    ax.grid(alpha=0.3)
    for extra in list(axes.flat)[n:]:
        extra.axis("off")
    fig.colorbar(image, ax=list(axes.flat)[:len(models)], label=f"{role} score", fraction=0.03)
    if title:
        fig.suptitle(title)
    fig.set_layout_engine("constrained")
    return finish(fig, name)


__all__ = ["PALETTE", "ability_curves", "emergence_chart", "probe_curves", "role_map", "size_colours"]
