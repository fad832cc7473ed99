"""Node and edge naming for circuit methods, and the computational graph of a bridge.

Nodes: ``"input"`` (token + position embeddings), heads ``"a{L}.h{H}"``, MLPs ``"m{L}"`` and
``"logits"``. Edges ``"sender->receiver"``; a head receiver names the input it reads through:
``"a0.h1->a1.h2:k"`` (``q``, ``k`` or ``v``). A sender feeds a receiver when its output is part of
the residual stream the receiver reads: earlier layers always, and the attention heads of layer L
also feed ``m{L}`` unless the model runs attention and MLP in parallel (GPT-NeoX).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Iterator, Optional

import torch

from shared.errors import ParameterError

_HEAD = re.compile(r"^a(\d+)\.h(\d+)$")
_MLP = re.compile(r"^m(\d+)$")


@dataclass(frozen=True)
class Node:
    """A parsed node name: ``kind`` is ``input``, ``head``, ``mlp`` or ``logits``."""

    name: str
    kind: str
    layer: int = -1
    head: int = -1


def head_name(layer: int, head: int) -> str:
    """The book's one name for attention head ``head`` of layer ``layer``: ``"a{layer}.h{head}"``."""
    return f"a{layer}.h{head}"


def mlp_name(layer: int) -> str:
    """The name of layer ``layer``'s MLP: ``"m{layer}"``."""
    return f"m{layer}"


def parse_node(name: str, n_layers: Optional[int] = None, n_heads: Optional[int] = None) -> Node:
    """Parse a node name, checking it against the model size when given."""
    if name in ("input", "logits"):
        return Node(name, name)
    m = _HEAD.match(name)
    if m:
        node = Node(name, "head", int(m.group(1)), int(m.group(2)))
    else:
        m = _MLP.match(name)
        if not m:
            raise ParameterError(f"Unknown node name {name!r}; use 'input', 'logits', 'a<L>.h<H>' or 'm<L>'.")
        node = Node(name, "mlp", int(m.group(1)))
    if n_layers is not None and node.layer >= n_layers or n_heads is not None and node.head >= n_heads:
        raise ParameterError(f"Node {name!r} does not exist in a model with {n_layers} layers and {n_heads} heads.")
    return node


def split_edge(edge: str) -> tuple[str, str, Optional[str]]:
    """``"a0.h1->a1.h2:k"`` -> ``("a0.h1", "a1.h2", "k")``; MLP/logits receivers give ``None``."""
    if "->" not in edge:
        raise ParameterError(f"Edge {edge!r} is not of the form 'sender->receiver[:q|k|v]'.")
    sender, receiver = edge.split("->", 1)
    port = None
    if ":" in receiver:
        receiver, port = receiver.split(":", 1)
    return sender, receiver, port


@lru_cache(maxsize=32)
def _graph_of_shape(cls: type, n_layers: int, n_heads: int, has_mlp: bool, parallel: bool) -> "Graph":
    return cls(n_layers, n_heads, has_mlp=has_mlp, parallel=parallel)


