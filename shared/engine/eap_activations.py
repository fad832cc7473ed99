"""EAP-IG over activations: integrated gradients taken along each sender's own output.

Plain EAP-IG (:func:`shared.engine.eap.eap_ig`) moves the *input embeddings* from the corrupted prompt
to the clean one and averages the gradients met on the way. The variant here (MIB's
"EAP-IG-activations", in the style of Marks et al. 2024) moves one group of senders at a time:
the embeddings, one layer's attention heads, or one MLP. For a group ``g`` and ``alpha = k / steps``
(k = 1 .. steps) the clean prompts run with the group's outputs set to

    out_g(alpha) = out_g(value) + alpha * (out_g(clean) - out_g(value))

(``value``: the corrupted run, or a mean/zero ablation), every other node recomputing from there.
The gradient of the metric is read at every receiver input downstream of the group, and

    score(s -> r) = (out_s(clean) - out_s(value)) . mean over alpha of dM/d in_r(alpha)

for each sender ``s`` of the group, summed over positions and averaged over prompts: the same
estimated *drop* as :func:`shared.engine.eap.eap`, with the same edge names. With ``steps=1`` the
only point is ``alpha = 1``, the clean run, so the scores are plain EAP's. As ``steps`` grows the
scores of one group's edges add up to the metric's drop when that whole group is patched
(integrated gradients' completeness), which first-order EAP misses where a softmax saturates.

Cost: ``steps`` gradient passes per group (1 + layers, or 1 + 2 * layers with MLPs); a group in layer
``l`` re-runs only the blocks from ``l`` on.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from tqdm.auto import tqdm

from shared.engine.ablation import ablation_values
from shared.engine.batch import PromptBatch
from shared.engine.eap import _edge_scores, _grab, _no_weight_grads, _offset, _sender_diffs
from shared.engine.eap_gradients import head_input_grads, layer_inputs
from shared.engine.graph import EdgeScores, Graph
from shared.engine.metrics import Metric
from shared.engine.patching import _EdgeIndex, edge_setup
from shared.engine.runs import Activations, Values, final_residual, record, stacked_weights
from shared.errors import ParameterError


def sender_groups(graph: Graph) -> list[tuple[str, int]]:
    """The groups whose outputs are interpolated together, in forward order: ``("input", 0)``, then
    ``("attn", l)`` (all heads of layer l) and ``("mlp", l)`` for every layer."""
    out = [("input", 0)]
    for l in range(graph.n_layers):
        out.append(("attn", l))
        if graph.has_mlp:
            out.append(("mlp", l))
    return out


def _group_rows(graph: Graph, t: _EdgeIndex, kind: str, layer: int) -> list[int]:
    if kind == "input":
        return [t.s_col["input"]]
    if kind == "attn":
        return t.head_cols[layer]
    return [t.mlp_col[layer]]


def _interpolated_pass(bridge: Any, batch: PromptBatch, metric: Metric, clean: Activations, values: Values,
                       kind: str, layer: int, alpha: float):
    """One forward+backward on the clean prompts with group ``(kind, layer)`` set to its interpolated
    output. Returns, for the layers after the group, the gradients at ``hook_q/k/v`` with the block
    input; the gradients at the MLP inputs (``None`` where not needed) and at the final residual."""
    cfg = bridge.cfg
    L = cfg.n_layers
    start = layer
    keep: dict = {}
    hooks = []
    mix = lambda a, b: (b + alpha * (a - b)).expand_as(a).detach().clone().requires_grad_(True)  # noqa: E731
    if kind == "input":
        resid = mix(clean.embed, values.embed)
        first_attn = 0
    else:
        resid = clean.resid[layer]
        first_attn = layer + 1
        point = mix(clean.z[layer], values.z[layer]) if kind == "attn" else mix(clean.mlp[layer], values.mlp[layer])
        hook_name = f"blocks.{layer}.attn.hook_z" if kind == "attn" else f"blocks.{layer}.hook_mlp_out"
        hooks.append((hook_name, lambda x, hook: point))

    for l in range(first_attn, L):
        hooks.append((f"blocks.{l}.hook_resid_pre", _grab(keep, ("r", l))))
        hooks += [(f"blocks.{l}.attn.hook_{p}", _grab(keep, (p, l))) for p in "qkv"]
    mlp_layers = [] if cfg.attn_only else list(range(layer if kind == "attn" else first_attn, L))
    hooks += [(f"blocks.{l}.ln2.hook_in", _offset(keep, ("mlp_in", l))) for l in mlp_layers]
    final: dict = {}

    def final_hook(x):
        final["x"] = x
        return x

    with torch.enable_grad():
        out = final_residual(bridge, resid, start, batch.answer_pos, hooks, final_hook=final_hook)
        value = metric(bridge, out, batch).sum()
        targets = [keep[(p, l)] for l in range(first_attn, L) for p in "qkv"]
        targets += [keep[("mlp_in", l)] for l in mlp_layers] + [final["x"]]
        grads = torch.autograd.grad(value, targets, allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g.detach() for g, x in zip(grads, targets)]
    n_attn = 3 * (L - first_attn)
    attn = {l: (grads[3 * i:3 * i + 3], keep[("r", l)].detach()) for i, l in enumerate(range(first_attn, L))}
    mlp = {l: grads[n_attn + i].reshape(-1) for i, l in enumerate(mlp_layers)}
    return attn, mlp, grads[-1].reshape(-1)


def eap_ig_activations(bridge: Any, batch: PromptBatch, metric: "Metric | str | None" = None, steps: int = 5,
                       ablation: str = "corrupt", values: Optional[Values] = None,
                       progress: bool = False) -> EdgeScores:
    """Score every edge by integrated gradients along the senders' outputs (module docstring):
    ``steps`` interpolation points per sender group; ``ablation`` / ``values`` as in
    :func:`shared.engine.eap.eap`. Returns ``{edge: estimated drop of the metric}``."""
    if not isinstance(steps, int) or steps < 1:
        raise ParameterError(f"EAP-IG over activations needs at least one step, got {steps!r}.")
    metric, graph, t = edge_setup(bridge, batch, metric)
    if values is None:
        values = ablation_values(bridge, batch, ablation)
    w = stacked_weights(bridge)
    layers = layer_inputs(bridge, torch.stack([w["W_Q"], w["W_K"], w["W_V"]]))
    groups = sender_groups(graph)
    total = torch.zeros(len(graph.senders), len(graph.receivers), dtype=torch.float64, device=batch.clean.device)
    with _no_weight_grads(bridge):  # only activation gradients are needed
        with torch.no_grad():
            clean = record(bridge, batch.clean)
            D = _sender_diffs(bridge, graph, clean, values, w["W_O"])
        acc = lambda x: x.to(torch.float64)  # noqa: E731
        logit_col = t.r_col["logits"]
        with tqdm(total=len(groups) * steps, desc="EAP-IG (activations)", disable=not progress, leave=False) as bar:
            for kind, layer in groups:
                rows = _group_rows(graph, t, kind, layer)
                Dg = D[rows]
                for k in range(1, steps + 1):
                    attn, mlp, final_g = _interpolated_pass(bridge, batch, metric, clean, values, kind, layer,
                                                            k / steps)
                    with torch.no_grad():
                        for l, (g, x) in attn.items():
                            U = head_input_grads(layers[l], x, g)
                            total[rows, t.attn_recv[l][0]:t.attn_recv[l][-1] + 1] += acc(Dg @ U.T)
                        for l, g in mlp.items():
                            total[rows, t.mlp_recv[l]] += acc(Dg @ g)
                        total[rows, logit_col] += acc(Dg @ final_g)
                    bar.update(1)
    return _edge_scores(graph, total, steps * len(batch))  # the metric is a mean over prompts


__all__ = ["eap_ig_activations", "sender_groups"]
