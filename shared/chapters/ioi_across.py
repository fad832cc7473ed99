"""Glue of the ``ioi_across_models`` chapter: one IOI analysis per model, and the tables that put
the models side by side.

A *subject* of the chapter is either a language model (a suite model or a pretrained one, prompts
from the first held-out IOI template) or a *control*: a hand-set planted IOI model of
:mod:`shared.zoo.planted_ioi` whose classes are known (its own prompts). :class:`Subject` hides the
difference; the analyses themselves are the shared ones (behaviour check, head classes, the IOI
algorithm test, EAP-IG, edge faithfulness, Jaccard overlap).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import pandas as pd
import torch

from shared.analysis.ioi import IOIPositions
from shared.analysis.ioi_algorithm import IOIAlgorithm
from shared.chapters.ioi import FIRST_TEMPLATE, IOICheck, ioi_check
from shared.chapters.sequences import overlap_table
from shared.engine.ablation import ablation_values
from shared.engine.batch import PromptBatch
from shared.engine.circuit import Circuit, Faithfulness, FaithfulnessCurve, faithfulness, smallest_faithful_circuit
from shared.engine.eap import eap_ig
from shared.engine.graph import Graph, parse_node, split_edge
from shared.engine.metrics import Metric
from shared.engine.runs import Values
from shared.errors import ModelUnavailableError
from shared.tasks.abilities import ioi_scores
from shared.tasks.ioi import ioi_batch
from shared.zoo.planted_ioi import ioi_control
from shared.zoo.registry import describe, load_model, local_models

CONTROL_TEMPLATE = "N1 and N2 w w S gave to"  # the planted models' one prompt form


@dataclass
class Subject:
    """One model of the chapter: its ``name``, the ``bridge``, whether it is a ``control`` and, for
    controls, the planted ``classes`` and the prompt maker."""

    name: str
    bridge: Any
    control: bool = False
    planted: Optional[Any] = None

    @property
    def label(self) -> str:
        """The name shown in tables and figures: a control says that it is one."""
        return f"{self.name} (control)" if self.control else self.name

    @property
    def classes(self) -> Optional[dict[str, list[str]]]:
        return self.planted.classes if self.planted is not None else None

    def behaviour(self, n_prompts: int, seed: int, min_logit_diff: float, min_share_positive: float) -> IOICheck:
        """Does it do IOI: the held-out templates for a language model, the planted prompts for a control."""
        if not self.control:
            return ioi_check(ioi_scores(self.bridge, n_prompts=n_prompts, seed=seed), min_logit_diff, min_share_positive)
        batch, _ = self.planted.batch(n_prompts, seed)
        logits = self.bridge(batch.clean)[torch.arange(len(batch)), batch.answer_pos]
        diff = logits.gather(1, batch.correct.view(-1, 1)) - logits.gather(1, batch.incorrect.view(-1, 1))
        scores = pd.DataFrame({"template": CONTROL_TEMPLATE, "logit_diff": diff.squeeze(1).detach().float().numpy()})
        return ioi_check(scores, min_logit_diff, min_share_positive)

    def prompts(self, n_prompts: int, seed: int) -> tuple[PromptBatch, IOIPositions]:
        """Clean prompts with their ABC twins and positions: the planted prompts for a control, the
        first held-out template (one token length) for a language model."""
        if self.control:
            return self.planted.batch(n_prompts, seed)
        data = ioi_batch(self.bridge, FIRST_TEMPLATE, n_prompts, corruption="abc", seed=seed)
        return data.batch, data.positions


def load_subjects(model_names: Sequence[str], controls: Sequence[str]) -> dict[str, Subject]:
    """Load every model (a pretrained one that cannot be downloaded stops with one sentence naming
    ``model_names``) and build every control; print what each one is."""
    out = {}
    for name in model_names:
        try:
            bridge = load_model(name)
        except ModelUnavailableError as err:
            raise ModelUnavailableError(
                f"Pretrained model {name!r} cannot be downloaded here (no internet access and not in the local "
                f"Hugging Face cache); set the notebook parameter `model_names` to local models such as "
                f"{sorted(n for n in local_models() if n.startswith('suite'))}.") from err
        out[name] = Subject(name, bridge)
        print(f"Model: {describe(bridge)}")
    for name in controls:
        planted = ioi_control(name)
        out[name] = Subject(name, planted.bridge, control=True, planted=planted)
        print(f"Control {name}: {describe(planted.bridge)}")
    return out


def labelled(values: Mapping[str, Any], subjects: Mapping[str, Subject]) -> dict[str, Any]:
    """``values`` keyed by display label: a control's name gets " (control)" appended."""
    return {subjects[n].label: v for n, v in values.items()}


