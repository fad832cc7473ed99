"""A small, seeded training loop for native bridges (language modelling or answer-only losses)."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


def log_spaced_steps(total: int, count: int) -> list[int]:
    """About ``count`` distinct steps from 1 to ``total``, spaced evenly in log scale."""
    if total <= 0 or count <= 0:
        return []
    raw = torch.logspace(0, math.log10(total), steps=count).round().long().tolist()
    return sorted(set(int(s) for s in raw) | {total})


def lm_loss(logits: torch.Tensor, tokens: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean next-token cross-entropy; ``mask`` [batch, pos-1] selects which predictions count."""
    losses = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
    losses = losses.view(tokens.shape[0], -1)
    if mask is None:
        return losses.mean()
    mask = mask.to(losses.dtype)
    return (losses * mask).sum() / mask.sum().clamp_min(1)


def train_loop(
    bridge: Any,
    batches: Callable[[int], tuple[torch.Tensor, Optional[torch.Tensor]]],
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    warmup: int = 100,
    seed: int = 0,
    on_step: Optional[Callable[[int, float], None]] = None,
    desc: str = "training",
) -> list[float]:
    """Train ``bridge`` in place with AdamW and a warmup + cosine schedule.

    ``batches(step)`` returns ``(tokens, mask)``: mask [batch, pos-1] marks the predictions that
    count (``None`` for all). It must be deterministic in ``step`` for reproducibility.
    ``on_step(step, loss)`` runs after each step (1-based), e.g. to save checkpoints.
    Runs on the underlying native module (same weights, no hook overhead). Returns the losses.
    """
    torch.manual_seed(seed)
    model = bridge.original_model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    losses: list[float] = []
    bar = tqdm(range(steps), desc=desc, mininterval=2.0)
    for step in bar:
        tokens, mask = batches(step)
        loss = lm_loss(model(tokens), tokens, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if on_step is not None:
            on_step(step + 1, losses[-1])
    model.eval()
    return losses


@torch.no_grad()
def evaluate_loss(bridge: Any, batches: Iterable[tuple[torch.Tensor, Optional[torch.Tensor]]]) -> float:
    """Mean loss over ``(tokens, mask)`` batches, weighted by the number of counted predictions."""
    model = bridge.original_model
    total, count = 0.0, 0.0
    for tokens, mask in batches:
        n = float(mask.sum()) if mask is not None else float(tokens.shape[0] * (tokens.shape[1] - 1))
        total += lm_loss(model(tokens), tokens, mask).item() * n
        count += n
    return total / max(count, 1.0)


__all__ = ["evaluate_loss", "lm_loss", "log_spaced_steps", "train_loop"]
