"""Edge attribution patching (EAP) and EAP with integrated gradients (EAP-IG).

The first-order estimate of what patching edge ``s -> r`` does to the metric: the sender's output
change times the gradient of the metric with respect to the receiver's input,

    score(s -> r) = sum over prompts and positions of (out_s(clean) - out_s(value)) . dM/d in_r,

which is the estimated *drop* of the metric when the edge is patched (same sign as
:func:`shared.engine.patching.path_patching`). Gradients for every receiver come from one backward pass:
head inputs are recovered per head and per q/k/v from the gradients at ``hook_q/k/v`` through the
head's projection and the block's ``ln1`` (:mod:`shared.engine.eap_gradients`). All scores into one
layer are one matrix product of the senders' output differences with those gradients. EAP-IG averages the gradients over ``steps``
runs whose embeddings move from the corrupted (or mean) input to the clean one.
Cost on GPT-2 small: about 3 forward passes for EAP, corrupted run included (``book/methods_benchmark.md``).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Optional

import torch
from tqdm.auto import tqdm

from shared.engine.ablation import ablation_values
from shared.engine.batch import PromptBatch
from shared.engine.graph import EdgeScores, Graph
from shared.errors import ParameterError
from shared.engine.metrics import Metric
from shared.engine.patching import _EdgeIndex, edge_setup
from shared.engine.eap_gradients import LayerInputs, SummedGradients, head_input_grads, layer_inputs
from shared.engine.runs import Values, _record_hooks, final_residual, stacked_weights


def _grab(keep: dict, key: Any):
    """A hook that records its activation in ``keep[key]`` (gradients flow through it)."""
    def hook(x, hook):
        keep[key] = x
        return x
    return hook


def _offset(keep: dict, key: Any):
    """A hook that adds a zero tensor ``keep[key]`` requiring grad: the gradient at that point."""
    def hook(x, hook):
        keep[key] = torch.zeros_like(x, requires_grad=True)
        return x + keep[key]
    return hook


def _edge_scores(graph: Graph, total: torch.Tensor, divisor: float) -> EdgeScores:
    """The [senders, receivers] table of summed scores as :class:`EdgeScores` (divided by ``divisor``)."""
    scores = total.T[graph.edge_mask(total.device).T].cpu()  # in graph.edges order (receiver-major)
    return EdgeScores(graph, scores / divisor)


def _gradient_pass(bridge: Any, batch: PromptBatch, metric: Metric, resid0: torch.Tensor):
    """One forward+backward from embeddings ``resid0``. Returns the gradients at every layer's
    ``hook_q/k/v`` with the residual entering the block and the q/k/v themselves, at the MLP inputs ``[n * pos * d]`` and at
    the final residual ``[n * pos * d]``, and the node outputs recorded on the way."""
    cfg = bridge.cfg
    L = cfg.n_layers
    store: dict = {}
    keep: dict = {}
    hooks = []
    for l in range(L):
        hooks.append((f"blocks.{l}.hook_resid_pre", _grab(keep, ("r", l))))
        for p in "qkv":
            hooks.append((f"blocks.{l}.attn.hook_{p}", _grab(keep, (p, l))))
        if not cfg.attn_only:  # a zero offset on the MLP branch only (not the residual itself)
            hooks.append((f"blocks.{l}.ln2.hook_in", _offset(keep, ("mlp_in", l))))
    hooks += [h for h in _record_hooks(bridge, store) if "resid_pre" not in h[0] and "ln_final" not in h[0]]
    final_store = {}

    def final_hook(x):
        final_store["x"] = x
        return x

    resid0 = resid0.detach().requires_grad_(True)
    with torch.enable_grad():
        final = final_residual(bridge, resid0, 0, batch.answer_pos, hooks, final_hook=final_hook)
        value = metric(bridge, final, batch).sum()
        targets = [keep[(p, l)] for l in range(L) for p in "qkv"]
        targets += [keep[("mlp_in", l)] for l in range(L) if not cfg.attn_only]
        targets.append(final_store["x"])
        grads = torch.autograd.grad(value, targets, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g.detach() for g, t in zip(grads, targets)]
    attn_grads = [(grads[3 * l:3 * l + 3], keep[("r", l)].detach(), [keep[(p, l)].detach() for p in "qkv"])
                  for l in range(L)]
    mlp_grads = [] if cfg.attn_only else [grads[3 * L + l].reshape(-1) for l in range(L)]
    z = [store[("z", l)].detach() for l in range(L)]
    mlp = [None if cfg.attn_only else store[("m", l)].detach() for l in range(L)]
    return attn_grads, mlp_grads, grads[-1].reshape(-1), Values(z, mlp, resid0.detach(), "recorded")


def _sender_diffs(bridge: Any, graph: Graph, acts: Values, values: Values, W_O: torch.Tensor) -> torch.Tensor:
    """[senders, n * pos * d]: each sender's output in ``acts`` minus its replacement value."""
    n, pos = acts.z[0].shape[:2]
    d = acts.embed.shape[-1]
    H = graph.n_heads
    out = torch.empty(len(graph.senders), n, pos, d, dtype=acts.embed.dtype, device=acts.embed.device)
    out[0] = acts.embed - values.embed
    i = 1
    for l in range(graph.n_layers):
        dz = (acts.z[l] - values.z[l]).permute(2, 0, 1, 3).reshape(H, n * pos, -1)  # outputs are linear in z
        torch.bmm(dz, W_O[l].detach(), out=out[i:i + H].view(H, n * pos, d))
        i += H
        if graph.has_mlp:
            out[i] = acts.mlp[l] - values.mlp[l]
            i += 1
    return out.view(len(graph.senders), -1)


