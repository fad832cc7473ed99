"""A book model as a TransformerLens-2 ``HookedTransformer``: the same weights, read from the bridge.

Works for any GPT-2-style native bridge (the suite models, ``boot_native`` random models): LayerNorm,
learned positions, a plain MLP. The weights come from the bridge's TransformerLens-style properties
(``W_E``, ``W_Q`` [layers, heads, d_model, d_head], ``W_in``...) and the norms' own modules, so no
checkpoint format is assumed. ``tests/test_peers.py`` checks that the HookedTransformer built from the
result gives the bridge's logits to 1e-4."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from shared.engine.runs import norm_module
from shared.errors import ParameterError

# config fields copied as they are; TransformerLens 2 knows each under the same name
_SAME = ("n_layers", "d_model", "d_head", "n_heads", "d_mlp", "d_vocab", "n_ctx", "act_fn", "eps",
         "d_vocab_out", "attn_only", "normalization_type", "positional_embedding_type")


def hooked_config(bridge: Any) -> dict[str, Any]:
    """The ``HookedTransformerConfig`` arguments of the bridge's architecture (stops with one sentence
    on an architecture this conversion does not cover)."""
    cfg = bridge.cfg
    problems = []
    if getattr(cfg, "normalization_type", None) != "LN":
        problems.append(f"normalization {cfg.normalization_type!r} (only LayerNorm)")
    if getattr(cfg, "positional_embedding_type", None) != "standard":
        problems.append(f"positions {cfg.positional_embedding_type!r} (only learned)")
    if getattr(cfg, "gated_mlp", False) or getattr(cfg, "parallel_attn_mlp", False):
        problems.append("a gated or parallel MLP")
    if getattr(cfg, "n_key_value_heads", None) not in (None, cfg.n_heads):
        problems.append("grouped key/value heads")
    if problems:
        raise ParameterError(f"The peer comparison converts GPT-2-style models only; this one has "
                             f"{', '.join(problems)}.")
    out = {k: getattr(cfg, k) for k in _SAME}
    out["d_vocab_out"] = out["d_vocab_out"] if out["d_vocab_out"] and out["d_vocab_out"] > 0 else out["d_vocab"]
    out["eps"] = float(out["eps"])
    out["original_architecture"] = "GPT2LMHeadModel"  # only a label
    return out


def _norm(owner: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    mod = norm_module(owner, name)
    return mod.weight.detach().clone(), mod.bias.detach().clone()


def hooked_state_dict(bridge: Any) -> dict[str, torch.Tensor]:
    """The bridge's weights under HookedTransformer's names, float32, on the CPU."""
    cfg = bridge.cfg
    g = lambda name: getattr(bridge, name).detach().float().cpu().clone()
    sd = {"embed.W_E": g("W_E"), "pos_embed.W_pos": g("W_pos"), "unembed.W_U": g("W_U"), "unembed.b_U": g("b_U")}
    stacked = {n: g(n) for n in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O")}
    if not cfg.attn_only:
        stacked.update({n: g(n) for n in ("W_in", "b_in", "W_out", "b_out")})
    for l in range(cfg.n_layers):
        p = f"blocks.{l}."
        for n in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O"):
            sd[p + "attn." + n] = stacked[n][l]
        sd[p + "ln1.w"], sd[p + "ln1.b"] = _norm(bridge.blocks[l], "ln1")
        if not cfg.attn_only:
            sd[p + "ln2.w"], sd[p + "ln2.b"] = _norm(bridge.blocks[l], "ln2")
            for n in ("W_in", "b_in", "W_out", "b_out"):
                sd[p + "mlp." + n] = stacked[n][l]
    sd["ln_final.w"], sd["ln_final.b"] = _norm(bridge, "ln_final")
    return {k: v.float().contiguous() for k, v in sd.items()}


def save_hooked(bridge: Any, path: Path) -> Path:
    """Write ``{"config", "state_dict"}`` for the peer worker (``torch.load(weights_only=True)`` reads it)."""
    torch.save({"config": hooked_config(bridge), "state_dict": hooked_state_dict(bridge)}, path)
    return path


__all__ = ["hooked_config", "hooked_state_dict", "save_hooked"]
