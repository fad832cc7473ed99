"""Learned edge masks (Edge Pruning, Bhaskar et al. 2024): a hard-concrete gate on every edge,
trained so that the masked model keeps the task metric while an L0 penalty removes edges.

Each edge ``s -> r`` has a gate z in [0, 1]; the receiver reads the residual stream minus
``(1 - z)`` times the sender's output change (its output in this run minus its corrupted value):
z = 1 keeps the edge, z = 0 patches it — the engine's edge patching
(:func:`shared.engine.patching.score_edge_masks`) with fractional masks. The gates are sampled
from the hard-concrete distribution of Louizos et al. (2018) with one learned logit per edge,

    u ~ U(0, 1),  s = sigmoid((log u - log(1 - u) + log_alpha) / beta),
    z = clamp(s * (zeta - gamma) + gamma, 0, 1),

whose probability of being non-zero, ``sigmoid(log_alpha - beta * log(-gamma / zeta))``, is the
differentiable L0 norm. The loss is the squared gap between the masked and the intact metric per
prompt, in units of |m(N) - m(empty)|, plus ``l0`` times the expected share of edges kept. After
training the deterministic gate (u = 1/2) above 1/2 keeps an edge; the logits are the edge scores.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from tqdm.auto import tqdm

from shared.engine.ablation import ablation_values
from shared.engine.batch import PromptBatch
from shared.engine.circuit import Circuit
from shared.engine.metrics import Metric
from shared.engine.patching import _run_edges, edge_setup, score_edge_masks
from shared.engine.runs import Values, record
from shared.errors import ParameterError

BETA, GAMMA, ZETA = 2 / 3, -0.1, 1.1  # the hard-concrete constants of Louizos et al. (2018)


def hard_concrete(log_alpha: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A sample of the gates (``generator`` given) or, without one, the deterministic gates."""
    if generator is None:
        s = torch.sigmoid(log_alpha)
    else:
        u = torch.rand(log_alpha.shape, generator=generator).clamp(1e-6, 1 - 1e-6)
        s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + log_alpha) / BETA)
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def keep_probability(log_alpha: torch.Tensor) -> torch.Tensor:
    """Probability that each gate is non-zero (the expected L0 norm per edge)."""
    return torch.sigmoid(log_alpha - BETA * math.log(-GAMMA / ZETA))


def edge_pruning(bridge: Any, batch: PromptBatch, metric: "Metric | str | None" = None, l0: float = 1.0,
                 steps: int = 150, lr: float = 0.1, init: float = 2.0, ablation: str = "corrupt",
                 values: Optional[Values] = None, seed: int = 0, progress: bool = False) -> Circuit:
    """Learn a sparse edge mask that keeps the task metric; returns the kept edges as a circuit
    (``scores``: each edge's learned logit, ``info``: the training settings and final loss)."""
    if l0 < 0 or steps < 1 or lr <= 0:
        raise ParameterError(f"Edge pruning needs l0 >= 0, steps >= 1 and lr > 0 (got {l0}, {steps}, {lr}).")
    metric, graph, t = edge_setup(bridge, batch, metric)
    values = ablation_values(bridge, batch, ablation) if values is None else values
    base = record(bridge, batch.clean)
    E = len(graph.edges)
    full, empty = score_edge_masks(bridge, batch, torch.stack([torch.zeros(E, dtype=torch.bool),
                                                               torch.ones(E, dtype=torch.bool)]),
                                   values, metric, base=base, per_prompt=True)
    span = max(float((full - empty).mean().abs()), 1e-6)
    safe, valid = t.table.clamp(min=0), (t.table >= 0).float()
    log_alpha = torch.full((E,), float(init), requires_grad=True)
    opt = torch.optim.Adam([log_alpha], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in tqdm(range(steps), desc="edge pruning", disable=not progress, leave=False):
        z = hard_concrete(log_alpha, gen)
        sr = ((1 - z)[safe] * valid).unsqueeze(0)  # [1, senders, receivers]: share of each edge patched
        final = _run_edges(bridge, batch, base, values, sr, 0, t)
        m = metric(bridge, final.view(1, len(batch), -1), batch)[0]
        gap = ((m - full) / span).pow(2).mean()
        loss = gap + l0 * keep_probability(log_alpha).mean()
        log_alpha.grad, = torch.autograd.grad(loss, [log_alpha])  # no gradients into the weights
        opt.step()
        losses.append(float(gap.detach()))
    with torch.no_grad():
        kept_mask = hard_concrete(log_alpha) > 0.5
    kept = [e for e, k in zip(graph.edges, kept_mask.tolist()) if k]
    score = float(score_edge_masks(bridge, batch, ~kept_mask, values, metric, base=base)[0])
    scores = dict(zip(graph.edges, log_alpha.detach().tolist()))
    return Circuit.from_edges(kept, scores=scores, method="edge_pruning", metric=metric.name, score=score,
                              full=float(full.mean()), info={"l0": l0, "steps": steps, "lr": lr, "seed": seed,
                                                             "ablation": values.kind, "empty": float(empty.mean()),
                                                             "final_gap": losses[-1]})


__all__ = ["edge_pruning", "hard_concrete", "keep_probability"]