@contextmanager
def _no_weight_grads(bridge: Any):
    """Only activation gradients are needed: parameters stop requiring grad for the duration, so the
    forward pass does not keep every linear layer's input for a weight gradient (memory)."""
    params = [p for p in bridge.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _rows(values: Values, index: slice) -> Values:
    """The prompts ``index`` of per-prompt values (values shared by all prompts, [1, ...], are kept)."""
    r = lambda t: t if t is None or t.shape[0] == 1 else t[index]
    return Values([r(t) for t in values.z], [r(t) for t in values.mlp], r(values.embed), values.kind)


def _columns(cols: list[int], device: Any) -> "slice | torch.Tensor":
    """Receiver columns as a slice when contiguous (no index tensor to copy to the device)."""
    if cols == list(range(cols[0], cols[0] + len(cols))):
        return slice(cols[0], cols[0] + len(cols))
    return torch.tensor(cols, device=device)


def _edge_totals(bridge: Any, batch: PromptBatch, metric: Metric, values: Values, alphas: list[float],
                 graph: Graph, t: _EdgeIndex, w: dict, layers: list[LayerInputs],
                 total: torch.Tensor, bar: Any) -> None:
    """Add the summed (over prompts, positions and steps) edge scores of ``batch`` to ``total``
    [senders, receivers] (float64, on the model's device: no host copy until the end). The
    gradients are summed over the steps first (:class:`SummedGradients`), then each layer's scores are
    one matrix product of the senders' output differences with them."""
    with torch.no_grad():  # the clean embeddings (only the embedding layers run)
        clean_embed = bridge.forward(batch.clean, stop_at_layer=0).detach()
    D = None
    acc = lambda x: x.to(torch.float64)
    dev = total.device
    up_attn = [len(graph.upstream(f"a{l}.h0")) for l in range(graph.n_layers)]
    up_mlp = [len(graph.upstream(f"m{l}")) if graph.has_mlp else 0 for l in range(graph.n_layers)]
    attn_cols = [_columns(t.attn_recv[l], dev) for l in range(graph.n_layers)]
    sums = SummedGradients(layers)
    with torch.no_grad():
        for a in alphas:
            start = clean_embed if a == 1.0 else values.embed + a * (clean_embed - values.embed)
            attn_g, mlp_g, final_g, acts = _gradient_pass(bridge, batch, metric, start.expand_as(clean_embed))
            if D is None:
                D = _sender_diffs(bridge, graph, acts, values, w["W_O"])
                R = 3 * graph.n_heads  # the heads' q/k/v rows, then the MLP's (one product reads D once)
                buffer = torch.empty(R + int(graph.has_mlp), D.shape[1], dtype=D.dtype, device=D.device)
            del acts
            for l in range(graph.n_layers):  # norms without a closed form: one product per step
                if not sums.deferred(layers[l]):
                    U = head_input_grads(layers[l], attn_g[l][1], attn_g[l][0], out=buffer[:R])
                    total[:up_attn[l], attn_cols[l]] += acc(D[:up_attn[l]] @ U.T)
            sums.add(attn_g, mlp_g, final_g)
            del attn_g, mlp_g, final_g
            bar.update(1)
        for l in range(graph.n_layers):  # the edge scores: one matrix product per layer
            deferred = sums.deferred(layers[l])
            if deferred:
                sums.head_inputs(l, buffer[:R])
            if graph.has_mlp:
                buffer[R].copy_(sums.mlp[l])
            if deferred and graph.has_mlp:  # heads and MLP together (the MLP reads the most senders)
                P = acc(D[:up_mlp[l]] @ buffer.T)
                total[:up_attn[l], attn_cols[l]] += P[:up_attn[l], :R]
                total[:up_mlp[l], t.mlp_recv[l]] += P[:, R]
            elif deferred:
                total[:up_attn[l], attn_cols[l]] += acc(D[:up_attn[l]] @ buffer[:R].T)
            elif graph.has_mlp:
                total[:up_mlp[l], t.mlp_recv[l]] += acc(D[:up_mlp[l]] @ buffer[R])
        total[:, t.r_col["logits"]] += acc(D @ sums.final.to(D.dtype))


def eap(bridge: Any, batch: PromptBatch, metric: "Metric | str | None" = None, ablation: str = "corrupt",
        values: Optional[Values] = None, ig_steps: int = 0, progress: bool = False,
        chunk: Optional[int] = None) -> EdgeScores:
    """Score every edge of the graph (a read-only mapping edge -> score, like a dict); ``ig_steps > 0`` gives EAP-IG with that many steps.

    ``chunk`` bounds memory: the prompts are processed ``chunk`` at a time (the scores are sums over
    prompts, so the result is the same up to rounding) and peak memory is that of ``chunk`` prompts.
    Scores are accumulated in float64 on the model's device, also for a float16 / bfloat16 model."""
    if chunk is not None and chunk < 1:
        raise ParameterError(f"EAP's chunk is a number of prompts (at least 1), got {chunk}.")
    metric, graph, t = edge_setup(bridge, batch, metric)
    n = len(batch)
    size = n if chunk is None else min(chunk, n)
    if values is None and ablation != "corrupt":  # shared by all chunks (resample draws over the whole batch)
        values = ablation_values(bridge, batch, ablation)
    w = stacked_weights(bridge)
    layers = layer_inputs(bridge, torch.stack([w["W_Q"], w["W_K"], w["W_V"]]), torch.stack([w["b_Q"], w["b_K"], w["b_V"]]))
    # the clean point (alpha = 1) goes first: its recorded activations give the sender differences
    alphas = [1.0] + [(i + 1) / ig_steps for i in range(ig_steps - 1)] if ig_steps > 0 else [1.0]
    total = torch.zeros(len(graph.senders), len(graph.receivers), dtype=torch.float64, device=batch.clean.device)
    n_chunks = -(-n // size)
    with _no_weight_grads(bridge), tqdm(total=len(alphas) * n_chunks, desc="EAP-IG steps" if ig_steps else "EAP",
                                        disable=not progress, leave=False) as bar:
        for i in range(0, n, size):
            part = batch if size == n else batch.subset(slice(i, i + size))
            if values is None:
                part_values = ablation_values(bridge, part, "corrupt")
            else:
                part_values = values if size == n else _rows(values, slice(i, i + size))
            _edge_totals(bridge, part, metric, part_values, alphas, graph, t, w, layers, total, bar)
    return _edge_scores(graph, total, len(alphas) * n)  # the metric is a mean over prompts


def eap_ig(bridge: Any, batch: PromptBatch, metric: "Metric | str | None" = None, steps: int = 5,
           ablation: str = "corrupt", values: Optional[Values] = None, progress: bool = False,
           chunk: Optional[int] = None) -> EdgeScores:
    """EAP with integrated gradients over ``steps`` interpolation points (inputs); ``chunk`` as in :func:`eap`."""
    if steps < 1:
        raise ParameterError(f"EAP-IG needs at least one step, got {steps}.")
    return eap(bridge, batch, metric, ablation, values, ig_steps=steps, progress=progress, chunk=chunk)


__all__ = ["eap", "eap_ig"]
