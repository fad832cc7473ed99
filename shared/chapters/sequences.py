"""Glue of the sequence-continuation chapters (``seq_*``): each task's prompt set, the node circuits
they share through a cache, the EAP-IG edge circuit, and how far the task circuits agree.

The methods themselves live below: prompts in :mod:`shared.tasks.sequences` and
:mod:`shared.tasks.tokens`; mean ablation, knockouts, pruning, path patching and EAP in
:mod:`shared.engine`; the logit lens, OV scores and attention between roles in
:mod:`shared.analysis.lens`, :mod:`shared.analysis.ov` and :mod:`shared.analysis.roles`; figures in
:mod:`shared.plots.sequences`. This module ties them to a task's prompts:

* :func:`task_data`, :func:`load_tasks` — prompts the model gets right, their clean/corrupted batch
  and the token positions of the members and of the end;
* :func:`mean_values`, :func:`full_score`, :func:`circuit_score` — mean ablation per position over a
  task's prompts, and the logit difference with a node set kept;
* :func:`node_circuit`, :func:`node_circuits` — iterative pruning, cached on disk so that every
  chapter reads the same circuits (:class:`NodeCircuitResult`);
* :func:`eap_ig_circuit` — the top EAP-IG edges as a :class:`~shared.engine.circuit.Circuit`;
* :func:`jaccard`, :func:`overlap_table`, :func:`common_nodes`, :func:`transfer_table` — how far the
  task circuits agree, and how well the circuit of one task explains another.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from shared.chapters.display import show_table
from shared.chapters.results import cached_json
from shared.engine.ablation import KnockoutResult, ablation_values, score_circuit_nodes, zero_values
from shared.engine.batch import PromptBatch
from shared.engine.circuit import Circuit
from shared.engine.eap import eap_ig
from shared.engine.graph import Graph
from shared.engine.patching import score_circuit_edges
from shared.engine.pruning import prune_nodes
from shared.engine.runs import Values
from shared.errors import ParameterError
from shared.tasks import sequences as tasks
from shared.tasks.tokens import filter_correct, group_by_length, token_positions

MAX_PROMPTS = 2000  # prompts per task; drawing and filtering several times as many is the slow part


# --------------------------------------------------------------------------------------------
# prompt sets
# --------------------------------------------------------------------------------------------

@dataclass
class TaskData:
    """One task's prompts (all answered correctly by the model, one common token length).

    ``member_pos`` [n, n_members] and ``end_pos`` [n] are token positions (BOS = 0);
    ``kept``/``drawn`` count prompts after and before filtering.
    """

    task: str
    prompts: list
    batch: PromptBatch
    member_pos: torch.Tensor
    end_pos: torch.Tensor
    kept: int
    drawn: int

    @property
    def tokens(self) -> torch.Tensor:
        return self.batch.clean


def task_data(bridge: Any, task: str, n_prompts: int = 64, seed: int = 0, template: str = "among_words",
              n_members: int = 4, corruption: str = "random_members", min_margin: float = 0.0,
              only_correct: bool = True, min_prompts: int = 4) -> TaskData:
    """Draw prompts of ``task``, keep those the model answers correctly (top-1 with at least
    ``min_margin`` in probability) and of the most common token length, at most ``n_prompts``."""
    if not min_prompts <= n_prompts <= MAX_PROMPTS:
        raise ParameterError(f"n_prompts must be from {min_prompts} to {MAX_PROMPTS}, got {n_prompts}.")
    spec = tasks.get_task(task)
    capacity = len(spec.starts(n_members)) if template == "bare" else 10 ** 9
    drawn = min(capacity, max(4 * n_prompts, 96))
    prompts = tasks.generate(task, template, n_members, drawn, seed=seed)
    if only_correct:
        prompts = list(filter_correct(bridge, prompts, min_margin=min_margin, seed=seed, verbose=False))
    groups = group_by_length(bridge, prompts)
    if not groups:
        raise ParameterError(f"The model answers none of {drawn} {task!r} prompts correctly, so there is no "
                             f"behaviour to explain; pick another task or model.")
    length = max(groups, key=lambda k: len(groups[k]))
    chosen = groups[length][:n_prompts]
    if len(chosen) < min_prompts:
        raise ParameterError(f"Only {len(chosen)} of {drawn} {task!r} prompts are answered correctly with one "
                             f"token length (need {min_prompts}); pick another task or model.")
    batch = tasks.make_batch(bridge, chosen, corruption=corruption, seed=seed)
    member_pos, end_pos = token_positions(bridge, chosen)
    return TaskData(task, chosen, batch, member_pos, end_pos, len(chosen), drawn)


def load_tasks(bridge: Any, task_names: Sequence[str], n_prompts: int, seed: int, **kwargs: Any) -> dict[str, TaskData]:
    """:func:`task_data` for each task; prints how many prompts were kept."""
    out = {t: task_data(bridge, t, n_prompts, seed, **kwargs) for t in task_names}
    print("Prompts answered correctly and kept: " + ", ".join(
        f"{t} {d.kept} (of {d.drawn} drawn, {d.tokens.shape[1]} tokens)" for t, d in out.items()))
    return out


# --------------------------------------------------------------------------------------------
# scores with everything outside a node set mean-ablated
# --------------------------------------------------------------------------------------------

def node_order(bridge: Any) -> list[str]:
    """Heads and MLPs in forward order."""
    return list(Graph.of(bridge).components)


def mean_values(bridge: Any, data: TaskData) -> Values:
    """Replacement values for mean ablation: each node's mean output at each position over the
    task's clean and corrupted prompts (all aligned, so position means are well defined)."""
    return ablation_values(bridge, data.batch, "mean", per_position=True)


