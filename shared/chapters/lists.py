"""The list chapters (find-min, find-median): the model a chapter's parameters name, the
measurements that need the task's lists (:class:`~shared.tasks.lists.AlgoData`), and the sentences
that report them. Task-independent readers live in :mod:`shared.analysis.answer` and
:mod:`shared.analysis.stats`; the figures in :mod:`shared.plots.lists`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from IPython.display import display
from tqdm.auto import tqdm

from shared.analysis.answer import (accuracy, answer_accuracy, answer_activation, answer_attention, answer_scores,
                                    ov_by_source, predictions)
from shared.analysis.attention import attention_patterns
from shared.analysis.stats import Monotonicity, grouped_mean, linear_probe_r2, monotonicity, ov_diagonal_argmax_share
from shared.chapters.common import report_run, say
from shared.chapters.display import show_table
from shared.engine.ablation import KnockoutResult, knockout_sweep, mean_values
from shared.engine.graph import Graph, parse_node
from shared.errors import ParameterError
from shared.plots.widgets import attention_patterns as attention_widget
from shared.tasks.lists import (EDITS, AlgoData, data_checks, median_edits, test_set, training_lengths,
                                value_ranks)
from shared.zoo.lists import algorithmic_model
from shared.zoo.registry import load_model, local_models


# ----------------------------------------------------------------------------------------------
# Opening: the model, the data, training, sample attention
# ----------------------------------------------------------------------------------------------

def task_model(task: str, params: dict[str, Any]) -> tuple[str, dict[str, Any], Any]:
    """The zoo model that a chapter's checked parameters name (a variant is registered, and trained on
    first use, when they differ from a shipped model); loaded and printed. Returns its name, its
    training recipe and the model."""
    name = algorithmic_model(task, params["n_layers"], params["attn_only"], n=params["n"], V=params["V"],
                             seed=params["seed"], steps=params["steps"])
    model = load_model(name)
    report_run(model)
    return name, local_models()[name].recipe, model


def show_data(recipe: dict[str, Any], data: AlgoData, seed: int, shown: int = 3) -> None:
    """Print a few held-out lists with their answers and state the generator and split checks."""
    for i in range(shown):
        print(" ".join(data.labels(i)), "->", int(data.answers[i]))
    checks = data_checks(recipe, data, seed=seed)
    say(f"The generator disagrees with the brute-force reference on **{checks.wrong}** of {checks.checked} "
        f"held-out lists, and **{checks.overlap}** of {checks.train_lists} training lists share a multiset "
        f"with the held-out set.")


def training_text(recipe: dict[str, Any], metrics: dict[str, Any], acc: float, count: int) -> str:
    """The held-out accuracy now and as recorded at training time."""
    return (f"After {recipe['steps']} steps ({metrics['train_seconds']} s on CPU) the model answers **{acc:.2%}** "
            f"of {count} held-out lists correctly (recorded at training time on {metrics['test_size']} lists: "
            f"{metrics['test_accuracy']:.2%}).")


def show_attention(model: Any, data: AlgoData, count: int = 3) -> None:
    """Interactive attention patterns of every head on the first ``count`` lists (up to the answer)."""
    sample = data.subset(torch.arange(count))
    patterns = attention_patterns(model, sample.tokens)  # [list, head, query, key]
    for i in range(count):
        L = int(sample.lengths[i]) + 1
        display(attention_widget(sample.labels(i), patterns[i, :, :L, :L], Graph.of(model).heads()))


# ----------------------------------------------------------------------------------------------
# Attention from SEP, grouped by the key
# ----------------------------------------------------------------------------------------------

def attention_by(data: AlgoData, attn: torch.Tensor, key: str = "value", relative: bool = False) -> np.ndarray:
    """Mean of ``attn`` [list, layer, head, key position] over list positions, grouped by the key's
    value or rank: [layer, head, groups] (NaN for empty groups).

    ``key="rank"`` groups by rank among the list; with ``relative=True`` rank minus the median rank
    ``(L - 1) // 2`` (group ``width`` is 0). ``key="offset"`` groups by key value minus the answer
    (group ``V`` is 0).
    """
    width = data.tokens.shape[1]
    if key == "value":
        group, groups = data.tokens, data.V
    elif key == "offset":
        group, groups = data.tokens - data.answers[:, None] + data.V, 2 * data.V
    elif key == "rank":
        group, groups = value_ranks(data), width
        if relative:
            group, groups = group - ((data.lengths - 1) // 2)[:, None] + width, 2 * width
    else:
        raise ParameterError(f"Group attention by 'value', 'offset' or 'rank', not {key!r}.")
    return grouped_mean(attn, group, data.value_mask(), groups)


def attention_on_answer(data: AlgoData, attn: torch.Tensor) -> np.ndarray:
    """[layer, head] mean attention from SEP onto list tokens whose value is the answer."""
    width = data.tokens.shape[1]
    hit = (data.tokens == data.answers[:, None]) & data.value_mask()
    return (attn[..., :width] * hit[:, None, None, :]).sum(-1).mean(0).numpy()


def distance_from_uniform(data: AlgoData, attn: torch.Tensor) -> np.ndarray:
    """[layer, head] mean total-variation distance between SEP's attention and uniform over the list.

    0 means the head averages the list tokens equally (it counts: its output is the list's value
    histogram divided by the length); 1 means it ignores the list.
    """
    width = data.tokens.shape[1]
    L = data.lengths.float()[:, None, None]
    valid = data.value_mask()[:, None, None, :]
    a = attn[..., :width]
    off = torch.where(valid, (a - 1 / L[..., None]).abs(), torch.zeros_like(a)).sum(-1)
    rest = torch.where(valid, torch.zeros_like(a), a).sum(-1)  # mass on SEP and beyond
    return (0.5 * (off + rest)).mean(0).numpy()


# ----------------------------------------------------------------------------------------------
# The summary both chapters report, for any model of the task
# ----------------------------------------------------------------------------------------------

def mean_knockout(bridge: Any, data: AlgoData) -> KnockoutResult:
    """Accuracy with each head and MLP alone replaced by its mean output at each position over ``data``."""
    means = mean_values(bridge, data.tokens, per_position=True)
    return knockout_sweep(bridge, data.prompts(), answer_accuracy, values=means, progress=False)


@dataclass
class CircuitSummary:
    """Key numbers of a model on held-out lists: accuracy, the single-node mean ablation, the head
    whose ablation costs most (``deciding_head``), attention on the answer token per [layer, head], and
    the deciding head's mean score from SEP by key value, its monotonicity and its OV diagonal share."""

    accuracy: float
    knockout: KnockoutResult
    deciding_head: str
    layer: int
    head: int
    attention_on_answer: np.ndarray
    qk_by_value: np.ndarray
    qk_monotonicity: Monotonicity
    ov_diagonal_share: float


