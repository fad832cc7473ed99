"""Edge attribution patching (EAP) and EAP with integrated gradients (EAP-IG).

The first-order estimate of what patching edge ``s -> r`` does to the metric: the sender's output
change times the gradient of the metric with respect to the receiver's input,

    score(s -> r) = sum over prompts and positions of (out_s(clean) - out_s(value)) . dM/d in_r,

which is the estimated *drop* of the metric when the edge is patched (same sign as
:func:`shared.patching.path_patching`). Gradients for every receiver come from one backward pass:
head inputs are recovered per head and per q/k/v from the gradients at ``hook_q/k/v`` through the
head's projection and the block's ``ln1`` (a vector-Jacobian product, vectorised over heads).
EAP-IG averages the gradients over ``steps`` runs whose embeddings move from the corrupted
(or mean) input to the clean one.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from tqdm.auto import tqdm

from .ablation import Values, _record_hooks, ablation_values, final_residual, stacked_weights
from .batch import PromptBatch
from .graph import Graph
from .metrics import Metric, resolve
from .patching import _EdgeIndex, _norm_module, check_edge_support


def _gradients(bridge: Any, batch: PromptBatch, metric: Metric, resid0: torch.Tensor):
    """One forward+backward from embeddings ``resid0``; returns receiver-input gradients
    (per layer [n, pos, 3*heads, d] in h-major q/k/v order, MLP inputs, final residual) and the
    activations recorded on the way."""
    cfg = bridge.cfg
    H, L = cfg.n_heads, cfg.n_layers
    store: dict = {}
    keep = {}

    def grab(key):
        def hook(x, hook):
            keep[key] = x
            return x
        return hook

    def offset(key):
        def hook(x, hook):
            keep[key] = torch.zeros_like(x, requires_grad=True)
            return x + keep[key]
        return hook

    hooks = []
    for l in range(L):
        hooks.append((f"blocks.{l}.hook_resid_pre", grab(("r", l))))
        for p in "qkv":
            hooks.append((f"blocks.{l}.attn.hook_{p}", grab((p, l))))
        if not cfg.attn_only:  # a zero offset on the MLP branch only (not the residual itself)
            hooks.append((f"blocks.{l}.ln2.hook_in", offset(("mlp_in", l))))
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
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, targets)]
    attn_grads = []
    w = stacked_weights(bridge)
    for l in range(L):
        ln1 = _norm_module(bridge.blocks[l], "ln1")
        resid = keep[("r", l)].detach()
        n, pos = resid.shape[:2]
        u = torch.empty(n, pos, H, 3, resid.shape[-1], dtype=resid.dtype, device=resid.device)
        for i, p in enumerate("qkv"):
            g = grads[3 * l + i].view(n, pos, H, -1)
            u[:, :, :, i] = torch.einsum("nphe,hde->nphd", g, w[f"W_{p.upper()}"][l].detach())  # dM/d ln1(in)
        attn_grads.append(_norm_backward(ln1, resid, u.view(n, pos, 3 * H, -1)))
    k = 3 * L
    mlp_grads = [grads[k + l].detach() for l in range(L)] if not cfg.attn_only else []
    final_grad = grads[-1].detach()
    z = [store[("z", l)].detach() for l in range(L)]
    mlp = [None if cfg.attn_only else store[("m", l)].detach() for l in range(L)]
    acts = Values(z, mlp, resid0.detach(), "recorded")
    return attn_grads, mlp_grads, final_grad, acts


def _norm_backward(norm: Any, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Vector-Jacobian product of a normalisation at ``x`` [n, pos, d] for many cotangents
    ``grad`` [n, pos, k, d]: closed forms for LayerNorm, RMSNorm and none, autograd otherwise."""
    name = type(norm).__name__
    weight = getattr(norm, "weight", None)
    weight = weight.detach() if isinstance(weight, torch.Tensor) else None
    eps = getattr(norm, "eps", getattr(norm, "variance_epsilon", 1e-5))
    if isinstance(eps, (tuple, list)):
        eps = eps[0]
    layer_norm = isinstance(norm, torch.nn.LayerNorm) or name in ("NativeLayerNormPre", "LayerNormPre")
    rms_norm = name in ("NativeRMSNorm", "NativeRMSNormPre", "LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm")
    if layer_norm or rms_norm:
        x, grad = x.detach(), grad.detach()
        # dx = (w*g - mean(w*g) - xh * mean(w*g*xh)) / sigma (LayerNorm); RMSNorm drops the mean term
        d = x.shape[-1]
        w = weight if weight is not None else torch.ones(d, dtype=x.dtype, device=x.device)
        mu = x.mean(-1, keepdim=True) if layer_norm else torch.zeros_like(x[..., :1])
        sigma = ((x - mu).pow(2).mean(-1, keepdim=True) + eps).sqrt()
        xh = (x - mu) / sigma  # [n, pos, d]
        b = torch.einsum("nphd,npd->nph", grad, xh * w) / d
        out = grad * w
        if layer_norm:
            out.sub_(torch.einsum("nphd,d->nph", grad, w).unsqueeze(-1) / d)
        out.sub_(xh.unsqueeze(2) * b.unsqueeze(-1))
        return out.div_(sigma.unsqueeze(2))
    if isinstance(norm, torch.nn.Identity):
        return grad
    _, vjp = torch.func.vjp(norm, x)
    return torch.func.vmap(lambda c: vjp(c)[0], in_dims=2, out_dims=2)(grad)


