"""Glue of the ``families_compared`` chapter: which sequence tasks each model family does, and the
circuits of different architectures compared by *role* rather than by head name.

Heads of a GPT-2-style, a Llama-style and a NeoX-style model have nothing in common but their
place in the graph, so ``a1.h2`` of one model says nothing about ``a1.h2`` of another. Each node of
a circuit is therefore given a role from its own model's OV scores (:mod:`shared.analysis.ov`):
a *successor head*, a *copy head*, another head, or an MLP. Two circuits are compared by the
multiset of their roles: Jaccard of multisets, sum of the smaller counts over sum of the larger.

The EAP-IG edge circuit of each family and task (:func:`edge_circuits`) is the engine's smallest
top-k edge set reaching a faithfulness target (:func:`shared.chapters.ioi_across.edge_circuit`),
with everything outside it mean-ablated like the node circuits. The graphs differ (a NeoX-style
block runs attention and MLP in parallel, so its heads do not feed the MLP of their own layer), so
edge circuits too are compared through their nodes and the roles of those nodes.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from tqdm.auto import tqdm

from shared.chapters.ioi_across import EdgeCircuit, edge_circuit
from shared.chapters.sequences import jaccard, mean_values, task_data
from shared.engine.graph import parse_node
from shared.engine.runs import threads
from shared.errors import ParameterError
from shared.tasks import sequences as tasks
from shared.tasks.tokens import score

ROLES = ("successor head", "copy head", "other head", "MLP")


def head_roles(ov_scores: pd.DataFrame, cutoff: float) -> dict[str, str]:
    """Role of every head from an :func:`shared.analysis.ov.ov_score_table`: successor head if its
    mean successor score is at least ``cutoff``, else copy head if its mean copy score is, else other."""
    return {h: "successor head" if r.successor_mean >= cutoff else "copy head" if r.copy_mean >= cutoff
            else "other head" for h, r in ov_scores.iterrows()}


def node_roles(nodes: Iterable[str], roles: Mapping[str, str]) -> Counter:
    """How many nodes of a circuit have each role (MLPs are "MLP"; a head missing from ``roles`` is "other head")."""
    return Counter("MLP" if parse_node(n).kind == "mlp" else roles.get(n, "other head") for n in nodes)


def role_jaccard(a: Mapping[str, int], b: Mapping[str, int]) -> float:
    """Jaccard similarity of two role multisets: sum over roles of min(count) / sum of max(count)
    (1.0 for two empty circuits)."""
    keys = set(a) | set(b)
    top = sum(max(a.get(k, 0), b.get(k, 0)) for k in keys)
    return 1.0 if top == 0 else sum(min(a.get(k, 0), b.get(k, 0)) for k in keys) / top


def role_overlap(counts: Mapping[str, Mapping[str, int]]) -> pd.DataFrame:
    """Pairwise :func:`role_jaccard` of the circuits (rows and columns in the order given)."""
    names = list(counts)
    return pd.DataFrame([[role_jaccard(counts[a], counts[b]) for b in names] for a in names], index=names, columns=names)


def roles_in_all(counts: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Roles present (count > 0) in every circuit, in :data:`ROLES` order."""
    if not counts:
        return []
    return [r for r in ROLES if all(c.get(r, 0) > 0 for c in counts.values())]


def role_table(counts: Mapping[str, Mapping[str, int]]) -> pd.DataFrame:
    """One row per circuit, one column per role: how many of its nodes have that role."""
    return pd.DataFrame([[int(c.get(r, 0)) for r in ROLES] for c in counts.values()], index=list(counts),
                        columns=list(ROLES))


def task_accuracy(models: Mapping[str, Any], task_names: Sequence[str], n_prompts: int, seed: int,
                  template: str = "bare", n_members: int = 4) -> pd.DataFrame:
    """Accuracy of every model on every task (at most ``n_prompts`` prompts of ``template``), every
    answer token scored by teacher forcing (one BOS, answers after a space;
    :func:`shared.tasks.tokens.score`), and whether the single-token circuit methods can run on it
    (``single token``: every member and answer is one token). A task whose prompts this tokenizer
    cannot align (a member merged with its neighbour) gets accuracy NaN."""
    rows = []
    for name, model in models.items():
        for task in task_names:
            capacity = len(tasks.get_task(task).starts(n_members)) if template == "bare" else n_prompts
            prompts = tasks.generate(task, template, n_members, min(n_prompts, capacity), seed=seed)
            try:
                acc = float(score(model, prompts, multi_token=True).top1.mean())
            except ParameterError:
                acc = float("nan")
            try:
                score(model, prompts[:2])
                single = True
            except ParameterError:
                single = False
            rows.append({"model": name, "task": task, "accuracy": acc, "single token": single})
    return pd.DataFrame(rows).set_index(["model", "task"])


