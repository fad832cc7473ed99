"""The IOI algorithm over training, for the ``training_consistency`` chapter: at each checkpoint, does
the model do IOI (the criterion of ``ioi_across_models``), and where it does, which heads fall in each
class (:func:`shared.analysis.ioi.classify_ioi_heads`) and does the IOI algorithm link test
(:func:`shared.analysis.ioi_algorithm.ioi_algorithm`) pass. Cached per model, step and parameters
with :func:`shared.chapters.training.checkpoint_result`; the checks on the planted controls are
those of :mod:`shared.chapters.ioi_across`.
"""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd
from tqdm.auto import tqdm

from shared.analysis.ioi import classify_ioi_heads
from shared.analysis.ioi_algorithm import ioi_algorithm
from shared.chapters import training as tr
from shared.chapters.ioi import FIRST_TEMPLATE, ioi_check
from shared.tasks.abilities import ioi_scores
from shared.tasks.ioi import ioi_batch


def checkpoint_algorithm(model: Any, n_prompts: int, seed: int, min_logit_diff: float, min_share_positive: float,
                         min_effect: float, min_attention: float, min_copy: float, min_upstream_effect: float,
                         min_rise: float) -> dict[str, Any]:
    """The IOI verdict of one model (held-out templates) and, only if it does IOI, its head
    ``classes``, each link's relative effect (``links``) and whether it ``uses_algorithm``."""
    check = ioi_check(ioi_scores(model, n_prompts=n_prompts, seed=seed), min_logit_diff, min_share_positive)
    out = dict(present=check.does_ioi, logit_diff=check.mean, share_positive=check.share_positive, classes=None,
               links=None, uses_algorithm=None)
    if check.does_ioi:
        data = ioi_batch(model, FIRST_TEMPLATE, n_prompts, corruption="abc", seed=seed)
        classes = classify_ioi_heads(model, data.batch, data.positions, min_effect, min_attention, min_copy,
                                     min_upstream_effect, min_rise).as_dict()
        result = ioi_algorithm(model, data.batch, data.positions, classes, min_effect, min_upstream_effect)
        out.update(classes={c: list(h) for c, h in classes.items()}, uses_algorithm=result.uses_algorithm,
                   links={k: float(v) for k, v in result.links["relative"].items()})
    return out


def algorithm_at(name: str, step: int, **params: Any) -> dict[str, Any]:
    """:func:`checkpoint_algorithm` of checkpoint ``step`` of ``name``, computed once (results cache)."""
    return tr.checkpoint_result("training-ioi-algorithm", name, step, params,
                                lambda model: checkpoint_algorithm(model, **params))


def algorithm_series(model_names: Sequence[str], max_checkpoints: int = 0, progress: bool = True,
                     **params: Any) -> pd.DataFrame:
    """One row per model and checkpoint: model, size, seed, step, tokens, present, logit_diff,
    share_positive and, where IOI is present, classes, links and uses_algorithm."""
    tr.check_series_models(model_names)
    visits = [(n, s) for n in model_names for s in tr.series_steps(n, max_checkpoints)]
    rows = []
    for name, step in tqdm(visits, desc="checkpoints (IOI algorithm)", disable=not progress):
        size, seed = tr.model_family(name)
        rows.append(dict(model=name, size=size, seed=seed, step=step, tokens=tr.tokens_seen(name, step),
                         **algorithm_at(name, step, **params)))
    return pd.DataFrame(rows)


__all__ = ["algorithm_at", "algorithm_series", "checkpoint_algorithm"]
