"""Glue of the ``greater_than_circuit`` chapter: does the model do greater-than (its probability
difference against the "01" control), the components found, the faithfulness of the circuit they
form and the comparison with Hanna et al.'s GPT-2 small circuit.

The **control** of a prompt is the same probability difference (same ``YY`` threshold) read on its
"01" twin, whose start year ends in 01: a model that ignores ``YY`` scores the same on both, so the
**gain** (clean minus control) is the part of the behaviour that depends on the start year. It is
also the whole drop that the "01" corruption can cause, the scale of every path-patching effect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
import torch

from shared.analysis.greater_than import GTComponents
from shared.chapters.ioi import agreement_table
from shared.engine.ablation import ablation_values
from shared.engine.circuit import Circuit, Faithfulness, faithfulness
from shared.engine.metrics import Metric
from shared.errors import ParameterError
from shared.tasks.greater_than import GTBatch, gt_batch, prob_diff_from_logits
from shared.tasks.heldout import GT_TEMPLATES

# Hanna et al. (2023), GPT-2 small: the heads that carry YY to END and the MLPs that compute
# greater-than (MLPs 9 and 10 most); their probability difference on the task is 81.7%.
CANONICAL = {"heads": ["a5.h1", "a5.h5", "a6.h1", "a6.h9", "a7.h10", "a8.h8", "a8.h11", "a9.h1"],
             "MLPs": ["m8", "m9", "m10", "m11"]}
PAPER_PROB_DIFF = 0.817


@torch.no_grad()
def prompt_scores(bridge: Any, gt: GTBatch) -> pd.DataFrame:
    """Per prompt: ``yy``, ``prob diff`` (clean), ``control`` (the same threshold on the "01" twin),
    ``gain`` (their difference) and ``mass`` (total probability of the 100 years, clean)."""
    n = len(gt)
    logits = bridge(torch.cat([gt.batch.clean, gt.batch.corrupt]))[:, -1].float().cpu()
    both = prob_diff_from_logits(logits, torch.cat([gt.yy, gt.yy]), gt.digits)
    clean, control = both[:n], both[n:]
    mass = logits.softmax(-1)[:n, gt.digits].sum(-1)
    return pd.DataFrame({"yy": gt.yy.numpy(), "prob diff": clean.numpy(), "control": control.numpy(),
                         "gain": (clean - control).numpy(), "mass": mass.numpy()})


@dataclass
class GTCheck:
    """Does the model do greater-than: the chapter template's prompts and per-prompt scores, the table
    over every held-out template, and the verdict against the two thresholds."""

    template: str
    gt: GTBatch
    scores: pd.DataFrame
    by_template: pd.DataFrame
    min_prob_diff: float
    min_gain: float

    @property
    def prob_diff(self) -> float:
        return float(self.scores["prob diff"].mean())

    @property
    def gain(self) -> float:
        return float(self.scores["gain"].mean())

    @property
    def does_gt(self) -> bool:
        return self.prob_diff >= self.min_prob_diff and self.gain >= self.min_gain


def gt_check(bridge: Any, template: str, n_prompts: int, seed: int, min_prob_diff: float, min_gain: float,
             templates: Sequence[str] = tuple(GT_TEMPLATES)) -> GTCheck:
    """Score ``n_prompts`` clean/"01" pairs of every template (one token length per template) and judge
    the chapter's ``template``."""
    if template not in templates:
        raise ParameterError(f"Unknown greater-than template {template!r}; choose one of {', '.join(templates)}.")
    rows, chosen = [], None
    for name in templates:
        gt = gt_batch(bridge, name, n_prompts, seed=seed)
        scores = prompt_scores(bridge, gt)
        rows.append({"template": name, "prompts": len(gt), "prob diff": scores["prob diff"].mean(),
                     "control": scores["control"].mean(), "gain": scores["gain"].mean(),
                     "share gain > 0": float((scores["gain"] > 0).mean()), "mass": scores["mass"].mean()})
        if name == template:
            chosen = (gt, scores)
    table = pd.DataFrame(rows).set_index("template")
    return GTCheck(template, chosen[0], chosen[1], table, min_prob_diff, min_gain)


def circuit_faithfulness(bridge: Any, gt: Any, found: GTComponents, metric: Metric) -> Faithfulness:
    """The metric with only the found heads and MLPs kept, every other head and MLP mean-ablated
    (its mean output at the same position over the "01" prompts), next to the whole model and to
    every head and MLP ablated (the engine's :func:`~shared.engine.circuit.faithfulness`)."""
    values = ablation_values(bridge, gt.batch, "mean", reference=gt.batch.corrupt, per_position=True)
    return faithfulness(bridge, gt.batch, Circuit(nodes=found.nodes(), method="greater-than components"),
                        metric=metric, values=values)


def canonical_table(found: GTComponents, expected: dict = CANONICAL, label: str = "Hanna et al.") -> pd.DataFrame:
    """Found heads and MLPs against ``expected`` (default: Hanna et al.'s GPT-2 small components)."""
    return agreement_table({"heads": found.heads, "MLPs": found.mlps}, expected, label)


def component_lines(found: GTComponents) -> str:
    """Markdown bullets: each selected MLP and head with the numbers that selected it."""
    s = found.scores
    th = ", ".join(f"`{k}` = {v:g}" for k, v in found.thresholds.items())
    mlps = "; ".join(f"`{m}` (direct {s.loc[m, 'relative direct']:+.2f}, with later selected MLPs "
                     f"{s.loc[m, 'relative total']:+.2f} of the corruption's effect)" for m in found.mlps) or "none"
    heads = "; ".join(f"`{h}` (through the MLPs {s.loc[h, 'relative via MLPs']:+.2f}, attention END→YY "
                      f"{s.loc[h, 'end→yy']:.2f})" for h in found.heads) or "none"
    return f"* **MLPs**: {mlps}.\n* **heads**: {heads}.\n* thresholds: {th}."


__all__ = ["CANONICAL", "GTCheck", "PAPER_PROB_DIFF", "canonical_table", "circuit_faithfulness", "component_lines",
           "gt_check", "prompt_scores"]
