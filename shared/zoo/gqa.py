"""Grouped-query attention seen as ordinary multi-head attention (what edge-level circuit methods need)."""
from __future__ import annotations

from typing import Any, Optional

import torch

from shared.errors import ParameterError


def ungroup_kv_heads(hf_model: Any) -> Optional[int]:
    """Turn grouped-query attention into the equivalent multi-head attention, in place: each query
    head gets its own copy of its group's ``k_proj``/``v_proj`` rows. Returns the former number of
    key/value heads, or None if the model had one per query head already."""
    cfg = hf_model.config
    H = cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", None) or H
    if kv == H:
        return None
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // H
    attentions = [m for m in hf_model.modules() if hasattr(m, "k_proj") and hasattr(m, "v_proj")]
    if not attentions:
        raise ParameterError(f"Cannot ungroup the key/value heads of {type(hf_model).__name__}: its attention "
                             "has no separate k_proj/v_proj; use node-level methods for this model.")
    for attn in attentions:
        for name in ("k_proj", "v_proj"):
            old = getattr(attn, name)
            new = torch.nn.Linear(old.in_features, H * head_dim, bias=old.bias is not None,
                                  dtype=old.weight.dtype, device=old.weight.device)
            with torch.no_grad():
                new.weight.copy_(old.weight.view(kv, head_dim, -1).repeat_interleave(H // kv, 0).reshape(H * head_dim, -1))
                if old.bias is not None:
                    new.bias.copy_(old.bias.view(kv, head_dim).repeat_interleave(H // kv, 0).reshape(-1))
            setattr(attn, name, new)
        if hasattr(attn, "num_key_value_groups"):
            attn.num_key_value_groups = 1
    cfg.num_key_value_heads = H
    return kv


__all__ = ["ungroup_kv_heads"]
