"""MIB-style scores of a circuit-discovery method (Mueller et al. 2025, "MIB: A Mechanistic
Interpretability Benchmark"), and circuits in MIB's JSON edge format.

A method gives every edge a score (or returns a set of edges, ranked first). For each share p of the
graph's edges (``MIB_PERCENTS``: 0.1 % ... 50 % and 100 %) the top ``floor(p * E)`` edges by |score|
are kept, every other edge is patched (``corrupt`` by default), and the circuit's faithfulness is

    f(p) = (m(C_p) - m(empty)) / (m(N) - m(empty)),

0 for the fully patched model and 1 for the intact one. Two areas summarise the curve, both by the
trapezoid rule over the edge share p (linear axis) and divided by the span of p, so that a curve that
is 1 everywhere scores exactly 1:

* **CPR** (circuit performance ratio): the area under f — higher is better;
* **CMD** (circuit-model difference): the area between f and 1, ``|1 - f|`` — lower is better.

Cost is wall-clock seconds and *forward-pass equivalents*: the seconds divided by those of one plain
forward pass over the same prompts (as in ``book/methods_benchmark.md``).
"""
from __future__ import annotations

from collections.abc import Mapping

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from shared.engine.ablation import ablation_values
from shared.engine.batch import PromptBatch
from shared.engine.circuit import Circuit, FaithfulnessCurve, faithfulness_curve, roc_auc
from shared.engine.graph import Graph, split_edge
from shared.engine.metrics import Metric
from shared.engine.runs import Values
from shared.errors import ParameterError

MIB_PERCENTS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)


def top_k_sizes(n_edges: int, percents: Sequence[float] = MIB_PERCENTS) -> list[int]:
    """Edges kept at each share: ``floor(p / 100 * n_edges)`` (MIB's rounding)."""
    for p in percents:
        if not 0 < p <= 100:
            raise ParameterError(f"Edge shares are percentages in (0, 100], got {p}.")
    return [int(math.floor(p / 100 * n_edges + 1e-9)) for p in percents]


def area_scores(percents: Sequence[float], f: Sequence[float]) -> tuple[float, float]:
    """(CPR, CMD) of a faithfulness curve ``f`` over edge shares ``percents``: trapezoid areas of f
    and of |1 - f| over the share, divided by the share's span (one point: its value)."""
    x = [p / 100 for p in percents]
    if len(x) != len(f) or not x:
        raise ParameterError("A faithfulness curve needs one value per edge share.")
    if len(x) == 1:
        return float(f[0]), abs(1 - float(f[0]))
    if any(b <= a for a, b in zip(x, x[1:])):
        raise ParameterError("Edge shares must increase.")

    def area(y):
        return sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2 for i in range(len(x) - 1)) / (x[-1] - x[0])
    return float(area(list(f))), float(area([abs(1 - v) for v in f]))


def ranking(result: "Mapping[str, float] | Circuit", graph: Graph) -> "Mapping[str, float]":
    """Edge scores to rank by: a score dict as is; a circuit's edges first (by |score| among
    themselves), every other edge after them (by |score| when the method scored it, else 0). A
    circuit of nodes only (node pruning) keeps the edges between its nodes (input and logits
    always in), tied among themselves."""
    if isinstance(result, Mapping):  # a score dict or EdgeScores, as is
        return result
    if not result.edges and result.nodes:
        members = set(graph.check_nodes(result.nodes)) | {"input", "logits"}
        return {e: 1.0 if {split_edge(e)[0], split_edge(e)[1]} <= members else 0.0 for e in graph.edges}
    kept = set(graph.check_edges(result.edges))
    top = max([abs(v) for v in result.scores.values()] + [1.0])
    return {e: (2 * top + abs(result.scores.get(e, 0.0))) if e in kept else abs(result.scores.get(e, 0.0)) / 2
            for e in graph.edges}


@dataclass
class MethodScores:
    """One method on one model and task: the faithfulness curve, its areas, ROC AUC (``None``
    without ground truth) and its cost."""

    method: str
    percents: list[float]
    faithfulness: list[float]
    cpr: float
    cmd: float
    auc: Optional[float] = None
    seconds: float = 0.0
    forward_passes: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {"method": self.method, "CPR": self.cpr, "CMD": self.cmd, "ROC AUC": self.auc,
                "seconds": self.seconds, "forward passes": self.forward_passes}


def mib_curve(bridge: Any, batch: PromptBatch, edge_scores: dict[str, float],
              percents: Sequence[float] = MIB_PERCENTS, metric: "Metric | str | None" = None,
              ablation: str = "corrupt", values: Optional[Values] = None) -> FaithfulnessCurve:
    """The faithfulness of the top-k edges at MIB's edge shares (``sizes`` are the k's)."""
    graph = Graph.of(bridge)
    return faithfulness_curve(bridge, batch, edge_scores, sizes=top_k_sizes(len(graph.edges), percents),
                              metric=metric, ablation=ablation, values=values)


