"""Measurements over training checkpoints, for the ``training_*`` chapters: one cached result per
model, checkpoint, measurement and parameters, gathered into tables.

* :func:`series_steps`, :func:`tokens_seen` — which checkpoints a model has and how many tokens it
  had seen at each: the suite's saved steps, or, for a suite model's Pythia counterpart
  (``SUITE_PRETRAINED``), the same steps mapped to the Pythia revision at the same fraction of
  training (:func:`shared.zoo.registry.pythia_revision`);
* :func:`performance_at` / :func:`performance_series` — abilities per checkpoint, from
  :mod:`shared.tasks.abilities` and :mod:`shared.analysis.text`;
* :func:`components_at` / :func:`component_series` — every head's role scores per checkpoint, from
  :mod:`shared.analysis.components`;
* :func:`emergence`, :func:`role_summary` — when an ability or a role appears, by stated criteria.

Each checkpoint's result is stored with :func:`shared.chapters.results.cached_json` under a key of
model name, checkpoint (cache folder or hub revision), measurement and parameters, so a chapter that
only changes a figure reads the series back without loading a model.
"""
from __future__ import annotations

import random
import re
from functools import lru_cache
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from shared.analysis.components import ROLES, ComponentProbes, component_scores
from shared.analysis.text import icl_score, loss_by_position, text_windows, tokenize_stream
from shared.chapters.results import cached_json
from shared.engine.runs import threads
from shared.errors import ModelUnavailableError, ParameterError
from shared.paths import revision_folder
from shared.tasks import heldout
from shared.tasks.abilities import greater_than_scores, induction_score, ioi_scores, sequence_accuracy
from shared.tasks.ioi import check_names, ioi_batches
from shared.tasks.repeated import repeated_tokens_for
from shared.tasks.sequences import ordinal_lists
from shared.tasks.tokens import encode_text, get_tokenizer
from shared.zoo.registry import (PRETRAINED, SUITE_PRETRAINED, checkpoint_steps, load_model, local_model_dir,
                                 local_models, pythia_revision)
from shared.zoo.pilots import records
from shared.zoo.suite import checkpoint_schedule, suite_names
from shared.zoo.text.suite_corpus import document

PYTHIA_TOKENS_PER_STEP = 1024 * 2048  # Biderman et al. (2023): 1024 sequences of 2048 tokens per step
WINDOW = 128                          # tokens per ICL text window (the suite's context)
METRICS: dict[str, str] = {           # column -> axis label
    "ioi_logit_diff": "IOI logit difference IO − S (nats)",
    "ioi_accuracy": "IOI accuracy (share IO > S)",
    "gt_prob_diff": "greater-than probability difference",
    "gt_gain": 'greater-than gain over the "01" control',
    "seq_accuracy": "sequence accuracy (held-out forms)",
    "icl_score": "ICL score (loss late − early, nats)",
    "induction": "best induction (prefix-matching) score",
}
LOWER_IS_BETTER = ("icl_score",)


