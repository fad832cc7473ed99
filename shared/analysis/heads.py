"""Head detectors: scores that say what an attention head does, read off its attention pattern.

On a sequence of random tokens repeated once (``[BOS] t1 ... tn t1 ... tn``, see
:mod:`shared.tasks.repeated`) three behaviours are diagonals of the attention pattern:

* **previous-token** — each query attends to the key just before it (offset 1);
* **duplicate-token** — a query in the second copy attends to the same token in the first (offset n);
* **induction** (prefix matching) — a query in the second copy attends to the token *after* its
  first occurrence, the one about to come next (offset n - 1).

Scores are grids ``[layer, head]``; heads are named ``a{layer}.h{head}`` as everywhere in the book.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from shared.analysis.attention import attention_patterns
from shared.engine.graph import head_name, parse_node


def diagonal_score(patterns: torch.Tensor, n_heads: int, offset: int, first_query: int) -> torch.Tensor:
    """Mean attention from each query ``q >= first_query`` to key ``q - offset``, averaged over
    queries and sequences: [layer, head]. ``patterns`` is [batch, heads (layer-major), query, key]."""
    n = patterns.shape[-1]
    query = torch.arange(first_query, n)
    key = query - offset
    keep = key >= 0
    return patterns[..., query[keep], key[keep]].mean(dim=(0, 2)).view(-1, n_heads)


@dataclass
class HeadScores:
    """Previous-token, duplicate-token and induction scores of every head, each [layer, head]."""

    previous_token: torch.Tensor
    duplicate_token: torch.Tensor
    induction: torch.Tensor

    def panels(self) -> dict[str, torch.Tensor]:
        """The three grids under their display names (one heatmap panel each)."""
        return {"previous-token": self.previous_token, "duplicate-token": self.duplicate_token,
                "induction": self.induction}


def head_scores(patterns: torch.Tensor, seq_len: int, n_heads: int, start: Optional[int] = None) -> HeadScores:
    """The three diagonal scores on repeated random tokens whose first copy starts at position
    ``start`` (default: 1 if the sequences are one longer than the two copies, i.e. start with BOS)."""
    start = patterns.shape[-1] - 2 * seq_len if start is None else start
    second = start + seq_len
    return HeadScores(previous_token=diagonal_score(patterns, n_heads, 1, start + 1),
                      duplicate_token=diagonal_score(patterns, n_heads, seq_len, second),
                      induction=diagonal_score(patterns, n_heads, seq_len - 1, second))


def prefix_matching_scores(bridge: Any, tokens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Prefix-matching score of every head (Olsson et al. 2022) on repeated random ``tokens``: the
    induction diagonal of :func:`head_scores`, [layer, head]."""
    patterns = attention_patterns(bridge, tokens)
    return head_scores(patterns, seq_len, bridge.cfg.n_heads).induction


def top_heads(scores: torch.Tensor, threshold: float) -> list[str]:
    """Names of the heads whose score exceeds ``threshold``, best first (at least the best head)."""
    flat = scores.flatten()
    order = flat.argsort(descending=True).tolist()
    n_heads = scores.shape[1]
    chosen = [i for i in order if flat[i] > threshold] or order[:1]
    return [head_name(i // n_heads, i % n_heads) for i in chosen]


def score_of(scores: torch.Tensor, head: str) -> float:
    """The entry of a [layer, head] score grid for the head called ``head`` (``"a1.h0"``)."""
    node = parse_node(head, scores.shape[0], scores.shape[1])
    return float(scores[node.layer, node.head])


__all__ = ["HeadScores", "diagonal_score", "head_scores", "prefix_matching_scores", "score_of", "top_heads"]
