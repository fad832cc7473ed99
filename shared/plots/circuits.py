"""Figures of circuits and of the circuit methods' results: the layered circuit graph, single-node
knockout maps and faithfulness-versus-size curves."""
from __future__ import annotations

import textwrap
from typing import Any, Mapping, Optional

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch
from matplotlib.path import Path as MplPath
from matplotlib.ticker import StrMethodFormatter

from shared.engine.ablation import KnockoutResult
from shared.engine.circuit import Circuit, FaithfulnessCurve
from shared.engine.graph import Graph, parse_node, split_edge
from shared.errors import ParameterError
from shared.plots.figures import SMALLEST, WIDTH, finish, heatmap_panel

PORT_COLOURS = {"q": "tab:blue", "k": "tab:green", "v": "tab:red", None: "0.35"}
PORT_NAMES = {"q": "into a query", "k": "into a key", "v": "into a value", None: "into an MLP or the logits"}


PORT_OFFSETS = {"q": 0.16, "k": 0.0, "v": -0.16, None: 0.0}  # where an edge enters its receiver (node units)


def _column(node: Any, n_layers: int) -> int:
    """Horizontal slot: input 0, attention of layer L at 2L+1, its MLP at 2L+2, logits last."""
    if node.kind == "input":
        return 0
    if node.kind == "logits":
        return 2 * n_layers + 1
    return 2 * node.layer + (1 if node.kind == "head" else 2)


def _geometry(circuit: Circuit, graph: Optional[Graph]) -> dict[str, Any]:
    """Node positions, edge arcs and vertical extent of a circuit's layered drawing."""
    nodes = list(dict.fromkeys(circuit.nodes + [n for e in circuit.edges for n in split_edge(e)[:2]]))
    if not nodes:
        raise ParameterError("The circuit is empty; there is nothing to draw.")
    parsed = {n: parse_node(n) for n in nodes}
    n_layers = graph.n_layers if graph is not None else max([p.layer for p in parsed.values()] + [0]) + 1
    columns: dict[int, list[str]] = {}
    for n in nodes:
        columns.setdefault(_column(parsed[n], n_layers), []).append(n)
    level = {c: i for i, c in enumerate(sorted(columns))}  # only the columns that hold a node
    tallest = max(len(members) for members in columns.values())
    pos = {}
    for c, members in columns.items():
        members.sort(key=lambda m: parsed[m].head)
        for i, m in enumerate(members):
            pos[m] = (level[c], (len(members) - 1) / 2 - i)
    weights = [abs(circuit.scores.get(e, 1.0)) for e in circuit.edges] or [1.0]
    top = max(weights) or 1.0
    arcs = []
    for w, e in sorted(zip(weights, circuit.edges)):  # thin edges first, thick ones on top
        s, r, port = split_edge(e)
        (x0, y0), (x1, y1) = pos[s], pos[r]
        start, end = (x0 + 0.22, y0), (x1 - 0.22, y1 + PORT_OFFSETS[port])
        if x1 - x0 <= 1:
            middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        else:  # an edge that skips columns arcs over (or, going down, under) the nodes between its ends
            lift = 0.45 + 0.2 * (x1 - x0 - 2)
            middle = ((start[0] + end[0]) / 2, max(y0, y1) + lift if y1 >= y0 else min(y0, y1) - lift)
        arcs.append((start, middle, end, w / top, port))
    peaks = [0.5 * m[1] + 0.25 * (a[1] + b[1]) for a, m, b, _, _ in arcs]  # the curve's extreme
    low, high = min([-(tallest - 1) / 2 - 0.45] + [p - 0.15 for p in peaks]), \
        max([(tallest - 1) / 2 + 0.45] + [p + 0.15 for p in peaks])
    return {"pos": pos, "parsed": parsed, "arcs": arcs, "low": low, "high": high, "columns": len(level)}


def _draw(ax: Any, geo: dict[str, Any], labels: Optional[Mapping[str, str]] = None) -> set:
    """Draw a circuit's geometry on ``ax``; returns the receiver ports its edges use."""
    for start, middle, end, w, port in geo["arcs"]:
        ax.add_patch(FancyArrowPatch(path=MplPath([start, middle, end], [MplPath.MOVETO, MplPath.CURVE3,
                                                                         MplPath.CURVE3]),
                                     arrowstyle="-|>", mutation_scale=9, lw=0.7 + 2.6 * w,
                                     color=PORT_COLOURS[port], shrinkA=0, shrinkB=0))
    for n, (x, y) in geo["pos"].items():
        face = {"head": "#cfe2ff", "mlp": "#ffe5b4"}.get(geo["parsed"][n].kind, "#e0e0e0")
        text = n if not labels or n not in labels else f"{n}\n" + textwrap.fill(labels[n].replace("_", " "), 10)
        ax.text(x, y, text, ha="center", va="center", fontsize=SMALLEST + 1, zorder=3,
                bbox=dict(boxstyle="round", fc=face, ec="0.4"))
    ax.set_xlim(-0.5, geo["columns"] - 0.5)
    ax.set_ylim(geo["low"], geo["high"])
    ax.axis("off")
    return {a[4] for a in geo["arcs"]}