# ------------------------------------------------------------------------------------- models and steps
def pilot_runs(names: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """The committed training records (pilots and the suite's runs) that have probes, all or those named;
    an unknown name is one sentence listing the known ones."""
    known = {label: record for label, record in records(include_local=False).items() if record.get("probes")}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ParameterError(f"No training record named {unknown[0]!r}; the records are {', '.join(known)}.")
    return {n: known[n] for n in names} if names else known


def model_family(name: str) -> tuple[str, int]:
    """The size a model stands for and its seed: ``suite-s-s1`` -> ``("s", 1)``,
    ``pythia-70m-seed1`` -> ``("pythia-70m", 1)``."""
    match = re.fullmatch(r"suite-(\w+)-s(\d+)", name)
    if match:
        return match.group(1), int(match.group(2))
    match = re.fullmatch(r"(.+)-seed(\d+)", name)
    return (match.group(1), int(match.group(2))) if match else (name, 0)


def _counterpart_of(name: str) -> Optional[str]:
    return next((suite for suite, pretrained in SUITE_PRETRAINED.items() if pretrained == name), None)


def check_series_models(names: Sequence[str]) -> None:
    """Stop with one sentence unless every name is a local model with saved checkpoints or a
    suite model's Pythia counterpart (whose revisions stand for the suite's steps)."""
    for name in names:
        if name in local_models() or _counterpart_of(name) is not None:
            continue
        raise ParameterError(f"model_names: {name!r} has no training checkpoints this chapter can read; use suite "
                             f"models ({', '.join(n for n in local_models() if n.startswith('suite-'))}) or their "
                             f"Pythia counterparts ({', '.join(SUITE_PRETRAINED.values())}).")


def spread(steps: Sequence[int], count: int) -> list[int]:
    """At most ``count`` of ``steps`` (0: all): the first, the last and evenly spread ones between."""
    steps = list(steps)
    if not count or len(steps) <= count:
        return steps
    return [steps[int(i)] for i in np.unique(np.linspace(0, len(steps) - 1, count).round())]


def series_steps(name: str, max_checkpoints: int = 0) -> list[int]:
    """The checkpoints of ``name`` the series visits (suite steps; see the module docstring)."""
    check_series_models([name])
    if name in local_models():
        return spread(checkpoint_steps(name), max_checkpoints)
    recipe = local_models()[_counterpart_of(name)].recipe
    return spread(checkpoint_schedule(recipe["steps"], recipe["linear_every"]), max_checkpoints)


def _revision(name: str, step: int) -> str:
    return pythia_revision(step, local_models()[_counterpart_of(name)].recipe["steps"])


def tokens_seen(name: str, step: int) -> int:
    """Training tokens behind checkpoint ``step`` of ``name`` (for a Pythia counterpart: of the
    revision the step maps to)."""
    if name in local_models():
        recipe = local_models()[name].recipe
        return int(step * recipe["batch_size"] * local_models()[name].config["n_ctx"])
    return int(_revision(name, step)[len("step"):]) * PYTHIA_TOKENS_PER_STEP


def result_key(name: str, step: int) -> dict[str, str]:
    """What identifies one checkpoint in the results cache, without loading it."""
    if name in local_models():
        return {"model": name, "description": f"{local_model_dir(name).name} step {step}"}
    revision = _revision(name, step)
    mirror = revision_folder(PRETRAINED[name], revision)
    return {"model": name, "description": f"{PRETRAINED[name]} {revision}" + (f" from {mirror}" if mirror else "")}


# ------------------------------------------------------------------------------------- per checkpoint
@lru_cache(maxsize=8)
def _icl_stream(tokenizer: Any, n_docs: int, seed: int) -> torch.Tensor:
    """A token stream of ``n_docs`` fresh documents of the suite's kinds (seeded apart from training)."""
    rng = random.Random(f"{seed}-training-icl")
    return tokenize_stream(tokenizer, [document(rng) for _ in range(n_docs)])


def icl_windows(model: Any, n_windows: int, seed: int) -> torch.Tensor:
    """``n_windows`` windows of :data:`WINDOW` tokens (BOS first) of generated suite documents."""
    tok = get_tokenizer(model)
    stream = _icl_stream(tok, max(200, 4 * n_windows), seed)
    return text_windows(stream, min(WINDOW, model.cfg.n_ctx), n_windows, seed, bos_id=tok.bos_token_id)


def performance(model: Any, n_prompts: int, n_windows: int, early_pos: int, late_pos: int,
                seed: int) -> dict[str, Any]:
    """Every ability of :data:`METRICS` for one model (the held-out forms only)."""
    ioi = ioi_scores(model, n_prompts=n_prompts, seed=seed)
    gt = greater_than_scores(model, n_prompts=n_prompts, seed=seed)
    seq = sequence_accuracy(model, forms=list(heldout.SEQ_FORMS), n_prompts=n_prompts, seed=seed)
    best, head = induction_score(model, seed=seed)
    position_loss = loss_by_position(model, icl_windows(model, n_windows, seed))
    return dict(ioi_logit_diff=float(ioi.logit_diff.mean()), ioi_accuracy=float((ioi.logit_diff > 0).mean()),
                gt_prob_diff=float(gt.prob_diff.mean()), gt_gain=float(gt.gain.mean()),
                gt_control=float(gt.control.mean()), seq_accuracy=float(seq.accuracy.mean()),
                icl_score=icl_score(position_loss, early_pos, late_pos), induction=best, induction_head=head,
                loss=float(position_loss.mean()))


def component_probes(model: Any, n_prompts: int, seq_len: int, n_repeated: int, seed: int) -> ComponentProbes:
    """The inputs of :func:`shared.analysis.components.component_scores` for a language model:
    repeated random tokens, ``n_prompts`` IOI prompts per held-out template, the IOI names and the
    ordinal lists of the held-out sequence tasks."""
    tok = get_tokenizer(model)
    repeated = repeated_tokens_for(model, seq_len, n_repeated, seed)
    ioi = [(b.batch.clean, b.positions) for b in ioi_batches(tok, n_per_template=n_prompts, seed=seed).values()]
    names = torch.tensor([encode_text(tok, " " + n)[0][0] for n in check_names(tok)])
    return ComponentProbes(repeated.tokens, repeated.seq_len, ioi, names, ordinal_lists(tok, heldout.SEQ_TASKS))


def _load(name: str, step: int) -> Any:
    try:
        return load_model(name, step=step)
    except ModelUnavailableError as err:
        raise ModelUnavailableError(f"Checkpoint {_revision(name, step)} of {name!r} cannot be downloaded here (no "
                                    f"internet access and no local copy); set the notebook parameter `model_names` "
                                    f"to suite models such as {suite_names()}.") from err


def checkpoint_result(kind: str, name: str, step: int, params: dict[str, Any],
                      compute: Callable[[Any], Any]) -> Any:
    """``compute(model)`` of checkpoint ``step`` of ``name``, computed once per ``kind`` and ``params``
    (results cache; the model is loaded only on a miss). A suite model runs with one torch thread,
    several times cheaper for such small models (:func:`shared.engine.runs.threads`)."""
    def fresh() -> Any:
        model = _load(name, step)
        if model.cfg.d_model > 512:  # a pretrained model: its matrix products use every thread
            return compute(model)
        with threads(1):
            return compute(model)

    return cached_json(kind, result_key(name, step), {"step": step, **params}, fresh)


def performance_at(name: str, step: int, n_prompts: int, n_windows: int, early_pos: int, late_pos: int,
                   seed: int) -> dict[str, Any]:
    """:func:`performance` of checkpoint ``step`` of ``name``, computed once (results cache)."""
    params = dict(n_prompts=n_prompts, n_windows=n_windows, early_pos=early_pos, late_pos=late_pos, seed=seed)
    return checkpoint_result("training-performance", name, step, params, lambda m: performance(m, **params))


def components_at(name: str, step: int, n_prompts: int, seq_len: int, n_repeated: int,
                  seed: int) -> dict[str, dict[str, float]]:
    """``{role: {head: score}}`` of checkpoint ``step`` of ``name``, computed once (results cache)."""
    params = dict(n_prompts=n_prompts, seq_len=seq_len, n_repeated=n_repeated, seed=seed)

    def compute(model: Any) -> dict[str, dict[str, float]]:
        table = component_scores(model, component_probes(model, **params))
        return {role: {h: float(v) for h, v in table[role].items()} for role in ROLES}

    return checkpoint_result("training-components", name, step, params, compute)


# ------------------------------------------------------------------------------------- series
def _visits(model_names: Sequence[str], max_checkpoints: int) -> list[tuple[str, int]]:
    check_series_models(model_names)
    return [(name, step) for name in model_names for step in series_steps(name, max_checkpoints)]


def _row(name: str, step: int) -> dict[str, Any]:
    size, seed = model_family(name)
    return dict(model=name, size=size, seed=seed, step=step, tokens=tokens_seen(name, step))


def performance_series(model_names: Sequence[str], max_checkpoints: int = 0, progress: bool = True,
                       **params: Any) -> pd.DataFrame:
    """One row per model and checkpoint: model, size, seed, step, tokens and every metric."""
    visits = _visits(model_names, max_checkpoints)
    rows = [{**_row(name, step), **performance_at(name, step, **params)}
            for name, step in tqdm(visits, desc="checkpoints (performance)", disable=not progress)]
    return pd.DataFrame(rows)


def component_series(model_names: Sequence[str], max_checkpoints: int = 0, progress: bool = True,
                     **params: Any) -> pd.DataFrame:
    """One row per model, checkpoint, role and head: model, size, seed, step, tokens, role, head, score."""
    rows = []
    for name, step in tqdm(_visits(model_names, max_checkpoints), desc="checkpoints (components)",
                           disable=not progress):
        base = _row(name, step)
        for role, scores in components_at(name, step, **params).items():
            rows += [{**base, "role": role, "head": head, "score": score} for head, score in scores.items()]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------- criteria
def emergence(series: pd.DataFrame, metric: str, present: float, fraction: float) -> pd.DataFrame:
    """Per model: the ``first``and ``final`` values of ``metric``, whether the ability is ``present``
    at the last checkpoint (final value at least ``present``; at most, for :data:`LOWER_IS_BETTER`),
    and, if so, the first checkpoint (``step``, ``tokens``) whose value has covered ``fraction`` of
    the way from the first checkpoint's value to the final one."""
    lower = metric in LOWER_IS_BETTER
    rows = []
    for name, group in series.sort_values("step").groupby("model", sort=False):
        values = group[metric].to_numpy(dtype=float)
        first, final = values[0], values[-1]
        has = bool(final <= present if lower else final >= present) and len(values) > 1
        row = dict(model=name, size=group["size"].iloc[0], first=first, final=final, present=has,
                   step=None, tokens=None)
        if has:
            bar = first + fraction * (final - first)
            k = int(np.argmax(values <= bar if lower else values >= bar))
            row.update(step=int(group["step"].iloc[k]), tokens=int(group["tokens"].iloc[k]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def spread_factor(table: pd.DataFrame) -> Optional[float]:
    """Largest over smallest number of tokens at which the models that gain an ability gain it
    (``None`` with fewer than two such models; a model that has it from the start counts as 1 token)."""
    tokens = [max(int(t), 1) for t in table.loc[table["present"], "tokens"]]
    return max(tokens) / min(tokens) if len(tokens) >= 2 else None


def role_summary(components: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per model and role: the best head and its score at the last checkpoint, the first checkpoint
    (``step``, ``tokens``) where some head scores at least ``threshold`` (``None``: never), how many
    different heads are best over the checkpoints from then on (``best heads``), and the number of
    heads at or above ``threshold`` at the last checkpoint."""
    rows = []
    for (name, role), group in components.groupby(["model", "role"], sort=False):
        wide = group.pivot(index="step", columns="head", values="score").sort_index()
        best = wide.max(axis=1)
        above = best[best >= threshold]
        start = above.index[0] if len(above) else None
        leaders = wide.loc[start:].idxmax(axis=1) if start is not None else pd.Series(dtype=str)
        rows.append(dict(model=name, role=role, **{"best head": wide.iloc[-1].idxmax(), "best score": best.iloc[-1]},
                         step=start, tokens=int(group.loc[group["step"] == start, "tokens"].iloc[0])
                         if start is not None else None,
                         **{"best heads": int(leaders[best.loc[start:] >= threshold].nunique()),
                            "heads above": int((wide.iloc[-1] >= threshold).sum())}))
    return pd.DataFrame(rows).set_index(["model", "role"])


def heads_above(components: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Number of heads scoring at least ``threshold`` per model, role and checkpoint (long table)."""
    flags = components.assign(above=components["score"] >= threshold)
    return flags.groupby(["model", "size", "seed", "role", "step", "tokens"], sort=False)["above"].sum().reset_index()


__all__ = ["LOWER_IS_BETTER", "METRICS", "PYTHIA_TOKENS_PER_STEP", "WINDOW", "check_series_models",
           "checkpoint_result",
           "component_probes", "component_series", "components_at", "emergence", "heads_above", "icl_windows",
           "model_family", "performance", "performance_at", "pilot_runs", "performance_series", "result_key", "role_summary",
           "series_steps", "spread", "spread_factor", "tokens_seen"]
