"""Figures of the IOI chapter: the circuit graph with its head classes coloured, each class's attention
at the positions that define it, direct effects per head, the backup name movers' rise and the
minimality check; and, across models, the behaviour, the links of the IOI algorithm and the overlap of
the models' circuits."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch, Rectangle

from shared.engine.circuit import Circuit
from shared.engine.graph import Graph, parse_node
from shared.errors import ParameterError
from shared.plots.circuits import circuit_graph
from shared.plots.figures import WIDTH, bars, finish, head_heatmap, heatmap_panel, matrix

CLASS_COLOURS = {"name mover": "#8fd18f", "negative name mover": "#f4a3a3", "S-inhibition": "#c7a6e8",
                 "induction": "#f7c873", "duplicate token": "#f2e37a", "previous token": "#9cc9f0",
                 "backup name mover": "#d9f2c4"}
# the attention that defines each class: (query role, key role)
DEFINING = {"name mover": "end→io", "negative name mover": "end→names", "S-inhibition": "end→s2",
            "induction": "s2→s1+1", "duplicate token": "s2→s1", "previous token": "s1+1→s1",
            "backup name mover": None}  # a backup attends to the IO only once the name movers are gone
COLUMNS = ["end→io", "end→s1", "end→s2", "end→names", "s2→s1", "s2→s1+1", "s1+1→s1"]


def _class_of(classes: Mapping[str, Sequence[str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, heads in classes.items():
        for h in heads:
            out.setdefault(h, name)
    return out


def class_graph(circuit: Circuit, classes: Mapping[str, Sequence[str]], graph: Optional[Graph] = None,
                title: Optional[str] = None, name: Optional[str] = None) -> Any:
    """The layered circuit graph (:func:`shared.plots.circuits.circuit_graph`) with each head's box
    coloured by its class (a head in two classes takes the first)."""
    fig = circuit_graph(circuit, graph, title)
    ax = fig.axes[0]
    of = _class_of(classes)
    for text in ax.texts:
        cls = of.get(text.get_text())
        if cls is not None:
            text.get_bbox_patch().set_facecolor(CLASS_COLOURS.get(cls, "#e0e0e0"))
    used = [c for c in classes if classes[c] and any(of.get(h) == c for h in classes[c])]
    ports = ax.get_legend()
    if ports is not None:
        ax.add_artist(ports)
    ax.legend(handles=[Patch(fc=CLASS_COLOURS.get(c, "#e0e0e0"), ec="0.4", label=c) for c in used],
              loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=min(4, len(used)) or 1, frameon=False,
              title="head class")
    return finish(fig, name)


def class_attention(attention: pd.DataFrame, classes: Mapping[str, Sequence[str]], title: str = "",
                    name: Optional[str] = None) -> Any:
    """Mean attention of each classified head (rows, labelled with the class) from query to key
    role (columns) on the clean prompts, the defining entry of each class outlined (none for backup
    name movers, whose attention moves to the IO only when the name movers are ablated)."""
    rows = [(h, c) for c, hs in classes.items() for h in hs]
    if not rows:
        raise ParameterError("No head was classified; there is no attention to show.")
    values = np.array([[attention.loc[h, col] for col in COLUMNS] for h, _ in rows])
    fig = matrix(values, [f"{h} ({c})" for h, c in rows], COLUMNS, title=title, xlabel="query → key",
                 label="mean attention", cmap="Blues", vmin=0, vmax=1)
    ax = fig.axes[0]
    for i, (_, c) in enumerate(rows):
        col = DEFINING[c]
        if col is not None:
            j = COLUMNS.index(col)
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="tab:red", lw=2))
    return finish(fig, name)


def direct_effects(scores: pd.Series, graph: Graph, title: str = "", name: Optional[str] = None) -> Any:
    """Layer x head grid of each head's direct effect on the logit difference (share of the clean one)."""
    grid = np.zeros((graph.n_layers, graph.n_heads))
    for h, v in scores.items():
        node = parse_node(h)
        grid[node.layer, node.head] = v
    lim = float(np.abs(grid).max()) or 1.0
    return head_heatmap(grid, title=title, vmin=-lim, vmax=lim, cmap="RdBu",
                        label="direct effect / clean logit diff", name=name)


