"""The greater-than circuit of Hanna et al. (2023), read from any model: heads that carry the year ``YY``
to the last token, MLPs that turn it into "a later year", and the YY x answer-year pictures.

Everything is measured on a greater-than batch: an object with ``batch`` (the engine's clean / "01"
:class:`~shared.engine.batch.PromptBatch`), ``yy`` [n] (the start year's last two digits), ``yy_pos``
[n] (the position of the ``YY`` token) and ``digits`` [100] (the token ids of ``00``..``99``), as
:class:`shared.tasks.greater_than.GTBatch` provides. The metric (the probability difference) comes in
as an engine :class:`~shared.engine.metrics.Metric`, so this module needs no task code.

* :func:`component_effects` — path patching ("01" values) of every head and MLP into the logits and
  into every MLP, one edge at a time;
* :func:`classify_gt_components` — the MLPs whose effect reaches the logits (directly or through a
  later selected MLP) and the heads whose effect goes through those MLPs *and* that attend END -> YY;
* :func:`yy_answer_matrix` — any per-prompt quantity over the 100 answer years, averaged per ``YY``:
  the YY x answer-year picture; :func:`component_year_logits` gives each MLP's direct logits over the
  years (logit lens of its output), whose matrix is Hanna et al.'s "upper triangle";
  :func:`triangle_contrast` summarises such a matrix in one number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from shared.analysis.attention import attention_patterns
from shared.engine.ablation import ablation_values
from shared.engine.graph import Graph, parse_node, split_edge
from shared.engine.metrics import Metric
from shared.engine.patching import path_patching
from shared.engine.runs import Values, final_norm, record
from shared.errors import ParameterError

N_YEARS = 100


# ------------------------------------------------------------------------------------- year pictures
def yy_answer_matrix(values: torch.Tensor, yy: torch.Tensor, n_years: int = N_YEARS) -> np.ndarray:
    """Mean of ``values`` [prompt, answer year] over the prompts of each ``YY``: [YY, answer year]
    (row ``k`` = prompts whose start year ends in ``k``), NaN rows for a ``YY`` no prompt has."""
    values = torch.as_tensor(values, dtype=torch.float).cpu()
    yy = torch.as_tensor(yy, dtype=torch.long).cpu().view(-1)
    if values.dim() != 2 or values.shape[0] != len(yy):
        raise ParameterError(f"yy_answer_matrix needs values [prompt, year] with one row per YY, got "
                             f"{tuple(values.shape)} for {len(yy)} years.")
    if bool(((yy < 0) | (yy >= n_years)).any()):
        raise ParameterError(f"Every YY must lie in 0..{n_years - 1}.")
    total = torch.zeros(n_years, values.shape[1]).index_add_(0, yy, values)
    count = torch.zeros(n_years).index_add_(0, yy, torch.ones(len(yy)))
    out = (total / count.clamp(min=1).view(-1, 1)).numpy()
    out[count.numpy() == 0] = np.nan
    return out


def triangle_contrast(matrix: np.ndarray) -> float:
    """Mean over the ``YY`` rows present of (mean entry at answer years > YY) - (mean at years <= YY):
    positive when the picture is an upper triangle (later years favoured). Rows where either side is
    empty (YY = 99) are skipped."""
    m = np.asarray(matrix, dtype=float)
    rows = []
    for k in range(m.shape[0]):
        if np.isnan(m[k]).all() or k + 1 >= m.shape[1]:
            continue
        rows.append(np.nanmean(m[k, k + 1:]) - np.nanmean(m[k, :k + 1]))
    return float(np.mean(rows)) if rows else float("nan")


@torch.no_grad()
def year_probabilities(bridge: Any, tokens: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
    """Probability of each two-digit year at the last position: [prompt, 100] (softmax over the whole
    vocabulary, only the 100 year columns kept)."""
    logits = bridge(tokens)[:, -1].float()
    return (logits[:, digits.to(logits.device)] - logits.logsumexp(-1, keepdim=True)).exp().cpu()


@torch.no_grad()
def component_year_logits(bridge: Any, tokens: torch.Tensor, components: Sequence[str],
                          digits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Logit lens of each MLP's (or head's) output at the last position: the output alone through the
    final normalisation (its own statistics, no bias) and the unembedding, over the 100 year tokens,
    minus its mean over them: ``{component: [prompt, 100]}``."""
    graph = Graph.of(bridge)
    acts = record(bridge, tokens)
    out = {}
    for c in graph.check_nodes(components):
        node = parse_node(c)
        if node.kind == "mlp":
            write = acts.mlp[node.layer][:, -1]
        elif node.kind == "head":
            write = acts.z[node.layer][:, -1, node.head] @ bridge.W_O[node.layer, node.head]
        else:
            raise ParameterError(f"Year logits are read from heads and MLPs, not {c!r}.")
        logits = (final_norm(bridge, write, bias=False) @ bridge.W_U[:, digits.to(write.device)]).float().cpu()
        out[c] = logits - logits.mean(-1, keepdim=True)
    return out


