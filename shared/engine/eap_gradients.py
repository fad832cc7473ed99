"""The gradient of the metric at every receiver's input, for :mod:`shared.engine.eap`.

A head's q, k and v read the residual stream through the block's ``ln1``; the backward pass gives
the gradient at ``hook_q/k/v`` ([n, pos, heads, d_head]), and the gradient at each head's own input
follows from it through the head's projection and the norm's Jacobian (:func:`head_input_grads`):
closed forms for LayerNorm and RMSNorm (``1/sigma`` scales the small d_head-sized gradients, the norm's
weight is folded into the projection once, the mean and ``xh`` terms are rank-one corrections per
position), autograd for other norms (:func:`norm_backward`). :class:`SummedGradients` keeps these
gradients summed over the EAP-IG steps in that small form, so that the large product with the senders
runs once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from shared.engine.runs import norm_eps, norm_kind, norm_module, norm_stats


def norm_backward(norm: Any, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
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
class LayerInputs:
    """What turns the gradients at a layer's ``hook_q/k/v`` into gradients at each head's input."""

    norm: Any
    kind: str
    Wt: torch.Tensor  # [3 * heads (h-major), d_head, d], the norm's weight folded in for LayerNorm/RMSNorm
    W_mean: Optional[torch.Tensor]  # [3 * heads, d_head, 1]: mean of Wt over d (LayerNorm only)
    offset: Optional[torch.Tensor] = None  # [3 * heads, d_head]: q/k/v at xh = 0 (norm bias through W, plus b)


def layer_inputs(bridge: Any, W: torch.Tensor, b: Optional[torch.Tensor] = None) -> list[LayerInputs]:
    """Per layer, the q/k/v projections ``W`` [3, layers, heads, d, d_head] (biases ``b`` [3, layers,
    heads, d_head]) laid out for :func:`head_input_grads`."""
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
        out.append(LayerInputs(norm, kind, Wt, Wt.mean(-1, keepdim=True) if kind == "layer" else None, offset))
    return out


def head_input_grads(layer: LayerInputs, x: torch.Tensor, grads: list[torch.Tensor],
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
        return norm_backward(layer.norm, x.detach(), U).permute(2, 0, 1, 3).reshape(R, -1)
    _, xh, inv_sigma = norm_stats(layer.norm, x, layer.kind)
    G = G * inv_sigma.reshape(1, n * pos, 1)
    U = torch.bmm(G, layer.Wt, out=out)  # [3H, n*pos, d]: w * u / sigma
    xh = xh.reshape(n * pos, d)
    b = torch.einsum("rkd,kd->rk", U, xh) / d
    U.addcmul_(b.unsqueeze(-1), xh, value=-1.0)
    if layer.W_mean is not None:  # the mean term, computed on the d_head side: mean_d(W~ g) = g . mean_d(W~)
        U.sub_(torch.bmm(G, layer.W_mean))
    return U.view(R, -1)


class SummedGradients:
    """The gradients of one batch summed over the EAP-IG steps, kept small until the end.

    For a LayerNorm/RMSNorm (or no norm) before the heads, the gradient at head input ``r`` and
    step ``a`` is ``(G_a / sigma_a) W_r - b_a xh_a`` (minus ``(G_a / sigma_a) mean(W_r)`` for a
    LayerNorm; see :func:`head_input_grads`): linear in ``G_a / sigma_a`` [3H, n*pos, d_head] but for a
    rank-one term per position. So the sum over steps needs only the sum of ``G_a / sigma_a``, and
    each step's ``b_a`` [3H, n*pos] and ``xh_a`` [n*pos, d]: the large product with the senders'
    output differences is done once, not once per step. Other norms keep one product per step."""

    def __init__(self, layers: list[LayerInputs]):
        self.layers = layers
        self.scaled: list[Optional[torch.Tensor]] = [None] * len(layers)  # sum over steps of G / sigma (float32)
        self.b: list[list[torch.Tensor]] = [[] for _ in layers]
        self.xh: list[list[torch.Tensor]] = [[] for _ in layers]
        self.mlp: list[Optional[torch.Tensor]] = [None] * len(layers)
        self.final: Optional[torch.Tensor] = None
        self.reuse_qkv: Optional[bool] = None  # whether hook_q/k/v minus the offset equal W~ xh (checked once)
        self._groups: Optional[list[list[int]]] = None
        self._sums: dict[int, torch.Tensor] = {}  # per group (first layer): the summed G / sigma, [layers, 3H, k, d_head]
        self._offsets: dict[int, torch.Tensor] = {}
        self._mlp_sum: Optional[torch.Tensor] = None

    @staticmethod
    def deferred(layer: LayerInputs) -> bool:
        return layer.kind in ("layer", "rms", "none")

    @staticmethod
    def _add(old: Optional[torch.Tensor], new: torch.Tensor) -> torch.Tensor:
        new = new.float()
        return new if old is None else old.add_(new)

    def groups(self, k: int, budget: int = 2 ** 28) -> list[list[int]]:
        """Runs of consecutive deferred layers with the same norm kind and epsilon, each holding at most
        ``budget`` bytes of float32 gradients (at least one layer): a run's per-step work is one batch of
        operations instead of one per layer (on a GPU, fewer kernel launches)."""
        if self._groups is None:
            runs: list[tuple[tuple, list[int]]] = []
            for l, layer in enumerate(self.layers):
                if not self.deferred(layer):
                    continue
                kind = (layer.kind, norm_eps(layer.norm))
                size = layer.Wt.shape[0] * layer.Wt.shape[1] * k * 4
                if runs and runs[-1][0] == kind and runs[-1][1][-1] == l - 1 and size * (len(runs[-1][1]) + 1) <= budget:
                    runs[-1][1].append(l)
                else:
                    runs.append((kind, [l]))
            self._groups = [run for _, run in runs]
        return self._groups

    def add(self, attn_g: list, mlp_g: list, final_g: torch.Tensor) -> None:
        n, pos, d = attn_g[0][1].shape
        for group in self.groups(n * pos):
            self._add_group(group, attn_g, n * pos, d)
        if mlp_g:  # all MLP inputs at once
            M = torch.stack(mlp_g).float()
            if self._mlp_sum is None:
                self._mlp_sum, self.mlp = M, list(M.unbind())
            else:
                self._mlp_sum.add_(M)
        self.final = self._add(self.final, final_g)

    def _add_group(self, group: list[int], attn_g: list, k: int, d: int) -> None:
        layer = self.layers[group[0]]
        R, dh = layer.Wt.shape[:2]

        def heads_first(ts: list[torch.Tensor]) -> torch.Tensor:  # 3 per layer [n, pos, H, dh] -> [layers, 3H, k, dh]
            n, pos, H = ts[0].shape[:3]
            return torch.stack(ts).view(len(group), 3, n, pos, H, dh).permute(0, 4, 1, 2, 3, 5).reshape(len(group), R, k, dh)

        G = heads_first([g for l in group for g in attn_g[l][0]]).float()
        if layer.kind != "none":
            _, xh, inv_sigma = norm_stats(layer.norm, torch.stack([attn_g[l][1] for l in group]), layer.kind)
            xh = xh.reshape(len(group), k, d)
            G = G * inv_sigma.reshape(len(group), 1, k, 1).float()
            # b[r, k] = (G / sigma)[r, k] . (W~_r xh_k) / d, where W~_r xh_k is the q/k/v the forward pass
            # computed less its value at xh = 0 (checked once per model; else multiplied out)
            P = self._projected(group, xh, heads_first([q for l in group for q in attn_g[l][2]]))
            b = torch.einsum("lrkh,lrkh->lrk", G, P) / d
            for i, l in enumerate(group):
                self.b[l].append(b[i])
                self.xh[l].append(xh[i])
        if group[0] in self._sums:
            self._sums[group[0]].add_(G)
        else:
            self._sums[group[0]] = G
            for i, l in enumerate(group):
                self.scaled[l] = G[i]

    def _projected(self, group: list[int], xh: torch.Tensor, qkv: torch.Tensor) -> torch.Tensor:
        """``W~ xh`` [layers, 3H, n*pos, d_head] (float32): from the recorded q/k/v when that is exact."""
        layers = [self.layers[l] for l in group]
        if layers[0].offset is not None and self.reuse_qkv is None:  # first layer seen: compare on a few positions
            j = min(8, xh.shape[1])
            want = torch.matmul(layers[0].Wt, xh[0, :j].T).transpose(1, 2).float()
            got = (qkv[0, :, :j] - layers[0].offset.unsqueeze(1)).float()
            self.reuse_qkv = bool(torch.allclose(got, want, rtol=1e-2, atol=1e-2 * float(want.abs().max()) + 1e-6))
        if layers[0].offset is not None and self.reuse_qkv:
            if group[0] not in self._offsets:
                self._offsets[group[0]] = torch.stack([layer.offset for layer in layers]).unsqueeze(2)
            return (qkv - self._offsets[group[0]]).float()
        return torch.stack([torch.matmul(layer.Wt, x.T).transpose(1, 2) for layer, x in zip(layers, xh)]).float()

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


__all__ = ["LayerInputs", "SummedGradients", "head_input_grads", "layer_inputs", "norm_backward"]
