"""Reading a model at one answer position per prompt: logits, accuracy, attention, direct logit
attribution and the OV effect of source tokens.

Everything here takes a bridge and a :class:`~shared.engine.batch.PromptBatch` (or plain token
tensors) and knows nothing about a task: ``batch.answer_pos`` is the position whose next-token
prediction is scored and ``batch.correct`` the token that should be predicted there.
:data:`answer_accuracy` is the same check as an engine :class:`~shared.engine.metrics.Metric`, so
the engine's ablations can score accuracy directly.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd
import torch

from shared.analysis.attention import attention_patterns
from shared.engine.batch import PromptBatch
from shared.engine.graph import head_name, mlp_name
from shared.engine.metrics import Metric, unembed


# ----------------------------------------------------------------------------------------------
# Predictions at the answer position
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def answer_logits(bridge: Any, batch: PromptBatch, chunk: int = 1000,
                  fwd_hooks: Optional[list] = None) -> torch.Tensor:
    """Logits [prompt, vocab] predicted at each prompt's answer position (optionally with hooks),
    ``chunk`` prompts at a time; tokens after the last answer position are not run."""
    out = []
    for start in range(0, len(batch), chunk):
        part = batch.subset(torch.arange(start, min(start + chunk, len(batch))))
        tokens = part.clean[:, : int(part.answer_pos.max()) + 1]
        if fwd_hooks:
            logits = bridge.run_with_hooks(tokens, fwd_hooks=fwd_hooks)
        else:
            logits = bridge.original_model(tokens)
        out.append(logits[torch.arange(len(part)), part.answer_pos])
    return torch.cat(out)


def predictions(bridge: Any, batch: PromptBatch, **kw: Any) -> torch.Tensor:
    """The top token (over the whole vocabulary) at each answer position."""
    return answer_logits(bridge, batch, **kw).argmax(-1)


def accuracy(bridge: Any, batch: PromptBatch, **kw: Any) -> float:
    """Share of prompts whose top prediction is ``batch.correct``."""
    return float((predictions(bridge, batch, **kw) == batch.correct).float().mean())


def _top1(bridge: Any, final: torch.Tensor, batch: PromptBatch) -> torch.Tensor:
    return (unembed(bridge, final).argmax(-1) == batch.correct).float()


answer_accuracy = Metric("accuracy", _top1)
"""1 where the top token of the normalised final residual is ``batch.correct``, else 0 (per prompt)."""


@torch.no_grad()
def answer_activation(bridge: Any, batch: PromptBatch, hook: str) -> torch.Tensor:
    """The activation at hook point ``hook`` at each prompt's answer position, [prompt, ...]."""
    _, cache = bridge.run_with_cache(batch.clean, names_filter=lambda n: n == hook)
    return cache[hook][torch.arange(len(batch)), batch.answer_pos]


# ----------------------------------------------------------------------------------------------
# Attention from the answer position
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def answer_attention(bridge: Any, batch: PromptBatch) -> torch.Tensor:
    """Attention from each prompt's answer position: [prompt, layer, head, key]."""
    cfg = bridge.cfg
    patterns = attention_patterns(bridge, batch.clean)  # [prompt, layer * head, query, key]
    rows = torch.arange(len(batch))
    return patterns[rows, :, batch.answer_pos].view(len(batch), cfg.n_layers, cfg.n_heads, -1)


@torch.no_grad()
def answer_scores(bridge: Any, batch: PromptBatch, key_mask: torch.Tensor) -> torch.Tensor:
    """Pre-softmax scores ``q.k / sqrt(d_head)`` from each answer position: [prompt, layer, head, key].

    This reader cannot use :func:`~shared.analysis.attention.attention_patterns`: that returns the
    softmax, and the bridge's ``hook_attn_scores`` may hold it too, so the scores are recomputed
    from ``hook_q``/``hook_k``. They are centred: the mean score over the keys in ``key_mask``
    [prompt, pos] is subtracted per prompt and head (softmax ignores such shifts; without it,
    averages over prompts would mix per-prompt offsets). Keys after the answer position get ``-inf``.
    """
    cfg = bridge.cfg
    _, cache = bridge.run_with_cache(batch.clean, names_filter=lambda n: n.endswith(("hook_q", "hook_k")))
    rows, pos = torch.arange(len(batch)), batch.answer_pos
    out = []
    for l in range(cfg.n_layers):
        q = cache[f"blocks.{l}.attn.hook_q"][rows, pos]  # [prompt, head, d_head]
        k = cache[f"blocks.{l}.attn.hook_k"]  # [prompt, key, head, d_head]
        s = torch.einsum("bhd,bphd->bhp", q, k) / cfg.d_head ** 0.5
        later = torch.arange(k.shape[1])[None, :] > pos[:, None]
        valid = key_mask[:, None, : k.shape[1]]
        mean = torch.where(valid, s, torch.zeros_like(s)).sum(-1, keepdim=True) / key_mask.sum(1)[:, None, None]
        out.append((s - mean).masked_fill(later[:, None, :], float("-inf")))
    return torch.stack(out, dim=1)


