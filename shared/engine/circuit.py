"""The circuit type every method returns, its JSON form, faithfulness and a layered graph figure."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from shared.engine.ablation import Activations, Values, ablation_values, record, score_circuit_nodes
from shared.engine.batch import PromptBatch
from shared.errors import ParameterError
from shared.engine.graph import Graph, parse_node, split_edge
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

    def figure(self, graph: Optional[Graph] = None, title: Optional[str] = None):
        """Layered drawing: inputs at the bottom, logits on top, heads/MLPs by layer."""
        import matplotlib.pyplot as plt

        nodes = list(dict.fromkeys(self.nodes + [n for e in self.edges for n in split_edge(e)[:2]]))
        if not nodes:
            raise ParameterError("The circuit is empty; there is nothing to draw.")
        parsed = {n: parse_node(n) for n in nodes}
        n_layers = max([p.layer for p in parsed.values()] + [0]) + 1
        if graph is not None:
            n_layers = graph.n_layers

        def row(p):  # input 0, attention of layer L at 2L+1, MLP at 2L+2, logits on top
            return {"input": 0, "logits": 2 * n_layers + 1}.get(p.kind, 2 * p.layer + (1 if p.kind == "head" else 2))

        rows: dict[int, list[str]] = {}
        for n in nodes:
            rows.setdefault(row(parsed[n]), []).append(n)
        pos = {}
        for r, members in rows.items():
            members.sort(key=lambda m: parsed[m].head)
            for i, m in enumerate(members):
                pos[m] = ((i + 1) / (len(members) + 1), r)
        fig, ax = plt.subplots(figsize=(6, 1 + 0.7 * (2 * n_layers + 2)))
        weights = [abs(self.scores.get(e, 1.0)) for e in self.edges] or [1.0]
        wmax = max(weights) or 1.0
        colors = {"q": "tab:blue", "k": "tab:green", "v": "tab:red", None: "0.3"}
        for e, w in zip(self.edges, weights):
            s, r, port = split_edge(e)
            (x0, y0), (x1, y1) = pos[s], pos[r]
            ax.annotate("", xy=(x1, y1 - 0.15), xytext=(x0, y0 + 0.15),
                        arrowprops=dict(arrowstyle="->", lw=0.5 + 2.5 * w / wmax, color=colors.get(port, "0.3"),
                                        alpha=0.8, connectionstyle="arc3,rad=0.08"))
        for n, (x, y) in pos.items():
            kind = parsed[n].kind
            face = {"head": "#cfe2ff", "mlp": "#ffe5b4"}.get(kind, "#e0e0e0")
            ax.text(x, y, n, ha="center", va="center", fontsize=9,
                    bbox=dict(boxstyle="round", fc=face, ec="0.4"))
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.7, 2 * n_layers + 1.7)
        ax.axis("off")
        label = title or f"{self.method or 'circuit'}: {len(self.nodes)} nodes, {len(self.edges)} edges"
        if self.score is not None and self.full:
            label += f" (metric {self.score:.2f} of {self.full:.2f})"
        ax.set_title(label + ("\nedge colours: q blue, k green, v red" if self.edges else ""), fontsize=10)
        fig.tight_layout()
        return fig


def faithfulness(bridge: Any, batch: PromptBatch, circuit: Circuit, metric: "Metric | str | None" = None,
                 ablation: str = "corrupt", values: Optional[Values] = None,
                 base: Optional[Activations] = None) -> dict[str, float]:
    """Metric with only the circuit kept (its edges if it has any, else its nodes) and the rest
    patched to ``values``; returns ``score``, ``full``, ``empty`` (everything patched) and
    ``normalized`` = (score - empty) / (full - empty)."""
    from shared.engine.patching import score_edge_masks, edge_mask

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
    span = full - empty if abs(full - empty) > 1e-9 else 1e-9
    return {"score": score, "full": full, "empty": empty, "normalized": (score - empty) / span}


def faithfulness_curve(bridge: Any, batch: PromptBatch, edge_scores: dict[str, float],
                       sizes: Optional[Sequence[int]] = None, metric: "Metric | str | None" = None,
                       ablation: str = "corrupt", values: Optional[Values] = None) -> dict[str, list]:
    """Normalised faithfulness of the top-k edges by |score| for each k in ``sizes``
    (default: a log-spaced grid up to all edges); all sizes are scored side by side."""
    from shared.engine.patching import score_edge_masks

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
    full, empty = out[-2], out[-1]
    span = full - empty if abs(full - empty) > 1e-9 else 1e-9
    return {"sizes": list(sizes), "scores": out[:-2], "normalized": [(s - empty) / span for s in out[:-2]],
            "full": full, "empty": empty}


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


__all__ = ["Circuit", "faithfulness", "faithfulness_curve", "roc_auc"]
