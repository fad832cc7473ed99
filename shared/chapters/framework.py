"""Glue of the framework chapters: which heads an ablation compares (the control head) and the
sentence that says which earlier head each induction head reads through its keys."""
from __future__ import annotations

from typing import Collection, Optional, Sequence

import torch

from shared.analysis.weights import Composition
from shared.engine.graph import head_name


def control_head(scores: torch.Tensor, exclude: Collection[str]) -> Optional[str]:
    """The head with the lowest score in a [layer, head] grid (e.g. induction scores) among the heads
    not in ``exclude`` (the induction heads and the other heads being ablated); ``None`` if none is
    left. Ablating it shows what removing an uninvolved head costs."""
    n_heads = scores.shape[1]
    for i in scores.flatten().argsort().tolist():
        name = head_name(i // n_heads, i % n_heads)
        if name not in exclude:
            return name
    return None


def k_sources_text(comp: Composition, heads: Sequence[str], previous_token: Sequence[str]) -> str:
    """A sentence naming, for the induction heads ``heads``, the earlier head each K-composes with
    most (each earlier head named once when they share it) and whether it is a previous-token head."""
    readers = [h for h in heads if h in comp.later]
    if not readers:
        return "The induction heads are in layer 0, so they read no earlier head."
    grid = comp.grid("K")
    source = {r: comp.source_of("K", r) for r in readers}
    score = {r: f"{float(grid[comp.later.index(r), comp.earlier.index(source[r])]):.2f}" for r in readers}

    def kind(head: str) -> str:
        return "a previous-token head" if head in previous_token else "not one of the previous-token heads"

    shared = set(source.values())
    if len(shared) == 1:
        (writer,) = shared
        if len(readers) == 1:
            return (f"The induction head {readers[0]} K-composes most with **{writer}** "
                    f"(score {score[readers[0]]}), {kind(writer)}.")
        return (f"All {len(readers)} induction heads ({', '.join(readers)}) K-compose most with the same "
                f"earlier head, **{writer}** (scores {', '.join(score[r] for r in readers)}), {kind(writer)}.")
    pairs = ", ".join(f"{r} with **{source[r]}** ({score[r]})" for r in readers)
    kinds = "; ".join(f"{w} is {kind(w)}" for w in dict.fromkeys(source.values()))
    return f"Each induction head's strongest K-composition: {pairs}. Of these earlier heads, {kinds}."


__all__ = ["control_head", "k_sources_text"]
