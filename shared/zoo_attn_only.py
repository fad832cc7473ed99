"""Attention-only language models on the standard-library corpus: 0, 1 and 2 layers.

Registers ``attn-only-0l`` (a bigram baseline: embed then unembed), ``attn-only-1l`` and
``attn-only-2l`` (TransformerLens-native, no MLPs, no LayerNorm so that every path through the
model is linear apart from the attention patterns).

Training data (the recipe, part of each model's cache key): windows of ``n_ctx`` tokens drawn at
random from the BPE-tokenized training split. In a share ``repeat_share`` of the windows a span
of random length (``min_span`` to ``n_ctx // 2`` tokens) is copied to a later random place of the
same window, so the window contains a repeated stretch of real text. Natural code repeats names,
but too rarely for a small model to find induction heads within a CPU budget; the copied spans
make "look back at what followed the last occurrence" pay off often enough. Validation loss is
measured on plain validation-split windows (no copies).
"""
from __future__ import annotations

from typing import Any

import torch
from safetensors.torch import save_file

from .models import Checkpoints, LocalModel, register_local_model
from .tokenizer_bpe import corpus_tokens, stdlib_tokenizer
from .train import evaluate_loss, log_spaced_steps, train_loop

VOCAB = 1024
N_CTX = 128


def window_batch(data: torch.Tensor, batch: int, n_ctx: int, generator: torch.Generator,
                 repeat_share: float = 0.0, min_span: int = 4) -> torch.Tensor:
    """``batch`` random windows of ``data``; a share of them get a span copied further along."""
    starts = torch.randint(0, len(data) - n_ctx, (batch,), generator=generator)
    tokens = torch.stack([data[s: s + n_ctx] for s in starts.tolist()])
    if repeat_share <= 0:
        return tokens
    chosen = torch.rand(batch, generator=generator) < repeat_share
    for row in torch.nonzero(chosen).flatten().tolist():
        span = int(torch.randint(min_span, n_ctx // 2 + 1, (1,), generator=generator))
        src = int(torch.randint(0, n_ctx - 2 * span + 1, (1,), generator=generator))
        dst = int(torch.randint(src + span, n_ctx - span + 1, (1,), generator=generator))
        tokens[row, dst: dst + span] = tokens[row, src: src + span].clone()
    return tokens


def validation_batches(recipe: dict[str, Any], n_ctx: int, count: int = 20, batch: int = 32):
    """Fixed plain windows of the validation split (seeded), for the reported validation loss."""
    data = corpus_tokens("validation", recipe["vocab_size"])
    gen = torch.Generator().manual_seed(1234)
    return [(window_batch(data, batch, n_ctx, gen), None) for _ in range(count)]


def _save_half(checkpoints: Checkpoints, step: int) -> None:
    """Save an intermediate checkpoint in float16 (half the disk; loads back into float32)."""
    folder = checkpoints.folder / "steps"
    folder.mkdir(exist_ok=True)
    state = checkpoints.bridge.original_model.state_dict()
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()},
              str(folder / f"step_{step:07d}.safetensors"))
    checkpoints.saved.append(step)


def train_attn_only(bridge: Any, recipe: dict[str, Any], checkpoints: Checkpoints) -> dict[str, Any]:
    """Train on stdlib windows with copied spans; save ``n_checkpoints`` log-spaced checkpoints."""
    n_ctx = bridge.cfg.n_ctx
    data = corpus_tokens("train", recipe["vocab_size"])
    gen = torch.Generator().manual_seed(recipe["seed"])
    def batches_fn(step: int):
        return window_batch(data, recipe["batch"], n_ctx, gen, recipe["repeat_share"], recipe["min_span"]), None

    save_at = set(log_spaced_steps(recipe["steps"], recipe["n_checkpoints"]))
    if recipe["n_checkpoints"] > 0:
        _save_half(checkpoints, 0)

    def on_step(step: int, loss: float) -> None:
        if step in save_at:
            _save_half(checkpoints, step)

    losses = train_loop(bridge, batches_fn, recipe["steps"], lr=recipe["lr"], weight_decay=recipe["weight_decay"],
                        warmup=recipe["warmup"], seed=recipe["seed"], on_step=on_step,
                        desc=f"training {bridge.cfg.n_layers}-layer attention-only model")
    val = evaluate_loss(bridge, validation_batches(recipe, n_ctx))
    tokens_seen = recipe["steps"] * recipe["batch"] * n_ctx
    return {"validation_loss": round(val, 4), "final_train_loss": round(sum(losses[-50:]) / 50, 4),
            "tokens_seen": tokens_seen, "train_tokens_available": int(len(data))}


def _config(n_layers: int) -> dict[str, Any]:
    config = dict(n_layers=n_layers, d_model=128, n_heads=8, d_head=16, d_vocab=VOCAB, n_ctx=N_CTX,
                  attn_only=True, normalization_type=None, positional_embedding_type="standard",
                  act_fn="relu", seed=0)
    if n_layers == 0:  # the default init divides by n_layers
        config["init_mode"] = "xavier_normal"
    return config


def _recipe(steps: int, n_checkpoints: int) -> dict[str, Any]:
    return dict(vocab_size=VOCAB, steps=steps, batch=32, lr=2e-3, weight_decay=0.01, warmup=50,
                repeat_share=0.5, min_span=4, n_checkpoints=n_checkpoints, seed=0)


def _tokenizer(recipe: dict[str, Any]):
    return stdlib_tokenizer(recipe["vocab_size"])


for _layers, _steps, _ckpts in ((0, 400, 4), (1, 1000, 8), (2, 1200, 20)):
    register_local_model(LocalModel(
        name=f"attn-only-{_layers}l",
        description=(f"{_layers}-layer attention-only transformer" if _layers else "zero-layer (bigram) model")
        + " trained on the Python standard library (BPE vocabulary 1024)",
        config=_config(_layers),
        recipe=_recipe(_steps, _ckpts),
        trainer=train_attn_only,
        tokenizer=_tokenizer,
    ))