def backup_rise(table: pd.DataFrame, clean: float, top: int = 8, title: str = "",
                name: Optional[str] = None) -> Any:
    """Direct effect of the heads that change most when the name movers are ablated, before and after."""
    rise = table["rise"].abs().sort_values(ascending=False)
    heads = rise.index[:top].tolist()
    return bars(heads, {"intact": (table.loc[heads, "direct"] / clean).tolist(),
                        "name movers ablated": (table.loc[heads, "direct, movers ablated"] / clean).tolist()},
                ylabel="direct effect / clean logit diff", title=title, name=name)


def minimality(table: pd.DataFrame, title: str = "", name: Optional[str] = None) -> Any:
    """Per circuit head, |F(C minus K and v) - F(C minus K)| / F(M), coloured by class."""
    colours = [CLASS_COLOURS.get(c, "0.5") for c in table["class"]]
    legend = {CLASS_COLOURS.get(c, "0.5"): c for c in dict.fromkeys(table["class"])}
    fig = bars(table.index.tolist(), table["importance"].tolist(), ylabel="|ΔF| / F(M)", title=title,
               colors=colours, legend=legend)
    ax = fig.axes[0]
    ax.legend(handles=ax.get_legend().legend_handles, loc="upper left", bbox_to_anchor=(1.01, 1), title="class")
    return finish(fig, name)


def behaviour(table: pd.DataFrame, min_logit_diff: float, title: str = "", name: Optional[str] = None) -> Any:
    """Mean logit difference IO - S of each model (bars coloured by the verdict of the behaviour
    check), with the criterion as a dashed line."""
    colours = {"yes": "tab:green", "no": "tab:gray"}
    fig = bars(table.index.tolist(), table["mean logit diff (IO − S)"].astype(float).tolist(),
               ylabel="mean logit diff IO − S (nats)", title=title,
               colors=[colours[v] for v in table["does IOI"]],
               legend={colours[v]: f"does IOI: {v}" for v in dict.fromkeys(table["does IOI"])})
    ax = fig.axes[0]
    line = ax.axhline(min_logit_diff, color="0.3", ls="--", lw=1, label=f"criterion ({min_logit_diff:g} nats)")
    ax.legend(handles=ax.get_legend().legend_handles + [line], loc="upper left", bbox_to_anchor=(1.01, 1))
    return finish(fig, name, vector=True)


LINK_LABELS = {"name mover": "NM", "S-inhibition": "S-inh", "induction": "ind", "duplicate token": "dup",
               "previous token": "prev", " / ": "/", " (": " ", ")": ""}


def link_effects(table: pd.DataFrame, title: str = "", name: Optional[str] = None) -> Any:
    """Models (rows) x links of the IOI algorithm (columns, abbreviated): each link's path-patching
    effect over the clean logit difference."""
    labels = []
    for link in table.columns:
        for long, short in LINK_LABELS.items():
            link = link.replace(long, short)
        labels.append(link)
    values = table.to_numpy(dtype=float)
    lim = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    return matrix(values, list(table.index), labels, title=title, xlabel="link (receiver port)",
                  label="effect / clean logit diff", cmap="RdBu", vmin=-lim, vmax=lim, name=name)


def circuit_overlap(edges: pd.DataFrame, heads: pd.DataFrame, title: str = "", name: Optional[str] = None) -> Any:
    """Pairwise Jaccard overlap of the models' circuits: edge sets (left) and head sets (right; the
    rows are the same models, named once on the left), one colour bar."""
    models = [str(m) for m in edges.index]
    n = len(models)
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 0.4 * n + 0.05 * max(len(m) for m in models) + 1.3),
                             layout="constrained")
    image = None
    for ax, (key, table), rows in zip(axes, (("edge sets", edges), ("head sets", heads)), (models, [""] * n)):
        image = heatmap_panel(ax, table.to_numpy(dtype=float), key, 0, 1, "Greens", xlabel="", ylabel="",
                              annotate=True, xticklabels=models, yticklabels=rows)
    fig.colorbar(image, ax=list(axes), label="Jaccard overlap", fraction=0.04)
    if title:
        fig.suptitle(title)
    return finish(fig, name)

__all__ = ["CLASS_COLOURS", "COLUMNS", "DEFINING", "LINK_LABELS", "backup_rise", "behaviour", "circuit_overlap",
           "class_attention", "class_graph", "direct_effects", "link_effects", "minimality"]