def _sender_diffs(bridge: Any, graph: Graph, acts: Values, values: Values) -> torch.Tensor:
    """[senders, n * pos * d]: each sender's output in ``acts`` minus its replacement value."""
    n, pos = acts.z[0].shape[:2]
    d = acts.embed.shape[-1]
    out = torch.empty(len(graph.senders), n, pos, d, dtype=acts.embed.dtype, device=acts.embed.device)
    out[0] = acts.embed - values.embed
    W_O = bridge.W_O
    i = 1
    H = graph.n_heads
    for l in range(graph.n_layers):
        heads = acts.head_out(W_O, l) - values.head_out(W_O, l)  # [n, pos, H, d]
        out[i:i + H] = heads.permute(2, 0, 1, 3)
        i += H
        if graph.has_mlp:
            out[i] = acts.mlp[l] - values.mlp[l]
            i += 1
    return out.view(len(graph.senders), -1)


def eap(bridge: Any, batch: PromptBatch, metric: "Metric | str | None" = None, ablation: str = "corrupt",
        values: Optional[Values] = None, ig_steps: int = 0, progress: bool = False) -> dict[str, float]:
    """Score every edge of the graph; ``ig_steps > 0`` gives EAP-IG with that many steps."""
    metric = resolve(metric)
    check_edge_support(bridge)
    graph = Graph.of(bridge)
    t = _EdgeIndex(graph)
    values = ablation_values(bridge, batch, ablation) if values is None else values
    with torch.no_grad():  # the clean embeddings (only the embedding layers run)
        clean_embed = bridge.forward(batch.clean, stop_at_layer=0).detach()
    if ig_steps > 0:
        alphas = [(i + 1) / ig_steps for i in range(ig_steps)]
    else:
        alphas = [1.0]
    acc = None
    clean_acts = None
    for a in tqdm(alphas, desc="EAP-IG steps" if ig_steps else "EAP", disable=not progress, leave=False):
        start = values.embed + a * (clean_embed - values.embed)
        grads = _gradients(bridge, batch, metric, start.expand_as(clean_embed))
        if a == 1.0:
            clean_acts = grads[3]
        g = grads[:3]
        acc = list(g) if acc is None else [[x + y for x, y in zip(gx, gy)] if isinstance(gx, list) else gx + gy
                                           for gx, gy in zip(acc, g)]
    attn_g, mlp_g, final_g = acc
    scale = 1.0 / len(alphas)
    D = _sender_diffs(bridge, graph, clean_acts, values)  # [S, n*pos*d]: scores are plain matmuls
    flat = lambda g: g.permute(2, 0, 1, 3).reshape(g.shape[2], -1)
    scores = torch.zeros(len(graph.edges))

    def put(sc: torch.Tensor, rows: torch.Tensor) -> None:
        scores[rows[rows >= 0]] = (sc * scale)[rows >= 0].float().cpu()

    with torch.no_grad():
        for l in range(graph.n_layers):
            S = len(graph.upstream(f"a{l}.h0"))
            put(D[:S] @ flat(attn_g[l]).T, t.table[:S][:, t.attn_recv[l]])
            if graph.has_mlp:
                S = len(graph.upstream(f"m{l}"))
                put(D[:S] @ mlp_g[l].reshape(-1), t.table[:S, t.mlp_recv[l]])
        put(D @ final_g.reshape(-1), t.table[:, t.r_col["logits"]])
    scores = scores / len(batch)  # the metric is a mean over prompts
    return {e: float(s) for e, s in zip(graph.edges, scores)}


def eap_ig(bridge: Any, batch: PromptBatch, metric: "Metric | str | None" = None, steps: int = 5,
           ablation: str = "corrupt", values: Optional[Values] = None, progress: bool = False) -> dict[str, float]:
    """EAP with integrated gradients over ``steps`` interpolation points (inputs)."""
    from .errors import ParameterError

    if steps < 1:
        raise ParameterError(f"EAP-IG needs at least one step, got {steps}.")
    return eap(bridge, batch, metric, ablation, values, ig_steps=steps, progress=progress)


__all__ = ["eap", "eap_ig"]
