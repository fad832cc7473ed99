"""Attention patterns of named heads: the one place the book reads ``hook_pattern``."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from shared.engine.graph import Graph, parse_node
from shared.errors import ParameterError


@torch.no_grad()
def attention_patterns(bridge: Any, tokens: torch.Tensor, heads: Optional[Sequence[str]] = None) -> torch.Tensor:
    """Attention patterns ``[batch, len(heads), query, key]`` (float32, CPU) of the named heads
    (``"a1.h0"``; default: every head, layer-major) on ``tokens`` [batch, pos], from one forward pass."""
    graph = Graph.of(bridge)
    heads = graph.heads() if heads is None else list(heads)
    nodes = [parse_node(h, graph.n_layers, graph.n_heads) for h in heads]
    if not nodes or any(n.kind != "head" for n in nodes):
        raise ParameterError(f"Attention patterns need a non-empty list of attention heads, got {heads}.")
    layers = sorted({n.layer for n in nodes})
    store: dict[int, torch.Tensor] = {}

    def keep(layer: int):
        def hook(x, hook):
            store[layer] = x.detach()
            return x
        return hook

    bridge.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{l}.attn.hook_pattern", keep(l)) for l in layers])
    return torch.stack([store[n.layer][:, n.head] for n in nodes], dim=1).float().cpu()


__all__ = ["attention_patterns"]