def _port_legend(where: Any, ports: set, **kw: Any) -> None:
    handles = [Line2D([0], [0], color=PORT_COLOURS[p], lw=2, label=PORT_NAMES[p]) for p in ("q", "k", "v", None)
               if p in ports]
    where.legend(handles=handles, ncol=len(handles), frameon=False, title="edge feeds (width: |score|)", **kw)


def circuit_graph(circuit: Circuit, graph: Optional[Graph] = None, title: Optional[str] = None,
                  name: Optional[str] = None) -> Any:
    """Layered drawing of a circuit, read from left to right: input, then heads and MLPs layer by
    layer, logits on the right (only the columns that hold a node). Edge width follows |score|;
    edge colour says which input of the receiver the edge feeds, and an edge into a query, key or
    value enters the receiver's box at its top, middle or bottom, so edges never overlap into a
    colour the legend does not name."""
    geo = _geometry(circuit, graph)
    fig, ax = plt.subplots(figsize=(WIDTH, 0.7 * (geo["high"] - geo["low"]) + 1.3))
    ports = _draw(ax, geo)
    label = title or f"{circuit.method or 'circuit'}: {len(circuit.nodes)} nodes, {len(circuit.edges)} edges"
    if circuit.score is not None and circuit.full:
        label += f" (metric {circuit.score:.2f} of {circuit.full:.2f})"
    ax.set_title(textwrap.fill(label, 80))
    if circuit.edges:
        _port_legend(ax, ports, loc="upper center", bbox_to_anchor=(0.5, 0.0))
    return finish(fig, name)


def circuit_graphs(circuits: Mapping[str, Circuit], graphs: Optional[Mapping[str, Graph]] = None,
                   labels: Optional[Mapping[str, Mapping[str, str]]] = None, name: Optional[str] = None) -> Any:
    """Several circuits drawn like :func:`circuit_graph`, one panel each (titled by the mapping's keys),
    stacked; ``labels`` adds a second line to some nodes' boxes (e.g. what a node computes)."""
    if not circuits:
        raise ParameterError("No circuit to draw.")
    geos = {k: _geometry(c, (graphs or {}).get(k)) for k, c in circuits.items()}
    heights = [0.75 * (g["high"] - g["low"]) + 0.5 for g in geos.values()]
    fig, axes = plt.subplots(len(geos), 1, squeeze=False, figsize=(WIDTH, sum(heights) + 0.9),
                             gridspec_kw={"height_ratios": heights})
    ports: set = set()
    for ax, (key, geo) in zip(axes[:, 0], geos.items()):
        ports |= _draw(ax, geo, (labels or {}).get(key))
        ax.set_title(key)
    _port_legend(fig, ports, loc="lower center", bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.9 / (sum(heights) + 0.9), 1, 1))
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
    height = 1.9 + 0.45 * n_layers
    fig, axes = plt.subplots(1, 2, squeeze=False, figsize=(WIDTH, height), gridspec_kw={"width_ratios": [3, 1]})
    # fixed margins (no tight layout): the head panel has one size with or without MLPs
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.65 / height, top=1 - 0.45 / height, wspace=0.45)
    image = heatmap_panel(axes[0, 0], grid, f"{title}: heads ({result.ablation})", -lim, lim, "RdBu")
    fig.colorbar(image, ax=axes[0, 0], label="metric drop", fraction=0.05, pad=0.02)
    ax = axes[0, 1]
    if mlps:
        ax.barh([parse_node(n).layer for n in mlps], [effects[n] for n in mlps], color="tab:orange")
        ax.set_yticks(range(n_layers))
        ax.set_ylim(n_layers - 0.5, -0.5)
        ax.set(xlabel="metric drop", ylabel="layer", title="MLPs")
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "no MLPs\nin this model", ha="center", va="center", transform=ax.transAxes)
    return finish(fig, name, tight=False)