def circuit_score(bridge: Any, data: TaskData, nodes: Iterable[str], values: Optional[Values] = None) -> float:
    """Mean logit difference with every head and MLP outside ``nodes`` replaced (mean-ablated per
    position over ``data``'s clean and corrupted prompts unless ``values`` is given)."""
    values = mean_values(bridge, data) if values is None else values
    return float(score_circuit_nodes(bridge, data.batch, list(nodes), values))


@torch.no_grad()
def full_score(bridge: Any, data: TaskData) -> float:
    """The intact model's mean logit difference (answer minus last member) on ``data``."""
    return float(score_circuit_nodes(bridge, data.batch, node_order(bridge), zero_values(bridge)))


def knockout_table(results: Mapping[str, KnockoutResult]) -> pd.DataFrame:
    """Drop of the logit difference, in % of the intact model's, per node (rows) and task (columns)."""
    cols = {t: {n: 100.0 * float(e) / r.full for n, e in zip(r.nodes, r.effects)} for t, r in results.items()}
    table = pd.DataFrame(cols)
    table.index.name = "node"
    return table


# --------------------------------------------------------------------------------------------
# node circuits (cached: several chapters read the same ones)
# --------------------------------------------------------------------------------------------

@dataclass
class NodeCircuitResult:
    """The node circuit of one task: ``nodes`` (forward order), the intact (``full``) and circuit
    (``score``) mean logit differences on the ``n_prompts`` prompts it was found on, and the same
    re-measured on fresh prompts drawn with ``seed + 1`` (``heldout_full``, ``heldout_score``)."""

    task: str
    nodes: list[str]
    n_prompts: int
    full: float
    score: float
    heldout_full: float
    heldout_score: float
    n_components: int

    @property
    def size(self) -> int:
        return len(self.nodes)

    @property
    def percent(self) -> float:
        return 100 * self.score / self.full

    @property
    def heldout_percent(self) -> float:
        return 100 * self.heldout_score / self.heldout_full


def node_circuit(bridge: Any, task: str, n_prompts: int, threshold: float, seed: int,
                 progress: bool = True, template: str = "among_words") -> NodeCircuitResult:
    """The node circuit of ``task``: iterative pruning (:func:`shared.engine.pruning.prune_nodes`)
    removes heads and MLPs while the circuit, everything else mean-ablated per position, keeps at
    least ``threshold`` of the intact logit difference (prompts of ``template``). Cached on disk per
    model and parameters."""
    params = dict(task=task, n_prompts=n_prompts, threshold=threshold, seed=seed, method="prune_nodes-full-mean-v2")
    if template != "among_words":
        params["template"] = template

    def compute() -> dict[str, Any]:
        data = task_data(bridge, task, n_prompts, seed, template=template)
        found = prune_nodes(bridge, data.batch, threshold=threshold, values=mean_values(bridge, data),
                            relative_to="full", progress=progress)
        fresh = task_data(bridge, task, n_prompts, seed + 1, template=template)
        return asdict(NodeCircuitResult(
            task, list(found.nodes), data.kept, full_score(bridge, data), circuit_score(bridge, data, found.nodes),
            full_score(bridge, fresh), circuit_score(bridge, fresh, found.nodes), len(node_order(bridge))))

    result = NodeCircuitResult(**cached_json("seq-node-circuit", bridge, params, compute))
    kept = set(result.nodes)
    result.nodes = [n for n in node_order(bridge) if n in kept]
    return result


