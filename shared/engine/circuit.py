"""The circuit type every method returns, its JSON form, and how faithful a circuit is (its figure is
:func:`shared.plots.circuits.circuit_graph`)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from shared.engine.ablation import ablation_values, score_circuit_nodes
from shared.engine.patching import edge_mask, score_edge_masks
from shared.engine.runs import Activations, Values, record
from shared.engine.batch import PromptBatch
from shared.errors import ParameterError
from shared.engine.graph import Graph, split_edge
from shared.engine.metrics import Metric


@dataclass
class Circuit:
    """Nodes and edges found by ``method``, with per-node/edge ``scores`` and the circuit's metric.

    ``score`` is the metric of the model restricted to the circuit (re-measured), ``full`` the
    intact model's value; ``info`` keeps method settings (threshold, ablation, ...).
    """

    nodes: list[str]
    edges: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    method: str = ""
    metric: str = "logit_diff"
    score: Optional[float] = None
    full: Optional[float] = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Circuit":
        return cls(**json.loads(text))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Circuit":
        return cls.from_json(Path(path).read_text())

    @classmethod
    def from_edges(cls, edges: Sequence[str], **kw: Any) -> "Circuit":
        """A circuit whose nodes are the endpoints of ``edges``."""
        nodes: list[str] = []
        for e in edges:
            s, r, _ = split_edge(e)
            for n in (s, r):
                if n not in nodes:
                    nodes.append(n)
        return cls(nodes=nodes, edges=list(edges), **kw)


@dataclass
class Faithfulness:
    """The metric with only the circuit kept (``score``), with nothing patched (``full``) and with
    everything patched (``empty``); ``normalized`` = (score - empty) / (full - empty)."""

    score: float
    full: float
    empty: float

    @property
    def normalized(self) -> float:
        return (self.score - self.empty) / _span(self.full, self.empty)


@dataclass
class FaithfulnessCurve:
    """Faithfulness of the top-k edges for each k in ``sizes`` (``scores``: raw metric)."""

    sizes: list[int]
    scores: list[float]
    full: float
    empty: float

    @property
    def normalized(self) -> list[float]:
        span = _span(self.full, self.empty)
        return [(s - self.empty) / span for s in self.scores]


def _span(full: float, empty: float) -> float:
    return full - empty if abs(full - empty) > 1e-9 else 1e-9


def faithfulness(bridge: Any, batch: PromptBatch, circuit: Circuit, metric: "Metric | str | None" = None,
                 ablation: str = "corrupt", values: Optional[Values] = None,
                 base: Optional[Activations] = None) -> Faithfulness:
    """Metric with only the circuit kept (its edges if it has any, else its nodes) and the rest
    patched to ``values``, next to the intact and the fully patched model."""
    graph = Graph.of(bridge)
    if not circuit.nodes and not circuit.edges:
        raise ParameterError("The circuit is empty: it has neither nodes nor edges.")
    values = ablation_values(bridge, batch, ablation) if values is None else values
    base = record(bridge, batch.clean) if base is None else base
    if circuit.edges:
        keep = edge_mask(graph, circuit.edges)
        masks = torch.stack([~keep, torch.zeros_like(keep), torch.ones_like(keep)])
        score, full, empty = score_edge_masks(bridge, batch, masks, values, metric, base=base).tolist()
    else:
        graph.check_nodes(circuit.nodes)
        score = score_circuit_nodes(bridge, batch, circuit.nodes, values, metric, base=base)
        full = score_circuit_nodes(bridge, batch, graph.components, values, metric, base=base)
        empty = score_circuit_nodes(bridge, batch, [], values, metric, base=base)
    return Faithfulness(score, full, empty)


def faithfulness_curve(bridge: Any, batch: PromptBatch, edge_scores: dict[str, float],
                       sizes: Optional[Sequence[int]] = None, metric: "Metric | str | None" = None,
                       ablation: str = "corrupt", values: Optional[Values] = None) -> FaithfulnessCurve:
    """Normalised faithfulness of the top-k edges by |score| for each k in ``sizes``
    (default: a log-spaced grid up to all edges); all sizes are scored side by side."""
    graph = Graph.of(bridge)
    graph.check_edges(edge_scores)
    if not edge_scores:
        raise ParameterError("No edge scores were given for the faithfulness curve.")
    ranked = sorted(edge_scores, key=lambda e: -abs(edge_scores[e]))
    if sizes is None:
        grid = torch.unique(torch.logspace(0, torch.log10(torch.tensor(float(len(ranked)))), 12).round().long())
        sizes = [0] + grid.tolist()
    values = ablation_values(bridge, batch, ablation) if values is None else values
    masks = []
    for k in sizes:
        keep = torch.zeros(len(graph.edges), dtype=torch.bool)
        for e in ranked[:k]:
            keep[graph.edge_index[e]] = True
        masks.append(~keep)
    masks += [torch.zeros(len(graph.edges), dtype=torch.bool), torch.ones(len(graph.edges), dtype=torch.bool)]
    out = score_edge_masks(bridge, batch, torch.stack(masks), values, metric).tolist()
    return FaithfulnessCurve(list(sizes), out[:-2], out[-2], out[-1])


def smallest_faithful_circuit(bridge: Any, batch: PromptBatch, edge_scores: dict[str, float], target: float = 0.8,
                              metric: "Metric | str | None" = None, ablation: str = "corrupt",
                              values: Optional[Values] = None, grid: int = 24,
                              method: str = "top-k edges") -> tuple[Circuit, FaithfulnessCurve]:
    """The top-k edges by |score| for the smallest k whose normalised faithfulness reaches ``target``.

    The curve is scored on a log-spaced grid of ``grid`` sizes, then at every size between the last
    grid point below ``target`` and the first one above it (all in batched runs); k is the first size
    of that scan that reaches it (the curve need not be monotonic, so a smaller k off the grid could
    also reach it). When no size does, every edge is kept and ``info['reached']`` is false. Returns
    the circuit (``score``, ``full``, ``info``: k, normalised faithfulness, target, reached) and the
    scanned curve."""
    if not 0 < target <= 1:
        raise ParameterError(f"The faithfulness target must be in (0, 1], got {target}.")
    graph = Graph.of(bridge)
    values = ablation_values(bridge, batch, ablation) if values is None else values
    n = len(edge_scores)
    sizes = sorted({0, n} | set(torch.logspace(0, torch.log10(torch.tensor(float(max(n, 1)))), grid)
                                .round().long().tolist()))
    coarse = faithfulness_curve(bridge, batch, edge_scores, sizes, metric, values=values)
    reach = [k for k, f in zip(coarse.sizes, coarse.normalized) if f >= target]
    points = dict(zip(coarse.sizes, coarse.scores))
    if reach:
        below = max([k for k in coarse.sizes if k < reach[0]], default=0)
        between = list(range(below + 1, reach[0]))
        if between:
            fine = faithfulness_curve(bridge, batch, edge_scores, between, metric, values=values)
            points.update(zip(fine.sizes, fine.scores))
    curve = FaithfulnessCurve(sorted(points), [points[k] for k in sorted(points)], coarse.full, coarse.empty)
    hits = [k for k, f in zip(curve.sizes, curve.normalized) if f >= target]
    k = hits[0] if hits else n
    ranked = sorted(edge_scores, key=lambda e: -abs(edge_scores[e]))[:k]
    graph.check_edges(ranked)
    score = points[k]
    circuit = Circuit.from_edges(ranked, scores={e: edge_scores[e] for e in ranked}, method=method,
                                 score=score, full=coarse.full,
                                 info={"k": k, "normalized": (score - coarse.empty) / _span(coarse.full, coarse.empty),
                                       "target": target, "reached": bool(hits), "ablation": ablation})
    return circuit, curve


def roc_auc(scores: dict[str, float], truth: Sequence[str]) -> float:
    """Area under the ROC curve of ``|score|`` separating ``truth`` from the other keys (ties 1/2)."""
    truth_set = set(truth)
    pos = [abs(v) for k, v in scores.items() if k in truth_set]
    neg = [abs(v) for k, v in scores.items() if k not in truth_set]
    if not pos or not neg:
        raise ParameterError("ROC AUC needs at least one true and one other item among the scores.")
    p, n = torch.tensor(pos), torch.tensor(neg)
    wins = (p[:, None] > n[None, :]).float() + 0.5 * (p[:, None] == n[None, :]).float()
    return float(wins.mean())


__all__ = ["Circuit", "Faithfulness", "FaithfulnessCurve", "faithfulness", "faithfulness_curve", "roc_auc",
           "smallest_faithful_circuit"]
