"""What a head's OV circuit writes when it reads one token of an ordered list (" 4" -> " 5" for a
successor head, " 4" -> " 4" for a copy head), read off the weights alone.

These are *top-k* scores on a chosen token list, as in the successor-heads paper; they are not the
eigenvalue "copying score" of a head's full OV matrix (:func:`shared.analysis.weights.copying_score`).

* :func:`effective_embedding` — a token's embedding plus what MLP 0 adds to it (attention 0 skipped);
* :func:`ov_logits` — effective embedding -> the head's input norm -> ``W_V W_O`` -> final norm -> ``W_U``;
* :func:`topk_copy_score`, :func:`topk_successor_score`, :func:`successor_score` — shares of the list
  whose own token / successor is among the top k of the vocabulary / the best among the list;
* :func:`ov_score_table` — all three per head and list.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import pandas as pd
import torch

from shared.engine.graph import head_name, parse_node
from shared.engine.runs import final_norm


@dataclass(frozen=True)
class OrdinalList:
    """The tokens of an ordered list in order (``ids`` [n]), and whether the last is followed by the first."""

    ids: torch.Tensor
    cyclic: bool = False


@torch.no_grad()
def effective_embedding(bridge: Any, token_ids: torch.Tensor, mlp0: bool = True) -> torch.Tensor:
    """Token embeddings [n, d_model]; with ``mlp0`` the residual after MLP 0 reads them alone
    (``W_E + MLP0(LN(W_E))``, attention 0 skipped), as in the successor-heads paper."""
    x = bridge.W_E[torch.as_tensor(token_ids, dtype=torch.long, device=bridge.W_E.device)]
    if mlp0 and not bridge.cfg.attn_only:
        block = bridge.blocks[0]
        x = x + block.mlp(block.ln2(x.unsqueeze(0))).squeeze(0)
    return x


@torch.no_grad()
def ov_logits(bridge: Any, token_ids: torch.Tensor, mlp0: bool = True,
              heads: Optional[Sequence[tuple[int, int]]] = None) -> torch.Tensor:
    """Logits [heads, n, vocab] the OV circuit of each head writes when it attends only to a token.

    Effective embedding -> the head's input normalisation -> ``W_V W_O`` -> final normalisation
    (no bias) -> ``W_U`` (no bias). ``heads`` (``(layer, head)`` pairs) defaults to every head in order.
    """
    cfg = bridge.cfg
    heads = [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)] if heads is None else list(heads)
    x = effective_embedding(bridge, token_ids, mlp0)
    out = []
    for layer, head in heads:
        ln1 = bridge.blocks[layer].ln1
        normed = ln1(x.unsqueeze(0)).squeeze(0) if (cfg.normalization_type or "") else x
        written = normed @ bridge.W_V[layer, head] @ bridge.W_O[layer, head]
        out.append(final_norm(bridge, written, bias=False) @ bridge.W_U)
    return torch.stack(out)


def _rows(n: int, cyclic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the list that have a successor, and the row of that successor."""
    src = torch.arange(n if cyclic else n - 1)
    return src, (src + 1) % n


def topk_copy_score(logits: torch.Tensor, token_ids: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Share of tokens whose own id is among the top ``k`` of their OV logits row
    (``logits`` [..., n, vocab], row i belongs to ``token_ids[i]``)."""
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=logits.device)
    top = logits.topk(k, dim=-1).indices
    return (top == ids.view(-1, 1)).any(-1).float().mean(-1)


def topk_successor_score(logits: torch.Tensor, token_ids: torch.Tensor, k: int = 5,
                         cyclic: bool = False) -> torch.Tensor:
    """Share of tokens whose successor in the list is among the top ``k`` of the whole vocabulary."""
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=logits.device)
    src, dst = _rows(len(ids), cyclic)
    top = logits[..., src, :].topk(k, dim=-1).indices
    return (top == ids[dst].view(-1, 1)).any(-1).float().mean(-1)


def successor_score(logits: torch.Tensor, token_ids: torch.Tensor, cyclic: bool = False) -> torch.Tensor:
    """Share of tokens for which, among the list's own tokens, the successor gets the highest logit."""
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=logits.device)
    src, dst = _rows(len(ids), cyclic)
    within = logits[..., src, :][..., ids]  # [..., n_src, n]
    return (within.argmax(-1) == dst).float().mean(-1)


def ov_score_table(bridge: Any, lists: Mapping[str, OrdinalList], k: int = 5, mlp0: bool = True) -> pd.DataFrame:
    """Per head (rows ``a0.h1``...): ``copy@k``, ``succ@k`` and the full ``successor`` score on each
    list, then their means over lists in ``successor_mean`` and ``copy_mean``."""
    cfg = bridge.cfg
    heads = [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    table = pd.DataFrame({"head": [head_name(l, h) for l, h in heads],
                          "layer": [l for l, _ in heads], "index": [h for _, h in heads]})
    succ_cols = []
    for name, ordinal in lists.items():
        ids, cyclic = ordinal.ids, ordinal.cyclic
        cols: dict[str, list[float]] = {f"copy@{k} {name}": [], f"succ@{k} {name}": [], f"successor {name}": []}
        for head in heads:  # one head at a time: [n, vocab] logits stay small for large vocabularies
            logits = ov_logits(bridge, ids, mlp0, heads=[head])[0]
            cols[f"copy@{k} {name}"].append(float(topk_copy_score(logits, ids, k)))
            cols[f"succ@{k} {name}"].append(float(topk_successor_score(logits, ids, k, cyclic)))
            cols[f"successor {name}"].append(float(successor_score(logits, ids, cyclic)))
        for col, values in cols.items():
            table[col] = values
        succ_cols.append(f"successor {name}")
    table["successor_mean"] = table[succ_cols].mean(axis=1)
    table["copy_mean"] = table[[c for c in table.columns if c.startswith("copy@")]].mean(axis=1)
    return table.set_index("head")


def head_grid(values: Mapping[str, float], n_layers: int, n_heads: int) -> torch.Tensor:
    """A ``[layer, head]`` grid from ``{"a1.h0": value}`` (other nodes ignored, missing heads NaN)."""
    grid = torch.full((n_layers, n_heads), float("nan"))
    for name, v in values.items():
        node = parse_node(name)
        if node.kind == "head":
            grid[node.layer, node.head] = float(v)
    return grid


__all__ = [
    "OrdinalList", "effective_embedding", "head_grid", "ov_logits", "ov_score_table", "successor_score",
    "topk_copy_score", "topk_successor_score",
]
