"""Circuits over training, for the ``training_circuits`` chapter: at each checkpoint, does the model do
greater-than and IOI, and where it does, the EAP-IG edge circuit that reaches the faithfulness target;
then how that circuit changes from checkpoint to checkpoint.

* :func:`circuit_record` — the edge circuit of one model on one task as plain JSON values (EAP-IG
  scores, the smallest top-k set reaching the target, verified by patching: :func:`shared.chapters.
  ioi_across.edge_circuit`);
* :func:`circuits_at` — per checkpoint: the greater-than verdict of the ``greater_than_circuit``
  chapter (:func:`shared.chapters.greater_than.gt_check` on its template), the IOI verdict of
  ``ioi_across_models`` (:func:`shared.chapters.ioi.ioi_check` on the held-out IOI prompts), and the
  circuit of each task the checkpoint does; cached per model, step and parameters with
  :func:`shared.chapters.training.checkpoint_result`;
* :func:`circuit_series`, :func:`circuit_changes` — the table over checkpoints, and per checkpoint
  the Jaccard overlap of the edge set with the previous circuit and with the last one, and the nodes
  that enter and leave.
"""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd
from tqdm.auto import tqdm

from shared.chapters import training as tr
from shared.chapters.greater_than import gt_check
from shared.chapters.ioi import FIRST_TEMPLATE, ioi_check
from shared.chapters.ioi_across import edge_circuit
from shared.chapters.sequences import jaccard
from shared.engine.batch import PromptBatch
from shared.engine.metrics import Metric
from shared.tasks.abilities import ioi_scores
from shared.tasks.greater_than import greater_than_metric
from shared.tasks.ioi import ioi_batch

TASKS = ("greater-than", "IOI")


def circuit_record(bridge: Any, batch: PromptBatch, target: float, ig_steps: int,
                   metric: "Metric | str | None" = None) -> dict[str, Any]:
    """The EAP-IG edge circuit of ``bridge`` on ``batch`` reaching ``target`` normalised faithfulness
    (corrupted-run values), as JSON: ``edges`` and ``nodes`` kept, ``k``, the normalised
    faithfulness on the scan and re-measured by patching, whether the target was ``reached`` and the
    number of edges of the whole graph."""
    found = edge_circuit(bridge, batch, target, ig_steps, metric)
    c = found.circuit
    return dict(edges=list(c.edges), nodes=sorted(c.nodes), k=int(c.info["k"]), scan=float(c.info["normalized"]),
                faithfulness=float(found.faith.normalized), reached=bool(c.info["reached"]), n_edges=found.n_edges)


def checkpoint_circuits(model: Any, template: str, n_prompts: int, seed: int, min_prob_diff: float, min_gain: float,
                        min_logit_diff: float, min_share_positive: float, target: float,
                        ig_steps: int) -> dict[str, Any]:
    """Both verdicts of one model and, for each task it does, its :func:`circuit_record`."""
    gt = gt_check(model, template, n_prompts, seed, min_prob_diff, min_gain, templates=(template,))
    ioi = ioi_check(ioi_scores(model, n_prompts=n_prompts, seed=seed), min_logit_diff, min_share_positive)
    out: dict[str, Any] = {
        "greater-than": dict(present=gt.does_gt, prob_diff=gt.prob_diff, gain=gt.gain, circuit=None),
        "IOI": dict(present=ioi.does_ioi, logit_diff=ioi.mean, share_positive=ioi.share_positive, circuit=None)}
    if gt.does_gt:
        out["greater-than"]["circuit"] = circuit_record(model, gt.gt.batch, target, ig_steps,
                                                        greater_than_metric(gt.gt.digits))
    if ioi.does_ioi:  # never reached by the suite; kept so that a model that learns IOI gets its circuit
        prompts = ioi_batch(model, FIRST_TEMPLATE, n_prompts, corruption="abc", seed=seed)
        out["IOI"]["circuit"] = circuit_record(model, prompts.batch, target, ig_steps)
    return out


