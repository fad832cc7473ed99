"""Node interventions (zero, mean, resample, patch) on a TransformerBridge, and the knockout sweep.

Built on :mod:`shared.engine.runs` (recorded runs, re-running from a cached residual):

* :class:`~shared.engine.runs.Values` holds replacement outputs for every node: zeros, means over a reference set
  (computed once, shapes ``[1, pos or 1, ...]`` so they broadcast to any batch size), or the
  activations of a corrupted / resampled run.
* :func:`score_node_masks` evaluates many node-ablation candidates side by side: candidates that
  first differ from the cached run at layer L are stacked along the batch and re-run from L.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

import torch
from tqdm.auto import tqdm

from shared.engine.batch import PromptBatch
from shared.errors import ParameterError
from shared.engine.graph import Graph, parse_node
from shared.engine.metrics import Metric, resolve
from shared.engine.runs import Activations, Values, final_residual, record

ABLATIONS = ("zero", "mean", "resample", "corrupt")


def mean_values(bridge: Any, reference: torch.Tensor, per_position: bool = False,
                chunk: int = 64) -> Values:
    """Mean node outputs over a reference token set, computed once (in chunks of ``chunk`` prompts).

    With ``per_position`` the means keep the position axis (the reference must then have the same
    length as the prompts they replace); otherwise they average over positions too.
    """
    if reference.dim() != 2 or reference.shape[0] == 0:
        raise ParameterError("The reference set for mean ablation must be a non-empty [batch, pos] token tensor.")
    total: Optional[Values] = None
    n = reference.shape[0]
    dims = (0,) if per_position else (0, 1)
    for i in range(0, n, chunk):
        acts = record(bridge, reference[i:i + chunk])
        s = lambda t: None if t is None else t.sum(dim=dims, keepdim=True)
        part = Values([s(t) for t in acts.z], [s(t) for t in acts.mlp], s(acts.embed))
        if total is None:
            total = part
        else:
            add = lambda a, b: None if a is None else a + b
            total = Values([add(a, b) for a, b in zip(total.z, part.z)],
                           [add(a, b) for a, b in zip(total.mlp, part.mlp)], total.embed + part.embed)
    count = n if per_position else n * reference.shape[1]
    div = lambda t: None if t is None else t / count
    return Values([div(t) for t in total.z], [div(t) for t in total.mlp], div(total.embed), "mean")


def zero_values(bridge: Any) -> Values:
    cfg = bridge.cfg
    dev = bridge.W_U.device
    z = [torch.zeros(1, 1, cfg.n_heads, cfg.d_head, device=dev) for _ in range(cfg.n_layers)]
    mlp = [None if cfg.attn_only else torch.zeros(1, 1, cfg.d_model, device=dev) for _ in range(cfg.n_layers)]
    return Values(z, mlp, torch.zeros(1, 1, cfg.d_model, device=dev), "zero")


def ablation_values(bridge: Any, batch: PromptBatch, kind: str = "mean",
                    reference: Optional[torch.Tensor] = None, seed: int = 0,
                    per_position: bool = False) -> Values:
    """Replacement values for ``batch``: ``zero``; ``mean`` over ``reference`` (default: the clean
    and corrupted prompts together); ``corrupt`` (each prompt's own corrupted run — patching);
    ``resample`` (the corrupted run of a seeded random other prompt)."""
    if kind not in ABLATIONS:
        raise ParameterError(f"Unknown ablation {kind!r}; use one of {ABLATIONS}.")
    batch.check_model(bridge)
    if kind == "zero":
        return zero_values(bridge)
    if kind == "mean":
        ref = torch.cat([batch.clean, batch.corrupt]) if reference is None else reference
        if per_position and ref.shape[1] != batch.clean.shape[1]:
            raise ParameterError(
                f"Per-position means need reference prompts of the batch's length {batch.clean.shape[1]}, "
                f"got {ref.shape[1]}.")
        return mean_values(bridge, ref, per_position=per_position)
    acts = record(bridge, batch.corrupt)
    if kind == "corrupt":
        return Values(acts.z, acts.mlp, acts.embed, "corrupt")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(batch), generator=g).to(batch.clean.device)
    p = lambda t: None if t is None else t[perm]
    return Values([p(t) for t in acts.z], [p(t) for t in acts.mlp], p(acts.embed), "resample")


# --------------------------------------------------------------------------------------------
# node-ablation candidates, scored side by side
# --------------------------------------------------------------------------------------------

def _layout(graph: Graph) -> tuple[list[tuple[int, int]], dict[str, int]]:
    """Each component's (layer, head or -1) and its column in a node mask."""
    where = []
    for name in graph.components:
        node = parse_node(name)
        where.append((node.layer, node.head))
    return where, {n: i for i, n in enumerate(graph.components)}


def node_mask(graph: Graph, ablated: Iterable[str]) -> torch.Tensor:
    """Boolean row over ``graph.components``: True where the node is ablated."""
    _, col = _layout(graph)
    mask = torch.zeros(len(graph.components), dtype=torch.bool)
    for name in ablated:
        if name not in col:
            parse_node(name, graph.n_layers, graph.n_heads)
            raise ParameterError(f"Node {name!r} cannot be ablated (only heads and MLPs can).")
        mask[col[name]] = True
    return mask


def mask_rows(masks: Any, width: int, what: str) -> torch.Tensor:
    """Candidate masks as a boolean ``[C, width]`` tensor (one row may be given as a vector)."""
    masks = torch.as_tensor(masks, dtype=torch.bool)
    if masks.dim() == 1:
        masks = masks.unsqueeze(0)
    if masks.shape[1] != width:
        raise ParameterError(f"{what} masks need {width} columns, got {masks.shape[1]}.")
    return masks


def start_chunks(touched: torch.Tensor, layer_of: torch.Tensor, n_layers: int,
                 per_chunk: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The first layer each candidate changes (``touched`` [C, columns], ``layer_of`` each column's
    layer; ``n_layers`` when it changes nothing) and the candidates grouped by that layer in chunks of
    at most ``per_chunk``, so that each chunk is re-run together from its start layer."""
    never = torch.full_like(touched, n_layers + 1, dtype=torch.long)
    starts = torch.where(touched, layer_of.expand_as(touched), never).min(1).values.clamp(max=n_layers)
    order = torch.argsort(starts, stable=True)
    groups = [order[starts[order] == s] for s in torch.unique(starts)]
    return starts, [g[i:i + per_chunk] for g in groups for i in range(0, len(g), per_chunk)]


def _check_values(values: Values, n: int, pos: int) -> None:
    t = values.z[0]
    if t.shape[0] not in (1, n) or t.shape[1] not in (1, pos):
        raise ParameterError(
            f"Replacement values of shape {tuple(t.shape[:2])} (batch, pos) do not fit prompts of shape ({n}, {pos}).")


def score_node_masks(bridge: Any, batch: PromptBatch, masks: torch.Tensor, values: Values,
                     metric: "Metric | str | None" = None, base: Optional[Activations] = None,
                     positions: Optional[torch.Tensor] = None, max_rows: int = 4096,
                     progress: bool = False, per_prompt: bool = False) -> torch.Tensor:
    """Metric of the run on ``base`` (default: the clean prompts) with the nodes of each mask row
    replaced by ``values``; returns ``[n_candidates]`` (or ``[n_candidates, batch]``).

    ``masks`` is ``[C, len(graph.components)]`` (True = replace). ``positions`` optionally limits
    the replacement to a boolean set of token positions. Candidates are re-run only from the first
    layer they change, ``max_rows // batch`` at a time.
    """
    metric = resolve(metric)
    graph = Graph.of(bridge)
    masks = mask_rows(masks, len(graph.components), "Node")
    n, pos = batch.check_model(bridge).clean.shape
    _check_values(values, n, pos)
    base = record(bridge, batch.clean) if base is None else base
    where, _ = _layout(graph)
    layer_of = torch.tensor([l for l, _ in where])
    dev = base.resid[0].device
    pos_mask = None
    if positions is not None:
        pos_mask = torch.zeros(pos, dtype=torch.bool, device=dev)
        pos_mask[torch.as_tensor(positions, device=dev)] = True
    starts, chunks = start_chunks(masks, layer_of, graph.n_layers, max(1, max_rows // n))
    out = torch.empty(masks.shape[0], n) if per_prompt else torch.empty(masks.shape[0])
    H = graph.n_heads
    for idx in tqdm(chunks, desc="node candidates", disable=not progress, leave=False):
        sub = masks[idx].to(dev)
        C = sub.shape[0]
        start = int(starts[idx[0]])
        hooks = []
        for l in range(start, graph.n_layers):
            cols = [i for i, (ll, _) in enumerate(where) if ll == l]
            head_m = sub[:, cols[:H]]  # [C, H]
            if head_m.any():
                hooks.append((f"blocks.{l}.attn.hook_z", _replace_hook(head_m[:, None, None, :, None], values.z[l], C, pos_mask)))
            if graph.has_mlp and sub[:, cols[H]].any():
                hooks.append((f"blocks.{l}.hook_mlp_out", _replace_hook(sub[:, cols[H]][:, None, None, None], values.mlp[l], C, pos_mask)))
        resid = base.resid[start].repeat(C, *[1] * (base.resid[start].dim() - 1))
        with torch.no_grad():
            final = final_residual(bridge, resid, start, batch.answer_pos.repeat(C), hooks)
            scores = metric(bridge, final.view(C, n, -1), batch)
        out[idx] = (scores if per_prompt else scores.mean(-1)).float().cpu()
    return out


def _replace_hook(mask: torch.Tensor, value: torch.Tensor, C: int, pos_mask: Optional[torch.Tensor]):
    """Hook replacing, in candidate c's copy of the batch, the entries where ``mask[c]`` is set."""

    def hook(x, hook):
        shaped = x.view(C, -1, *x.shape[1:])
        m = mask
        if pos_mask is not None:
            m = m & pos_mask.view(1, 1, -1, *[1] * (shaped.dim() - 3))
        return torch.where(m, value.unsqueeze(0).to(x.dtype), shaped).view_as(x)

    return hook


def score_circuit_nodes(bridge: Any, batch: PromptBatch, nodes: Iterable[str], values: Values,
                        metric: "Metric | str | None" = None, base: Optional[Activations] = None) -> float:
    """Metric with every head/MLP outside ``nodes`` replaced by ``values``."""
    graph = Graph.of(bridge)
    keep = set(graph.check_nodes(nodes))
    mask = node_mask(graph, [c for c in graph.components if c not in keep])
    return float(score_node_masks(bridge, batch, mask, values, metric, base=base)[0])


@dataclass
class KnockoutResult:
    """Metric with each node knocked out alone, next to the intact model's value."""

    nodes: list[str]
    scores: torch.Tensor
    full: float
    ablation: str

    @property
    def effects(self) -> torch.Tensor:
        """Drop of the metric when each node is knocked out (positive = the node helps)."""
        return self.full - self.scores

    def as_dict(self) -> dict[str, float]:
        return {n: float(e) for n, e in zip(self.nodes, self.effects)}


def knockout_sweep(bridge: Any, batch: PromptBatch, metric: "Metric | str | None" = None,
                   ablation: str = "mean", values: Optional[Values] = None,
                   nodes: Optional[Sequence[str]] = None, positions: Optional[torch.Tensor] = None,
                   progress: bool = True) -> KnockoutResult:
    """Knock out every head and MLP (or ``nodes``) one at a time; return the metric for each."""
    graph = Graph.of(bridge)
    nodes = list(graph.components) if nodes is None else graph.check_nodes(nodes)
    masks = [node_mask(graph, [n]) for n in nodes]
    values = ablation_values(bridge, batch, ablation) if values is None else values
    full, scores = one_at_a_time(score_node_masks, bridge, batch, masks, values, metric, "The knockout sweep",
                                 positions=positions, progress=progress)
    return KnockoutResult(nodes, scores, full, values.kind)


def one_at_a_time(score_masks: Callable, bridge: Any, batch: PromptBatch, masks: list[torch.Tensor], values: Values,
                  metric: "Metric | str | None", caller: str, **kw: Any) -> tuple[float, torch.Tensor]:
    """The metric of the intact run and with each of ``masks`` alone (``score_masks`` is
    :func:`score_node_masks` or the edge version), from one recorded clean run."""
    if not masks:
        raise ParameterError(f"{caller} got an empty list to score.")
    rows = torch.stack([torch.zeros_like(masks[0])] + list(masks))
    out = score_masks(bridge, batch, rows, values, metric, base=record(bridge, batch.clean), **kw)
    return float(out[0]), out[1:]


__all__ = [
    "ABLATIONS", "KnockoutResult", "ablation_values", "knockout_sweep", "mask_rows", "mean_values", "node_mask",
    "one_at_a_time", "score_circuit_nodes", "score_node_masks", "start_chunks", "zero_values",
]
