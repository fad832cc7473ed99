"""Does a model *use the IOI algorithm* of Wang et al. (2022), given heads sorted into its classes?

The algorithm is a chain: induction and duplicate-token heads mark the repeated name (S2), the
S-inhibition heads read that mark through their *values* and carry it to END, where it enters the
name movers' *queries*, so that the movers attend to, and copy, the other name (the IO) into the
logits. A model uses the algorithm when every required link of the chain is there, measured by path
patching: all the edges from the sender classes' heads into the receiver class's heads, through the
stated port, are patched together to their value on the corrupted prompts, and the drop of the
logit difference IO - S, divided by the clean one, must reach the link's threshold.

The function takes the classes as an argument, so the same classes (for example the final model's)
can be tested on every checkpoint of a training run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import pandas as pd
import torch

from shared.analysis.ioi import IOIPositions, clean_logit_diff
from shared.engine.ablation import ablation_values
from shared.engine.batch import PromptBatch
from shared.engine.graph import Graph
from shared.engine.patching import edge_mask, score_edge_masks
from shared.engine.runs import Values, record

# (sender classes, receiver class (None: the logits), receiver port, threshold name, required)
ALGORITHM_LINKS = [
    (("name mover",), None, None, "min_effect", True),
    (("S-inhibition",), "name mover", "q", "min_effect", True),
    (("induction", "duplicate token"), "S-inhibition", "v", "min_upstream_effect", True),
    (("previous token",), "induction", "k", "min_upstream_effect", False),
]


def link_name(senders: Sequence[str], receiver: Optional[str], port: Optional[str]) -> str:
    """``"induction / duplicate token -> S-inhibition (v)"``, ``"name mover -> logits"``."""
    return " / ".join(senders) + " → " + ("logits" if receiver is None else f"{receiver} ({port})")


@dataclass
class IOIAlgorithm:
    """The verdict and its evidence: ``links`` has one row per link (index: its name) with the
    heads at each end, the number of edges patched, the effect (nats), the ``relative`` effect (over
    the clean logit difference), the ``threshold``, whether it is ``required`` and whether it ``holds``."""

    links: pd.DataFrame
    clean_logit_diff: float

    @property
    def uses_algorithm(self) -> bool:
        required = self.links[self.links["required"]]
        return bool(len(required)) and bool(required["holds"].all())

    @property
    def missing(self) -> list[str]:
        """The required links that do not hold."""
        return self.links.index[self.links["required"] & ~self.links["holds"]].tolist()


def ioi_algorithm(bridge: Any, batch: PromptBatch, positions: IOIPositions, classes: Mapping[str, Sequence[str]],
                  min_effect: float = 0.1, min_upstream_effect: float = 0.05,
                  values: Optional[Values] = None) -> IOIAlgorithm:
    """Test every link of :data:`ALGORITHM_LINKS` on ``batch`` (clean prompts, corrupted twins) for
    the heads in ``classes`` (``{class: heads}``, e.g. :meth:`IOIHeadClasses.as_dict` or a planted
    model's ``classes``).

    A link holds when its sender and receiver classes have heads, at least one edge joins them (the
    sender in an earlier layer) and patching all those edges together to ``values`` (default: the
    corrupted run) lowers the logit difference by at least its threshold (``min_effect`` for the links
    into the logits and the name movers, ``min_upstream_effect`` for the links into S-inhibition and
    induction heads) times the clean logit difference. The previous-token link is reported but not
    required. When the clean logit difference is not positive there is no behaviour to explain: the
    relative effects are NaN and no link holds. All links are scored in one batched run."""
    positions.check(batch)
    graph = Graph.of(bridge)
    values = ablation_values(bridge, batch, "corrupt") if values is None else values
    clean = clean_logit_diff(bridge, batch)
    thresholds = dict(min_effect=min_effect, min_upstream_effect=min_upstream_effect)
    rows, masks = [], []
    for senders, receiver, port, key, required in ALGORITHM_LINKS:
        sent = [h for c in senders for h in classes.get(c, [])]
        targets = ["logits"] if receiver is None else [f"{r}:{port}" for r in classes.get(receiver, [])]
        edges = [f"{s}->{t}" for t in targets for s in sent if s in set(graph.upstream(t))]
        rows.append(dict(link=link_name(senders, receiver, port), senders=", ".join(sent) or "none",
                         receivers="logits" if receiver is None else ", ".join(classes.get(receiver, [])) or "none",
                         edges=len(edges), threshold=thresholds[key], required=required))
        masks.append(edge_mask(graph, edges))
    scores = score_edge_masks(bridge, batch, torch.stack([torch.zeros_like(masks[0])] + masks), values,
                              base=record(bridge, batch.clean)).tolist()
    table = pd.DataFrame(rows).set_index("link")
    table["effect"] = [scores[0] - s for s in scores[1:]]
    table["relative"] = table["effect"] / clean if clean > 0 else float("nan")
    table["holds"] = (table["edges"] > 0) & (table["relative"] >= table["threshold"])
    return IOIAlgorithm(table[["senders", "receivers", "edges", "effect", "relative", "threshold", "required", "holds"]],
                        clean)


__all__ = ["ALGORITHM_LINKS", "IOIAlgorithm", "ioi_algorithm", "link_name"]