def forward_seconds(bridge: Any, batch: PromptBatch, repeats: int = 10) -> float:
    """Seconds of one plain forward pass over the clean prompts (best of ``repeats``)."""
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            bridge(batch.clean)
            best = min(best, time.perf_counter() - t0)
    return best


def score_method(bridge: Any, batch: PromptBatch, name: str, run: Callable[[], "dict[str, float] | Circuit"],
                 truth: Optional[Sequence[str]] = None, percents: Sequence[float] = MIB_PERCENTS,
                 metric: "Metric | str | None" = None, ablation: str = "corrupt",
                 values: Optional[Values] = None, forward: Optional[float] = None) -> MethodScores:
    """Run ``run()`` (a method bound to its arguments), time it, and score what it returns."""
    t0 = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - t0
    graph = Graph.of(bridge)
    scores = ranking(result, graph)
    values = ablation_values(bridge, batch, ablation) if values is None else values
    curve = mib_curve(bridge, batch, scores, percents, metric, values=values)
    f = curve.normalized
    cpr, cmd = area_scores(percents, f)
    forward = forward_seconds(bridge, batch) if forward is None else forward
    auc = roc_auc(scores, truth) if truth is not None else None
    info = {"sizes": curve.sizes, "ranking": scores}  # the edge scores ranked by, to score against other truths
    if isinstance(result, Circuit):
        info["kept"] = len(result.edges)
    return MethodScores(name, list(percents), f, cpr, cmd, auc, seconds, seconds / max(forward, 1e-9), info)


# --------------------------------------------------------------------------------------------
# MIB's JSON edge format
# --------------------------------------------------------------------------------------------

def _mib_edge(edge: str) -> str:
    s, r, p = split_edge(edge)
    return f"{s}->{r}<{p}>" if p else f"{s}->{r}"


def _book_edge(edge: str) -> str:
    if edge.endswith(">") and "<" in edge:
        head, port = edge[:-1].rsplit("<", 1)
        return f"{head}:{port}"
    return edge


def to_mib(result: "dict[str, float] | Circuit", bridge: Any) -> dict[str, Any]:
    """A circuit (or edge scores, all then in the graph) as MIB's JSON graph:

    ``{"cfg": {"n_layers", "n_heads", "d_model", "parallel_attn_mlp"},
    "nodes": {"input" | "a{L}.h{H}" | "m{L}" | "logits": {"in_graph": bool}},
    "edges": {"a0.h1->a1.h2<k>" | "m0->logits" | ...: {"score": float, "in_graph": bool}}}``

    Every edge of the model's graph is listed; an edge into a head names the input it feeds as
    ``<q>``, ``<k>`` or ``<v>`` (the book writes ``:q``). A node is in the graph when one of its
    edges is (input and logits always)."""
    graph = Graph.of(bridge)
    if isinstance(result, Circuit):
        kept, scores = set(graph.check_edges(result.edges)), result.scores
    else:
        kept, scores = set(graph.check_edges(result)), result
    nodes = {n: n in ("input", "logits") for n in graph.nodes}
    for e in kept:
        s, r, _ = split_edge(e)
        nodes[s] = nodes[r] = True
    cfg = bridge.cfg
    return {"cfg": {"n_layers": graph.n_layers, "n_heads": graph.n_heads, "d_model": int(cfg.d_model),
                    "parallel_attn_mlp": graph.parallel},
            "nodes": {n: {"in_graph": v} for n, v in nodes.items()},
            "edges": {_mib_edge(e): {"score": float(scores.get(e, 0.0)), "in_graph": e in kept}
                      for e in graph.edges}}


def save_mib(result: "dict[str, float] | Circuit", bridge: Any, path: "str | Path") -> Path:
    path = Path(path)
    path.write_text(json.dumps(to_mib(result, bridge), indent=1))
    return path


def from_mib(data: "dict[str, Any] | str | Path", method: str = "mib") -> Circuit:
    """A circuit from MIB's JSON graph (a dict, or a path to the file): its in-graph edges, with
    every edge's score."""
    if not isinstance(data, dict):
        data = json.loads(Path(data).read_text())
    if "edges" not in data:
        raise ParameterError("This is not a MIB circuit: it has no 'edges' entry.")
    scores = {_book_edge(e): float(v.get("score", 0.0)) for e, v in data["edges"].items()}
    kept = [_book_edge(e) for e, v in data["edges"].items() if v.get("in_graph")]
    return Circuit.from_edges(kept, scores=scores, method=method)


__all__ = ["MIB_PERCENTS", "MethodScores", "area_scores", "forward_seconds", "from_mib", "mib_curve", "ranking",
           "save_mib", "score_method", "to_mib", "top_k_sizes"]