def circuit_summary(bridge: Any, data: AlgoData, knockout: Optional[KnockoutResult] = None) -> CircuitSummary:
    """:class:`CircuitSummary` of ``bridge`` on ``data`` (``knockout``: a :func:`mean_knockout` already run)."""
    knockout = knockout or mean_knockout(bridge, data)
    drops = knockout.as_dict()
    top = max(Graph.of(bridge).heads(), key=drops.__getitem__)
    layer, head = parse_node(top).layer, parse_node(top).head
    batch = data.prompts()
    by_value = attention_by(data, answer_scores(bridge, batch, data.value_mask()), "value")[layer, head]
    ov = ov_by_source(bridge, data.tokens, data.value_mask(), layer, head, data.V)
    return CircuitSummary(accuracy(bridge, batch), knockout, top, layer, head,
                          attention_on_answer(data, answer_attention(bridge, batch)), by_value,
                          monotonicity(by_value), ov_diagonal_argmax_share(ov))


def compare_models(names: Sequence[str], count: int, known: Optional[dict[str, CircuitSummary]] = None) -> pd.DataFrame:
    """:func:`circuit_summary` of several zoo models, one row each (each on its own held-out set);
    ``known`` maps model names to summaries already computed, which are reused."""
    rows = []
    for name in names:
        if name not in local_models():
            raise ParameterError(f"Unknown model {name!r} in compare_with; choose from {sorted(local_models())}.")
        s = (known or {}).get(name)
        if s is None:
            s = circuit_summary(load_model(name), test_set(local_models()[name].recipe, count=count))
        drops = s.knockout.as_dict()
        rows.append({"model": name, "held-out accuracy": s.accuracy, "deciding head": s.deciding_head,
                     "ablation drop": drops[s.deciding_head], "largest drop (any component)": max(drops.values()),
                     "attention on answer": s.attention_on_answer[s.layer, s.head],
                     "QK Spearman": s.qk_monotonicity.spearman, "OV diagonal share": s.ov_diagonal_share})
    return pd.DataFrame(rows).set_index("model")