def faithfulness_curves(curves: Mapping[str, FaithfulnessCurve], title: str = "Faithfulness vs circuit size",
                        name: Optional[str] = None) -> Any:
    """Normalised metric of the top-k edges against k (log scale; k = 0 drawn at 0.8), one line per curve."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.8, 3.2))
    for key, curve in curves.items():
        ax.plot([max(s, 0.8) for s in curve.sizes], curve.normalized, marker="o", ms=4, label=key)
    ax.axhline(1, color="0.6", lw=0.8, ls="--")
    ax.set(xscale="log", xlabel="edges kept (top-k by |score|)", ylabel="normalised metric", title=title)
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    return finish(fig, name, vector=True)


def method_ladder(frame: Any, metrics: tuple[str, ...] = ("ROC AUC", "CPR"), knob_labels: Optional[Mapping[str, str]] = None,
                  name: Optional[str] = None) -> Any:
    """One column per difficulty knob, one row per score: each method's score against the knob's
    value (``frame``: columns knob, value, method and the ``metrics``), one legend for the methods."""
    knobs = list(dict.fromkeys(frame["knob"]))
    methods = list(dict.fromkeys(frame["method"]))
    if not knobs:
        raise ParameterError("The ladder is empty: no rung was run.")
    colours = dict(zip(methods, plt.get_cmap("tab10").colors))
    markers = dict(zip(methods, "osD^v<>ph*"))
    fig, axes = plt.subplots(len(metrics), len(knobs), squeeze=False, sharey="row",
                             figsize=(WIDTH, 1.2 + 2.0 * len(metrics)))
    for j, knob in enumerate(knobs):
        part = frame[frame["knob"] == knob]
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            for m in methods:
                rows = part[part["method"] == m].sort_values("value")
                ax.plot(rows["value"], rows[metric], marker=markers[m], ms=4, color=colours[m], label=m,
                        alpha=0.85)
            ax.grid(alpha=0.3)
            ticks = sorted(part["value"].unique())
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks], rotation=45 if len(ticks) > 5 else 0)
            if j == 0:
                ax.set_ylabel(metric)
            if i == len(metrics) - 1:
                ax.set_xlabel((knob_labels or {}).get(knob, knob))
    handles = [Line2D([0], [0], color=colours[m], marker=markers[m], label=m) for m in methods]
    fig.legend(handles=handles, loc="lower center", ncol=min(3, len(methods)), frameon=False,
               bbox_to_anchor=(0.5, -0.01))
    fig.tight_layout(rect=(0, 0.07 + 0.03 * ((len(methods) - 1) // 3), 1, 1))
    return finish(fig, name, vector=True)


def method_curves(frame: Any, name: Optional[str] = None) -> Any:
    """One panel per task: each method's faithfulness at MIB's edge shares (``frame``: columns task,
    method and ``f@p%``), edge share on a log axis, one legend for the methods."""
    tasks = list(dict.fromkeys(frame["task"]))
    methods = list(dict.fromkeys(frame["method"]))
    if not tasks:
        raise ParameterError("No task was scored.")
    cols = [c for c in frame.columns if c.startswith("f@") and c.endswith("%")]
    shares = [float(c[2:-1]) for c in cols]
    colours = dict(zip(methods, plt.get_cmap("tab10").colors))
    markers = dict(zip(methods, "osD^v<>ph*"))
    fig, axes = plt.subplots(1, len(tasks), squeeze=False, sharey=True, figsize=(WIDTH, 3.6))
    for ax, task in zip(axes[0], tasks):
        part = frame[frame["task"] == task]
        for m in methods:
            row = part[part["method"] == m]
            if not row.empty:
                ax.plot(shares, row[cols].iloc[0].to_numpy(float), marker=markers[m], ms=4, color=colours[m],
                        alpha=0.85)
        ax.axhline(1, color="0.6", lw=0.8, ls="--")
        ax.set(xscale="log", xlabel="edges kept (% of the graph)", title=f"{task}: {part['model'].iloc[0]}")
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("faithfulness f")
    handles = [Line2D([0], [0], color=colours[m], marker=markers[m], label=m) for m in methods]
    fig.legend(handles=handles, loc="lower center", ncol=min(3, len(methods)), frameon=False,
               bbox_to_anchor=(0.5, -0.01))
    fig.tight_layout(rect=(0, 0.07 + 0.04 * ((len(methods) - 1) // 3), 1, 1))
    return finish(fig, name, vector=True)


__all__ = ["PORT_COLOURS", "circuit_graph", "circuit_graphs", "faithfulness_curves", "knockout_heatmap",
           "method_curves", "method_ladder"]