def circuits_at(name: str, step: int, **params: Any) -> dict[str, Any]:
    """:func:`checkpoint_circuits` of checkpoint ``step`` of ``name``, computed once (results cache)."""
    return tr.checkpoint_result("training-circuits", name, step, params,
                                lambda model: checkpoint_circuits(model, **params))


def visit_steps(name: str, max_checkpoints: int, late_steps: int) -> list[int]:
    """The checkpoints of ``name`` to visit: :func:`shared.chapters.training.series_steps` with
    ``max_checkpoints``, and also the last ``late_steps`` ones (where a late ability is present, so
    that consecutive circuits can be compared)."""
    every = tr.series_steps(name)
    late = every[-late_steps:] if late_steps else []
    return sorted(set(tr.series_steps(name, max_checkpoints)) | set(late))


def circuit_series(model_names: Sequence[str], max_checkpoints: int = 0, late_steps: int = 0,
                   progress: bool = True, **params: Any) -> pd.DataFrame:
    """One row per model, checkpoint (:func:`visit_steps`) and task: model, size, seed, step,
    tokens, task, present, the task's scores and, where present, the circuit's ``edges``, ``nodes``,
    ``k``, ``scan``, ``faithfulness``, ``reached`` and ``n_edges``."""
    tr.check_series_models(model_names)
    visits = [(n, s) for n in model_names for s in visit_steps(n, max_checkpoints, late_steps)]
    rows = []
    for name, step in tqdm(visits, desc="checkpoints (circuits)", disable=not progress):
        size, seed = tr.model_family(name)
        base = dict(model=name, size=size, seed=seed, step=step, tokens=tr.tokens_seen(name, step))
        for task, result in circuits_at(name, step, **params).items():
            circuit = result.get("circuit") or {}
            rows.append({**base, "task": task, **{k: v for k, v in result.items() if k != "circuit"}, **circuit})
    return pd.DataFrame(rows)


def circuit_changes(steps: Sequence[int], edges: Sequence[Sequence[str]],
                    nodes: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Per checkpoint of one model's circuits (in step order): number of edges and nodes, the Jaccard
    overlap of the edge set with the previous circuit's and with the last one's, and the nodes that
    entered (in this circuit, not the previous one) and left (the reverse); the first row has no
    previous circuit (missing overlap, no nodes entered or left)."""
    rows = []
    for i, step in enumerate(steps):
        prev_e, prev_n = (set(edges[i - 1]), set(nodes[i - 1])) if i else (None, None)
        now = set(nodes[i])
        rows.append({"step": step, "edges": len(edges[i]), "nodes": len(now),
                     "Jaccard previous": jaccard(edges[i], prev_e) if prev_e is not None else None,
                     "Jaccard final": jaccard(edges[i], edges[-1]),
                     "entered": sorted(now - prev_n) if prev_n is not None else [],
                     "left": sorted(prev_n - now) if prev_n is not None else []})
    return pd.DataFrame(rows)


def change_table(series: pd.DataFrame, task: str) -> pd.DataFrame:
    """:func:`circuit_changes` of every model over its checkpoints where ``task`` is present, with
    tokens, faithfulness and whether the target was reached; entered/left nodes joined as text."""
    parts = []
    for name, group in series[(series["task"] == task) & series["present"]].groupby("model", sort=False):
        group = group.sort_values("step")
        ch = circuit_changes(group["step"].tolist(), group["edges"].tolist(), group["nodes"].tolist())
        ch.insert(0, "model", name)
        ch.insert(2, "tokens", group["tokens"].to_numpy())
        ch["faithfulness"] = group["faithfulness"].to_numpy()
        ch["reached"] = group["reached"].to_numpy()
        for col in ("entered", "left"):
            ch[col] = [", ".join(v) or "—" for v in ch[col]]
        parts.append(ch)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


__all__ = ["TASKS", "change_table", "checkpoint_circuits", "circuit_changes", "circuit_record",
           "circuit_series", "circuits_at", "visit_steps"]
