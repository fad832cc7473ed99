"""Glue of the ``ioi_circuit`` chapter: does the model do IOI, the circuit the head classes form, Wang et
al.'s faithfulness, completeness and minimality checks (simplified), and the comparison of found
classes with planted or canonical ones.

A circuit here is a set of heads (every MLP, the embeddings and the unembedding always kept, as in
Wang et al.); every head outside it is mean-ablated: replaced by its mean output at the same position
over the ABC prompts. ``F(S)`` is the mean logit difference IO - S with only the heads in ``S`` kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import pandas as pd
import torch

from shared.analysis.ioi import IOIHeadClasses
from shared.engine.ablation import ablation_values, node_mask, score_node_masks
from shared.engine.batch import PromptBatch
from shared.engine.circuit import Circuit
from shared.engine.graph import Graph, parse_node
from shared.engine.runs import Values
from shared.tasks.heldout import IOI_TEMPLATES

# Wang et al. (2022), GPT-2 small; the check of the ``paper`` profile.
CANONICAL = {
    "name mover": ["a9.h9", "a9.h6", "a10.h0"],
    "negative name mover": ["a10.h7", "a11.h10"],
    "S-inhibition": ["a7.h3", "a7.h9", "a8.h6", "a8.h10"],
    "induction": ["a5.h5", "a6.h9"],
    "duplicate token": ["a0.h1", "a3.h0"],
    "previous token": ["a2.h2", "a4.h11"],
}
# which class sends into which, through which port of the receiver (None: into the logits)
LINKS = [("previous token", "induction", "k"), ("induction", "S-inhibition", "v"),
         ("duplicate token", "S-inhibition", "v"), ("S-inhibition", "name mover", "q"),
         ("name mover", None, None), ("negative name mover", None, None), ("backup name mover", None, None)]
FIRST_TEMPLATE = next(iter(IOI_TEMPLATES))


@dataclass
class IOICheck:
    """Does the model do IOI: mean logit difference IO - S, share of prompts where it is positive, the
    per-template table and the verdict against the chapter's two thresholds."""

    mean: float
    share_positive: float
    n_prompts: int
    by_template: pd.DataFrame
    min_logit_diff: float
    min_share_positive: float

    @property
    def does_ioi(self) -> bool:
        return self.mean >= self.min_logit_diff and self.share_positive >= self.min_share_positive


def ioi_check(scores: pd.DataFrame, min_logit_diff: float, min_share_positive: float) -> IOICheck:
    """Summarise :func:`shared.tasks.abilities.ioi_scores` against the thresholds."""
    by = scores.groupby("template").logit_diff
    table = pd.DataFrame({"prompts": by.size(), "mean logit diff": by.mean(),
                          "share positive": by.apply(lambda x: float((x > 0).mean()))})
    return IOICheck(float(scores.logit_diff.mean()), float((scores.logit_diff > 0).mean()), len(scores), table,
                    min_logit_diff, min_share_positive)


def head_classes(classes: IOIHeadClasses) -> dict[str, list[str]]:
    """``{class: heads}`` in the chain's order."""
    return classes.as_dict()


def circuit_heads(classes: Mapping[str, Sequence[str]]) -> list[str]:
    """Every head in some class, once, ordered by layer and head."""
    heads = {h for hs in classes.values() for h in hs}
    return sorted(heads, key=lambda h: (parse_node(h).layer, parse_node(h).head))


def class_circuit(classes: IOIHeadClasses, method: str = "IOI head classes") -> Circuit:
    """The circuit the classes form: the edges each step measured (previous token -> induction keys,
    induction / duplicate token -> S-inhibition values, S-inhibition -> name mover queries, movers ->
    logits), each scored by its sender's relative effect in that step."""
    found = classes.classes()
    edges, scores = [], {}
    for sender, receiver, port in LINKS:
        table = found[sender].scores
        column = "relative rise" if sender == "backup name mover" else "relative"
        for s in found[sender].heads:
            targets = ["logits"] if receiver is None else [f"{r}:{port}" for r in found[receiver].heads]
            for t in targets:
                if parse_node(t.split(":")[0]).kind == "head" and parse_node(t.split(":")[0]).layer <= parse_node(s).layer:
                    continue
                edge = f"{s}->{t}"
                edges.append(edge)
                scores[edge] = abs(float(table.loc[s, column]))
    circuit = Circuit.from_edges(edges, scores=scores, method=method) if edges else Circuit(nodes=[], method=method)
    circuit.nodes = list(dict.fromkeys(circuit.nodes + circuit_heads(head_classes(classes))))
    return circuit


def mean_abc_values(bridge: Any, batch: PromptBatch) -> Values:
    """Each node's mean output at each position over the ABC (corrupted) prompts."""
    return ablation_values(bridge, batch, "mean", reference=batch.corrupt, per_position=True)


def kept_nodes(bridge: Any, heads: Sequence[str]) -> list[str]:
    """``heads`` plus every MLP (a node circuit in which only the other heads are ablated)."""
    graph = Graph.of(bridge)
    return list(heads) + [c for c in graph.components if parse_node(c).kind == "mlp"]


