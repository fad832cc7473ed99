"""The head classes of the IOI circuit (Wang et al. 2022), each assigned by stated, measurable criteria.

Every criterion is a path-patching effect from :mod:`shared.engine.patching` (the drop of the logit
difference IO - S when one edge carries the corrupted run's value instead of the clean one; positive
= the edge helps), an attention score read at the roles of :class:`IOIPositions`, or an OV score of
the weights. Effects are divided by the clean logit difference (``relative`` columns), so the
thresholds, all function arguments, mean the same thing for every model.

The engine patches a head receiver's query, key and value inputs separately (edges
``"a0.h1->a2.h0:q"``), so each class reads the port of Wang et al.: name movers' queries for
S-inhibition heads, S-inhibition heads' values for induction and duplicate-token heads, induction
heads' keys for previous-token heads (``ports`` arguments change this).

:func:`classify_ioi_heads` runs the whole chain; each class is a :class:`HeadClass` whose ``scores``
table (one row per head) holds every number a criterion used and ``selected``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import pandas as pd
import torch

from shared.analysis.attention import attention_patterns
from shared.analysis.ov import ov_logits
from shared.engine.ablation import ablation_values
from shared.engine.batch import PromptBatch
from shared.engine.graph import Graph, split_edge
from shared.engine.patching import edge_mask, path_patching, score_edge_masks
from shared.engine.runs import Values, record
from shared.errors import ParameterError


@dataclass
class IOIPositions:
    """Token positions ``[batch]`` of the indirect object (``io``), the subject's first and second
    mentions (``s1``, ``s2``) and the last token (``end``), per prompt."""

    io: torch.Tensor
    s1: torch.Tensor
    s2: torch.Tensor
    end: torch.Tensor

    def check(self, batch: PromptBatch) -> "IOIPositions":
        n, pos = batch.clean.shape
        for role in ("io", "s1", "s2", "end"):
            t = getattr(self, role)
            if t.shape != (n,) or bool(((t < 0) | (t >= pos)).any()):
                raise ParameterError(f"IOI position {role!r} must hold one position below {pos} for each of the "
                                     f"{n} prompts, got {t.tolist()}.")
        if not bool((self.s1 + 1 < self.s2).all()):
            raise ParameterError("The subject's second mention (S2) must come after S1 + 1 in every prompt.")
        return self


@dataclass
class HeadClass:
    """Heads of one class: ``heads`` (best first), the per-head ``scores`` table behind the
    decision (a ``selected`` column marks them), the ``criteria`` in words and the ``thresholds``."""

    name: str
    heads: list[str]
    scores: pd.DataFrame
    criteria: str
    thresholds: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------- measurements
@torch.no_grad()
def clean_logit_diff(bridge: Any, batch: PromptBatch) -> float:
    """Mean logit(IO) - logit(S) at END on the clean prompts."""
    logits = bridge(batch.clean)
    rows = logits[torch.arange(len(batch)), batch.answer_pos]
    return float((rows.gather(1, batch.correct.view(-1, 1)) - rows.gather(1, batch.incorrect.view(-1, 1))).mean())


def ioi_attention(bridge: Any, tokens: torch.Tensor, positions: IOIPositions) -> pd.DataFrame:
    """Mean attention over prompts per head (rows ``a0.h0``...): ``end→io``, ``end→s1``, ``end→s2``,
    ``end→names`` (their sum), ``s2→s1`` (duplicate token), ``s2→s1+1`` (induction), ``s1+1→s1`` and
    ``prev`` (every position t >= 2 to t - 1)."""
    heads = Graph.of(bridge).heads()
    pat = attention_patterns(bridge, tokens, heads)  # [b, h, q, k]
    b = torch.arange(pat.shape[0])
    at = lambda q, k: pat[b, :, q, k].mean(0)  # noqa: E731  [h]
    n = pat.shape[-1]
    t = torch.arange(2, n)
    table = pd.DataFrame(index=pd.Index(heads, name="head"))
    p = positions
    table["end→io"] = at(p.end, p.io).numpy()
    table["end→s1"] = at(p.end, p.s1).numpy()
    table["end→s2"] = at(p.end, p.s2).numpy()
    table["end→names"] = table["end→io"] + table["end→s1"] + table["end→s2"]
    table["s2→s1"] = at(p.s2, p.s1).numpy()
    table["s2→s1+1"] = at(p.s2, p.s1 + 1).numpy()
    table["s1+1→s1"] = at(p.s1 + 1, p.s1).numpy()
    table["prev"] = pat[:, :, t, t - 1].mean(dim=(0, 2)).numpy() if n > 2 else 0.0
    return table


def name_copy_scores(bridge: Any, name_ids: torch.Tensor) -> pd.Series:
    """Signed OV copy score of every head on the names: the logit its OV circuit writes for a name it
    attends to, minus the mean logit it writes for the other names, averaged over names
    (:func:`shared.analysis.ov.ov_logits`; positive = copies names, negative = suppresses them)."""
    ids = torch.as_tensor(name_ids, dtype=torch.long).unique()
    if len(ids) < 2:
        raise ParameterError("The name copy score needs at least two distinct name tokens.")
    logits = ov_logits(bridge, ids)[..., ids.to(bridge.W_U.device)].float().cpu()  # [heads, n, n]
    own = logits.diagonal(dim1=1, dim2=2)
    others = (logits.sum(-1) - own) / (len(ids) - 1)
    return pd.Series((own - others).mean(-1).numpy(), index=pd.Index(Graph.of(bridge).heads(), name="head"))


def _values(bridge: Any, batch: PromptBatch, values: Optional[Values]) -> Values:
    return ablation_values(bridge, batch, "corrupt") if values is None else values


def effects_on(bridge: Any, batch: PromptBatch, receivers: Sequence[str], ports: Sequence[str] = ("",),
               values: Optional[Values] = None) -> pd.Series:
    """Path-patching effect of every head that feeds them on the ``receivers`` (``"logits"`` or head
    names, read through each of ``ports``), summed over receivers and ports: [head] (0 if none)."""
    graph = Graph.of(bridge)
    edges = []
    for r in receivers:
        for p in ports:
            target = f"{r}:{p}" if p else r
            edges += [f"{s}->{target}" for s in graph.upstream(target) if s not in ("input",) and s.startswith("a")]
    out = pd.Series(0.0, index=pd.Index(graph.heads(), name="head"))
    if edges:
        for e, v in path_patching(bridge, batch, edges, values=_values(bridge, batch, values), progress=False).items():
            out[split_edge(e)[0]] += v
    return out


def _finish(name: str, table: pd.DataFrame, selected: pd.Series, order: str, criteria: str,
            thresholds: dict[str, float], descending: bool = True) -> HeadClass:
    table = table.copy()
    table["selected"] = selected
    heads = table[table["selected"]].sort_values(order, ascending=not descending).index.tolist()
    return HeadClass(name, heads, table, criteria, thresholds)


# ------------------------------------------------------------------------------------- classes
def name_movers(bridge: Any, batch: PromptBatch, positions: IOIPositions, min_effect: float = 0.1,
                min_attention: float = 0.2, min_copy: float = 0.0, values: Optional[Values] = None,
                attention: Optional[pd.DataFrame] = None, clean: Optional[float] = None) -> tuple[HeadClass, HeadClass]:
    """Name movers and negative name movers from the direct path head -> logits.

    * **name mover**: direct effect (path patching ``head->logits``) >= ``min_effect`` x the clean
      logit difference, attention END -> IO >= ``min_attention``, and name copy score > ``min_copy``;
    * **negative name mover** (copy suppression): direct effect <= -``min_effect`` x the clean
      logit difference, attention END -> IO + S1 + S2 >= ``min_attention``, and name copy score
      < -``min_copy``.
    """
    positions.check(batch)
    clean = clean_logit_diff(bridge, batch) if clean is None else clean
    attention = ioi_attention(bridge, batch.clean, positions) if attention is None else attention
    table = attention[["end→io", "end→s1", "end→s2", "end→names"]].copy()
    table["direct"] = effects_on(bridge, batch, ["logits"], values=values)
    table["relative"] = table["direct"] / clean
    table["copy"] = name_copy_scores(bridge, torch.cat([batch.correct, batch.incorrect]))
    th = dict(min_effect=min_effect, min_attention=min_attention, min_copy=min_copy)
    pos = (table["relative"] >= min_effect) & (table["end→io"] >= min_attention) & (table["copy"] > min_copy)
    neg = (table["relative"] <= -min_effect) & (table["end→names"] >= min_attention) & (table["copy"] < -min_copy)
    parts = [" ".join(p.split()).rstrip(";") for p in name_movers.__doc__.split("\n    * ")[1:]]
    return (_finish("name mover", table, pos, "relative", parts[0], th),
            _finish("negative name mover", table, neg, "relative", parts[1], th, descending=False))


def s_inhibition_heads(bridge: Any, batch: PromptBatch, positions: IOIPositions, movers: Sequence[str],
                       min_effect: float = 0.1, min_attention: float = 0.2, ports: Sequence[str] = ("q",),
                       values: Optional[Values] = None, attention: Optional[pd.DataFrame] = None,
                       clean: Optional[float] = None) -> HeadClass:
    """**S-inhibition heads**: path-patching effect on the name movers' queries (``head->mover:q``,
    summed over the movers ``movers`` and ``ports``) >= ``min_effect`` x the clean logit difference,
    and attention END -> S2 >= ``min_attention``."""
    positions.check(batch)
    clean = clean_logit_diff(bridge, batch) if clean is None else clean
    attention = ioi_attention(bridge, batch.clean, positions) if attention is None else attention
    table = attention[["end→s2", "end→s1", "end→io"]].copy()
    table["to movers"] = effects_on(bridge, batch, list(movers), ports, values)
    table["relative"] = table["to movers"] / clean
    sel = (table["relative"] >= min_effect) & (table["end→s2"] >= min_attention) & bool(len(movers))
    return _finish("S-inhibition", table, sel, "relative", " ".join(s_inhibition_heads.__doc__.split()),
                   dict(min_effect=min_effect, min_attention=min_attention))


def _effects_table(bridge: Any, batch: PromptBatch, positions: IOIPositions, columns: Sequence[str], label: str,
                   receivers: Sequence[str], ports: Sequence[str], values: Optional[Values],
                   attention: Optional[pd.DataFrame], clean: Optional[float]) -> pd.DataFrame:
    """Per head: the attention ``columns``, the summed path-patching effect on ``receivers``' ``ports``
    (column ``label``) and that effect over the clean logit difference (``relative``)."""
    positions.check(batch)
    clean = clean_logit_diff(bridge, batch) if clean is None else clean
    attention = ioi_attention(bridge, batch.clean, positions) if attention is None else attention
    table = attention[list(columns)].copy()
    table[label] = effects_on(bridge, batch, list(receivers), ports, values)
    table["relative"] = table[label] / clean
    return table


def induction_and_duplicate_heads(bridge: Any, batch: PromptBatch, positions: IOIPositions,
                                  inhibitors: Sequence[str], min_effect: float = 0.05,
                                  min_attention: float = 0.2, ports: Sequence[str] = ("v",),
                                  values: Optional[Values] = None, attention: Optional[pd.DataFrame] = None,
                                  clean: Optional[float] = None) -> tuple[HeadClass, HeadClass]:
    """Heads whose path-patching effect on the S-inhibition heads' values (``head->inhibitor:v``,
    summed over ``inhibitors`` and ``ports``) is >= ``min_effect`` x the clean logit difference, split
    by where S2 attends: **induction** if attention S2 -> S1+1 >= ``min_attention``, **duplicate
    token** if attention S2 -> S1 >= ``min_attention`` (a head can meet both)."""
    table = _effects_table(bridge, batch, positions, ["s2→s1+1", "s2→s1"], "to inhibitors", inhibitors, ports,
                           values, attention, clean)
    big = (table["relative"] >= min_effect) & bool(len(inhibitors))
    th = dict(min_effect=min_effect, min_attention=min_attention)
    crit = " ".join(induction_and_duplicate_heads.__doc__.split())
    return (_finish("induction", table, big & (table["s2→s1+1"] >= min_attention), "relative", crit, th),
            _finish("duplicate token", table, big & (table["s2→s1"] >= min_attention), "relative", crit, th))


def previous_token_heads(bridge: Any, batch: PromptBatch, positions: IOIPositions, inductions: Sequence[str],
                         min_effect: float = 0.05, min_attention: float = 0.2, ports: Sequence[str] = ("k",),
                         values: Optional[Values] = None, attention: Optional[pd.DataFrame] = None,
                         clean: Optional[float] = None) -> HeadClass:
    """**Previous-token heads**: path-patching effect on the induction heads' keys
    (``head->induction:k``, summed over ``inductions`` and ``ports``) >= ``min_effect`` x the clean
    logit difference, and attention S1+1 -> S1 >= ``min_attention`` (``prev``, the mean over all
    positions t -> t - 1, is reported too)."""
    table = _effects_table(bridge, batch, positions, ["s1+1→s1", "prev"], "to induction", inductions, ports,
                           values, attention, clean)
    sel = (table["relative"] >= min_effect) & (table["s1+1→s1"] >= min_attention) & bool(len(inductions))
    return _finish("previous token", table, sel, "relative", " ".join(previous_token_heads.__doc__.split()),
                   dict(min_effect=min_effect, min_attention=min_attention))


def backup_name_movers(bridge: Any, batch: PromptBatch, movers: Sequence[str], min_rise: float = 0.1,
                       values: Optional[Values] = None, clean: Optional[float] = None) -> HeadClass:
    """**Backup name movers**: heads (other than ``movers``) whose direct effect (``head->logits``)
    rises by >= ``min_rise`` x the clean logit difference when every output edge of the name movers
    carries ``values`` (default: the corrupted run) instead of the clean one.

    The direct effect under ablation is the metric with the movers ablated minus the metric with the
    movers ablated and ``head->logits`` patched too; heads before the movers cannot rise."""
    clean = clean_logit_diff(bridge, batch) if clean is None else clean
    values = _values(bridge, batch, values)
    graph = Graph.of(bridge)
    heads = graph.heads()
    knock = edge_mask(graph, [e for e in graph.edges if split_edge(e)[0] in set(movers)])
    rows = [torch.zeros_like(knock), knock] + [knock | edge_mask(graph, [f"{h}->logits"]) for h in heads]
    scores = score_edge_masks(bridge, batch, torch.stack(rows), values, base=record(bridge, batch.clean))
    table = pd.DataFrame(index=pd.Index(heads, name="head"))
    table["direct"] = effects_on(bridge, batch, ["logits"], values=values)
    table["direct, movers ablated"] = (float(scores[1]) - scores[2:]).numpy()
    table["rise"] = table["direct, movers ablated"] - table["direct"]
    table["relative rise"] = table["rise"] / clean
    sel = (table["relative rise"] >= min_rise) & ~table.index.isin(list(movers)) & bool(len(movers))
    table.attrs["metric with movers ablated"] = float(scores[1])
    return _finish("backup name mover", table, sel, "relative rise",
                   " ".join(backup_name_movers.__doc__.split("\n\n")[0].split()), dict(min_rise=min_rise))


@dataclass
class IOIHeadClasses:
    """Every class of :func:`classify_ioi_heads` plus the clean logit difference effects are divided by."""

    clean_logit_diff: float
    name_movers: HeadClass
    negative_name_movers: HeadClass
    s_inhibition: HeadClass
    induction: HeadClass
    duplicate_token: HeadClass
    previous_token: HeadClass
    backup_name_movers: HeadClass

    def classes(self) -> dict[str, HeadClass]:
        return {c.name: c for c in (self.name_movers, self.negative_name_movers, self.s_inhibition, self.induction,
                                    self.duplicate_token, self.previous_token, self.backup_name_movers)}

    def as_dict(self) -> dict[str, list[str]]:
        """``{class name: heads}``."""
        return {name: c.heads for name, c in self.classes().items()}


def classify_ioi_heads(bridge: Any, batch: PromptBatch, positions: IOIPositions, min_effect: float = 0.1,
                       min_attention: float = 0.2, min_copy: float = 0.0, min_upstream_effect: float = 0.05,
                       min_rise: float = 0.1, values: Optional[Values] = None) -> IOIHeadClasses:
    """The whole chain, each step reading the heads the previous one found: name movers and negative
    name movers -> S-inhibition heads (movers' queries) -> induction / duplicate-token heads
    (S-inhibition values) -> previous-token heads (induction keys); backup name movers from the name
    movers. ``min_upstream_effect`` is the effect threshold of the last two steps."""
    positions.check(batch)
    values = _values(bridge, batch, values)
    clean = clean_logit_diff(bridge, batch)
    if clean <= 0:
        raise ParameterError(f"The model does not do IOI on these prompts (clean logit difference {clean:.3f} <= 0); "
                             f"the head classes are defined relative to it.")
    att = ioi_attention(bridge, batch.clean, positions)
    kw = dict(values=values, attention=att, clean=clean)
    nm, nnm = name_movers(bridge, batch, positions, min_effect, min_attention, min_copy, **kw)
    si = s_inhibition_heads(bridge, batch, positions, nm.heads, min_effect, min_attention, **kw)
    ind, dup = induction_and_duplicate_heads(bridge, batch, positions, si.heads, min_upstream_effect,
                                             min_attention, **kw)
    prev = previous_token_heads(bridge, batch, positions, ind.heads, min_upstream_effect, min_attention, **kw)
    backup = backup_name_movers(bridge, batch, nm.heads, min_rise, values=values, clean=clean)
    return IOIHeadClasses(clean, nm, nnm, si, ind, dup, prev, backup)


__all__ = [
    "HeadClass", "IOIHeadClasses", "IOIPositions", "backup_name_movers", "classify_ioi_heads", "clean_logit_diff",
    "effects_on", "induction_and_duplicate_heads", "ioi_attention", "name_copy_scores", "name_movers",
    "previous_token_heads", "s_inhibition_heads",
]
