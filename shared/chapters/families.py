"""Glue of the ``families_compared`` chapter: which sequence tasks each model family does, and the
circuits of different architectures compared by *role* rather than by head name.

Heads of a GPT-2-style, a Llama-style and a NeoX-style model have nothing in common but their
place in the graph, so ``a1.h2`` of one model says nothing about ``a1.h2`` of another. Each node of
a circuit is therefore given a role from its own model's OV scores (:mod:`shared.analysis.ov`):
a *successor head*, a *copy head*, another head, or an MLP. Two circuits are compared by the
multiset of their roles: Jaccard of multisets, sum of the smaller counts over sum of the larger.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from shared.engine.graph import parse_node
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


__all__ = ["ROLES", "head_roles", "node_roles", "role_jaccard", "role_overlap", "role_table", "roles_in_all",
           "task_accuracy"]
