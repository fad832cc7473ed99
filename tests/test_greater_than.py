"""The greater-than analysis (shared.analysis.greater_than) against hand-computed values, and its search
against the hand-set model of shared.zoo.planted_gt, where the circuit (head a0.h0 -> MLP m1 -> logits)
and the MLP's logits over the years (a step at y > YY) are known by construction."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from shared.analysis.greater_than import (classify_gt_components, component_effects, component_year_logits,
                                          triangle_contrast, year_probabilities, yy_answer_matrix, yy_attention)
from shared.chapters import greater_than as gc
from shared.engine.ablation import ablation_values
from shared.engine.graph import Graph
from shared.engine.patching import score_edge_masks
from shared.errors import ParameterError
from shared.tasks.greater_than import greater_than_metric, prob_diff_from_logits
from shared.zoo.planted_gt import planted_gt_model


# ------------------------------------------------------------------------------- hand-computed values
def test_yy_answer_matrix_means_rows_per_yy():
    values = torch.tensor([[1.0, 2.0, 3.0], [5.0, 0.0, 1.0], [3.0, 4.0, -1.0]])
    m = yy_answer_matrix(values, torch.tensor([0, 2, 0]), n_years=3)
    np.testing.assert_allclose(m[0], [2.0, 3.0, 1.0])  # mean of prompts 0 and 2
    assert np.isnan(m[1]).all()  # no prompt with YY = 1
    np.testing.assert_allclose(m[2], [5.0, 0.0, 1.0])
    with pytest.raises(ParameterError):
        yy_answer_matrix(values, torch.tensor([0, 1]), n_years=3)


def test_triangle_contrast_by_hand():
    m = np.array([[1.0, 4.0, 6.0], [2.0, 2.0, 8.0], [np.nan] * 3])
    # row 0: mean(4, 6) - 1 = 4; row 1: 8 - mean(2, 2) = 6; row 2 skipped (empty); the last YY has no later year
    assert triangle_contrast(m) == pytest.approx(5.0)
    upper = np.triu(np.ones((5, 5)), k=1)
    assert triangle_contrast(upper) == pytest.approx(1.0)
    assert triangle_contrast(-upper) == pytest.approx(-1.0)


def test_classification_on_a_hand_set_effects_table():
    # m1 reaches the logits directly (0.5); m0 only through m1 (0.3); a0.h0 feeds m1 (0.4) and looks at YY,
    # a0.h1 feeds m1 as much but does not look at YY, a1.h0 looks at YY but feeds only the unselected... nothing
    nan = math.nan
    effects = pd.DataFrame({"logits": [0.0, 0.0, 0.02, 0.1, 0.5], "m0": [0.2, 0.0, nan, nan, nan],
                            "m1": [0.4, 0.4, 0.3, 0.01, nan]},
                           index=["a0.h0", "a0.h1", "m0", "a1.h0", "m1"])
    attention = pd.Series({"a0.h0": 0.9, "a0.h1": 0.05, "a1.h0": 0.8})
    found = classify_gt_components(effects, attention, full_effect=1.0, min_effect=0.1, min_attention=0.2)
    assert found.mlps == ["m1", "m0"]  # m0: 0.02 direct + 0.3 through m1
    assert found.scores.loc["m0", "relative total"] == pytest.approx(0.32)
    assert found.scores.loc["a0.h0", "via MLPs"] == pytest.approx(0.6)  # through m1 and m0
    assert found.heads == ["a0.h0"]  # a0.h1 does not attend to YY, a1.h0 has too little effect
    assert found.nodes() == ["a0.h0", "m0", "m1"]
    stricter = classify_gt_components(effects, attention, full_effect=1.0, min_effect=0.4, min_attention=0.2)
    assert stricter.mlps == ["m1"] and stricter.heads == ["a0.h0"]
    assert stricter.scores.loc["a0.h0", "via MLPs"] == pytest.approx(0.4)
    with pytest.raises(ParameterError):
        classify_gt_components(effects, attention, full_effect=0.0)


# ------------------------------------------------------------------------------------- planted model
@pytest.fixture(scope="module")
def planted():
    pm = planted_gt_model()
    gt = pm.batch(24, seed=0)
    return pm, gt


@pytest.fixture(scope="module")
def found(planted):
    pm, gt = planted
    scores = gc.prompt_scores(pm.bridge, gt)
    effects = component_effects(pm.bridge, gt, greater_than_metric(gt.digits))
    attention = yy_attention(pm.bridge, gt.batch.clean, gt.yy_pos)
    return scores, effects, classify_gt_components(effects, attention, float(scores["gain"].mean()))


def test_planted_model_does_greater_than_and_not_on_01(planted, found):
    pm, gt = planted
    scores, _, _ = found
    with torch.no_grad():
        logits = pm.bridge(gt.batch.clean)[:, -1]
    assert torch.allclose(torch.tensor(scores["prob diff"].values), prob_diff_from_logits(logits, gt.yy, gt.digits),
                          atol=1e-5)
    assert scores["prob diff"].mean() > 0.7
    assert abs(scores["control"].mean()) < 0.3  # the "01" twin spreads over all years above 01
    assert (scores["gain"] > 0).all() and scores["gain"].mean() > 0.7
    probs = year_probabilities(pm.bridge, gt.batch.clean, gt.digits)
    assert torch.allclose(probs.sum(-1), torch.tensor(scores["mass"].values, dtype=torch.float), atol=1e-5)


def test_search_recovers_the_planted_head_and_mlp(planted, found):
    pm, _ = planted
    _, effects, components = found
    assert components.mlps == pm.mlps == ["m1"]
    assert components.heads == pm.heads == ["a0.h0"]
    s = components.scores
    assert s.loc["m1", "relative direct"] == pytest.approx(1.0, abs=0.05)  # the whole effect goes m1 -> logits
    assert s.loc["a0.h0", "relative via MLPs"] == pytest.approx(1.0, abs=0.05)  # ... and a0.h0 -> m1
    assert effects.loc["a0.h0", "logits"] == pytest.approx(0.0, abs=0.01)  # no direct path from the head
    # the decoy attends to YY as much as the mover, but nothing reads what it writes
    assert s.loc[pm.decoy, "end→yy"] > 0.99 and s.loc["a0.h0", "end→yy"] > 0.99
    assert abs(s.loc[pm.decoy, "relative via MLPs"]) < 0.02 and not s.loc[pm.decoy, "selected"]
    assert s.loc[[c for c in s.index if c not in ("a0.h0", "m1")], "relative total"].abs().max() < 0.05


def test_planted_mlp_draws_the_upper_triangle(planted):
    pm, gt = planted
    logits = component_year_logits(pm.bridge, gt.batch.clean, ["m1"], gt.digits)["m1"]
    yy = gt.yy
    y = torch.arange(100)
    step = pm.gain * (y[None, :] > yy[:, None]).float()  # planted: gain on every year above YY, 0 elsewhere
    expected = step - step.mean(-1, keepdim=True)
    assert torch.allclose(logits, expected, atol=1e-3)
    m = yy_answer_matrix(logits, yy)
    assert triangle_contrast(m) == pytest.approx(pm.gain, abs=1e-3)
    # a noise head's year logits show no triangle
    assert abs(triangle_contrast(yy_answer_matrix(
        component_year_logits(pm.bridge, gt.batch.clean, ["a1.h1"], gt.digits)["a1.h1"], yy))) < 0.2


def test_planted_circuit_is_faithful(planted, found):
    pm, gt = planted
    _, _, components = found
    faith = gc.circuit_faithfulness(pm.bridge, gt, components, greater_than_metric(gt.digits))
    assert faith.normalized == pytest.approx(1.0, abs=0.05)
    assert faith.full > 0.7 and faith.empty < 0.3
    agree = gc.canonical_table(components, {"heads": pm.heads, "MLPs": pm.mlps}, "planted")
    assert agree["agree"].all()


def test_gain_is_the_whole_corruption_effect(planted, found):
    # patching every edge to the "01" run gives the control score, so effects divided by the gain are
    # shares of everything the corruption can remove
    pm, gt = planted
    scores, _, _ = found
    graph = Graph.of(pm.bridge)
    values = ablation_values(pm.bridge, gt.batch, "corrupt")
    everything = torch.ones(1, len(graph.edges), dtype=torch.bool)
    patched = score_edge_masks(pm.bridge, gt.batch, everything, values, greater_than_metric(gt.digits))
    assert float(patched[0]) == pytest.approx(float(scores["control"].mean()), abs=1e-4)
    assert float(scores["prob diff"].mean() - scores["control"].mean()) == pytest.approx(
        float(scores["gain"].mean()), abs=1e-6)
