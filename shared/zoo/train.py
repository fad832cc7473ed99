"""A small, seeded training loop for native bridges (language modelling or answer-only losses).

The loop can be stopped and continued: ``on_state(step, state)`` hands out a function that builds the
full training state (float32 weights, optimizer moments, random-number state, step), and
``resume=`` that state continues the run exactly where it stopped (same learning rate, same next
batch: batches are a function of the step). :func:`save_state` / :func:`load_state` write and read
such a state atomically, with its sha256 checked on load.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from shared.errors import CheckpointError, ParameterError

SCHEDULES = ("cosine", "wsd")


def log_spaced_steps(total: int, count: int) -> list[int]:
    """About ``count`` distinct steps from 1 to ``total``, spaced evenly in log scale."""
    if total <= 0 or count <= 0:
        return []
    raw = torch.logspace(0, math.log10(total), steps=count).round().long().tolist()
    return sorted(set(int(s) for s in raw) | {total})


def lr_factor(step: int, steps: int, warmup: int, schedule: str = "cosine", decay_share: float = 0.2,
              floor: float = 0.1) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based).

    ``cosine``: linear warmup, then a cosine from 1 down to ``floor`` at the last step.
    ``wsd`` (warmup-stable-decay): linear warmup, constant 1, and a linear decay to ``floor`` over the
    last ``decay_share`` of the steps, so every checkpoint before the decay is a point of one run that
    any longer run passes through too.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        progress = (step - warmup) / max(1, steps - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "wsd":
        decay_start = steps - int(round(decay_share * steps))
        if step < decay_start:
            return 1.0
        return 1.0 - (1 - floor) * (step - decay_start + 1) / max(1, steps - decay_start)
    raise ParameterError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}.")


def lm_loss(logits: torch.Tensor, tokens: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean next-token cross-entropy; ``mask`` [batch, pos-1] selects which predictions count."""
    losses = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="none")
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
    schedule: str = "cosine",
    decay_share: float = 0.2,
    resume: Optional[dict[str, Any]] = None,
    on_state: Optional[Callable[[int, Callable[[], dict[str, Any]]], None]] = None,
    stop_after: Optional[int] = None,
    autocast: bool = False,
) -> list[float]:
    """Train ``bridge`` in place with AdamW and a warmup + cosine (or warmup-stable-decay) schedule.

    ``batches(step)`` returns ``(tokens, mask)``: mask [batch, pos-1] marks the predictions that
    count (``None`` for all). It must be deterministic in ``step`` for reproducibility.
    ``on_step(step, loss)`` runs after each step (1-based), e.g. to save checkpoints;
    ``on_state(step, state)`` too, where ``state()`` builds the full training state (see module doc).
    ``resume`` is such a state: training continues from its step. ``stop_after`` ends the loop after
    that many steps (the schedule still spans ``steps``). ``autocast`` runs forward and backward in
    bfloat16 autocast (weights and optimizer stay float32).
    Runs on the underlying native module (same weights, no hook overhead). Returns the losses.
    """
    if schedule not in SCHEDULES:
        raise ParameterError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}.")
    torch.manual_seed(seed)
    model = bridge.original_model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))
    start = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        if "optimizer" in resume:  # else: a fresh AdamW (continuing from saved weights only)
            opt.load_state_dict(resume["optimizer"])
        if "rng" in resume:
            torch.set_rng_state(resume["rng"])
        start = int(resume["step"])

    def state(step: int) -> dict[str, Any]:
        return dict(step=step, model={k: v.detach().clone() for k, v in model.state_dict().items()},
                    optimizer=opt.state_dict(), rng=torch.get_rng_state())

    end = steps if stop_after is None else min(steps, start + stop_after)
    losses: list[float] = []
    bar = tqdm(range(start, end), desc=desc, mininterval=2.0, initial=start, total=steps)
    for step in bar:
        factor = lr_factor(step, steps, warmup, schedule, decay_share)
        for group in opt.param_groups:
            group["lr"] = lr * factor
        tokens, mask = batches(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = lm_loss(model(tokens), tokens, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if on_step is not None:
            on_step(step + 1, losses[-1])
        if on_state is not None:
            on_state(step + 1, lambda s=step + 1: state(s))
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


# ------------------------------------------------------------------------------ training state
def save_state(folder: Path, state: dict[str, Any], extra: Optional[dict[str, Any]] = None) -> Path:
    """Write ``state`` (see :func:`train_loop`) into ``folder`` so that a kill at any moment leaves the
    last complete state readable: the bytes go to a new file first; ``state.json`` (its name, sha256,
    step and ``extra``) is replaced atomically only once that file is complete; then the older file goes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    name = f"state-{int(state['step']):08d}-{os.getpid()}.pt"
    _write_atomic(folder / name, data)
    pointer = dict(file=name, sha256=hashlib.sha256(data).hexdigest(), step=int(state["step"]), **(extra or {}))
    _write_atomic(folder / "state.json", json.dumps(pointer, indent=1, sort_keys=True, default=float).encode())
    for old in folder.glob("state-*.pt"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / name


def load_state(folder: Path) -> Optional[tuple[dict[str, Any], dict[str, Any]]]:
    """The last complete state written by :func:`save_state` and its ``state.json``, or None if there is none."""
    pointer_path = Path(folder) / "state.json"
    if not pointer_path.exists():
        return None
    pointer = json.loads(pointer_path.read_text())
    path = Path(folder) / pointer["file"]
    data = path.read_bytes() if path.exists() else b""
    if hashlib.sha256(data).hexdigest() != pointer["sha256"]:
        raise CheckpointError(f"The training state {path} is missing or does not match its sha256; delete "
                              f"{folder} to continue from the last saved checkpoint instead.")
    return torch.load(io.BytesIO(data), weights_only=False), pointer


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


__all__ = ["SCHEDULES", "evaluate_loss", "load_state", "lm_loss", "log_spaced_steps", "lr_factor", "save_state",
           "train_loop"]
