"""Figures of circuits and of the circuit methods' results: the layered circuit graph, single-node
knockout maps and faithfulness-versus-size curves."""
from __future__ import annotations

from typing import Any, Mapping, Optional

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from shared.engine.ablation import KnockoutResult
from shared.engine.circuit import Circuit, FaithfulnessCurve
from shared.engine.graph import Graph, parse_node, split_edge
from shared.errors import ParameterError
from shared.plots.figures import WIDTH, finish, heatmap_panel

PORT_COLOURS = {"q": "tab:blue", "k": "tab:green", "v": "tab:red", None: "0.35"}
PORT_NAMES = {"q": "into a query", "k": "into a key", "v": "into a value", None: "into an MLP or the logits"}


def _row(node: Any, n_layers: int) -> int:
    """Vertical slot: input 0, attention of layer L at 2L+1, its MLP at 2L+2, logits on top."""
    if node.kind == "input":
        return 0
    if node.kind == "logits":
        return 2 * n_layers + 1
    return 2 * node.layer + (1 if node.kind == "head" else 2)


def circuit_graph(circuit: Circuit, graph: Optional[Graph] = None, title: Optional[str] = None,
                  name: Optional[str] = None) -> Any:
    """Layered drawing of a circuit: input at the bottom, logits on top, heads and MLPs by layer.
    Edge width follows |score|; edge colour says which input of the receiver the edge feeds."""
    nodes = list(dict.fromkeys(circuit.nodes + [n for e in circuit.edges for n in split_edge(e)[:2]]))
    if not nodes:
        raise ParameterError("The circuit is empty; there is nothing to draw.")
    parsed = {n: parse_node(n) for n in nodes}
    n_layers = graph.n_layers if graph is not None else max([p.layer for p in parsed.values()] + [0]) + 1
    rows: dict[int, list[str]] = {}
    for n in nodes:
        rows.setdefault(_row(parsed[n], n_layers), []).append(n)
    used = sorted(rows)  # only the rows that hold a node: no empty bands
    level = {r: i for i, r in enumerate(used)}
    pos = {}
    for r, members in rows.items():
        members.sort(key=lambda m: parsed[m].head)
        for i, m in enumerate(members):
            pos[m] = ((i + 1) / (len(members) + 1), level[r])
    fig, ax = plt.subplots(figsize=(WIDTH * 0.8, 0.9 * len(used) + 1.2))
    weights = [abs(circuit.scores.get(e, 1.0)) for e in circuit.edges] or [1.0]
    top = max(weights) or 1.0
    ports = set()
    for e, w in zip(circuit.edges, weights):
        s, r, port = split_edge(e)
        ports.add(port)
        (x0, y0), (x1, y1) = pos[s], pos[r]
        ax.annotate("", xy=(x1, y1 - 0.18), xytext=(x0, y0 + 0.18),
                    arrowprops=dict(arrowstyle="->", lw=0.6 + 2.4 * w / top, color=PORT_COLOURS[port],
                                    connectionstyle="arc3,rad=0.08"))
    for n, (x, y) in pos.items():
        face = {"head": "#cfe2ff", "mlp": "#ffe5b4"}.get(parsed[n].kind, "#e0e0e0")
        ax.text(x, y, n, ha="center", va="center", fontsize=9, bbox=dict(boxstyle="round", fc=face, ec="0.4"))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(used) - 0.4)
    ax.axis("off")
    label = title or f"{circuit.method or 'circuit'}: {len(circuit.nodes)} nodes, {len(circuit.edges)} edges"
    if circuit.score is not None and circuit.full:
        label += f" (metric {circuit.score:.2f} of {circuit.full:.2f})"
    ax.set_title(label)
    if circuit.edges:
        handles = [Line2D([0], [0], color=PORT_COLOURS[p], lw=2, label=PORT_NAMES[p])
                   for p in ("q", "k", "v", None) if p in ports]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, title="edge feeds")
    return finish(fig, name)


def knockout_heatmap(result: KnockoutResult, title: str = "Single-node knockout", name: Optional[str] = None) -> Any:
    """Metric drop when each head is knocked out (layer x head) and, if the model has MLPs, a bar per MLP."""
    effects = result.as_dict()
    heads = [n for n in result.nodes if parse_node(n).kind == "head"]
    mlps = [n for n in result.nodes if parse_node(n).kind == "mlp"]
    n_layers = 1 + max(parse_node(n).layer for n in result.nodes)
    n_heads = 1 + max([parse_node(n).head for n in heads] or [0])
    grid = np.zeros((n_layers, n_heads))
    for n in heads:
        node = parse_node(n)
        grid[node.layer, node.head] = effects[n]
    lim = float(np.abs(grid).max()) or 1.0
    fig, axes = plt.subplots(1, 2 if mlps else 1, squeeze=False, figsize=(WIDTH * (0.9 if mlps else 0.6),
                                                                           1.6 + 0.45 * n_layers),
                             gridspec_kw={"width_ratios": [3, 1]} if mlps else None)
    image = heatmap_panel(axes[0, 0], grid, f"{title}: heads ({result.ablation})", -lim, lim, "RdBu")
    fig.colorbar(image, ax=axes[0, 0], label="metric drop")
    if mlps:
        ax = axes[0, 1]
        ax.barh([parse_node(n).layer for n in mlps], [effects[n] for n in mlps], color="tab:orange")
        ax.set_yticks(range(n_layers))
        ax.invert_yaxis()
        ax.set(xlabel="metric drop", ylabel="layer", title="MLPs")
    return finish(fig, name)


def faithfulness_curves(curves: Mapping[str, FaithfulnessCurve], title: str = "Faithfulness vs circuit size",
                        name: Optional[str] = None) -> Any:
    """Normalised metric of the top-k edges against k (log scale; k = 0 drawn at 0.8), one line per curve."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.8, 3.2))
    for key, curve in curves.items():
        ax.plot([max(s, 0.8) for s in curve.sizes], curve.normalized, marker="o", ms=4, label=key)
    ax.axhline(1, color="0.6", lw=0.8, ls="--")
    ax.set(xscale="log", xlabel="edges kept (top-k by |score|)", ylabel="normalised metric", title=title)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    return finish(fig, name, vector=True)


__all__ = ["PORT_COLOURS", "circuit_graph", "faithfulness_curves", "knockout_heatmap"]