class Graph:
    """All nodes and edges of a bridge (or of a bare config with ``n_layers``, ``n_heads``...)."""

    def __init__(self, n_layers: int, n_heads: int, has_mlp: bool = True, parallel: bool = False) -> None:
        self.n_layers, self.n_heads, self.has_mlp, self.parallel = n_layers, n_heads, has_mlp, parallel

    @classmethod
    def of(cls, bridge: Any) -> "Graph":
        """The graph of a bridge; one shared instance per shape, so its cached tables are built once."""
        cfg = bridge.cfg
        return _graph_of_shape(cls, cfg.n_layers, cfg.n_heads, not cfg.attn_only,
                               bool(getattr(cfg, "parallel_attn_mlp", False)))

    def heads(self, layer: Optional[int] = None) -> list[str]:
        layers = range(self.n_layers) if layer is None else [layer]
        return [head_name(l, h) for l in layers for h in range(self.n_heads)]

    @cached_property
    def components(self) -> list[str]:
        """Heads and MLPs in forward order (the nodes that pruning and knockout consider)."""
        out: list[str] = []
        for l in range(self.n_layers):
            out += self.heads(l)
            if self.has_mlp:
                out.append(f"m{l}")
        return out

    @cached_property
    def nodes(self) -> list[str]:
        return ["input"] + self.components + ["logits"]

    @cached_property
    def senders(self) -> list[str]:
        return ["input"] + self.components

    @cached_property
    def receivers(self) -> list[str]:
        """Receiver inputs in forward order: ``a{L}.h{H}:q/k/v``, ``m{L}``, ``logits``."""
        out: list[str] = []
        for l in range(self.n_layers):
            out += [f"a{l}.h{h}:{p}" for h in range(self.n_heads) for p in "qkv"]
            if self.has_mlp:
                out.append(f"m{l}")
        return out + ["logits"]

    def upstream(self, receiver: str) -> list[str]:
        """Senders whose output the receiver input reads."""
        node = parse_node(receiver.split(":")[0], self.n_layers, self.n_heads)
        if node.kind == "logits":
            return list(self.senders)
        out = ["input"]
        for l in range(node.layer):
            out += self.heads(l) + ([f"m{l}"] if self.has_mlp else [])
        if node.kind == "mlp" and not self.parallel:
            out += self.heads(node.layer)
        return out

    @cached_property
    def upstream_counts(self) -> list[int]:
        """Per receiver (in :attr:`receivers` order), how many senders it reads: its upstream
        senders are always the first ones of :attr:`senders` (forward order)."""
        H, per_layer = self.n_heads, self.n_heads + (1 if self.has_mlp else 0)
        out: list[int] = []
        for l in range(self.n_layers):
            out += [1 + l * per_layer] * (3 * H)
            if self.has_mlp:
                out.append(1 + l * per_layer + (0 if self.parallel else H))
        return out + [len(self.senders)]

    def edge_mask(self, device: Any = None) -> torch.Tensor:
        """[senders, receivers] boolean: where an edge exists. ``table.T[mask.T]`` lists a
        [senders, receivers] table's entries in :attr:`edges` order (receiver-major)."""
        counts = torch.tensor(self.upstream_counts, device=device)
        return torch.arange(len(self.senders), device=device).unsqueeze(1) < counts.unsqueeze(0)

    @cached_property
    def edges(self) -> list[str]:
        return [f"{s}->{r}" for r in self.receivers for s in self.upstream(r)]

    @cached_property
    def edge_index(self) -> dict[str, int]:
        return {e: i for i, e in enumerate(self.edges)}

    def check_nodes(self, names: Any) -> list[str]:
        names = list(names)
        for n in names:
            parse_node(n, self.n_layers, self.n_heads)
        return names

    def check_edges(self, edges: Any) -> list[str]:
        edges = list(edges)
        for e in edges:
            if e not in self.edge_index:
                s, r, _ = split_edge(e)
                parse_node(s, self.n_layers, self.n_heads)
                parse_node(r, self.n_layers, self.n_heads)
                raise ParameterError(f"Edge {e!r} is not an edge of this model's graph (sender must feed receiver).")
        return edges


class EdgeScores(Mapping):
    """Edge name -> score, read-only, backed by one float64 tensor in :attr:`Graph.edges` order.

    Behaves like the ``dict`` it replaces (``scores[e]``, ``items()``, ``sorted(scores, key=scores.get)``,
    ``dict(scores)``), but no per-edge Python object is made until someone reads them: a GPT-2-XL-sized
    graph has 2.2 million edges, and building their dict costs more than the attribution itself."""

    def __init__(self, graph: Graph, tensor: torch.Tensor) -> None:
        if tensor.shape != (len(graph.edges),):
            raise ParameterError(f"EdgeScores needs one score per edge ({len(graph.edges)}), got {tuple(tensor.shape)}.")
        self.graph, self.tensor = graph, tensor
        self._values: Optional[list[float]] = None

    def _list(self) -> list[float]:
        if self._values is None:
            self._values = self.tensor.tolist()
        return self._values

    def __getitem__(self, edge: str) -> float:
        return self._list()[self.graph.edge_index[edge]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.graph.edges)

    def __len__(self) -> int:
        return len(self.graph.edges)

    def __contains__(self, edge: object) -> bool:
        return edge in self.graph.edge_index

    def values(self):  # type: ignore[override]
        return list(self._list())

    def items(self):  # type: ignore[override]
        return list(zip(self.graph.edges, self._list()))

    def to_dict(self) -> dict[str, float]:
        return dict(zip(self.graph.edges, self._list()))

    def __repr__(self) -> str:
        return f"EdgeScores({len(self)} edges)"

    def __reduce__(self):  # pickled by shape: the shared graph instance is rebuilt, not its tables
        g = self.graph
        return (_edge_scores_of_shape, (type(g), g.n_layers, g.n_heads, g.has_mlp, g.parallel, self.tensor))


def _edge_scores_of_shape(cls: type, n_layers: int, n_heads: int, has_mlp: bool, parallel: bool,
                          tensor: torch.Tensor) -> EdgeScores:
    return EdgeScores(_graph_of_shape(cls, n_layers, n_heads, has_mlp, parallel), tensor)


__all__ = ["EdgeScores", "Graph", "Node", "head_name", "mlp_name", "parse_node", "split_edge"]
