"""Edge attribution patching (EAP) and EAP with integrated gradients (EAP-IG).

The first-order estimate of what patching edge ``s -> r`` does to the metric: the sender's output
change times the gradient of the metric with respect to the receiver's input,

    score(s -> r) = sum over prompts and positions of (out_s(clean) - out_s(value)) . dM/d in_r,

which is the estimated *drop* of the metric when the edge is patched (same sign as
:func:`shared.engine.patching.path_patching`). Gradients for every receiver come from one backward pass:
head inputs are recovered per head and per q/k/v from the gradients at ``hook_q/k/v`` through the
head's projection and the block's ``ln1`` (closed form for LayerNorm/RMSNorm, folded into one batched
product per layer; autograd for other norms). All scores into one layer are one matrix product of
the senders' output differences with those gradients. EAP-IG averages the gradients over ``steps``
runs whose embeddings move from the corrupted (or mean) input to the clean one.
Cost on GPT-2 small: about 3 forward passes for EAP, corrupted run included (``book/methods_benchmark.md``).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

import torch
from tqdm.auto import tqdm

from shared.engine.ablation import ablation_values
from shared.engine.batch import PromptBatch
from shared.engine.graph import EdgeScores, Graph
from shared.errors import ParameterError
from shared.engine.metrics import Metric
from shared.engine.patching import _EdgeIndex, edge_setup
from shared.engine.runs import Values, _record_hooks, final_residual, norm_kind, norm_module, norm_stats, stacked_weights


def _norm_backward(norm: Any, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Vector-Jacobian product of a normalisation at ``x`` [n, pos, d] for many cotangents
    ``grad`` [n, pos, k, d]: closed forms for LayerNorm, RMSNorm and none, autograd otherwise."""
    kind = norm_kind(norm)
    if kind in ("layer", "rms"):
        weight, xh, inv_sigma = norm_stats(norm, x, kind)
        # dx = (wg - mean(wg) - xh * mean(wg * xh)) / sigma (LayerNorm); RMSNorm drops the mean term
        wg = grad.detach() * weight if weight is not None else grad.detach().clone()
        if kind == "layer":
            wg.sub_(wg.mean(-1, keepdim=True))
        b = torch.einsum("nphd,npd->nph", wg, xh) / x.shape[-1]
        wg.sub_(xh.unsqueeze(2) * b.unsqueeze(-1))
        return wg.mul_(inv_sigma.unsqueeze(2))
    if kind == "none":
        return grad
    _, vjp = torch.func.vjp(norm, x)
    return torch.func.vmap(lambda c: vjp(c)[0], in_dims=2, out_dims=2)(grad)


@dataclass
class _LayerInputs:
    """What turns the gradients at a layer's ``hook_q/k/v`` into gradients at each head's input."""

    norm: Any
    kind: str
    Wt: torch.Tensor  # [3 * heads (h-major), d_head, d], the norm's weight folded in for LayerNorm/RMSNorm
    W_mean: Optional[torch.Tensor]  # [3 * heads, d_head, 1]: mean of Wt over d (LayerNorm only)
    offset: Optional[torch.Tensor] = None  # [3 * heads, d_head]: q/k/v at xh = 0 (norm bias through W, plus b)


def _layer_inputs(bridge: Any, W: torch.Tensor, b: Optional[torch.Tensor] = None) -> list[_LayerInputs]:
    """Per layer, the q/k/v projections ``W`` [3, layers, heads, d, d_head] (biases ``b`` [3, layers,
    heads, d_head]) laid out for :func:`_head_input_grads`."""
    out = []
    _, L, H, d, dh = W.shape
    for l in range(L):
        norm = norm_module(bridge.blocks[l], "ln1")
        kind = norm_kind(norm)
        Wt = W[:, l].detach().permute(1, 0, 3, 2).reshape(3 * H, dh, d)
        weight = getattr(norm, "weight", None) if kind in ("layer", "rms") else None
        if isinstance(weight, torch.Tensor):
            Wt = Wt * weight.detach()
        Wt = Wt.contiguous()
        offset = None
        if b is not None and kind in ("layer", "rms"):
            offset = b[:, l].detach().permute(1, 0, 2).reshape(3 * H, dh)
            beta = getattr(norm, "bias", None)
            if isinstance(beta, torch.Tensor):
                offset = offset + torch.einsum("d,phdk->hpk", beta.detach(), W[:, l].detach()).reshape(3 * H, dh)
        out.append(_LayerInputs(norm, kind, Wt, Wt.mean(-1, keepdim=True) if kind == "layer" else None, offset))
    return out


