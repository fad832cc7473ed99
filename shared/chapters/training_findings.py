"""The closing page of the training part (``training_findings``): it reads the cached series of the
training chapters back — with the parameters those chapters are registered with in
``notebooks/chapters.yml``, so that every checkpoint result is a cache hit after they have been built —
and turns them into the numbers that the page's sentences compare with Tigges et al. (2024).
"""
from __future__ import annotations

from typing import Any, Optional

import pandas as pd

from shared.chapters import training as tr
from shared.chapters import training_circuits as tc
from shared.chapters import training_consistency as tcons
from shared.chapters.registry import chapter_entry
from shared.errors import ParameterError

SERIES_KEYS = ("model_names", "max_checkpoints")
# training_performance's criterion parameter for each ability (as its notebook applies them)
CRITERIA = {"ioi_logit_diff": "min_ioi_logit_diff", "gt_prob_diff": "min_gt_prob_diff", "gt_gain": "min_gt_gain",
            "seq_accuracy": "min_seq_accuracy", "icl_score": "max_icl_score", "induction": "min_induction"}


def sibling_parameters(name: str, profile: str) -> dict[str, Any]:
    """The parameters chapter ``name`` runs with under ``profile`` (``local``, ``paper``, or ``smoke``:
    the test suite's parameters merged over ``local``)."""
    entry = chapter_entry(name)
    if entry is None:
        raise ParameterError(f"Chapter {name!r} is not registered in notebooks/chapters.yml.")
    own = chapter_entry("training_findings")
    if own is not None and name not in own.reads:  # else a change of its parameters would not rebuild this page
        raise ParameterError(f"training_findings reads {name!r}: list it under the reads: of training_findings "
                             f"in notebooks/chapters.yml.")
    if profile == "smoke":
        return entry.parameters("local", entry.smoke)
    return entry.parameters(profile)


def _measure(params: dict[str, Any], *drop: str) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in SERIES_KEYS and k not in drop}


def performance(profile: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """training_performance's series and parameters."""
    p = sibling_parameters("training_performance", profile)
    keep = ("n_prompts", "n_windows", "early_pos", "late_pos", "seed")
    return tr.performance_series(p["model_names"], p["max_checkpoints"], **{k: p[k] for k in keep}), p


def components(profile: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """training_components' series and parameters."""
    p = sibling_parameters("training_components", profile)
    return tr.component_series(p["model_names"], p["max_checkpoints"], **_measure(p, "role_threshold")), p


def circuits(profile: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """training_circuits' series and parameters."""
    p = sibling_parameters("training_circuits", profile)
    m = _measure(p, "late_steps", "threshold")
    return tc.circuit_series(p["model_names"], p["max_checkpoints"], p["late_steps"], target=p["threshold"], **m), p


def consistency(profile: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """training_consistency's series and parameters."""
    p = sibling_parameters("training_consistency", profile)
    return tcons.algorithm_series(p["model_names"], p["max_checkpoints"], **_measure(p, "controls")), p


def emergence_tables(series: pd.DataFrame, params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """:func:`shared.chapters.training.emergence` of every ability of :data:`CRITERIA`."""
    return {m: tr.emergence(series, m, params[c], params["appear_fraction"]) for m, c in CRITERIA.items()}


def role_moves(summary: pd.DataFrame) -> tuple[int, int]:
    """(models x roles that appear, of which those whose best head changes after appearing)."""
    have = summary[summary["step"].notna()]
    return len(have), int((have["best heads"] > 1).sum())


def consecutive_overlap(series: pd.DataFrame, task: str) -> Optional[tuple[float, float]]:
    """Smallest and largest Jaccard overlap of consecutive circuits of ``task`` (``None``: no pair)."""
    table = tc.change_table(series, task)
    prev = table["Jaccard previous"].dropna() if len(table) else pd.Series(dtype=float)
    return (float(prev.min()), float(prev.max())) if len(prev) else None


__all__ = ["CRITERIA", "SERIES_KEYS", "circuits", "components", "consecutive_overlap", "consistency",
           "emergence_tables", "performance", "role_moves", "sibling_parameters"]
