"""Running a TransformerBridge for the circuit methods: normalisations, stacked weights, recorded
activations and re-running the blocks from a cached residual stream.

* :func:`norm_module`, :func:`final_norm` — the one place a model's normalisation layers are found
  and applied (LayerNorm, RMSNorm or none); :func:`norm_stats` gives the pieces their closed-form
  backward (used by EAP) needs.
* :func:`record` runs a prompt set once and keeps each node's output (head ``z``, MLP output,
  embeddings) and the residual stream entering every block, as :class:`Activations`.
* :func:`final_residual` re-runs only the blocks from ``start`` on, from a cached residual, and
  returns the normalised final residual at the answer positions (so metrics unembed two columns).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch

_LAYER_NORMS = ("LayerNorm", "NativeLayerNormPre", "LayerNormPre")
_RMS_NORMS = ("NativeRMSNorm", "NativeRMSNormPre", "LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm")


# --------------------------------------------------------------------------------------------
# normalisation layers
# --------------------------------------------------------------------------------------------

def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def norm_module(owner: Any, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The normalisation ``owner.<name>`` (``"ln1"``/``"ln2"`` of a block, ``"ln_final"`` of a bridge)
    as the underlying torch module, or the identity where the model has none."""
    ln = getattr(owner, name, None)
    if ln is None:
        return _identity
    inner = getattr(ln, "original_component", None)
    return inner if inner is not None else ln


def norm_kind(norm: Any) -> str:
    """``layer``, ``rms`` (closed-form statistics), ``none`` or ``other`` for a normalisation module."""
    name = type(norm).__name__
    if isinstance(norm, torch.nn.LayerNorm) or name in _LAYER_NORMS:
        return "layer"
    if name in _RMS_NORMS:
        return "rms"
    if norm is _identity or isinstance(norm, torch.nn.Identity):
        return "none"
    return "other"


def norm_weight(norm: Any) -> Optional[torch.Tensor]:
    """The elementwise scale of a normalisation (detached), or ``None`` where it has none."""
    weight = getattr(norm, "weight", None)
    return weight.detach() if isinstance(weight, torch.Tensor) else None


def norm_eps(norm: Any) -> float:
    """The epsilon a LayerNorm/RMSNorm adds to the variance (1e-5 where it names none)."""
    eps = getattr(norm, "eps", getattr(norm, "variance_epsilon", 1e-5))
    return eps[0] if isinstance(eps, (tuple, list)) else eps


def norm_stats(norm: Any, x: torch.Tensor, kind: str):
    """Weight (or None), normalised input ``xh`` and ``1/sigma`` [..., 1] of a LayerNorm/RMSNorm at ``x``."""
    eps = norm_eps(norm)
    x = x.detach()
    centred = x - x.mean(-1, keepdim=True) if kind == "layer" else x
    inv_sigma = (centred.pow(2).mean(-1, keepdim=True) + eps).rsqrt()
    return norm_weight(norm), centred * inv_sigma, inv_sigma


def final_norm(bridge: Any, resid: torch.Tensor, bias: bool = True) -> torch.Tensor:
    """The model's final normalisation applied to ``resid`` [..., d_model] with the vector's own
    statistics; ``bias=False`` leaves out the additive bias (to read a single component's write)."""
    norm = norm_module(bridge, "ln_final")
    out = norm(resid)
    b = getattr(norm, "bias", None)
    if not bias and isinstance(b, torch.Tensor):
        out = out - b
    return out


# --------------------------------------------------------------------------------------------
# running suffixes of the model
# --------------------------------------------------------------------------------------------

def _direct_blocks_ok(bridge: Any) -> bool:
    """Whether calling ``bridge.blocks[l](resid)`` reproduces the model (checked once per bridge)."""
    flag = getattr(bridge, "_book_direct_blocks", None)
    if flag is not None:
        return flag
    ok = False
    try:
        cfg = bridge.cfg
        n = min(6, cfg.n_ctx)
        tokens = torch.arange(n, device=bridge.W_U.device).unsqueeze(0) % cfg.d_vocab
        store: dict[str, torch.Tensor] = {}
        hooks = [("blocks.0.hook_resid_pre", lambda x, hook: store.__setitem__("r0", x.detach()) or x),
                 ("ln_final.hook_in", lambda x, hook: store.__setitem__("f", x.detach()) or x)]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rotary blocks warn when called bare: that is what we probe
            bridge.run_with_hooks(tokens, fwd_hooks=hooks)
            x = store["r0"]
            for block in bridge.blocks:
                out = block(x)
                x = out[0] if isinstance(out, tuple) else out
        ok = bool(torch.allclose(x, store["f"], atol=1e-4, rtol=1e-4))
    except Exception:  # any architecture whose blocks need extra inputs (rotary caches...)
        ok = False
    bridge._book_direct_blocks = ok
    return ok


