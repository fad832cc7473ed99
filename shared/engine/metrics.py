"""Circuit metrics, computed from the final residual stream at the answer positions.

Every circuit method calls ``metric(bridge, final, batch)`` where ``final`` is the residual stream
after the final normalisation at each prompt's answer position, shape ``[..., batch, d_model]``
(leading dimensions index candidate interventions run side by side). It returns one value per
prompt, shape ``[..., batch]``; methods average over prompts. Only the logit difference is used
by default; it reads the two answer columns of ``W_U`` instead of unembedding the whole vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from shared.engine.batch import PromptBatch
from shared.errors import ParameterError


@dataclass
class Metric:
    """A named per-prompt metric; ``higher_is_better`` is False for distances such as KL."""

    name: str
    fn: Callable[[Any, torch.Tensor, PromptBatch], torch.Tensor]
    higher_is_better: bool = True

    def __call__(self, bridge: Any, final: torch.Tensor, batch: PromptBatch) -> torch.Tensor:
        return self.fn(bridge, final, batch)


def unembed(bridge: Any, final: torch.Tensor, columns: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Logits from the normalised final residual; ``columns`` restricts to some vocabulary ids."""
    W_U, b_U = bridge.W_U, getattr(bridge, "b_U", None)
    if columns is not None:
        W_U = W_U[:, columns]
        b_U = b_U[columns] if b_U is not None else None
    out = final @ W_U
    return out + b_U if b_U is not None else out


def _answer_direction(bridge: Any, batch: PromptBatch) -> tuple[torch.Tensor, torch.Tensor]:
    W_U = bridge.W_U
    direction = (W_U[:, batch.correct] - W_U[:, batch.incorrect]).T  # [batch, d_model]
    b_U = getattr(bridge, "b_U", None)
    offset = (b_U[batch.correct] - b_U[batch.incorrect]) if b_U is not None else torch.zeros(len(batch))
    return direction, offset


def _logit_diff(bridge: Any, final: torch.Tensor, batch: PromptBatch) -> torch.Tensor:
    direction, offset = _answer_direction(bridge, batch)
    return (final * direction.to(final.dtype)).sum(-1) + offset.to(final)


def _prob_diff(bridge: Any, final: torch.Tensor, batch: PromptBatch) -> torch.Tensor:
    probs = unembed(bridge, final).softmax(-1)
    idx = torch.arange(len(batch), device=final.device)
    return probs[..., idx, batch.correct] - probs[..., idx, batch.incorrect]


logit_diff = Metric("logit_diff", _logit_diff)
prob_diff = Metric("prob_diff", _prob_diff)


def kl_to(reference_final: torch.Tensor) -> Metric:
    """KL(reference || run) over the next-token distribution at the answer position (lower is closer)."""

    def fn(bridge: Any, final: torch.Tensor, batch: PromptBatch) -> torch.Tensor:
        ref = unembed(bridge, reference_final).log_softmax(-1)
        run = unembed(bridge, final).log_softmax(-1)
        return (ref.exp() * (ref - run)).sum(-1)

    return Metric("kl_to_clean", fn, higher_is_better=False)


def normalized(metric: Metric, clean: float, corrupt: float) -> Metric:
    """(M - M_corrupt) / (M_clean - M_corrupt): 1 means the clean behaviour, 0 the corrupted one."""
    span = clean - corrupt
    if abs(span) < 1e-9:
        span = 1e-9

    def fn(bridge: Any, final: torch.Tensor, batch: PromptBatch) -> torch.Tensor:
        return (metric(bridge, final, batch) - corrupt) / span

    return Metric(f"normalized_{metric.name}", fn)


def percent_of_full(metric: Metric, full: float) -> Metric:
    """100 * M / M_full (per prompt values are divided by the full model's mean)."""

    def fn(bridge: Any, final: torch.Tensor, batch: PromptBatch) -> torch.Tensor:
        return 100.0 * metric(bridge, final, batch) / full

    return Metric(f"percent_{metric.name}", fn)


def resolve(metric: "Metric | str | None") -> Metric:
    """Accept a Metric or the name of a built-in one (``logit_diff``, ``prob_diff``)."""
    if metric is None:
        return logit_diff
    if isinstance(metric, Metric):
        return metric
    table = {"logit_diff": logit_diff, "prob_diff": prob_diff}
    if metric not in table:
        raise ParameterError(f"Unknown metric {metric!r}; use one of {sorted(table)} or a shared.engine.metrics.Metric.")
    return table[metric]


__all__ = ["Metric", "kl_to", "logit_diff", "normalized", "percent_of_full", "prob_diff", "resolve", "unembed"]