def behaviour_table(subjects: Mapping[str, Subject], checks: Mapping[str, IOICheck]) -> pd.DataFrame:
    """One row per model: control or not, prompts, mean logit difference, share of prompts preferring
    the IO, and the verdict."""
    rows = {name: {"kind": "control" if subjects[name].control else "model", "prompts": c.n_prompts,
                   "mean logit diff (IO − S)": c.mean, "share positive": c.share_positive,
                   "does IOI": "yes" if c.does_ioi else "no"} for name, c in checks.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def class_table(found: Mapping[str, Mapping[str, Sequence[str]]]) -> pd.DataFrame:
    """Models (rows) x classes (columns): the heads found in each class ("—" for none)."""
    rows = {m: {c: ", ".join(hs) or "—" for c, hs in classes.items()} for m, classes in found.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def algorithm_table(results: Mapping[str, IOIAlgorithm]) -> pd.DataFrame:
    """Models (rows) x links (columns): the relative path-patching effect of each link, then the verdict."""
    table = pd.DataFrame({m: r.links["relative"] for m, r in results.items()}).T.rename_axis("model")
    table["uses the IOI algorithm"] = ["yes" if r.uses_algorithm else "no" for r in results.values()]
    return table


@dataclass
class EdgeCircuit:
    """The EAP-IG edge circuit of one model: the smallest top-k set reaching the target (``circuit``,
    its ``info`` has ``k``), the scanned ``curve``, the re-measured ``faith`` (engine faithfulness) and
    the number of edges of the model's graph (``n_edges``)."""

    circuit: Circuit
    curve: FaithfulnessCurve
    faith: Faithfulness
    n_edges: int

    @property
    def heads(self) -> list[str]:
        return circuit_head_set(self.circuit.edges)


def edge_circuit(bridge: Any, batch: PromptBatch, target: float, ig_steps: int,
                 metric: "Metric | str | None" = None, values: Optional[Values] = None) -> EdgeCircuit:
    """EAP-IG scores of every edge, the smallest top-k set reaching ``target`` normalised
    faithfulness, and that set's faithfulness measured again by patching, all on ``metric`` (default:
    the logit difference) with everything outside the circuit patched to ``values`` (default: the
    corrupted run's activations)."""
    values = ablation_values(bridge, batch, "corrupt") if values is None else values
    scores = eap_ig(bridge, batch, metric, steps=ig_steps, values=values)
    circuit, curve = smallest_faithful_circuit(bridge, batch, scores, target, metric, values=values, method="EAP-IG")
    return EdgeCircuit(circuit, curve, faithfulness(bridge, batch, circuit, metric, values=values),
                       len(Graph.of(bridge).edges))


def circuit_head_set(edges: Sequence[str]) -> list[str]:
    """The heads at either end of ``edges``, ordered by layer and head."""
    heads = {n for e in edges for n in split_edge(e)[:2] if parse_node(n).kind == "head"}
    return sorted(heads, key=lambda h: (parse_node(h).layer, parse_node(h).head))


def circuit_table(circuits: Mapping[str, EdgeCircuit]) -> pd.DataFrame:
    """Per model: edges in the graph, edges kept (k), heads touched, normalised faithfulness on the
    scan and re-measured, and whether the target was reached."""
    rows = {m: {"edges in model": c.n_edges, "edges kept (k)": c.circuit.info["k"], "heads": len(c.heads),
                "faithfulness (scan)": c.circuit.info["normalized"], "faithfulness (re-measured)": c.faith.normalized,
                "target reached": "yes" if c.circuit.info["reached"] else "no"} for m, c in circuits.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def overlaps(circuits: Mapping[str, EdgeCircuit]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairwise Jaccard overlap of the circuits' edge sets and of their head sets (edges and heads
    are compared by name, so only models of the same shape can share them)."""
    edges = overlap_table({m: c.circuit.edges for m, c in circuits.items()})
    heads = overlap_table({m: c.heads for m, c in circuits.items()})
    return edges, heads


def planted_check(found: Mapping[str, Sequence[str]], subject: Subject) -> bool:
    """Whether the classes found in a control are exactly its planted ones."""
    return all(set(found.get(c, [])) == set(hs) for c, hs in subject.classes.items())


__all__ = ["CONTROL_TEMPLATE", "EdgeCircuit", "Subject", "algorithm_table", "behaviour_table",
           "circuit_head_set", "circuit_table", "class_table", "edge_circuit", "labelled", "load_subjects", "overlaps",
           "planted_check"]
