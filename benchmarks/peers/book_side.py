"""The book's side of the comparison: models, prompts and the four methods, each run as a reader
would run it from ``shared`` (``path_patching``, ``eap``, ``eap_ig``, ``acdc``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from shared.chapters.sequences import task_data
from shared.engine.ablation import ablation_values
from shared.engine.batch import PromptBatch
from shared.engine.eap import eap, eap_ig
from shared.engine.graph import Graph
from shared.engine.metrics import Metric, kl_to, logit_diff
from shared.engine.patching import edge_mask, path_patching, score_edge_masks
from shared.engine.pruning import acdc
from shared.engine.runs import final_norm, record
from shared.errors import ParameterError
from shared.tasks.heldout import IOI_TEMPLATES
from shared.tasks.ioi import ioi_batch
from shared.zoo.registry import boot_native, load_model

# GPT-2 small's shape with random weights (the book's benchmark uses the same): the compute of the
# real model without a download
GPT2_SMALL = dict(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257, n_ctx=1024,
                  attn_only=False, normalization_type="LN", act_fn="gelu", seed=0)
RANDOM_MODELS = {"gpt2-small-random": GPT2_SMALL}
TASKS = ("ioi", "numerals", "random")
METHODS = ("patching", "eap", "eap_ig", "acdc")


def load_subject(name: str) -> Any:
    """A suite (or any local GPT-2-style) model by name, or one of :data:`RANDOM_MODELS`."""
    if name in RANDOM_MODELS:
        torch.manual_seed(RANDOM_MODELS[name]["seed"])
        return boot_native(RANDOM_MODELS[name])
    return load_model(name)


def prompts(bridge: Any, task: str, n: int, seed: int = 0, length: int = 16) -> PromptBatch:
    """``n`` clean/corrupted pairs answered at the last position: ``ioi`` (the first held-out IOI
    template, ``abc`` corruption), ``numerals`` (the sequence task, prompts the model gets right,
    random members as corruption) or ``random`` (random tokens of ``length``, for models without a
    tokenizer: speed only)."""
    if task == "ioi":
        return ioi_batch(bridge, next(iter(IOI_TEMPLATES)), n=n, seed=seed).batch
    if task == "numerals":
        data = task_data(bridge, "numerals", n_prompts=n, seed=seed, min_prompts=min(4, n))
        if len(data.batch) < n:
            raise ParameterError(f"The model answers only {len(data.batch)} numerals prompts of one length; "
                                 f"ask for at most that many.")
        return data.batch
    if task == "random":
        g = torch.Generator().manual_seed(seed)
        V = bridge.cfg.d_vocab
        draw = lambda *shape: torch.randint(0, V, shape, generator=g)
        return PromptBatch(draw(n, length), draw(n, length), draw(n), draw(n))
    raise ParameterError(f"Unknown task {task!r}; use one of {', '.join(TASKS)}.")


def neg_kl(bridge: Any, batch: PromptBatch) -> Metric:
    """Minus KL(clean || run) at the answer position: auto-circuit's ACDC target, made a metric where
    higher is better, as the book's ``acdc`` wants."""
    acts = record(bridge, batch.clean)
    rows = torch.arange(len(batch))
    kl = kl_to(final_norm(bridge, acts.resid[-1][rows, batch.answer_pos]))
    return Metric("neg_kl_to_clean", lambda b, final, bt: -kl(b, final, bt))


@dataclass
class AcdcSetting:
    """One ACDC threshold ``tau`` on the KL divergence, as the book's relative threshold."""

    tau: float
    metric: Metric
    threshold: float
    order: list[str]


def acdc_setting(bridge: Any, batch: PromptBatch, threshold: float) -> AcdcSetting:
    """auto-circuit removes an edge when the KL divergence rises by less than ``tau``; the book when the
    metric falls by less than ``threshold * |full - empty|``. With minus the KL as the book's metric
    the two rules are one: ``tau = threshold * KL(clean || everything patched)``. ``order`` is the
    book's visiting order (receivers from the logits down, each one's senders from the latest back),
    which the worker hands to auto-circuit."""
    graph = Graph.of(bridge)
    metric = neg_kl(bridge, batch)
    E = len(graph.edges)
    values = ablation_values(bridge, batch, "corrupt")
    full, empty = score_edge_masks(bridge, batch, torch.stack([torch.zeros(E, dtype=torch.bool),
                                                                torch.ones(E, dtype=torch.bool)]), values, metric).tolist()
    order = [f"{s}->{r}" for r in reversed(graph.receivers) for s in reversed(graph.upstream(r))]
    return AcdcSetting(threshold * abs(full - empty), metric, threshold, order)


def run_method(bridge: Any, batch: PromptBatch, method: str, ig_steps: int = 5,
               setting: Optional[AcdcSetting] = None) -> Any:
    """The raw result of one method, as a reader calls it (converted afterwards, outside any timing)."""
    if method == "patching":
        return path_patching(bridge, batch, metric=logit_diff, ablation="corrupt", progress=False)
    if method == "eap":
        return eap(bridge, batch, logit_diff)
    if method == "eap_ig":
        return eap_ig(bridge, batch, logit_diff, steps=ig_steps)
    if method == "acdc":
        return acdc(bridge, batch, setting.metric, threshold=setting.threshold, ablation="corrupt", progress=False)
    raise ParameterError(f"Unknown method {method!r}; use one of {', '.join(METHODS)}.")


def as_scores(bridge: Any, method: str, raw: Any) -> torch.Tensor:
    """Scores in ``Graph.edges`` order (ACDC: 1 for a kept edge, 0 for a removed one)."""
    graph = Graph.of(bridge)
    if method == "patching":
        return torch.tensor([raw[e] for e in graph.edges], dtype=torch.float64)
    if method in ("eap", "eap_ig"):
        return raw.tensor.to(torch.float64)
    if method == "acdc":
        return edge_mask(graph, raw.edges).to(torch.float64)
    raise ParameterError(f"Unknown method {method!r}; use one of {', '.join(METHODS)}.")


def book_faithfulness(bridge: Any, batch: PromptBatch, kept: list[str]) -> dict[str, float]:
    """Logit difference with only ``kept`` edges, the rest patched with the corrupted run, beside the
    intact and the fully patched model (the book's evaluator)."""
    graph = Graph.of(bridge)
    keep = edge_mask(graph, kept)
    masks = torch.stack([~keep, torch.zeros_like(keep), torch.ones_like(keep)])
    circuit, full, empty = score_edge_masks(bridge, batch, masks, ablation_values(bridge, batch, "corrupt"),
                                            logit_diff).tolist()
    return {"circuit": circuit, "full": full, "empty": empty}


__all__ = ["AcdcSetting", "GPT2_SMALL", "METHODS", "RANDOM_MODELS", "TASKS", "acdc_setting", "as_scores",
           "book_faithfulness", "load_subject", "neg_kl", "prompts", "run_method"]
