"""Activation patching of nodes and path patching of edges.

Edge interventions follow one rule: the input a receiver reads is the residual stream minus, for
every patched edge ``s -> r``, the sender's output in this run minus its replacement value
(``corrupt``, ``mean``...). Head receivers are patched separately for their query, key and value
inputs (the input is re-normalised with the block's own ``ln1`` and projected with that head's
weights); MLP receivers through the input of ``ln2``; ``logits`` through the final residual.
Nothing else is frozen, so downstream nodes recompute. Many edge sets are scored side by side
(stacked along the batch) and re-run only from the earliest receiver layer they touch.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import torch
from tqdm.auto import tqdm

from shared.engine.ablation import ablation_values, mask_rows, node_mask, one_at_a_time, score_node_masks, start_chunks
from shared.engine.runs import Activations, Values, final_residual, norm_module, record, stacked_weights
from shared.engine.batch import PromptBatch
from shared.errors import ParameterError
from shared.engine.graph import Graph, parse_node
from shared.engine.metrics import Metric, resolve


# --------------------------------------------------------------------------------------------
# node activation patching
# --------------------------------------------------------------------------------------------

def activation_patching(bridge: Any, batch: PromptBatch, direction: str = "denoising",
                        nodes: Optional[Sequence[str]] = None, metric: "Metric | str | None" = None,
                        positions: Optional[Sequence[int]] = None, progress: bool = False) -> dict[str, float]:
    """Patch each node's output alone between the clean and corrupted runs; return the metric.

    ``denoising`` runs the corrupted prompts with one node taken from the clean run; ``noising``
    runs the clean prompts with one node taken from the corrupted run. ``positions`` limits the
    patch to some token positions.
    """
    if direction not in ("noising", "denoising"):
        raise ParameterError(f"direction must be 'noising' or 'denoising', not {direction!r}.")
    graph = Graph.of(bridge)
    nodes = list(graph.components) if nodes is None else graph.check_nodes(nodes)
    clean, corrupt = record(bridge, batch.clean), record(bridge, batch.corrupt)
    base, source = (clean, corrupt) if direction == "noising" else (corrupt, clean)
    masks = torch.stack([node_mask(graph, [n]) for n in nodes])
    scores = score_node_masks(bridge, batch, masks, source, metric, base=base,
                              positions=None if positions is None else torch.as_tensor(positions),
                              progress=progress)
    return {n: float(s) for n, s in zip(nodes, scores)}


# --------------------------------------------------------------------------------------------
# edge masks
# --------------------------------------------------------------------------------------------

class _EdgeIndex:
    """Sender/receiver tables of a graph for vectorised edge interventions (use :meth:`of`: cached)."""

    @classmethod
    def of(cls, graph: Graph) -> "_EdgeIndex":
        index = graph.__dict__.get("_edge_index")
        if index is None:
            index = graph.__dict__["_edge_index"] = cls(graph)
        return index

    def __init__(self, graph: Graph):
        self.graph = graph
        self.senders = graph.senders
        self.s_col = {s: i for i, s in enumerate(self.senders)}
        self.receivers = graph.receivers
        self.r_col = {r: i for i, r in enumerate(self.receivers)}
        table = torch.full((len(self.senders), len(self.receivers)), -1, dtype=torch.long)
        mask = graph.edge_mask()
        table.T[mask.T] = torch.arange(int(mask.sum()))  # edges are receiver-major, senders a prefix
        self.table = table
        # sender column ranges available before each layer's attention / MLP / the logits
        n_l, H = graph.n_layers, graph.n_heads
        self.head_cols = [[self.s_col[f"a{l}.h{h}"] for h in range(H)] for l in range(n_l)]
        self.mlp_col = [self.s_col.get(f"m{l}") for l in range(n_l)]
        self.attn_recv = [[self.r_col[f"a{l}.h{h}:{p}"] for h in range(H) for p in "qkv"] for l in range(n_l)]
        self.mlp_recv = [self.r_col.get(f"m{l}") for l in range(n_l)]

    def receiver_layer(self, r_col: int) -> int:
        name = self.receivers[r_col]
        return self.graph.n_layers if name == "logits" else parse_node(name.split(":")[0]).layer

    def sender_receiver_mask(self, masks: torch.Tensor) -> torch.Tensor:
        """[C, n_edges] -> [C, senders, receivers] (False where there is no edge)."""
        safe = self.table.clamp(min=0)
        return masks[:, safe] & (self.table >= 0)


def edge_setup(bridge: Any, batch: PromptBatch, metric: "Metric | str | None") -> tuple[Metric, Graph, _EdgeIndex]:
    """What every edge method checks and builds first: the resolved metric, the model's graph and its
    edge tables (stops with one sentence on a model or batch the edge methods cannot take)."""
    metric = resolve(metric)
    check_edge_support(bridge)
    batch.check_model(bridge)
    graph = Graph.of(bridge)
    return metric, graph, _EdgeIndex.of(graph)


def check_edge_support(bridge: Any) -> None:
    """Edge methods recompute q/k/v per query head, so grouped-query attention must be ungrouped first."""
    kv = getattr(bridge.cfg, "n_key_value_heads", None)
    if kv is not None and kv != bridge.cfg.n_heads:
        raise ParameterError(f"Edge-level methods need one key/value head per query head, and this model shares "
                             f"{kv} key/value heads among {bridge.cfg.n_heads} query heads (grouped-query "
                             f"attention); load it with load_model(name, ungroup_kv=True) (same outputs).")


def edge_mask(graph: Graph, edges: Iterable[str]) -> torch.Tensor:
    """Boolean row over ``graph.edges``: True for the listed edges."""
    mask = torch.zeros(len(graph.edges), dtype=torch.bool)
    for e in graph.check_edges(edges):
        mask[graph.edge_index[e]] = True
    return mask


def score_edge_masks(bridge: Any, batch: PromptBatch, masks: torch.Tensor, values: Values,
                     metric: "Metric | str | None" = None, base: Optional[Activations] = None,
                     max_rows: int = 2048, progress: bool = False, per_prompt: bool = False) -> torch.Tensor:
    """Metric of the run on ``base`` (default: clean prompts) with the edges of each mask row
    patched to ``values`` (True = patched); returns ``[n_candidates]`` (or ``[C, batch]``)."""
    metric, graph, idx_tables = edge_setup(bridge, batch, metric)
    masks = mask_rows(masks, len(graph.edges), "Edge")
    base = record(bridge, batch.clean) if base is None else base
    n, pos = batch.clean.shape
    recv_layer = torch.tensor([idx_tables.receiver_layer(i) for i in range(len(idx_tables.receivers))])
    sr_all = idx_tables.sender_receiver_mask(masks)  # [C, S, R]
    touched = sr_all.any(1)  # [C, R]
    starts, chunks = start_chunks(touched, recv_layer, graph.n_layers, max(1, max_rows // n))
    out = torch.empty(masks.shape[0], n) if per_prompt else torch.empty(masks.shape[0])
    for idx in tqdm(chunks, desc="edge candidates", disable=not progress, leave=False):
        start = int(starts[idx[0]])
        sr = sr_all[idx].to(base.resid[0].device)
        with torch.no_grad():
            final = _run_edges(bridge, batch, base, values, sr, start, idx_tables)
            scores = metric(bridge, final.view(len(idx), n, -1), batch)
        out[idx] = (scores if per_prompt else scores.mean(-1)).float().cpu()
    return out


def _run_edges(bridge: Any, batch: PromptBatch, base: Activations, values: Values, sr: torch.Tensor,
               start: int, t: _EdgeIndex, grad_deltas: Optional[dict] = None) -> torch.Tensor:
    """One stacked run: ``sr`` [C, S, R] says which sender->receiver edges are patched."""
    graph = t.graph
    C = sr.shape[0]
    n = batch.clean.shape[0]
    H = graph.n_heads
    diffs: dict[int, torch.Tensor] = {}  # sender column -> [C or 1, n, pos, d] (current - value)
    needed = sr.any(0).any(1)  # senders used by some candidate

    def expand(x):  # [n|1, ...] -> [1, n|1, ...]
        return x.unsqueeze(0)

    w = stacked_weights(bridge)
    value_out = {l: values.head_out(w["W_O"], l) for l in range(graph.n_layers)}
    diffs[t.s_col["input"]] = expand(base.embed - values.embed)
    for l in range(min(start, graph.n_layers)):
        cur = torch.einsum("bphe,hed->bphd", base.z[l], w["W_O"][l])
        head_diff = cur - value_out[l]
        for h, col in enumerate(t.head_cols[l]):
            if needed[col]:
                diffs[col] = expand(head_diff[:, :, h])
        if graph.has_mlp and needed[t.mlp_col[l]]:
            diffs[t.mlp_col[l]] = expand(base.mlp[l] - values.mlp[l])

    def delta(r_cols: list[int]) -> Optional[torch.Tensor]:
        """Sum of patched sender diffs for these receivers: [C, n, pos, len(r_cols), d] or None."""
        m = sr[:, :, r_cols]  # [C, S, R']
        cols = [s for s in diffs if m[:, s].any()]
        if not cols:
            return None
        D = torch.stack([diffs[s].expand(C, -1, -1, -1) for s in cols], 3)  # [C, n, pos, S', d]
        return torch.einsum("cnpsd,csr->cnprd", D, m[:, cols].to(D.dtype))

    def patch_input(x: torch.Tensor, r_col: int, grad_key: Any) -> torch.Tensor:
        """The input of one receiver (an MLP or the logits) minus its patched senders' differences,
        plus any extra offset in ``grad_deltas``."""
        d = delta([r_col])
        extra = grad_deltas.get(grad_key) if grad_deltas is not None else None
        if d is None and extra is None:
            return x
        y = x.view(C, n, *x.shape[1:])
        if d is not None:
            y = y - d[:, :, :, 0]
        if extra is not None:
            y = y + extra
        return y.reshape(x.shape)

    state: dict = {}
    hooks = []
    for l in range(start, graph.n_layers):
        block = bridge.blocks[l]
        ln1 = norm_module(block, "ln1")

        def keep_resid(x, hook, l=l):
            state[("resid", l)] = x
            return x

        def qkv_hook(x, hook, l=l, port=None, ln1=ln1):
            key = ("attn_delta", l)
            if key not in state:
                state[key] = delta(t.attn_recv[l])
            d = state[key]
            if d is None and (grad_deltas is None or ("qkv", l) not in grad_deltas):
                return x
            resid = state[("resid", l)].view(C, n, *state[("resid", l)].shape[1:])
            inp = resid.unsqueeze(3).expand(-1, -1, -1, 3 * H, -1)
            if d is not None:
                inp = inp - d
            inp = inp.view(C, n, inp.shape[2], H, 3, -1)[:, :, :, :, "qkv".index(port)]
            if grad_deltas is not None and ("qkv", l) in grad_deltas:
                inp = inp + grad_deltas[("qkv", l)][..., "qkv".index(port), :]
            W = w[f"W_{port.upper()}"][l]
            b = w[f"b_{port.upper()}"][l]
            new = torch.einsum("cnphd,hde->cnphe", ln1(inp), W) + b
            return new.reshape(x.shape).to(x.dtype)

        def z_hook(x, hook, l=l):
            cur = torch.einsum("bphe,hed->bphd", x, w["W_O"][l]).view(C, n, x.shape[1], H, -1)
            vals = value_out[l].unsqueeze(0)
            diff = cur - vals
            for h, col in enumerate(t.head_cols[l]):
                if needed[col] or grad_deltas is not None:
                    diffs[col] = diff[:, :, :, h]
            return x

        def mlp_in_hook(x, hook, l=l):
            return patch_input(x, t.mlp_recv[l], ("mlp", l))

        def mlp_out_hook(x, hook, l=l):
            col = t.mlp_col[l]
            if needed[col] or grad_deltas is not None:
                diffs[col] = x.view(C, n, *x.shape[1:]) - values.mlp[l].unsqueeze(0)
            return x

        hooks.append((f"blocks.{l}.hook_resid_pre", keep_resid))
        for port in "qkv":
            hooks.append((f"blocks.{l}.attn.hook_{port}", lambda x, hook, f=qkv_hook, p=port: f(x, hook, port=p)))
        hooks.append((f"blocks.{l}.attn.hook_z", z_hook))
        if graph.has_mlp:
            hooks.append((f"blocks.{l}.ln2.hook_in", mlp_in_hook))
            hooks.append((f"blocks.{l}.hook_mlp_out", mlp_out_hook))

    def final_hook(x):
        return patch_input(x, t.r_col["logits"], "logits")

    resid = base.resid[start].repeat(C, *[1] * (base.resid[start].dim() - 1))
    return final_residual(bridge, resid, start, batch.answer_pos.repeat(C), hooks, final_hook=final_hook)


def score_circuit_edges(bridge: Any, batch: PromptBatch, edges: Iterable[str], values: Values,
                        metric: "Metric | str | None" = None, base: Optional[Activations] = None) -> float:
    """Metric with every edge outside ``edges`` patched to ``values``."""
    graph = Graph.of(bridge)
    keep = edge_mask(graph, edges)
    return float(score_edge_masks(bridge, batch, ~keep, values, metric, base=base)[0])


def path_patching(bridge: Any, batch: PromptBatch, edges: Optional[Sequence[str]] = None,
                  metric: "Metric | str | None" = None, ablation: str = "corrupt",
                  values: Optional[Values] = None, progress: bool = True) -> dict[str, float]:
    """Patch each edge alone (sender's contribution to that receiver input only) in the clean run;
    return the metric's drop from the clean value for each edge (positive = the edge helps)."""
    graph = Graph.of(bridge)
    edges = list(graph.edges) if edges is None else graph.check_edges(edges)
    masks = [edge_mask(graph, [e]) for e in edges]
    values = ablation_values(bridge, batch, ablation) if values is None else values
    clean, scores = one_at_a_time(score_edge_masks, bridge, batch, masks, values, metric, "Path patching",
                                  progress=progress)
    return {e: clean - float(s) for e, s in zip(edges, scores)}


__all__ = ["activation_patching", "check_edge_support", "edge_mask", "edge_setup", "path_patching", "score_circuit_edges", "score_edge_masks"]
