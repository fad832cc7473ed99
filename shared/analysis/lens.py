"""The logit lens: the residual stream after every layer, decoded as if it were the last one.

Each stage's residual stream goes through the model's final normalisation once, with its own
statistics (:func:`shared.engine.runs.final_norm`), then through the unembedding; the rank of chosen
tokens among the whole vocabulary says after which layer the model "knows" them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pandas as pd
import torch

from shared.engine.runs import final_norm


@torch.no_grad()
def residual_stack(bridge: Any, tokens: torch.Tensor, pos: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Residual stream entering each block and leaving the last one: ``[n_layers + 1, batch, d]``
    at positions ``pos`` [batch] (default: last position)."""
    n_layers = bridge.cfg.n_layers
    names = [f"blocks.{l}.hook_resid_pre" for l in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]
    _, cache = bridge.run_with_cache(tokens, names_filter=lambda name: name in names)
    pos = torch.full((tokens.shape[0],), tokens.shape[1] - 1) if pos is None else pos
    rows = torch.arange(tokens.shape[0])
    return torch.stack([cache[name][rows, pos.to(cache[name].device)] for name in names])


def stage_names(n_layers: int) -> list[str]:
    """Labels of the logit-lens stages: the embedding, then after each layer."""
    return ["embed"] + [f"after L{l}" for l in range(n_layers)]


def stage_phrase(stage: Optional[str]) -> str:
    """Prose for a logit-lens stage: ``"after L2"`` -> ``"after layer 2"``."""
    if stage is None:
        return "at no layer"
    if stage == "embed":
        return "already at the embedding"
    return stage.replace("after L", "after layer ")


def token_ranks(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Rank of ``targets`` [...] in ``logits`` [..., vocab]: 0 = top, k = k tokens score higher."""
    target_logit = logits.gather(-1, targets.unsqueeze(-1))
    return (logits > target_logit).sum(-1)


@dataclass
class LensResult:
    """Ranks and logits [stage, prompt] of each named target token after every layer (stage 0 = embedding)."""

    stages: list[str]
    ranks: dict[str, torch.Tensor]
    logits: dict[str, torch.Tensor]

    def table(self) -> pd.DataFrame:
        """Per stage and target: mean and median rank, share of prompts where it is the top token."""
        rows = []
        for name, r in self.ranks.items():
            for i, stage in enumerate(self.stages):
                rf = r[i].float()
                rows.append(dict(stage=stage, layer=i - 1, target=name, mean_rank=float(rf.mean()),
                                 median_rank=float(rf.median()), top1=float((r[i] == 0).float().mean()),
                                 mean_logit=float(self.logits[name][i].float().mean())))
        return pd.DataFrame(rows)

    @staticmethod
    def _from_stage(flags: torch.Tensor) -> Optional[int]:
        """Index of the first stage from which ``flags`` holds through the last stage."""
        if not bool(flags[-1]):
            return None
        i = len(flags) - 1
        while i > 0 and bool(flags[i - 1]):
            i -= 1
        return i

    def switch_stage(self, target: str = "answer") -> Optional[str]:
        """The stage where the prediction switches to ``target``: the first from which it is the
        top token on most prompts through the output (``None`` if it is not top-1 at the end)."""
        i = self._from_stage((self.ranks[target] == 0).float().mean(1) > 0.5)
        return None if i is None else self.stages[i]

    def overtake_stage(self, first: str = "answer", second: str = "last member") -> Optional[str]:
        """First stage from which ``first`` outranks ``second`` on most prompts through the output."""
        i = self._from_stage((self.ranks[first] < self.ranks[second]).float().mean(1) > 0.5)
        return None if i is None else self.stages[i]


@torch.no_grad()
def logit_lens(bridge: Any, tokens: torch.Tensor, targets: Mapping[str, torch.Tensor],
               pos: Optional[torch.Tensor] = None) -> LensResult:
    """Unembed the residual stream after every layer (final normalisation applied once, with its
    own statistics) and rank each target token [batch] among the whole vocabulary."""
    resid = residual_stack(bridge, tokens, pos)
    logits = final_norm(bridge, resid) @ bridge.W_U
    if getattr(bridge, "b_U", None) is not None:
        logits = logits + bridge.b_U
    ranks, values = {}, {}
    for name, ids in targets.items():
        ids = torch.as_tensor(ids, dtype=torch.long, device=logits.device).view(1, -1).expand(logits.shape[0], -1)
        ranks[name] = token_ranks(logits, ids).cpu()
        values[name] = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1).cpu()
    return LensResult(stage_names(bridge.cfg.n_layers), ranks, values)


__all__ = ["LensResult", "logit_lens", "residual_stack", "stage_names", "stage_phrase", "token_ranks"]