def final_residual(bridge: Any, resid: torch.Tensor, start: int, answer_pos: torch.Tensor,
                   hooks: Sequence = (), final_hook: Optional[Callable] = None) -> torch.Tensor:
    """Run blocks ``start..`` from ``resid`` [N, pos, d] with ``hooks``; return the final-normalised
    residual at ``answer_pos`` [N, d]. ``final_hook(resid_final)`` may edit the last residual."""
    n_layers = bridge.cfg.n_layers
    rows = torch.arange(resid.shape[0], device=resid.device)
    if start >= n_layers:
        x = resid
    elif _direct_blocks_ok(bridge):
        with bridge.hooks(fwd_hooks=list(hooks)):
            x = resid
            for block in bridge.blocks[start:]:
                out = block(x)
                x = out[0] if isinstance(out, tuple) else out
    else:
        store: dict[str, torch.Tensor] = {}
        capture = ("ln_final.hook_in", lambda t, hook: store.__setitem__("f", t) or t)
        bridge.run_with_hooks(resid, start_at_layer=start, fwd_hooks=list(hooks) + [capture])
        x = store["f"]
    if final_hook is not None:
        x = final_hook(x)
    return final_norm(bridge, x[rows, answer_pos])


def stacked_weights(bridge: Any) -> dict[str, torch.Tensor]:
    """``W_Q, W_K, W_V, W_O, b_Q, b_K, b_V`` fetched once (the bridge re-stacks them on every access);
    bias-free projections (Llama-style) get zero biases."""
    out = {n: getattr(bridge, n) for n in ("W_Q", "W_K", "W_V", "W_O")}
    for n in ("b_Q", "b_K", "b_V"):
        try:
            out[n] = getattr(bridge, n)
        except AttributeError:
            W = out["W_" + n[-1]]
            out[n] = torch.zeros(W.shape[:2] + W.shape[3:], dtype=W.dtype, device=W.device)
    return out


# --------------------------------------------------------------------------------------------
# recorded activations and replacement values
# --------------------------------------------------------------------------------------------


@dataclass
class Values:
    """Per-node outputs: ``z[l]`` [n|1, pos|1, heads, d_head], ``mlp[l]`` [n|1, pos|1, d_model]
    (``None`` for attention-only models), ``embed`` [n|1, pos|1, d_model]."""

    z: list[torch.Tensor]
    mlp: list[Optional[torch.Tensor]]
    embed: torch.Tensor
    kind: str = "recorded"

    def head_out(self, bridge: Any, layer: int) -> torch.Tensor:
        """Each head's write to the residual stream, [n|1, pos|1, heads, d_model] (no bias).
        ``bridge`` may also be the stacked ``W_O`` tensor (see :func:`stacked_weights`)."""
        W_O = bridge if isinstance(bridge, torch.Tensor) else bridge.W_O
        return torch.einsum("bphe,hed->bphd", self.z[layer], W_O[layer])

    def detach(self) -> "Values":
        d = lambda t: None if t is None else t.detach()
        return Values([d(t) for t in self.z], [d(t) for t in self.mlp], d(self.embed), self.kind)


@dataclass
class Activations(Values):
    """Recorded values plus the residual stream entering each block and the final one."""

    resid: list[torch.Tensor] = field(default_factory=list)  # n_layers + 1 entries


def _record_hooks(bridge: Any, store: dict) -> list:
    cfg = bridge.cfg

    def keep(key):
        def hook(x, hook):
            store[key] = x
            return x
        return hook

    hooks = [(f"blocks.{l}.hook_resid_pre", keep(("r", l))) for l in range(cfg.n_layers)]
    hooks += [(f"blocks.{l}.attn.hook_z", keep(("z", l))) for l in range(cfg.n_layers)]
    if not cfg.attn_only:
        hooks += [(f"blocks.{l}.hook_mlp_out", keep(("m", l))) for l in range(cfg.n_layers)]
    hooks.append(("ln_final.hook_in", keep(("r", cfg.n_layers))))
    return hooks


@torch.no_grad()
def record(bridge: Any, tokens: torch.Tensor) -> Activations:
    """Run ``tokens`` once and keep every node output and the residual stream at each block."""
    cfg = bridge.cfg
    store: dict = {}
    hooks = _record_hooks(bridge, store)
    if _direct_blocks_ok(bridge):  # skip the unembedding: embeddings, then the blocks
        x = bridge.forward(tokens, stop_at_layer=0)
        with bridge.hooks(fwd_hooks=hooks[:-1]):
            for block in bridge.blocks:
                out = block(x)
                x = out[0] if isinstance(out, tuple) else out
        store[("r", cfg.n_layers)] = x
    else:
        bridge.run_with_hooks(tokens, fwd_hooks=hooks)
    z = [store[("z", l)].detach() for l in range(cfg.n_layers)]
    mlp = [None if cfg.attn_only else store[("m", l)].detach() for l in range(cfg.n_layers)]
    resid = [store[("r", l)].detach() for l in range(cfg.n_layers + 1)]
    return Activations(z, mlp, resid[0], "recorded", resid)


@contextmanager
def threads(n: int = 1):
    """Run the block with ``n`` torch threads (restored after). Small models do thousands of tiny
    operations, where a second thread only adds synchronisation, and on a busy machine its spinning
    costs several times the work itself (measured: 24 s of CPU for 2.5 s of work)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


__all__ = ["Activations", "Values", "final_norm", "final_residual", "norm_eps", "norm_kind", "norm_module", "norm_stats",
           "norm_weight", "record", "stacked_weights", "threads"]
