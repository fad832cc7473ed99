"""The compiled_ground_truth chapter's runs: Tracr-compiled programs (:mod:`shared.zoo.compiled`),
the check that their ground truth is exact, and every circuit method scored against it the MIB way
(:func:`shared.chapters.method_comparison.compare_methods`, plus node pruning)."""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from shared.chapters.method_comparison import compare_methods
from shared.engine.ablation import ablation_values
from shared.engine.batch import PromptBatch
from shared.engine.circuit import roc_auc
from shared.engine.graph import Graph
from shared.engine.mib import MIB_PERCENTS, MethodScores, forward_seconds, score_method
from shared.engine.patching import edge_mask, score_edge_masks
from shared.engine.pruning import prune_nodes
from shared.engine.runs import threads
from shared.zoo.compiled import CompiledModel, compiled_model, weight_edges


def accuracy(cm: CompiledModel, batch: PromptBatch) -> float:
    """Share of clean prompts whose top output at the scored position is the program's answer (the
    whole input is run: a compiled model attends to later positions too)."""
    with torch.no_grad():
        logits = cm.bridge(batch.clean)[torch.arange(len(batch)), batch.answer_pos]
    return float((logits.argmax(-1) == batch.correct).float().mean())


def truth_check(cm: CompiledModel, batch: PromptBatch, tol: float = 1e-4) -> dict[str, Any]:
    """How exact the ground truth is on ``batch``: the metric with only the ground-truth edges kept
    (everything else patched to the corrupted run) against the intact model, the largest change from
    patching any one other edge, how many ground-truth edges move the metric by more than ``tol`` when
    patched alone (kept as ``cm.active``), and whether the weights' nonzero pattern gives the same edges."""
    graph = Graph.of(cm.bridge)
    values = ablation_values(cm.bridge, batch, "corrupt")
    truth = edge_mask(graph, cm.edges)
    singles = [edge_mask(graph, [e]) for e in graph.edges]
    masks = torch.stack([~truth, torch.zeros_like(truth), torch.ones_like(truth)] + singles)
    out = score_edge_masks(cm.bridge, batch, masks, values, per_prompt=True)
    only_truth, full, empty = out[0], out[1], out[2]
    effect = (out[3:] - full).abs().max(1).values  # per edge, largest change over prompts
    in_truth = truth.clone()
    cm.active = [e for e, moved, t in zip(graph.edges, (effect > tol).tolist(), in_truth.tolist()) if moved and t]
    return {"program": cm.program.name, "nodes": len(cm.nodes), "edges": len(graph.edges),
            "truth edges": len(cm.edges), "active truth edges": int((effect[in_truth] > tol).sum()),
            "full": float(full.mean()), "empty": float(empty.mean()), "truth only": float(only_truth.mean()),
            "largest |truth only - full|": float((only_truth - full).abs().max()),
            "largest other-edge effect": float(effect[~in_truth].max()) if (~in_truth).any() else 0.0,
            "weights agree": sorted(weight_edges(cm.bridge)) == sorted(cm.edges)}


def score_compiled(cm: CompiledModel, batch: PromptBatch, ig_steps: int = 5, acdc_threshold: float = 0.02,
                   prune_threshold: float = 0.8, l0: float = 1.0, mask_steps: int = 150, seed: int = 0,
                   percents: Sequence[float] = MIB_PERCENTS) -> list[MethodScores]:
    """The edge methods of the method_comparison chapter and node pruning (its kept nodes' edges
    ranked first), scored against the compiled ground truth."""
    out = compare_methods(cm, batch, ig_steps=ig_steps, acdc_threshold=acdc_threshold, l0=l0,
                          mask_steps=mask_steps, seed=seed, percents=percents)
    b = cm.bridge
    values = ablation_values(b, batch, "corrupt")
    node = score_method(b, batch, "node pruning",
                        lambda: prune_nodes(b, batch, threshold=prune_threshold, ablation="corrupt", values=values,
                                            progress=False),
                        truth=cm.edges, percents=percents, values=values, forward=forward_seconds(b, batch))
    return out + [node]


def floor_scores(scores: dict[str, float], zero_tol: float) -> dict[str, float]:
    """Scores whose size is at most ``zero_tol`` times the largest one set to 0: rounding noise
    (e.g. 1e-19 from a gradient through a flat step) then ties instead of ranking."""
    top = max((abs(v) for v in scores.values()), default=0.0)
    return {e: (0.0 if abs(v) <= zero_tol * top else v) for e, v in scores.items()}


def run_compiled(programs: Sequence[str], n_prompts: int, seed: int = 0, min_accuracy: float = 1.0,
                 zero_tol: float = 1e-9, progress: bool = True, **settings: Any) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, CompiledModel]]:
    """Every method on every compiled program. Returns the ground-truth checks (one row per program,
    with its accuracy), the scores (one row per program and method, with f at each edge share) and
    the compiled models. A program whose model answers fewer than ``min_accuracy`` of the prompts is
    checked but not scored. ``ROC AUC (active)`` scores the method against the true edges the task
    moves, after :func:`floor_scores` with ``zero_tol``; ``ROC AUC`` is MIB's, against every true edge."""
    checks, rows, models = [], [], {}
    with threads(1):  # tiny models: more threads only add overhead
        for program in tqdm(programs, desc="programs", disable=not progress, leave=False):
            cm = models[program] = compiled_model(program)
            batch = cm.batch(n_prompts, seed=seed)
            acc = accuracy(cm, batch)
            checks.append({**truth_check(cm, batch), "accuracy": acc})
            if acc < min_accuracy:
                continue
            for s in score_compiled(cm, batch, seed=seed, **settings):
                floored = floor_scores(s.info["ranking"], zero_tol)
                rows.append({"program": program, "edges": len(Graph.of(cm.bridge).edges), **s.row(),
                             "ROC AUC (active)": roc_auc(floored, cm.active) if cm.active else None,
                             "active scored 0": sum(floored.get(e, 0.0) == 0 for e in cm.active),
                             **{f"f@{p:g}%": f for p, f in zip(s.percents, s.faithfulness)}})
    return pd.DataFrame(checks), pd.DataFrame(rows), models


__all__ = ["accuracy", "floor_scores", "run_compiled", "score_compiled", "truth_check"]
