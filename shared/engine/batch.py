"""The unit every circuit method consumes: clean/corrupted prompts with their answer tokens."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from shared.errors import ParameterError


@dataclass
class PromptBatch:
    """Clean and corrupted token ids of equal shape plus the answers scored at ``answer_pos``.

    ``correct``/``incorrect`` are the token ids whose logit difference is measured at position
    ``answer_pos`` (the position whose next-token prediction is the answer; default: last).
    ``labels`` optionally keeps the prompts' texts for display.
    """

    clean: torch.Tensor
    corrupt: torch.Tensor
    correct: torch.Tensor
    incorrect: torch.Tensor
    answer_pos: Optional[torch.Tensor] = None
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("clean", "corrupt"):
            ids = getattr(self, name)
            if not isinstance(ids, torch.Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
                raise ParameterError(f"{name} token ids must be an integer tensor, got "
                                     f"{getattr(ids, 'dtype', type(ids).__name__)}.")
        if self.clean.dim() != 2:
            raise ParameterError(f"clean tokens must be [batch, pos], got shape {tuple(self.clean.shape)}.")
        if self.clean.shape != self.corrupt.shape:
            raise ParameterError(
                f"Clean and corrupted prompts tokenize to different shapes {tuple(self.clean.shape)} and "
                f"{tuple(self.corrupt.shape)}; every pair must have the same number of tokens."
            )
        n = self.clean.shape[0]
        if n == 0:
            raise ParameterError("The prompt batch is empty.")
        self.correct = torch.as_tensor(self.correct, dtype=torch.long).view(-1)
        self.incorrect = torch.as_tensor(self.incorrect, dtype=torch.long).view(-1)
        if self.answer_pos is None:
            self.answer_pos = torch.full((n,), self.clean.shape[1] - 1, dtype=torch.long)
        self.answer_pos = torch.as_tensor(self.answer_pos, dtype=torch.long).view(-1)
        for name in ("correct", "incorrect", "answer_pos"):
            if getattr(self, name).shape[0] != n:
                raise ParameterError(f"{name} has {getattr(self, name).shape[0]} entries for {n} prompts.")
        for name in ("clean", "corrupt", "correct", "incorrect"):
            if bool((getattr(self, name) < 0).any()):
                raise ParameterError(f"{name} holds a negative token id; token ids start at 0.")
        pos = self.clean.shape[1]
        if bool(((self.answer_pos < 0) | (self.answer_pos >= pos)).any()):
            raise ParameterError(f"answer_pos must lie between 0 and {pos - 1} (the prompts have {pos} tokens), "
                                 f"got {self.answer_pos.tolist()}.")

    def check_model(self, bridge: Any) -> "PromptBatch":
        """Raise one :class:`ParameterError` sentence unless every id fits the model's vocabulary and
        the prompts fit its context; returns the batch."""
        cfg = bridge.cfg
        for name in ("clean", "corrupt", "correct", "incorrect"):
            top = int(getattr(self, name).max())
            if top >= cfg.d_vocab:
                raise ParameterError(f"{name} holds token id {top}, but the model's vocabulary has {cfg.d_vocab} "
                                     f"tokens (ids 0 to {cfg.d_vocab - 1}).")
        if self.clean.shape[1] > cfg.n_ctx:
            raise ParameterError(f"The prompts have {self.clean.shape[1]} tokens, more than the model's context "
                                 f"of {cfg.n_ctx}.")
        return self

    def __len__(self) -> int:
        return self.clean.shape[0]

    def to(self, device: str | torch.device) -> "PromptBatch":
        return PromptBatch(self.clean.to(device), self.corrupt.to(device), self.correct.to(device),
                           self.incorrect.to(device), self.answer_pos.to(device), self.labels)

    def subset(self, index: slice | torch.Tensor) -> "PromptBatch":
        pick = (lambda t: t[index])
        labels = [self.labels[i] for i in torch.arange(len(self))[index].tolist()] if self.labels else []
        return PromptBatch(pick(self.clean), pick(self.corrupt), pick(self.correct), pick(self.incorrect),
                           pick(self.answer_pos), labels)


__all__ = ["PromptBatch"]
