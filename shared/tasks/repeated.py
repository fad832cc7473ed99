"""Repeated random tokens: uniformly random sequences followed by an exact copy.

Random tokens carry no bigram or skip-trigram structure, so a model can predict the second copy
only by looking back at the first (induction). :meth:`RepeatedTokens.next_token_rows` turns the
sequences into a :class:`~shared.engine.batch.PromptBatch` with one prompt per predicted token,
so the engine's interventions (e.g. ``score_node_masks``) measure the loss of every prediction
with :data:`next_token_logprob`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from shared.analysis.text import special_ids
from shared.engine.batch import PromptBatch
from shared.engine.metrics import Metric, unembed
from shared.errors import ParameterError


def repeated_random_tokens(d_vocab: int, seq_len: int, n: int, seed: int,
                           bos_id: Optional[int] = None, exclude: Sequence[int] = ()) -> torch.Tensor:
    """``n`` sequences of ``seq_len`` uniformly random tokens (none from ``exclude``) followed by
    the same tokens again, with ``bos_id`` in front if given: [n, (1 +) 2 * seq_len]."""
    if seq_len < 2 or n < 1:
        raise ParameterError(f"Repeated sequences need seq_len >= 2 and at least one sequence (got {seq_len}, {n}).")
    allowed = torch.ones(d_vocab, dtype=torch.bool)
    allowed[[i for i in exclude if i < d_vocab]] = False
    pool = torch.nonzero(allowed).flatten()
    gen = torch.Generator().manual_seed(seed)
    half = pool[torch.randint(0, len(pool), (n, seq_len), generator=gen)]
    tokens = torch.cat([half, half], dim=1)
    if bos_id is not None:
        tokens = torch.cat([torch.full((n, 1), bos_id, dtype=torch.long), tokens], dim=1)
    return tokens


@dataclass
class NextTokenRows:
    """One prompt per (sequence, predicting position): ``batch.answer_pos`` is the position and
    ``batch.correct`` the token that follows it; ``repeated`` marks predictions in the second copy."""

    batch: PromptBatch
    repeated: torch.Tensor


@dataclass
class RepeatedTokens:
    """Repeated random token sequences [n, start + 2 * seq_len]; ``start`` is 1 after a BOS token."""

    tokens: torch.Tensor
    seq_len: int

    @property
    def start(self) -> int:
        return self.tokens.shape[1] - 2 * self.seq_len

    def next_token_rows(self) -> NextTokenRows:
        """Every prediction inside either copy (the first token of each copy is not predictable
        from inside it): positions ``start .. start + seq_len - 2`` and the same in the second copy."""
        first = torch.arange(self.start, self.start + self.seq_len - 1)
        positions = torch.cat([first, first + self.seq_len])
        n = self.tokens.shape[0]
        pos = positions.repeat(n)
        prompts = self.tokens.repeat_interleave(len(positions), dim=0)
        answers = prompts[torch.arange(len(pos)), pos + 1]
        batch = PromptBatch(prompts, prompts, answers, answers, answer_pos=pos)
        return NextTokenRows(batch, (positions >= self.start + self.seq_len).repeat(n))


def repeated_tokens_for(bridge: Any, seq_len: int, n: int, seed: int) -> RepeatedTokens:
    """Repeated random tokens for ``bridge``: BOS first when its tokenizer has one, special tokens excluded."""
    if seq_len * 2 + 1 > bridge.cfg.n_ctx:
        raise ParameterError(f"seq_len {seq_len} is too long: twice it plus BOS must fit the context "
                             f"of {bridge.cfg.n_ctx} tokens.")
    tok = bridge.tokenizer
    bos = getattr(tok, "bos_token_id", None) if tok is not None else None
    tokens = repeated_random_tokens(bridge.cfg.d_vocab, seq_len, n, seed, bos_id=bos, exclude=special_ids(tok))
    return RepeatedTokens(tokens, seq_len)


def _next_token_logprob(bridge: Any, final: torch.Tensor, batch: PromptBatch) -> torch.Tensor:
    logp = unembed(bridge, final).float().log_softmax(-1)
    answer = batch.correct.to(logp.device).expand(logp.shape[:-1])
    return logp.gather(-1, answer.unsqueeze(-1)).squeeze(-1)


next_token_logprob = Metric("next_token_logprob", _next_token_logprob)
"""Log-probability of the answer token at the answer position (its negative is the loss)."""


__all__ = ["NextTokenRows", "RepeatedTokens", "next_token_logprob", "repeated_random_tokens", "repeated_tokens_for"]