def yy_attention(bridge: Any, tokens: torch.Tensor, yy_pos: torch.Tensor) -> pd.Series:
    """Mean attention from the last position to the ``YY`` token, per head (index ``a0.h0``...)."""
    heads = Graph.of(bridge).heads()
    pat = attention_patterns(bridge, tokens, heads)  # [b, h, q, k]
    rows = torch.arange(pat.shape[0])
    att = pat[rows, :, -1, torch.as_tensor(yy_pos).cpu()].mean(0)
    return pd.Series(att.numpy(), index=pd.Index(heads, name="head"), name="end→yy")


# --------------------------------------------------------------------------------------- path patching
def component_effects(bridge: Any, gt: Any, metric: Metric, values: Optional[Values] = None,
                      progress: bool = False) -> pd.DataFrame:
    """Path-patching effect of each head and MLP (rows) on the logits and on each MLP's input
    (columns ``logits``, ``m0``...; NaN where there is no edge): the drop of ``metric`` when that one
    edge carries the "01" run's value (``values``: default the corrupted run). Positive = helps."""
    graph = Graph.of(bridge)
    if not graph.has_mlp:
        raise ParameterError("The greater-than circuit runs through MLPs, and this model has none.")
    mlps = [c for c in graph.components if parse_node(c).kind == "mlp"]
    edges = [f"{s}->logits" for s in graph.components]
    edges += [f"{s}->{m}" for m in mlps for s in graph.upstream(m) if s != "input"]
    values = ablation_values(bridge, gt.batch, "corrupt") if values is None else values
    effects = path_patching(bridge, gt.batch, edges, metric=metric, values=values, progress=progress)
    table = pd.DataFrame(np.nan, index=pd.Index(graph.components, name="component"), columns=["logits"] + mlps)
    for e, v in effects.items():
        s, r, _ = split_edge(e)
        table.loc[s, r] = v
    return table


@dataclass
class GTComponents:
    """The MLPs and heads found, best first, and per component the numbers behind the decision:
    ``direct`` (into the logits), ``via MLPs`` (through the selected MLPs), ``total`` (for an MLP:
    direct + via later selected MLPs), each also divided by the corruption's whole effect
    (``relative ...``), ``end→yy`` attention for heads and ``selected``."""

    mlps: list[str]
    heads: list[str]
    scores: pd.DataFrame
    full_effect: float
    thresholds: dict[str, float] = field(default_factory=dict)

    def nodes(self) -> list[str]:
        return sorted(self.heads + self.mlps, key=lambda c: (parse_node(c).layer, parse_node(c).kind == "mlp",
                                                             parse_node(c).head))


def classify_gt_components(effects: pd.DataFrame, attention: pd.Series, full_effect: float,
                           min_effect: float = 0.1, min_attention: float = 0.2) -> GTComponents:
    """Select MLPs from the last layer down: an MLP whose direct effect plus its effect through the
    later MLPs already selected is at least ``min_effect`` x ``full_effect`` (the metric's drop under
    the whole corruption). Then heads whose effect through the selected MLPs is at least
    ``min_effect`` x ``full_effect`` and whose attention END -> YY is at least ``min_attention``."""
    if not full_effect > 0:
        raise ParameterError(f"The corruption must lower the metric to classify components by their share of that "
                             f"drop; it changed it by {-full_effect:+.3f}.")
    mlps_all = [c for c in effects.columns if c != "logits"]
    table = pd.DataFrame(index=effects.index)
    table["direct"] = effects["logits"]
    selected: list[str] = []
    total = pd.Series(np.nan, index=effects.index)
    for m in reversed(mlps_all):
        total[m] = effects.loc[m, "logits"] + effects.loc[m, selected].fillna(0).sum()
        if total[m] >= min_effect * full_effect:
            selected.append(m)
    heads = [c for c in effects.index if parse_node(c).kind == "head"]
    table["via MLPs"] = effects[selected].fillna(0).sum(axis=1) if selected else 0.0
    table.loc[heads, "total"] = table.loc[heads, "via MLPs"]
    table.loc[mlps_all, "total"] = total[mlps_all]
    for col in ("direct", "via MLPs", "total"):
        table[f"relative {col}"] = table[col] / full_effect
    table["end→yy"] = attention.reindex(table.index)
    chosen_heads = [h for h in heads if table.loc[h, "relative via MLPs"] >= min_effect
                    and table.loc[h, "end→yy"] >= min_attention]
    table["selected"] = table.index.isin(selected + chosen_heads)
    order = lambda names: sorted(names, key=lambda c: -table.loc[c, "total"])  # noqa: E731
    return GTComponents(order(selected), order(chosen_heads), table, float(full_effect),
                        dict(min_effect=min_effect, min_attention=min_attention))


__all__ = ["GTComponents", "N_YEARS", "classify_gt_components", "component_effects", "component_year_logits",
           "triangle_contrast", "year_probabilities", "yy_answer_matrix", "yy_attention"]