def node_circuits(bridge: Any, task_names: Sequence[str], n_prompts: int, threshold: float, seed: int,
                  progress: bool = True) -> dict[str, NodeCircuitResult]:
    """:func:`node_circuit` for each task."""
    return {t: node_circuit(bridge, t, n_prompts, threshold, seed, progress) for t in task_names}


def circuit_table(circuits: Mapping[str, NodeCircuitResult]) -> pd.DataFrame:
    """One row per task: how many of the model's nodes the circuit keeps, on how many prompts, the
    intact and circuit logit differences, the share kept (% of intact) on those prompts and on fresh
    ones, and the circuit's nodes."""
    return pd.DataFrame([{"task": t, "nodes kept": f"{c.size} of {c.n_components}", "prompts": c.n_prompts,
                          "intact logit diff.": c.full, "circuit logit diff.": c.score, "% kept": c.percent,
                          "% kept, fresh prompts": c.heldout_percent, "circuit": ", ".join(c.nodes)}
                         for t, c in circuits.items()]).set_index("task")


def show_circuit_table(circuits: Mapping[str, NodeCircuitResult]) -> None:
    """Display :func:`circuit_table` (logit differences to 3 decimals, shares to 1)."""
    show_table(circuit_table(circuits), digits={"intact logit diff.": 3, "circuit logit diff.": 3, "% kept": 1,
                                                "% kept, fresh prompts": 1})


def eap_ig_circuit(bridge: Any, data: TaskData, size: int, steps: int = 5) -> Circuit:
    """The ``size`` edges of the whole model with the largest EAP-IG scores (mean ablation per
    position), with the logit difference of that edge circuit (``score``) and of the intact model."""
    values = mean_values(bridge, data)
    scores = eap_ig(bridge, data.batch, steps=steps, values=values)
    top = sorted(scores, key=lambda e: -scores[e])[:size]
    return Circuit.from_edges(top, scores=scores, method="EAP-IG", full=full_score(bridge, data),
                              score=score_circuit_edges(bridge, data.batch, top, values),
                              info={"ig_steps": steps, "ablation": "mean per position"})


# --------------------------------------------------------------------------------------------
# comparing circuits across tasks
# --------------------------------------------------------------------------------------------

def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """|A ∩ B| / |A ∪ B| (1.0 for two empty sets)."""
    a, b = set(a), set(b)
    return 1.0 if not a | b else len(a & b) / len(a | b)


def overlap_table(circuits: Mapping[str, Iterable[str]]) -> pd.DataFrame:
    """Pairwise Jaccard similarity of the circuits' node (or edge) sets."""
    names = list(circuits)
    sets = {k: set(v) for k, v in circuits.items()}
    return pd.DataFrame([[jaccard(sets[a], sets[b]) for b in names] for a in names], index=names, columns=names)


def common_nodes(circuits: Mapping[str, Iterable[str]], order: Optional[Sequence[str]] = None) -> list[str]:
    """Nodes present in every circuit (in ``order`` if given, else sorted)."""
    sets = [set(v) for v in circuits.values()]
    if not sets:
        return []
    both = set.intersection(*sets)
    return [n for n in order if n in both] if order is not None else sorted(both)


def transfer_table(bridge: Any, data: Mapping[str, TaskData], circuits: Mapping[str, Iterable[str]],
                   progress: bool = True) -> pd.DataFrame:
    """Rows: whose circuit; columns: the task it is evaluated on; value: the circuit's logit
    difference as a percentage of the full model's on that task (everything else mean-ablated)."""
    table = pd.DataFrame(index=list(circuits), columns=list(data), dtype=float)
    pairs = [(a, b) for b in data for a in circuits]
    values = {b: mean_values(bridge, d) for b, d in data.items()}
    full = {b: full_score(bridge, d) for b, d in data.items()}
    for a, b in tqdm(pairs, desc="transfer", disable=not progress, leave=False):
        table.loc[a, b] = 100.0 * circuit_score(bridge, data[b], circuits[a], values[b]) / full[b]
    table.index.name = "circuit of"
    table.columns.name = "evaluated on"
    return table


__all__ = [
    "MAX_PROMPTS", "NodeCircuitResult", "TaskData", "circuit_score", "circuit_table",
    "common_nodes", "eap_ig_circuit", "full_score", "jaccard", "knockout_table", "load_tasks", "mean_values",
    "node_circuit", "node_circuits", "node_order", "overlap_table", "show_circuit_table", "task_data",
    "transfer_table",
]
