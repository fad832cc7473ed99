"""Attention-only language models on the standard-library corpus: 0, 1 and 2 layers.

Registers ``attn-only-0l`` (a bigram baseline: embed then unembed), ``attn-only-1l`` (no
LayerNorm, so every path through the model is linear apart from the attention patterns) and
``attn-only-2l`` (with LayerNorm, which the two-layer model needs to form induction heads within the
CPU budget); all TransformerLens-native, no MLPs.

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

from shared.zoo.registry import Checkpoints, LocalModel, register_local_model
from shared.zoo.text.bpe import corpus_tokens, stdlib_tokenizer
from shared.zoo.train import evaluate_loss, log_spaced_steps, train_loop

VOCAB = 1024
N_CTX = 128


def window_batch(data: torch.Tensor, batch: int, n_ctx: int, generator: torch.Generator,
                 repeat_share: float = 0.0, min_span: int = 4, random_share: float = 0.0,
                 d_vocab: int = VOCAB) -> torch.Tensor:
    """``batch`` random windows of ``data``.

    A share ``repeat_share`` of them get a span of ``min_span`` to ``n_ctx // 2`` tokens copied
    further along; a share ``random_share`` is replaced by a random token sequence (``min_span``
    to ``n_ctx // 2`` tokens, ids 1 .. d_vocab - 1) repeated until the window is full.
    """
    starts = torch.randint(0, len(data) - n_ctx, (batch,), generator=generator)
    tokens = torch.stack([data[s: s + n_ctx] for s in starts.tolist()])
    kind = torch.rand(batch, generator=generator)
    for row in range(batch):
        span = int(torch.randint(min_span, n_ctx // 2 + 1, (1,), generator=generator))
        if kind[row] < random_share:
            chunk = torch.randint(1, d_vocab, (span,), generator=generator)
            tokens[row] = chunk.repeat(n_ctx // span + 1)[:n_ctx]
        elif kind[row] < random_share + repeat_share:
            src = int(torch.randint(0, n_ctx - 2 * span + 1, (1,), generator=generator))
            dst = int(torch.randint(src + span, n_ctx - span + 1, (1,), generator=generator))
            tokens[row, dst: dst + span] = tokens[row, src: src + span].clone()
    return tokens


def validation_batches(recipe: dict[str, Any], n_ctx: int, count: int = 20, batch: int = 32):
    """Fixed plain windows of the validation split (seeded), for the reported validation loss."""
    data = corpus_tokens("validation", recipe["vocab_size"])
    gen = torch.Generator().manual_seed(1234)
    return [(window_batch(data, batch, n_ctx, gen), None) for _ in range(count)]


def half_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's tensors in float16, each stored once (the bridge lists the same tensor under
    several names; ``load_model`` restores the aliases)."""
    seen: set[int] = set()
    out = {}
    for key, value in module.state_dict().items():
        if value.data_ptr() not in seen:
            seen.add(value.data_ptr())
            out[key] = value.detach().to(torch.float16).contiguous()
    return out


def _save_half(checkpoints: Checkpoints, step: int) -> None:
    """Save an intermediate checkpoint in float16, each tensor once (loads back into float32)."""
    folder = checkpoints.folder / "steps"
    folder.mkdir(exist_ok=True)
    save_file(half_weights(checkpoints.bridge.original_model), str(folder / f"step_{step:07d}.safetensors"))
    checkpoints.saved.append(step)


def train_attn_only(bridge: Any, recipe: dict[str, Any], checkpoints: Checkpoints) -> dict[str, Any]:
    """Train on stdlib windows with copied spans; save ``n_checkpoints`` log-spaced checkpoints."""
    n_ctx = bridge.cfg.n_ctx
    data = corpus_tokens("train", recipe["vocab_size"])
    gen = torch.Generator().manual_seed(recipe["seed"])
    def batches_fn(step: int):
        return window_batch(data, recipe["batch"], n_ctx, gen, recipe["repeat_share"], recipe["min_span"],
                            recipe.get("random_share", 0.0), bridge.cfg.d_vocab), None

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


def _config(n_layers: int, normalization: str | None = None, n_ctx: int = N_CTX,
            positions: str = "standard") -> dict[str, Any]:
    config = dict(n_layers=n_layers, d_model=128, n_heads=8, d_head=16, d_vocab=VOCAB, n_ctx=n_ctx,
                  attn_only=True, normalization_type=normalization, positional_embedding_type=positions,
                  act_fn="relu", seed=0)
    if positions == "rotary":
        config["rotary_dim"] = config["d_head"]
    if n_layers == 0:  # the default init divides by n_layers
        config["init_mode"] = "xavier_normal"
    return config


def _recipe(steps: int, n_checkpoints: int, **changes: Any) -> dict[str, Any]:
    recipe = dict(vocab_size=VOCAB, steps=steps, batch=32, lr=2e-3, weight_decay=0.01, warmup=50,
                  repeat_share=0.5, random_share=0.0, min_span=4, n_checkpoints=n_checkpoints, seed=0)
    return {**recipe, **changes}


def _tokenizer(recipe: dict[str, Any]):
    return stdlib_tokenizer(recipe["vocab_size"])


# The two-layer model gets LayerNorm, a shorter context, 4 heads of width 32 and most of its windows
# made of repeated random tokens (the rest: text with a copied span). Trials on this machine: with the
# one-layer recipe (8 heads of width 16, no LayerNorm) it had formed no induction head after 3.4M
# tokens; with LayerNorm, rotary positions and half random windows the best prefix-matching score
# reached only 0.24 after 1.5M tokens; with 8 heads of width 16 at learning rate 1e-3, 0.04 after
# 1,200 steps. With this recipe prefix matching jumps from 0.12 to 0.69 between steps 600 and 800
# (about 1.3M to 1.6M tokens) and settles near 0.9.
_MODELS = {
    0: (_config(0), _recipe(400, 4)),
    1: (_config(1), _recipe(1000, 8)),
    2: ({**_config(2, "LN", n_ctx=64), "n_heads": 4, "d_head": 32},
        _recipe(2000, 20, batch=32, lr=1e-3, warmup=100, repeat_share=0.3, random_share=0.8)),
}
for _layers, (_cfg, _rec) in _MODELS.items():
    register_local_model(LocalModel(
        name=f"attn-only-{_layers}l",
        description=(f"{_layers}-layer attention-only transformer" if _layers else "zero-layer (bigram) model")
        + (" with LayerNorm" if _cfg["normalization_type"] else "")
        + f", context {_cfg['n_ctx']}, trained on the Python standard library (BPE vocabulary {VOCAB})",
        config=_cfg,
        recipe=_rec,
        trainer=train_attn_only,
        tokenizer=_tokenizer,
    ))


__all__ = ["N_CTX", "VOCAB", "half_weights", "train_attn_only", "validation_batches", "window_batch"]