def _head_input_grads(layer: _LayerInputs, x: torch.Tensor, grads: list[torch.Tensor],
                      out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """dM/d(input of each head's q, k and v) [3 * heads (h-major), n * pos * d] from the gradients at
    ``hook_q/k/v`` (each [n, pos, heads, d_head]) and the block's input ``x`` [n, pos, d]; ``out``
    is an optional buffer of that size, reused across layers.

    For LayerNorm/RMSNorm the Jacobian is folded in: 1/sigma scales the small d_head-sized gradients,
    the weight is folded into the projection, and the mean and ``xh`` terms are rank-one corrections."""
    n, pos, d = x.shape
    R, dh = layer.Wt.shape[:2]
    G = torch.empty(R // 3, 3, n, pos, dh, dtype=x.dtype, device=x.device)
    for i, g in enumerate(grads):
        G[:, i] = g.detach().permute(2, 0, 1, 3)
    G = G.view(R, n * pos, dh)
    if out is not None:
        out = out.view(R, n * pos, d)
    if layer.kind not in ("layer", "rms"):
        U = torch.bmm(G, layer.Wt).view(R, n, pos, d).permute(1, 2, 0, 3)
        return _norm_backward(layer.norm, x.detach(), U).permute(2, 0, 1, 3).reshape(R, -1)
    _, xh, inv_sigma = norm_stats(layer.norm, x, layer.kind)
    G = G * inv_sigma.reshape(1, n * pos, 1)
    U = torch.bmm(G, layer.Wt, out=out)  # [3H, n*pos, d]: w * u / sigma
    xh = xh.reshape(n * pos, d)
    b = torch.einsum("rkd,kd->rk", U, xh) / d
    U.addcmul_(b.unsqueeze(-1), xh, value=-1.0)
    if layer.W_mean is not None:  # the mean term, computed on the d_head side: mean_d(W~ g) = g . mean_d(W~)
        U.sub_(torch.bmm(G, layer.W_mean))
    return U.view(R, -1)


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


class _Gradients:
    """The gradients of one batch summed over the EAP-IG steps, kept small until the end.

    For a LayerNorm/RMSNorm (or no norm) before the heads, the gradient at head input ``r`` and
    step ``a`` is ``(G_a / sigma_a) W_r - b_a xh_a`` (minus ``(G_a / sigma_a) mean(W_r)`` for a
    LayerNorm; see :func:`_head_input_grads`): linear in ``G_a / sigma_a`` [3H, n*pos, d_head] but for a
    rank-one term per position. So the sum over steps needs only the sum of ``G_a / sigma_a``, and
    each step's ``b_a`` [3H, n*pos] and ``xh_a`` [n*pos, d]: the large product with the senders'
    output differences is done once, not once per step. Other norms keep one product per step."""

    def __init__(self, layers: list[_LayerInputs]):
        self.layers = layers
        self.scaled: list[Optional[torch.Tensor]] = [None] * len(layers)  # sum over steps of G / sigma (float32)
        self.b: list[list[torch.Tensor]] = [[] for _ in layers]
        self.xh: list[list[torch.Tensor]] = [[] for _ in layers]
        self.mlp: list[Optional[torch.Tensor]] = [None] * len(layers)
        self.final: Optional[torch.Tensor] = None
        self.reuse_qkv: Optional[bool] = None  # whether hook_q/k/v minus the offset equal W~ xh (checked once)

    @staticmethod
    def deferred(layer: _LayerInputs) -> bool:
        return layer.kind in ("layer", "rms", "none")

    @staticmethod
    def _add(old: Optional[torch.Tensor], new: torch.Tensor) -> torch.Tensor:
        new = new.float()
        return new if old is None else old.add_(new)

    def add(self, attn_g: list, mlp_g: list, final_g: torch.Tensor) -> None:
        for l, layer in enumerate(self.layers):
            if not self.deferred(layer):
                continue
            grads, x, qkv = attn_g[l]
            n, pos, d = x.shape
            R, dh = layer.Wt.shape[:2]
            heads_first = lambda ts: torch.stack(ts, 1).permute(3, 1, 0, 2, 4).reshape(R, n * pos, dh)
            G = heads_first(grads).float()
            if layer.kind == "none":
                self.scaled[l] = self._add(self.scaled[l], G)
                continue
            _, xh, inv_sigma = norm_stats(layer.norm, x, layer.kind)
            xh = xh.reshape(n * pos, d)
            G = G * inv_sigma.reshape(1, n * pos, 1).float()
            self.scaled[l] = self._add(self.scaled[l], G)
            # b[r, k] = (G / sigma)[r, k] . (W~_r xh_k) / d, where W~_r xh_k is the q/k/v the forward pass
            # computed less its value at xh = 0 (checked once per model; else multiplied out)
            self.b[l].append(torch.einsum("rkh,rkh->rk", G, self._projected(layer, xh, heads_first(qkv))) / d)
            self.xh[l].append(xh)
        for l, g in enumerate(mlp_g):
            self.mlp[l] = self._add(self.mlp[l], g)
        self.final = self._add(self.final, final_g)

    def _projected(self, layer: _LayerInputs, xh: torch.Tensor, qkv: torch.Tensor) -> torch.Tensor:
        """``W~ xh`` [3H, n*pos, d_head] (float32): from the recorded q/k/v when that is exact."""
        if layer.offset is not None and self.reuse_qkv is None:  # first layer seen: compare on a few positions
            k = min(8, xh.shape[0])
            want = torch.matmul(layer.Wt, xh[:k].T).transpose(1, 2).float()
            got = (qkv[:, :k] - layer.offset.unsqueeze(1)).float()
            self.reuse_qkv = bool(torch.allclose(got, want, rtol=1e-2, atol=1e-2 * float(want.abs().max()) + 1e-6))
        if layer.offset is not None and self.reuse_qkv:
            return (qkv - layer.offset.unsqueeze(1)).float()
        return torch.matmul(layer.Wt, xh.T).transpose(1, 2).float()

    def head_inputs(self, l: int, out: torch.Tensor) -> torch.Tensor:
        """The summed gradients at layer ``l``'s head inputs [3 * heads, n * pos * d], in ``out``'s
        dtype (the model's: the sums are float32, the product with the senders runs in the model's)."""
        layer = self.layers[l]
        A = self.scaled[l].to(out.dtype)
        R, k, _ = A.shape
        U = torch.bmm(A, layer.Wt, out=out.view(R, k, -1))
        if len(self.b[l]) == 1:  # one step (EAP): the rank-one correction in place, no temporary
            U.addcmul_(self.b[l][0].to(out.dtype).unsqueeze(-1), self.xh[l][0].to(out.dtype), value=-1.0)
        elif self.b[l]:
            B = torch.stack(self.b[l], -1).permute(1, 0, 2).to(out.dtype)  # [n*pos, 3H, steps]
            X = torch.stack(self.xh[l], 1).to(out.dtype)  # [n*pos, steps, d]
            U.sub_(torch.bmm(B, X).permute(1, 0, 2))
        if layer.W_mean is not None:
            U.sub_(torch.bmm(A, layer.W_mean))
        return U.view(R, -1)


def _edge_totals(bridge: Any, batch: PromptBatch, metric: Metric, values: Values, alphas: list[float],
                 graph: Graph, t: _EdgeIndex, w: dict, layers: list[_LayerInputs],
                 total: torch.Tensor, bar: Any) -> None:
    """Add the summed (over prompts, positions and steps) edge scores of ``batch`` to ``total``
    [senders, receivers] (float64, on the model's device: no host copy until the end). The
    gradients are summed over the steps first (:class:`_Gradients`), then each layer's scores are
    one matrix product of the senders' output differences with them."""
    with torch.no_grad():  # the clean embeddings (only the embedding layers run)
        clean_embed = bridge.forward(batch.clean, stop_at_layer=0).detach()
    D = None
    acc = lambda x: x.to(torch.float64)
    dev = total.device
    up_attn = [len(graph.upstream(f"a{l}.h0")) for l in range(graph.n_layers)]
    up_mlp = [len(graph.upstream(f"m{l}")) if graph.has_mlp else 0 for l in range(graph.n_layers)]
    attn_cols = [_columns(t.attn_recv[l], dev) for l in range(graph.n_layers)]
    sums = _Gradients(layers)
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
                    U = _head_input_grads(layers[l], attn_g[l][1], attn_g[l][0], out=buffer[:R])
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
    layers = _layer_inputs(bridge, torch.stack([w["W_Q"], w["W_K"], w["W_V"]]), torch.stack([w["b_Q"], w["b_K"], w["b_V"]]))
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