def components(nodes: Iterable[str]) -> list[str]:
    """The heads and MLPs among ``nodes`` (the graph's ``input`` and ``logits`` dropped), in forward
    order: by layer, heads (by index) before the MLP."""
    parsed = [parse_node(n) for n in nodes]
    return [p.name for p in sorted((p for p in parsed if p.kind in ("head", "mlp")),
                                   key=lambda p: (p.layer, p.kind == "mlp", p.head))]


def edge_circuits(models: Mapping[str, Any], runs: Sequence[tuple[str, str]], n_prompts: int, seed: int,
                  target: float, ig_steps: int, template: str = "bare",
                  progress: bool = True) -> dict[tuple[str, str], EdgeCircuit]:
    """For each (model, task) of ``runs``: the prompts of its node circuit (:func:`shared.chapters.
    sequences.task_data`, answered correctly), EAP-IG scores of every edge of that model's graph with
    ``ig_steps`` steps, and the smallest top-k edge set reaching ``target`` normalised faithfulness,
    re-measured by patching; outside the circuit, every node's output is its mean per position
    over the clean and corrupted prompts (the node circuits' ablation). One torch thread: the models
    are tiny, and a second thread only adds overhead to their many small operations."""
    out = {}
    with threads(1):
        for m, t in tqdm(runs, desc="EAP-IG edge circuits", disable=not progress):
            data = task_data(models[m], t, n_prompts, seed, template=template)
            out[(m, t)] = edge_circuit(models[m], data.batch, target, ig_steps, values=mean_values(models[m], data))
    return out


def labelled_heads(heads: Iterable[str], roles: Mapping[str, str]) -> str:
    """``"a1.h0 (successor head), a2.h1 (other head)"``: each head with its role (a head missing from
    ``roles`` is "other head", as in :func:`node_roles`); "—" for none."""
    return ", ".join(f"{h} ({roles.get(h, 'other head')})" for h in heads) or "—"


def edge_circuit_table(found: Mapping[tuple[str, str], EdgeCircuit], roles: Mapping[str, Mapping[str, str]],
                       node_circuits: Mapping[tuple[str, str], Sequence[str]]) -> pd.DataFrame:
    """One row per ``"model · task"``: edges kept and in the whole graph, their share, the re-measured
    normalised faithfulness, whether the target was reached, the Jaccard similarity of the circuit's
    heads and MLPs with the node circuit of the same model and task, and its heads with their roles."""
    rows = {}
    for (m, t), c in found.items():
        rows[f"{m} · {t}"] = {
            "edges kept": int(c.circuit.info["k"]), "edges in model": c.n_edges,
            "share of edges": c.circuit.info["k"] / c.n_edges, "faithfulness": c.faith.normalized,
            "target reached": "yes" if c.circuit.info["reached"] else "no",
            "Jaccard with node circuit": jaccard(components(c.circuit.nodes), node_circuits[(m, t)]),
            "heads (role)": labelled_heads(c.heads, roles[m])}
    return pd.DataFrame.from_dict(rows, orient="index")


def pair_table(pairs: Sequence[tuple[str, str]], node_counts: Mapping[str, Mapping[str, int]],
               edge_counts: Mapping[str, Mapping[str, int]],
               edge_nodes: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """One row per pair of circuits (keys of the mappings): the role Jaccard (:func:`role_jaccard`)
    of their node circuits, that of their edge circuits, and the plain Jaccard of the edge circuits'
    node names (heads and MLPs)."""
    rows = [{"circuit A": a, "circuit B": b, "node circuits, roles": role_jaccard(node_counts[a], node_counts[b]),
             "edge circuits, roles": role_jaccard(edge_counts[a], edge_counts[b]),
             "edge circuits, node names": jaccard(edge_nodes[a], edge_nodes[b])} for a, b in pairs]
    return pd.DataFrame(rows, columns=["circuit A", "circuit B", "node circuits, roles", "edge circuits, roles",
                                       "edge circuits, node names"])


__all__ = ["ROLES", "components", "edge_circuit_table", "edge_circuits", "head_roles", "labelled_heads",
           "node_roles", "pair_table", "role_jaccard", "role_overlap", "role_table", "roles_in_all", "task_accuracy"]