@dataclass
class CircuitChecks:
    """``F`` of the circuit, the whole model and no heads; ``completeness``: per removed class K,
    F(C \\ K), F(M \\ K) and |difference| / F(M); ``minimality``: per head v of the circuit, the set K
    removed with it and |F(C \\ (K + v)) - F(C \\ K)| / F(M)."""

    circuit: float
    full: float
    empty: float
    completeness: pd.DataFrame
    minimality: pd.DataFrame

    @property
    def ratio(self) -> float:
        return self.circuit / self.full if abs(self.full) > 1e-9 else float("nan")

    @property
    def normalized(self) -> float:
        span = self.full - self.empty
        return (self.circuit - self.empty) / span if abs(span) > 1e-9 else float("nan")


def circuit_checks(bridge: Any, batch: PromptBatch, classes: Mapping[str, Sequence[str]],
                   values: Optional[Values] = None) -> CircuitChecks:
    """Faithfulness plus the simplified completeness and minimality checks, all scored in one batch.

    Completeness removes one whole class K at a time (Wang et al. also sample random subsets and
    search for the worst K). Minimality removes each head v alone (K empty), except a backup name
    mover, removed together with the name movers (K = name movers), since a backup only acts when
    they are gone (Wang et al. choose K per class by hand as well)."""
    graph = Graph.of(bridge)
    heads = graph.heads()
    values = mean_abc_values(bridge, batch) if values is None else values
    circuit = circuit_heads(classes)

    def ablate(kept: Sequence[str]) -> torch.Tensor:
        return node_mask(graph, [h for h in heads if h not in set(kept)])

    rows = [ablate(circuit), ablate(heads), ablate([])]
    labels = [name for name, hs in classes.items() if hs]
    for name in labels:
        rows += [ablate([h for h in circuit if h not in classes[name]]), ablate([h for h in heads if h not in classes[name]])]
    movers = list(classes.get("name mover", []))
    backups = set(classes.get("backup name mover", []))
    removed = []
    for v in circuit:
        k = [m for m in movers if m != v] if v in backups else []
        removed.append(k)
        rows += [ablate([h for h in circuit if h not in set(k) | {v}]), ablate([h for h in circuit if h not in set(k)])]
    scores = score_node_masks(bridge, batch, torch.stack(rows), values).tolist()
    f_c, f_m, f_0 = scores[:3]
    at = 3
    comp = []
    for name in labels:
        a, b = scores[at:at + 2]
        at += 2
        comp.append(dict(removed=name, heads=", ".join(classes[name]), **{"F(C\\K)": a, "F(M\\K)": b},
                         incompleteness=abs(a - b) / f_m))
    mini = []
    for v, k in zip(circuit, removed):
        a, b = scores[at:at + 2]
        at += 2
        cls = next(c for c, hs in classes.items() if v in hs)
        mini.append(dict(head=v, **{"class": cls, "K": ", ".join(k) or "none", "F(C\\(K+v))": a, "F(C\\K)": b},
                         importance=abs(a - b) / f_m))
    return CircuitChecks(f_c, f_m, f_0, pd.DataFrame(comp).set_index("removed"), pd.DataFrame(mini).set_index("head"))


def agreement_table(found: Mapping[str, Sequence[str]], expected: Mapping[str, Sequence[str]],
                    expected_label: str = "planted") -> pd.DataFrame:
    """Per class: the expected heads, the found heads, their overlap and whether they agree exactly."""
    rows = []
    for name, want in expected.items():
        got = list(found.get(name, []))
        both = [h for h in got if h in set(want)]
        rows.append({"class": name, expected_label: ", ".join(want) or "none", "found": ", ".join(got) or "none",
                     "overlap": f"{len(both)} of {len(want)}", "agree": set(got) == set(want)})
    return pd.DataFrame(rows).set_index("class")


# per class: the effect column and the attention column its criterion reads
EVIDENCE = {"name mover": ("relative", "end→io"), "negative name mover": ("relative", "end→names"),
            "S-inhibition": ("relative", "end→s2"), "induction": ("relative", "s2→s1+1"),
            "duplicate token": ("relative", "s2→s1"), "previous token": ("relative", "s1+1→s1"),
            "backup name mover": ("relative rise", None)}


def class_lines(classes: IOIHeadClasses) -> str:
    """One Markdown bullet per class: its heads with the effect and attention that selected them, and
    the thresholds."""
    out = []
    for name, c in classes.classes().items():
        effect, att = EVIDENCE[name]
        th = ", ".join(f"`{k}` = {v:g}" for k, v in c.thresholds.items())
        what = "rise of its direct effect" if effect == "relative rise" else "effect"
        heads = "; ".join(f"`{h}` ({what} {c.scores.loc[h, effect]:+.2f} x the clean logit difference"
                          + (f", attention {att} {c.scores.loc[h, att]:.2f}" if att else "")
                          + (f", copy score {c.scores.loc[h, 'copy']:+.2f}" if "copy" in c.scores else "") + ")"
                          for h in c.heads) or "none"
        out.append(f"* **{name}**: {heads} — thresholds {th}.")
    return "\n".join(out)


__all__ = ["CANONICAL", "CircuitChecks", "EVIDENCE", "FIRST_TEMPLATE", "IOICheck", "LINKS", "agreement_table", "circuit_checks",
           "circuit_heads", "class_circuit", "class_lines", "head_classes", "ioi_check", "kept_nodes",
           "mean_abc_values"]