# ----------------------------------------------------------------------------------------------
# Direct effects on the answer logit
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def direct_logit_attribution(bridge: Any, batch: PromptBatch, n_values: int) -> pd.Series:
    """Mean direct contribution of each component to ``logit(correct) - mean logit over tokens
    0..n_values-1`` at the answer position.

    Components: token + position embeddings (``embed``), every head (its ``z @ W_O``), every MLP,
    and all biases together. For a model without normalisation layers they add up exactly to the
    logit difference; a :class:`RuntimeError` says when they do not.
    """
    cfg = bridge.cfg
    _, cache = bridge.run_with_cache(batch.clean, names_filter=lambda n: n.endswith(
        ("hook_z", "hook_mlp_out", "hook_embed", "hook_pos_embed")))
    rows, pos, answers = torch.arange(len(batch)), batch.answer_pos, batch.correct
    direction = bridge.W_U[:, answers].T - bridge.W_U[:, :n_values].mean(dim=1)  # [prompt, d_model]
    out: dict[str, torch.Tensor] = {}
    out["embed"] = ((cache["hook_embed"][rows, pos] + cache["hook_pos_embed"][rows, pos]) * direction).sum(-1)
    bias = torch.zeros(cfg.d_model)
    for l in range(cfg.n_layers):
        z = cache[f"blocks.{l}.attn.hook_z"][rows, pos]  # [prompt, head, d_head]
        for h in range(cfg.n_heads):
            out[head_name(l, h)] = ((z[:, h] @ bridge.W_O[l, h]) * direction).sum(-1)
        bias = bias + bridge.b_O[l]
        if not cfg.attn_only:
            out[mlp_name(l)] = (cache[f"blocks.{l}.hook_mlp_out"][rows, pos] * direction).sum(-1)
    out["biases"] = (bias * direction).sum(-1)
    logits = answer_logits(bridge, batch)
    actual = logits[rows, answers] - logits[:, :n_values].mean(-1)
    out["biases"] = out["biases"] + bridge.b_U[answers] - bridge.b_U[:n_values].mean()
    total = sum(out.values())
    if not torch.allclose(total, actual, atol=1e-3 * max(1.0, float(actual.abs().max()))):
        raise RuntimeError("Direct logit attribution does not add up to the logits; the model has LayerNorm?")
    return pd.Series({k: float(v.mean()) for k, v in out.items()}, name="mean logit difference")


@torch.no_grad()
def ov_by_source(bridge: Any, tokens: torch.Tensor, key_mask: torch.Tensor, layer: int, head: int,
                 n_values: int) -> np.ndarray:
    """One head's OV circuit read from activations: [source token, output token] over ids ``0..n_values-1``.

    Each source position in ``key_mask`` passes its value vector through the head's ``W_O`` and the
    unembedding: the logits the head would add if it attended only there. Rows average the source
    positions holding the same token (all positions and contexts) and are centred over the output
    tokens; tokens never seen as a source give NaN rows.
    """
    name = f"blocks.{layer}.attn.hook_v"
    _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n == name)
    direct = cache[name][:, :, head] @ bridge.W_O[layer, head] @ bridge.W_U[:, :n_values]  # [prompt, pos, out]
    vals, eff = tokens[key_mask], direct[key_mask]
    total = torch.zeros(n_values, n_values).index_add_(0, vals, eff)
    count = torch.zeros(n_values).index_add_(0, vals, torch.ones(len(vals)))
    out = total / count[:, None].clamp_min(1)
    out = out - out.mean(dim=1, keepdim=True)
    out[count == 0] = float("nan")
    return out.numpy()


__all__ = ["accuracy", "answer_accuracy", "answer_activation", "answer_attention", "answer_logits",
           "answer_scores", "direct_logit_attribution", "ov_by_source", "predictions"]