COMPARISON_HEADERS = {"held-out accuracy": "accuracy", "deciding head": "deciding head",
                      "ablation drop": "its ablation drop", "largest drop (any component)": "largest drop",
                      "attention on answer": "attention on answer", "QK Spearman": "QK Spearman",
                      "OV diagonal share": "OV diagonal share"}


def show_comparison(table: pd.DataFrame) -> None:
    """:func:`compare_models`' table as the reader sees it: short headers, shares as percentages."""
    shown = table.rename(columns=COMPARISON_HEADERS)
    show_table(shown, percent=[c for c in shown.columns if c not in ("deciding head", "QK Spearman")],
               digits={"accuracy": 1})  # accuracies differ in the first decimal


# ----------------------------------------------------------------------------------------------
# Median: probe and interventions
# ----------------------------------------------------------------------------------------------

def cdf_probe(bridge: Any, data: AlgoData, hook: str = "blocks.0.hook_attn_out") -> float:
    """Held-out R² of a linear read-out of ``hook`` at SEP for the list's cumulative histogram
    ``#{values <= t} / L`` (one target per threshold ``t``; fitted on the first half of ``data``)."""
    act = answer_activation(bridge, data.prompts(), hook)
    valid = data.value_mask()
    counts = torch.stack([((data.tokens <= t) & valid).sum(1) for t in range(data.V)], 1).float()
    return linear_probe_r2(act, counts / data.lengths[:, None].float())


def edit_intervention(bridge: Any, data: AlgoData, seed: int = 0) -> pd.DataFrame:
    """Model answers after each kind of input edit (:func:`~shared.tasks.lists.median_edits`) versus
    the rank rule's prediction."""
    rows = []
    for kind in EDITS:
        edited, predicted, idx = median_edits(data, kind, seed)
        before = predictions(bridge, data.subset(idx).prompts())
        after = predictions(bridge, edited.prompts())
        rows.append({"edit": kind, "examples": len(idx),
                     "answer changed": float((after != before).float().mean()),
                     "rule predicted change": float((predicted != data.answers[idx]).float().mean()),
                     "model = rule prediction": float((after == predicted).float().mean())})
    return pd.DataFrame(rows).set_index("edit")


def _patch_hook(clean: AlgoData, source: torch.Tensor, where: str):
    """Hook copying ``source`` into the clean run at SEP (``where="SEP"``) or at the list positions."""
    rows = torch.arange(len(clean))

    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        act = act.clone()
        width = act.shape[1]
        if where == "SEP":
            act[rows, clean.lengths] = source[rows, clean.lengths]
        else:
            mask = clean.value_mask()[:, :width]
            act[mask] = source[:, :width][mask]
        return act

    return hook


@torch.no_grad()
def sep_patching(bridge: Any, data: AlgoData, layer: int = 0, seed: int = 0, hook: Optional[str] = None) -> pd.DataFrame:
    """Patch the residual stream after ``layer`` (or activation ``hook``) from a low-to-high edited list
    into the clean run, only at SEP or only at the list positions.

    Patching SEP alone tests whether SEP's state (which has seen the whole list) sets the target: the
    clean run should then output the edited list's median, the next-larger clean value. Patching every
    list position instead (SEP kept clean) should leave the clean median. (The engine patches node
    outputs at positions shared by all prompts; here the position differs per list, so this is a hook.)
    """
    edited, new_answer, idx = median_edits(data, "low_to_high", seed)
    clean = data.subset(idx)
    name = hook or f"blocks.{layer}.hook_resid_post"
    _, cache = bridge.run_with_cache(edited.tokens, names_filter=lambda n: n == name)
    out = []
    for where in ("none", "SEP", "list positions"):
        hooks = None if where == "none" else [(name, _patch_hook(clean, cache[name], where))]
        pred = predictions(bridge, clean.prompts(), fwd_hooks=hooks, chunk=len(clean))
        out.append({"patched": where, "examples": len(clean),
                    "= clean median": float((pred == clean.answers).float().mean()),
                    "= edited median": float((pred == new_answer).float().mean())})
    return pd.DataFrame(out).set_index("patched")


