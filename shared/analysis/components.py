"""One continuous score per head and component role, so that a role can be followed across training.

The final-model chapters decide whether a head *is* a name mover, an S-inhibition head and so on with
thresholds on several measurements (:mod:`shared.analysis.ioi`). Following a role over checkpoints
needs a number per head that is about 1 on a head that does the job and about 0 on one that does
not. Each score below is built from the measurements those chapters use, read in the same way:

* **previous-token**, **duplicate-token**, **induction** — the diagonal scores of
  :func:`shared.analysis.heads.head_scores` on repeated random tokens (the framework chapters);
* **successor** — the mean OV successor score over ordinal lists of
  :func:`shared.analysis.ov.ov_score_table` (``successor_mean``, the score of the sequence chapters);
* **name mover** — attention END → IO on IOI prompts (:func:`shared.analysis.ioi.ioi_attention`)
  times the share of names whose own name gets the highest logit, among the names, from the head's
  OV circuit (:func:`name_ov_shares`): the name-mover criteria (attend to the IO, copy names) as one
  product;
* **copy suppression** (negative name mover) — attention END → IO + S1 + S2 times the share of
  names whose own name gets the *lowest* logit among the names;
* **S-inhibition** — attention END → S2 in excess of attention END → IO (0 when it attends the IO
  more): the attention criterion of the S-inhibition class, less what a name mover would show.

The path-patching effects of the final-model classification are left out: they are defined only
once the model does IOI and cost one patched run per head and receiver at every checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from shared.analysis.attention import attention_patterns
from shared.analysis.heads import head_scores
from shared.analysis.ioi import IOIPositions, ioi_attention
from shared.analysis.ov import OrdinalList, ov_logits, ov_score_table, topk_copy_score
from shared.engine.graph import Graph
from shared.errors import ParameterError

ROLES = ("previous-token", "duplicate-token", "induction", "successor", "name mover", "copy suppression",
         "S-inhibition")


@dataclass
class ComponentProbes:
    """The inputs every score is read on: ``repeated`` tokens ``[n, start + 2 * seq_len]`` (random
    tokens repeated once, first copy at ``start``), IOI prompts (``ioi``: clean tokens and their
    positions, one entry per token length), the name tokens and the ordinal ``lists``."""

    repeated: torch.Tensor
    seq_len: int
    ioi: Sequence[tuple[torch.Tensor, IOIPositions]]
    name_ids: torch.Tensor
    lists: Mapping[str, OrdinalList]


def name_ov_shares(bridge: Any, name_ids: torch.Tensor) -> pd.DataFrame:
    """Per head: ``copy``, the share of names whose own name gets the highest logit among the names
    from the head's OV circuit (:func:`shared.analysis.ov.ov_logits`), and ``suppression``, the share
    whose own name gets the lowest."""
    ids = torch.as_tensor(name_ids, dtype=torch.long).unique()
    if len(ids) < 2:
        raise ParameterError("The name OV shares need at least two distinct name tokens.")
    logits = ov_logits(bridge, ids)[..., ids.to(bridge.W_U.device)].float().cpu()  # [heads, n, n]
    own = torch.arange(len(ids))
    return pd.DataFrame({"copy": topk_copy_score(logits, own, k=1).numpy(),
                         "suppression": topk_copy_score(-logits, own, k=1).numpy()},
                        index=pd.Index(Graph.of(bridge).heads(), name="head"))


def mean_ioi_attention(bridge: Any, prompts: Sequence[tuple[torch.Tensor, IOIPositions]]) -> pd.DataFrame:
    """:func:`shared.analysis.ioi.ioi_attention` averaged over groups of prompts (weighted by size)."""
    if not prompts:
        raise ParameterError("The IOI role scores need at least one group of IOI prompts.")
    total = sum(len(tokens) for tokens, _ in prompts)
    return sum(ioi_attention(bridge, tokens, pos) * (len(tokens) / total) for tokens, pos in prompts)


def component_scores(bridge: Any, probes: ComponentProbes) -> pd.DataFrame:
    """Every head's score for each role of ``ROLES`` (rows ``a0.h0``..., columns the roles)."""
    heads = Graph.of(bridge).heads()
    start = probes.repeated.shape[1] - 2 * probes.seq_len
    diag = head_scores(attention_patterns(bridge, probes.repeated), probes.seq_len, bridge.cfg.n_heads, start)
    attention = mean_ioi_attention(bridge, probes.ioi)
    shares = name_ov_shares(bridge, probes.name_ids)
    table = pd.DataFrame(index=pd.Index(heads, name="head"))
    table["previous-token"] = diag.previous_token.flatten().numpy()
    table["duplicate-token"] = diag.duplicate_token.flatten().numpy()
    table["induction"] = diag.induction.flatten().numpy()
    table["successor"] = ov_score_table(bridge, probes.lists)["successor_mean"].reindex(heads).to_numpy()
    table["name mover"] = attention["end→io"] * shares["copy"]
    table["copy suppression"] = attention["end→names"] * shares["suppression"]
    table["S-inhibition"] = (attention["end→s2"] - attention["end→io"]).clip(lower=0.0)
    return table[list(ROLES)]


__all__ = ["ROLES", "ComponentProbes", "component_scores", "mean_ioi_attention", "name_ov_shares"]
