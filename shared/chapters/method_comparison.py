"""The method_comparison chapter's runs: every edge method on a ladder of planted circuits that get
harder one knob at a time, scored the MIB way (:mod:`shared.engine.mib`) plus ROC AUC against the
planted edges; and the same methods on the suite's tasks (greater-than on a suite model, IOI on the
model or, where it does not do IOI, on the planted IOI control)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from shared.engine.ablation import ablation_values
from shared.engine.batch import PromptBatch
from shared.chapters.greater_than import prompt_scores
from shared.chapters.ioi_across import Subject
from shared.engine.eap import eap, eap_ig
from shared.engine.eap_activations import eap_ig_activations
from shared.engine.graph import Graph
from shared.engine.edge_pruning import edge_pruning
from shared.engine.metrics import Metric
from shared.engine.mib import MIB_PERCENTS, MethodScores, forward_seconds, score_method
from shared.engine.patching import path_patching
from shared.engine.pruning import acdc
from shared.engine.runs import threads
from shared.tasks.greater_than import greater_than_metric, gt_batch
from shared.zoo.planted import PlantedModel, copy_first_model, induction_model
from shared.zoo.planted_ioi import ioi_control

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


# methods whose cost grows with the number of edges (one patched run per edge, or more)
PER_EDGE = ("exact path patching", "ACDC-style pruning")


def method_runs(b: Any, batch: PromptBatch, values: Any, metric: Optional[Metric] = None, ig_steps: int = 5,
                acdc_threshold: float = 0.02, l0: float = 1.0, mask_steps: int = 150,
                seed: int = 0) -> dict[str, Callable[[], Any]]:
    """Every edge method bound to its arguments (name -> run), in the chapter's order."""
    return {
        "exact path patching": lambda: path_patching(b, batch, metric=metric, values=values, progress=False),
        "EAP": lambda: eap(b, batch, metric, values=values),
        f"EAP-IG ({ig_steps})": lambda: eap_ig(b, batch, metric, steps=ig_steps, values=values),
        f"EAP-IG activations ({ig_steps})": lambda: eap_ig_activations(b, batch, metric, steps=ig_steps,
                                                                        values=values),
        "ACDC-style pruning": lambda: acdc(b, batch, metric, threshold=acdc_threshold, values=values,
                                          progress=False),
        "edge pruning (masks)": lambda: edge_pruning(b, batch, metric, l0=l0, steps=mask_steps, values=values,
                                                     seed=seed),
    }


def compare_methods(pm: PlantedModel, batch: PromptBatch, ig_steps: int = 5, acdc_threshold: float = 0.02,
                    l0: float = 1.0, mask_steps: int = 150, seed: int = 0,
                    percents: Sequence[float] = MIB_PERCENTS) -> list[MethodScores]:
    """Every edge method on one planted model: faithfulness at MIB's edge shares, CPR, CMD, ROC AUC
    against the planted edges, seconds and forward-pass equivalents."""
    b = pm.bridge
    values = ablation_values(b, batch, "corrupt")
    forward = forward_seconds(b, batch)
    runs = method_runs(b, batch, values, None, ig_steps, acdc_threshold, l0, mask_steps, seed)
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


# --------------------------------------------------------------------------------------------
# the suite's tasks
# --------------------------------------------------------------------------------------------

@dataclass
class TaskCase:
    """One task on one model: the prompts, the metric (``None``: logit difference), the numbers that
    decide whether the model does the task (``behaviour``) and the verdict ``ok``."""

    task: str
    model: str
    bridge: Any
    batch: PromptBatch
    metric: Optional[Metric]
    behaviour: dict[str, Any] = field(default_factory=dict)
    ok: bool = True


def greater_than_case(bridge: Any, model: str, template: str, n_prompts: int, seed: int, min_prob_diff: float,
                      min_gain: float) -> TaskCase:
    """Greater-than with the "01" corruption: the model does it when its mean probability difference
    and its gain over the "01" control reach the thresholds (as in the greater_than_circuit chapter)."""
    gt = gt_batch(bridge, template, n_prompts, seed=seed)
    scores = prompt_scores(bridge, gt)
    behaviour = {"prob diff": float(scores["prob diff"].mean()), "control": float(scores["control"].mean()),
                 "gain": float(scores["gain"].mean())}
    ok = behaviour["prob diff"] >= min_prob_diff and behaviour["gain"] >= min_gain
    return TaskCase("greater-than", model, bridge, gt.batch, greater_than_metric(gt.digits), behaviour, ok)


def ioi_case(bridge: Any, model: str, n_prompts: int, seed: int, min_logit_diff: float, min_share_positive: float,
             control: str = "planted") -> TaskCase:
    """IOI on ``model`` when it does IOI (held-out templates, ABC corruption), else on the planted IOI
    ``control`` (:mod:`shared.zoo.planted_ioi`); ``behaviour`` keeps both verdicts' numbers."""
    subject = Subject(model, bridge)
    check = subject.behaviour(n_prompts, seed, min_logit_diff, min_share_positive)
    behaviour = {"model": model, "model logit diff": check.mean, "model share positive": check.share_positive,
                 "model does IOI": check.does_ioi}
    if not check.does_ioi:
        planted = ioi_control(control)
        subject = Subject(control, planted.bridge, control=True, planted=planted)
        check = subject.behaviour(n_prompts, seed, min_logit_diff, min_share_positive)
        behaviour.update({"control": control, "control logit diff": check.mean,
                          "control share positive": check.share_positive})
    batch, _ = subject.prompts(n_prompts, seed)
    return TaskCase("IOI", subject.label, subject.bridge, batch, None, behaviour, check.does_ioi)


def run_tasks(cases: Sequence[TaskCase], max_per_edge: int, progress: bool = True,
              **settings: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every method on every case that does its task, scored the MIB way (no ground truth: no ROC
    AUC). The per-edge methods (:data:`PER_EDGE`) run only on graphs of at most ``max_per_edge``
    edges. Returns one row per task and method, and the (task, method, edges) left out for size."""
    rows, left = [], []
    for case in tqdm([c for c in cases if c.ok], desc="tasks", disable=not progress, leave=False):
        b, batch = case.bridge, case.batch
        n_edges = len(Graph.of(b).edges)
        values = ablation_values(b, batch, "corrupt")
        with threads(1):  # the forward pass is timed as the methods run: one thread (see run_ladder)
            forward = forward_seconds(b, batch)
            for name, run in method_runs(b, batch, values, case.metric, **settings).items():
                if name in PER_EDGE and n_edges > max_per_edge:
                    left.append({"task": case.task, "method": name, "edges": n_edges})
                    continue
                s = score_method(b, batch, name, run, metric=case.metric, values=values, forward=forward)
                rows.append({"task": case.task, "model": case.model, "edges": n_edges, "prompts": len(batch),
                             **s.row(), **{f"f@{p:g}%": f for p, f in zip(s.percents, s.faithfulness)}})
    return pd.DataFrame(rows), pd.DataFrame(left, columns=["task", "method", "edges"])


__all__ = ["KNOBS", "PER_EDGE", "TaskCase", "accuracy", "compare_methods", "greater_than_case", "ioi_case",
           "method_runs", "rung", "run_ladder", "run_tasks"]
