"""Circuit search by pruning: iterative node pruning and greedy ACDC-style edge pruning.

Both make decisions one node/edge at a time in a fixed order (so results are deterministic), but
score the next few candidates side by side against the current circuit: the first candidate that
may go is accepted and the ones after it are scored again, which reproduces the one-at-a-time
result exactly with fewer passes.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from tqdm.auto import tqdm

from shared.engine.ablation import ablation_values, score_node_masks
from shared.engine.runs import Values, record
from shared.engine.batch import PromptBatch
from shared.engine.circuit import Circuit
from shared.errors import ParameterError
from shared.engine.graph import Graph, split_edge
from shared.engine.metrics import Metric, resolve
from shared.engine.patching import score_edge_masks


def _setup(bridge: Any, batch: PromptBatch, ablation: str, values: Optional[Values]):
    """The graph, the replacement values (computed once) and the recorded clean run."""
    values = ablation_values(bridge, batch, ablation) if values is None else values
    return Graph.of(bridge), values, record(bridge, batch.clean)


def _full_and_empty(score_masks: Callable, bridge: Any, batch: PromptBatch, size: int, values: Values,
                    metric: Metric, base: Any) -> tuple[float, float]:
    """Metric of the intact model and of the model with all ``size`` nodes/edges ablated, in one run."""
    masks = torch.stack([torch.zeros(size, dtype=torch.bool), torch.ones(size, dtype=torch.bool)])
    ends = score_masks(bridge, batch, masks, values, metric, base=base)
    return float(ends[0]), float(ends[1])


def _greedy(order: list[int], state: torch.Tensor, try_remove: Callable[[torch.Tensor], torch.Tensor],
            ok: Callable[[float], bool], lookahead: int, record_score: dict, names: list[str],
            bar: Any = None) -> bool:
    """One sweep over ``order`` (indices into ``state``, True = kept). Returns whether it changed."""
    changed = False
    i = 0
    order = [j for j in order if state[j]]
    while i < len(order):
        group = order[i:i + lookahead]
        cands = state.unsqueeze(0).repeat(len(group), 1)
        for r, j in enumerate(group):
            cands[r, j] = False
        scores = try_remove(cands)
        taken = None
        for r, j in enumerate(group):
            record_score[names[j]] = float(scores[r])
            if ok(float(scores[r])):
                taken = r
                break
        if bar is not None:
            bar.update(len(group) if taken is None else taken + 1)
        if taken is None:
            i += len(group)
        else:
            state[group[taken]] = False
            changed = True
            i += taken + 1
    return changed


def prune_nodes(bridge: Any, batch: PromptBatch, metric: "Metric | str | None" = None, threshold: float = 0.8,
                ablation: str = "mean", values: Optional[Values] = None, order: str = "backward",
                relative_to: str = "normalized", max_sweeps: int = 10, lookahead: int = 8,
                progress: bool = True) -> Circuit:
    """Iterative node pruning over heads and MLPs.

    Sweeps over the circuit's nodes (``order="backward"``: last layer first, then forward, then
    backward... or starting ``"forward"``) and removes a node when the circuit without it still
    scores at least ``threshold``, until a sweep removes nothing. The score is relative to the
    intact model: ``relative_to="normalized"`` uses (M - M_empty) / (M_full - M_empty) with
    M_empty the metric with every node ablated; ``"full"`` uses M / M_full.
    """
    metric = resolve(metric)
    if not metric.higher_is_better:
        raise ParameterError(f"Node pruning needs a metric where higher is better; {metric.name} is not.")
    if order not in ("backward", "forward"):
        raise ParameterError(f"order must be 'backward' or 'forward', not {order!r}.")
    if relative_to not in ("normalized", "full"):
        raise ParameterError(f"relative_to must be 'normalized' or 'full', not {relative_to!r}.")
    if not 0 < threshold <= 1.5:
        raise ParameterError(f"threshold is a fraction of the full model's metric, got {threshold}.")
    graph, values, base = _setup(bridge, batch, ablation, values)
    n = len(graph.components)
    full, empty = _full_and_empty(score_node_masks, bridge, batch, n, values, metric, base)
    if relative_to == "normalized":
        span = full - empty
        if abs(span) < 1e-9:
            raise ParameterError("Ablating every node leaves the metric unchanged; there is no circuit to find.")
        rel = lambda m: (m - empty) / span
    else:
        if abs(full) < 1e-9:
            raise ParameterError("The full model's metric is 0; use relative_to='normalized'.")
        rel = lambda m: m / full

    state = torch.ones(n, dtype=torch.bool)  # True = kept
    last_scores: dict[str, float] = {}

    def try_remove(kept: torch.Tensor) -> torch.Tensor:
        return score_node_masks(bridge, batch, ~kept, values, metric, base=base).apply_(rel)

    forward_order = list(range(n))
    direction = order
    sweeps = 0
    bar = tqdm(desc="node pruning", disable=not progress, leave=False)
    unchanged = 0
    while sweeps < max_sweeps:
        sweep_order = forward_order[::-1] if direction == "backward" else forward_order
        changed = _greedy(sweep_order, state, try_remove, lambda s: s >= threshold, lookahead, last_scores,
                          graph.components, bar)
        sweeps += 1
        unchanged = 0 if changed else unchanged + 1
        if not changed and sweeps >= 2:
            break
        direction = "forward" if direction == "backward" else "backward"
    bar.close()
    kept = [c for c, k in zip(graph.components, state) if k]
    final = float(score_node_masks(bridge, batch, ~state, values, metric, base=base)[0])
    return Circuit(nodes=kept, scores=last_scores, method="node_pruning", metric=metric.name, score=final,
                   full=full, info={"threshold": threshold, "order": order, "relative_to": relative_to,
                                    "ablation": values.kind, "sweeps": sweeps, "empty": empty,
                                    "relative_score": rel(final)})


def acdc(bridge: Any, batch: PromptBatch, metric: "Metric | str | None" = None, threshold: float = 0.02,
         ablation: str = "corrupt", values: Optional[Values] = None, lookahead: int = 16,
         progress: bool = True) -> Circuit:
    """Greedy ACDC-style edge pruning.

    Visits receivers from the logits down (reverse forward order) and, for each, its incoming edges
    from the latest sender back; an edge is removed (patched to ``values``) when the metric drops by
    less than ``threshold`` times |M_full - M_empty| from the current circuit's value. Receivers
    whose node no longer sends any kept edge lose all their incoming edges without a test.
    """
    metric = resolve(metric)
    if not metric.higher_is_better:
        raise ParameterError(f"ACDC here needs a metric where higher is better; {metric.name} is not.")
    if threshold < 0:
        raise ParameterError(f"threshold must be non-negative, got {threshold}.")
    graph, values, base = _setup(bridge, batch, ablation, values)
    E = len(graph.edges)
    full, empty = _full_and_empty(score_edge_masks, bridge, batch, E, values, metric, base)
    tol = threshold * max(abs(full - empty), 1e-9)
    state = torch.ones(E, dtype=torch.bool)
    current = [full]
    last_scores: dict[str, float] = {}

    def try_remove(kept: torch.Tensor) -> torch.Tensor:
        return score_edge_masks(bridge, batch, ~kept, values, metric, base=base)

    def ok(s: float) -> bool:
        if s >= current[0] - tol:
            current[0] = s
            return True
        return False

    by_receiver: dict[str, list[int]] = {}
    for i, e in enumerate(graph.edges):
        s, r, p = split_edge(e)
        by_receiver.setdefault(r if p is None else f"{r}:{p}", []).append(i)
    bar = tqdm(total=E, desc="ACDC edges", disable=not progress, leave=False)
    for receiver in reversed(graph.receivers):
        idx = by_receiver.get(receiver, [])
        node = receiver.split(":")[0]
        if node != "logits":
            out_edges = [i for i, e in enumerate(graph.edges) if e.startswith(node + "->")]
            if not state[out_edges].any():
                state[idx] = False
                bar.update(len(idx))
                continue
        _greedy(list(reversed(idx)), state, try_remove, ok, lookahead, last_scores, graph.edges, bar)
    bar.close()
    kept = [e for e, k in zip(graph.edges, state) if k]
    final = float(score_edge_masks(bridge, batch, ~state, values, metric, base=base)[0])
    effects = {e: current_drop for e, current_drop in last_scores.items()}
    circuit = Circuit.from_edges(kept, scores=effects, method="acdc", metric=metric.name, score=final, full=full,
                                 info={"threshold": threshold, "ablation": values.kind, "empty": empty})
    return circuit


__all__ = ["acdc", "prune_nodes"]