# ----------------------------------------------------------------------------------------------
# Failure analysis
# ----------------------------------------------------------------------------------------------

def accuracy_by_length(bridge: Any, recipe: dict[str, Any], count: int = 500, repeats: bool = False) -> pd.DataFrame:
    """Accuracy on held-out lists of every length the model's context allows (2 .. n + extra)."""
    trained = set(training_lengths(recipe))
    rows = []
    for L in tqdm(range(2, bridge.cfg.n_ctx - 1), desc="lengths", leave=False):
        if not repeats and L > recipe["V"]:
            continue
        data = test_set(recipe, count=count, lengths=[L], repeats=repeats, seed_offset=L)
        rows.append({"length": L, "accuracy": accuracy(bridge, data.prompts()), "trained": L in trained})
    return pd.DataFrame(rows).set_index("length")


def accuracy_by_answer(bridge: Any, data: AlgoData) -> pd.DataFrame:
    """Accuracy and count per answer value (shows the vocabulary edges)."""
    correct = (predictions(bridge, data.prompts()) == data.answers).float()
    df = pd.DataFrame({"answer": data.answers.numpy(), "correct": correct.numpy()})
    return df.groupby("answer")["correct"].agg(accuracy="mean", count="size")


def repeat_breakdown(bridge: Any, data: AlgoData) -> pd.DataFrame:
    """Accuracy on lists with repeats, split by whether the answer value itself is repeated."""
    correct = predictions(bridge, data.prompts()) == data.answers
    answer_count = ((data.tokens == data.answers[:, None]) & data.value_mask()).sum(1)
    distinct = torch.tensor([len(set(data.values(i))) for i in range(len(data))])
    has_repeat = distinct < data.lengths
    groups = {"no repeats": ~has_repeat, "repeats, answer once": has_repeat & (answer_count == 1),
              "answer repeated": answer_count > 1}
    return pd.DataFrame([{"lists": k, "count": int(m.sum()),
                          "accuracy": float(correct[m].float().mean()) if m.any() else float("nan")}
                         for k, m in groups.items()]).set_index("lists")


def failure_text(recipe: dict[str, Any], by_length: pd.DataFrame, by_answer: pd.DataFrame,
                 repeats: pd.DataFrame) -> str:
    """The failure analysis as sentences: trained and longer lengths, repeats, the vocabulary edges."""
    trained = by_length.loc[by_length["trained"], "accuracy"]
    longer = by_length.loc[~by_length["trained"] & (by_length.index > recipe["n"]), "accuracy"]
    lo, hi = by_answer.index.min(), by_answer.index.max()
    worst = by_answer.loc[by_answer["count"] >= 5, "accuracy"]
    return (f"Trained lengths {min(training_lengths(recipe))}–{recipe['n']}: {trained.min():.1%} to "
            f"{trained.max():.1%}. Longer, never-trained lengths: "
            + ", ".join(f"{L}: {a:.0%}" for L, a in longer.items())
            + ". Lists with repeated values: "
            + "; ".join(f"{k} {r.accuracy:.1%} ({int(r['count'])} lists)" for k, r in repeats.iterrows())
            + f". By answer value, the edges {lo} and {hi} score {by_answer.loc[lo, 'accuracy']:.0%} and "
            f"{by_answer.loc[hi, 'accuracy']:.0%} ({int(by_answer.loc[lo, 'count'])} and "
            f"{int(by_answer.loc[hi, 'count'])} lists); the worst value seen at least 5 times is {worst.idxmin()} "
            f"at {worst.min():.1%}.")


__all__ = ["CircuitSummary", "accuracy_by_answer", "accuracy_by_length", "attention_by", "attention_on_answer",
           "cdf_probe", "circuit_summary", "compare_models", "distance_from_uniform", "edit_intervention",
           "failure_text", "mean_knockout", "repeat_breakdown", "sep_patching", "show_attention", "show_comparison",
           "show_data", "task_model", "training_text"]
