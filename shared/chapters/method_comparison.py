"""The method_comparison chapter's runs: every edge method on a ladder of planted circuits that get
harder one knob at a time, scored the MIB way (:mod:`shared.engine.mib`) plus ROC AUC against the
planted edges."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from shared.engine.ablation import ablation_values
from shared.engine.batch import PromptBatch
from shared.engine.eap import eap, eap_ig
from shared.engine.graph import Graph
from shared.engine.edge_pruning import edge_pruning
from shared.engine.mib import MIB_PERCENTS, MethodScores, forward_seconds, score_method
from shared.engine.patching import path_patching
from shared.engine.pruning import acdc
from shared.engine.runs import threads
from shared.zoo.planted import PlantedModel, copy_first_model, induction_model

# knob name -> (planted model, its keyword argument, what the knob does)
KNOBS: dict[str, tuple[Callable[..., PlantedModel], str, str]] = {
    "sharpness": (induction_model, "sharpness", "attention sharpness of the induction circuit"),
    "distractor": (induction_model, "distractor", "gain of a head with a large output that barely moves the answer"),
    "backup": (induction_model, "backup", "share of the answer carried by a backup induction head"),
    "attention->MLP": (copy_first_model, "sharpness", "attention sharpness of a circuit with an attention->MLP "
                                                       "edge inside layer 0"),
}


def rung(knob: str, value: float, seed: int = 0) -> PlantedModel:
    """The planted model of one rung of the ladder."""
    make, kw, _ = KNOBS[knob]
    return make(**{kw: value, "seed": seed})


def accuracy(pm: PlantedModel, batch: PromptBatch) -> float:
    """Share of clean prompts whose top logit is the correct answer."""
    with torch.no_grad():
        logits = pm.bridge(batch.clean)[torch.arange(len(batch)), batch.answer_pos]
    return float((logits.argmax(-1) == batch.correct).float().mean())


def compare_methods(pm: PlantedModel, batch: PromptBatch, ig_steps: int = 5, acdc_threshold: float = 0.02,
                    l0: float = 1.0, mask_steps: int = 150, seed: int = 0,
                    percents: Sequence[float] = MIB_PERCENTS) -> list[MethodScores]:
    """Every edge method on one planted model: faithfulness at MIB's edge shares, CPR, CMD, ROC AUC
    against the planted edges, seconds and forward-pass equivalents."""
    b = pm.bridge
    values = ablation_values(b, batch, "corrupt")
    forward = forward_seconds(b, batch)
    runs = {
        "exact path patching": lambda: path_patching(b, batch, values=values, progress=False),
        "EAP": lambda: eap(b, batch, values=values),
        f"EAP-IG ({ig_steps})": lambda: eap_ig(b, batch, steps=ig_steps, values=values),
        "ACDC-style pruning": lambda: acdc(b, batch, threshold=acdc_threshold, values=values, progress=False),
        "edge pruning (masks)": lambda: edge_pruning(b, batch, l0=l0, steps=mask_steps, values=values, seed=seed),
    }
    return [score_method(b, batch, name, run, truth=pm.edges, percents=percents, values=values, forward=forward)
            for name, run in runs.items()]


def run_ladder(ladder: Mapping[str, Sequence[float]], n_prompts: int, seed: int = 0, min_accuracy: float = 0.9,
               progress: bool = True, **settings: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All methods on every rung of ``ladder`` (knob -> values). Returns one row per method and
    rung (knob, value, edges of the graph, method, CPR, CMD, ROC AUC, seconds, forward passes, f at each share), and
    the rungs left out because the model does not do its task (accuracy below ``min_accuracy``)."""
    rows, skipped = [], []
    jobs = [(k, v) for k, values in ladder.items() for v in values]
    with threads(1):  # the models are tiny: more threads only add overhead to thousands of small ops
        for knob, value in tqdm(jobs, desc="ladder", disable=not progress, leave=False):
            pm = rung(knob, value, seed)
            batch = pm.batch(n_prompts, seed=seed)
            acc = accuracy(pm, batch)
            if acc < min_accuracy:
                skipped.append({"knob": knob, "value": value, "accuracy": acc})
                continue
            for s in compare_methods(pm, batch, seed=seed, **settings):
                rows.append({"knob": knob, "value": value, "edges": len(Graph.of(pm.bridge).edges), **s.row(),
                             **{f"f@{p:g}%": f for p, f in zip(s.percents, s.faithfulness)}})
    return pd.DataFrame(rows), pd.DataFrame(skipped, columns=["knob", "value", "accuracy"])


__all__ = ["KNOBS", "accuracy", "compare_methods", "rung", "run_ladder"]
